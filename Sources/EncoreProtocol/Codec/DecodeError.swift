/// Why a hand-written hot-path decoder rejected its input. Throwing one never allocates: the
/// field is a `StaticString` and the reason a plain enum; ``message`` builds text on demand.
/// Map it to gRPC `INVALID_ARGUMENT` at the transport edge.
public struct DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was wrong with the bytes.
    public enum Reason: UInt8, Sendable, Equatable, CustomStringConvertible {
        /// The input ended inside a tag, a value or a length-delimited field.
        case truncated
        /// A varint ran past 10 bytes.
        case malformedVarint
        /// A field key was invalid: field number 0, wire type 6 or 7, an over-long key, or an
        /// end-group marker with no matching start group.
        case malformedTag
        /// A length prefix was at least 2 GiB.
        case lengthTooLarge
        /// A string field held bytes that are not valid UTF-8.
        case invalidUTF8
        /// Groups nested deeper than SwiftProtobuf's default limit of 100 message levels.
        case nestingTooDeep
        /// The whole input was 2 GiB or larger (offsets would not fit a ``ByteSpan``).
        case inputTooLarge

        /// A short lowercase phrase, e.g. "truncated".
        public var description: String {
            switch self {
            case .truncated: "truncated"
            case .malformedVarint: "malformed varint"
            case .malformedTag: "malformed field key"
            case .lengthTooLarge: "length prefix too large"
            case .invalidUTF8: "invalid UTF-8"
            case .nestingTooDeep: "groups nested too deeply"
            case .inputTooLarge: "message too large"
            }
        }
    }

    /// The field (or message) being read, e.g. `"DecideRequest.order.items.sku"`.
    public var field: StaticString
    /// What was wrong.
    public var reason: Reason

    /// Creates an error for `field`.
    @inlinable
    public init(_ field: StaticString, _ reason: Reason) {
        self.field = field
        self.reason = reason
    }

    /// `"<field>: <reason>"`, e.g. `"DecideRequest.order.items: truncated"`. Allocates; meant for
    /// the gRPC status message and logs, not the hot path.
    public var message: String { "\(field): \(reason)" }

    /// Same as ``message``.
    public var description: String { message }

    /// Two errors are equal when they name the same field text and the same reason.
    public static func == (lhs: DecodeError, rhs: DecodeError) -> Bool {
        guard lhs.reason == rhs.reason else { return false }
        return lhs.field.withUTF8Buffer { left in
            rhs.field.withUTF8Buffer { right in left.elementsEqual(right) }
        }
    }
}
