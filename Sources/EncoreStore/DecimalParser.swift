#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Parses decimal numbers (`-12`, `0.1234`, `1.5e-3`) straight from bytes, without building a
/// `String`. Up to 19 significant digits with a power of ten within 1e±22 are converted
/// exactly (one multiply or divide of exact doubles, as in fast_float's fast path); anything
/// else falls back to `strtod` on a stack copy.
enum DecimalParser {
    /// 10^e for 0 <= e <= 22, all exact in a `Double` (a switch, not a global array, so the
    /// hot path pays no lazy-initialization check).
    @inline(__always)
    private static func exactPowerOfTen(_ e: Int) -> Double {
        switch e {
        case 0: 1e0
        case 1: 1e1
        case 2: 1e2
        case 3: 1e3
        case 4: 1e4
        case 5: 1e5
        case 6: 1e6
        case 7: 1e7
        case 8: 1e8
        case 9: 1e9
        case 10: 1e10
        case 11: 1e11
        case 12: 1e12
        case 13: 1e13
        case 14: 1e14
        case 15: 1e15
        case 16: 1e16
        case 17: 1e17
        case 18: 1e18
        case 19: 1e19
        case 20: 1e20
        case 21: 1e21
        default: 1e22
        }
    }

    /// Scans a number starting at `p[i]` (optional sign, digits, optional fraction, optional
    /// exponent), advancing `i` past it. Returns nil, with `i` unchanged, if no number starts
    /// there. Never reads at or past `end`.
    @inline(__always)
    static func scan(_ p: UnsafeRawPointer, _ i: inout Int, _ end: Int) -> Double? {
        let start = i
        var j = i
        var negative = false
        @inline(__always) func byte(_ k: Int) -> UInt8 { p.load(fromByteOffset: k, as: UInt8.self) }
        if j < end, byte(j) == 0x2D || byte(j) == 0x2B {
            negative = byte(j) == 0x2D
            j += 1
        }
        var mantissa: UInt64 = 0
        var significant = 0
        var exponent = 0
        var sawDigit = false
        var inexact = false
        while j < end, case let d = byte(j) &- 0x30, d < 10 {
            sawDigit = true
            if significant < 19 {
                mantissa = mantissa &* 10 &+ UInt64(d)
                if mantissa != 0 { significant += 1 }
            } else {
                exponent += 1
                inexact = inexact || d != 0
            }
            j += 1
        }
        if j < end, byte(j) == 0x2E {
            j += 1
            while j < end, case let d = byte(j) &- 0x30, d < 10 {
                sawDigit = true
                if significant < 19 {
                    mantissa = mantissa &* 10 &+ UInt64(d)
                    if mantissa != 0 { significant += 1 }
                    exponent -= 1
                } else {
                    inexact = inexact || d != 0
                }
                j += 1
            }
        }
        guard sawDigit else { return nil }
        if j < end, byte(j) | 0x20 == 0x65 {
            var k = j + 1
            var expNegative = false
            if k < end, byte(k) == 0x2D || byte(k) == 0x2B {
                expNegative = byte(k) == 0x2D
                k += 1
            }
            var e = 0
            var expDigits = 0
            while k < end, case let d = byte(k) &- 0x30, d < 10 {
                if e < 100_000 { e = e * 10 + Int(d) }
                expDigits += 1
                k += 1
            }
            if expDigits > 0 {
                exponent += expNegative ? -e : e
                j = k
            }
        }
        i = j
        if !inexact, mantissa < (1 << 53), exponent >= -22, exponent <= 22 {
            var value = Double(mantissa)
            value = exponent < 0 ? value / exactPowerOfTen(-exponent) : value * exactPowerOfTen(exponent)
            return negative ? -value : value
        }
        if mantissa == 0 && !inexact { return negative ? -0.0 : 0 }
        return slowParse(p + start, j - start)
    }

    private static func slowParse(_ p: UnsafeRawPointer, _ count: Int) -> Double {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + 1) { buf in
            let base = buf.baseAddress!
            UnsafeMutableRawPointer(base).copyMemory(from: p, byteCount: count)
            base[count] = 0
            return strtod(base, nil)
        }
    }

    /// Parses the whole of `bytes` as one number; nil if it is not exactly one number.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Double? {
        guard let base = bytes.baseAddress else { return nil }
        var i = 0
        guard let v = scan(base, &i, bytes.count), i == bytes.count else { return nil }
        return v
    }

    /// Whether `bytes` spell NaN or an infinity (`nan`, `-inf`, `Infinity`, any case), for a
    /// precise error message.
    static func spellsNonFinite(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var s = Substring(String(decoding: bytes, as: UTF8.self).lowercased())
        if s.first == "-" || s.first == "+" { s = s.dropFirst() }
        return s == "nan" || s == "inf" || s == "infinity"
    }
}
