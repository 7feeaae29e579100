/// SplitMix64: a tiny, fast, seedable generator, so every generated case is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0..<bound` (`bound` > 0); slight modulo bias is fine for tests.
    mutating func below(_ bound: Int) -> Int {
        Int(truncatingIfNeeded: next() % UInt64(bound))
    }

    /// A uniform integer in `range`.
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + below(range.upperBound - range.lowerBound + 1)
    }

    /// True with probability `percent`/100.
    mutating func percent(_ percent: Int) -> Bool {
        below(100) < percent
    }

    /// A random element of a non-empty array.
    mutating func pick<T>(_ values: [T]) -> T {
        values[below(values.count)]
    }

    /// A varint payload from a mix of interesting and random values.
    mutating func varintValue() -> UInt64 {
        switch below(10) {
        case 0: return 0
        case 1: return UInt64(below(128))
        case 2: return UInt64(below(1 << 20))
        case 3: return next()
        case 4: return UInt64(bitPattern: Int64(-1 - below(1000)))
        case 5:
            return pick([
                UInt64(UInt32.max), UInt64(UInt32.max) + 1, UInt64(Int32.max), UInt64(bitPattern: Int64.min),
                UInt64(bitPattern: Int64.max), UInt64.max, 1 << 32 | 7, UInt64(bitPattern: Int64(Int32.min)),
            ])
        default: return UInt64(below(100_000))
        }
    }

    /// A double bit pattern from a mix of special values and random ones.
    mutating func doubleBits() -> UInt64 {
        switch below(6) {
        case 0:
            return pick([
                Double.nan.bitPattern, (-Double.nan).bitPattern, Double.signalingNaN.bitPattern,
                0x7FF0_0000_0000_0001, 0xFFF8_0000_DEAD_BEEF, Double.infinity.bitPattern,
                (-Double.infinity).bitPattern, (-0.0 as Double).bitPattern, (0.0 as Double).bitPattern,
                Double.greatestFiniteMagnitude.bitPattern, Double.leastNonzeroMagnitude.bitPattern,
                Double.ulpOfOne.bitPattern, (1.0 as Double).bitPattern,
            ])
        case 1: return next()
        default: return Double(int(-1_000_000...1_000_000)).bitPattern ^ UInt64(below(1 << 20))
        }
    }

    /// Valid UTF-8 bytes: empty, short ASCII, mixed scalars (including U+0000 and U+10FFFF), or
    /// rarely (0.1%) long, up to `maxLong` bytes (SwiftProtobuf's debug-build UTF-8 check is slow).
    mutating func utf8String(maxLong: Int = 4096) -> [UInt8] {
        switch below(1000) {
        case 0..<250: return []
        case 250..<700:
            var bytes: [UInt8] = []
            let count = int(1...10)
            bytes.reserveCapacity(count)
            for _ in 0..<count { bytes.append(UInt8(truncatingIfNeeded: 0x20 + below(95))) }
            return bytes
        case 700..<999:
            var bytes: [UInt8] = []
            for _ in 0..<int(1...6) { bytes.append(contentsOf: Array(String(randomScalar()).utf8)) }
            return bytes
        default:
            var bytes: [UInt8] = []
            let target = int(min(256, maxLong)...maxLong)
            while bytes.count < target {
                if percent(90) {
                    bytes.append(UInt8(int(0x20...0x7E)))
                } else {
                    bytes.append(contentsOf: Array(String(randomScalar()).utf8))
                }
            }
            return bytes
        }
    }

    /// A random Unicode scalar from every encoded length and the edges of each range.
    mutating func randomScalar() -> Unicode.Scalar {
        let ranges: [ClosedRange<UInt32>] = [
            0...0x7F, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF, 0x1F300...0x1F6FF,
        ]
        let edges: [UInt32] = [0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF]
        let range = pick(ranges)
        let value = percent(20) ? pick(edges) : UInt32(int(Int(range.lowerBound)...Int(range.upperBound)))
        return Unicode.Scalar(value) ?? "?"
    }
}
