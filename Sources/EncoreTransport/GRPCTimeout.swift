/// Parses the `grpc-timeout` header: 1 to 8 ASCII digits and a unit (H, M, S, m, u, n).
public enum GRPCTimeout {
    /// Returns the timeout in nanoseconds, or nil if the value is malformed.
    public static func parseNanos(_ value: UnsafeRawBufferPointer) -> UInt64? {
        guard value.count >= 2, value.count <= 9 else { return nil }
        var amount: UInt64 = 0
        for i in 0..<(value.count - 1) {
            let c = value[i]
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + UInt64(c - UInt8(ascii: "0"))
        }
        let perUnit: UInt64
        switch value[value.count - 1] {
        case UInt8(ascii: "H"): perUnit = 3_600_000_000_000
        case UInt8(ascii: "M"): perUnit = 60_000_000_000
        case UInt8(ascii: "S"): perUnit = 1_000_000_000
        case UInt8(ascii: "m"): perUnit = 1_000_000
        case UInt8(ascii: "u"): perUnit = 1_000
        case UInt8(ascii: "n"): perUnit = 1
        default: return nil
        }
        let (product, overflow) = amount.multipliedReportingOverflow(by: perUnit)
        return overflow ? UInt64.max : product
    }

    /// Convenience for tests and tools.
    public static func parseNanos(_ text: String) -> UInt64? {
        var copy = text
        return copy.withUTF8 { parseNanos(UnsafeRawBufferPointer($0)) }
    }
}
