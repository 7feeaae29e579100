/// A transaction moment at which the checkout frontend asks for an offer.
public enum Surface: String, CaseIterable, Sendable, Hashable {
    case cart
    case payment
    case thankYou = "thank_you"
    case confirmation
    case email

    /// Position in `allCases` (0 = cart ... 4 = email), for per-surface tables.
    public var index: Int { bit.trailingZeroBitCount }

    /// The bit of this surface in a `SurfaceSet`.
    public var bit: UInt8 {
        switch self {
        case .cart: 1
        case .payment: 2
        case .thankYou: 4
        case .confirmation: 8
        case .email: 16
        }
    }

    /// Parses the wire spelling (`cart`, `payment`, `thank_you`, `confirmation`, `email`) from
    /// UTF-8 bytes without allocating; nil for anything else (case-sensitive).
    public init?(utf8 bytes: UnsafeRawBufferPointer) {
        @inline(__always) func eq(_ s: StaticString) -> Bool {
            s.utf8CodeUnitCount == bytes.count
                && s.withUTF8Buffer { lit in
                    for i in 0..<lit.count where lit[i] != bytes[i] { return false }
                    return true
                }
        }
        switch bytes.count {
        case 4 where eq("cart"): self = .cart
        case 5 where eq("email"): self = .email
        case 7 where eq("payment"): self = .payment
        case 9 where eq("thank_you"): self = .thankYou
        case 12 where eq("confirmation"): self = .confirmation
        default: return nil
        }
    }

    /// The accepted spellings, for error messages.
    static let spellings = allCases.map(\.rawValue).joined(separator: ", ")
}
