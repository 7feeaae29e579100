/// An allocation-free UTF-8 validator with the same verdicts as the standard library's
/// `Unicode.UTF8.ForwardParser`, which SwiftProtobuf uses for string fields: it rejects
/// over-long forms, surrogates (U+D800...U+DFFF), code points above U+10FFFF, stray continuation
/// bytes and truncated sequences, and accepts U+0000.
public enum UTF8Validation {
    /// Whether `bytes` is well-formed UTF-8 (an empty buffer is).
    @inlinable
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        return isValid(base, count: bytes.count)
    }

    /// Whether the `count` bytes at `start` are well-formed UTF-8.
    public static func isValid(_ start: UnsafeRawPointer, count: Int) -> Bool {
        // Identifiers are nearly always ASCII: a short string costs a few word loads, not a
        // pass of the loop below per byte.
        if isASCII(start, count: count) { return true }
        var index = 0
        while index < count {
            // ASCII runs dominate identifiers: test eight bytes at a time.
            while count &- index >= 8 {
                let word = start.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                if word & 0x8080_8080_8080_8080 != 0 { break }
                index &+= 8
            }
            guard index < count else { return true }
            let lead = start.load(fromByteOffset: index, as: UInt8.self)
            if lead < 0x80 {
                index &+= 1
                continue
            }
            // The allowed range of the second byte depends on the lead byte (this excludes
            // over-long forms, surrogates and values above U+10FFFF); later ones are 80...BF.
            let length: Int
            var secondLow: UInt8 = 0x80
            var secondHigh: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                secondLow = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                secondHigh = 0x9F
            case 0xF0:
                length = 4
                secondLow = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                secondHigh = 0x8F
            default: return false
            }
            guard count &- index >= length else { return false }
            let second = start.load(fromByteOffset: index &+ 1, as: UInt8.self)
            guard second >= secondLow, second <= secondHigh else { return false }
            var next = index &+ 2
            while next < index &+ length {
                guard start.load(fromByteOffset: next, as: UInt8.self) & 0xC0 == 0x80 else { return false }
                next &+= 1
            }
            index = next
        }
        return true
    }

    /// Whether every byte is below 0x80, by words: overlapping loads cover a string whose
    /// length is not a multiple of the word (never reading outside it).
    @inline(__always)
    static func isASCII(_ start: UnsafeRawPointer, count: Int) -> Bool {
        switch count {
        case 0:
            return true
        case 1:
            return start.load(as: UInt8.self) < 0x80
        case 2...3:
            let bits =
                start.loadUnaligned(as: UInt16.self) | start.loadUnaligned(fromByteOffset: count &- 2, as: UInt16.self)
            return bits & 0x8080 == 0
        case 4...7:
            let bits =
                start.loadUnaligned(as: UInt32.self) | start.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)
            return bits & 0x8080_8080 == 0
        default:
            var bits = start.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
            var index = 0
            while index &+ 8 <= count {
                bits |= start.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                index &+= 8
            }
            return bits & 0x8080_8080_8080_8080 == 0
        }
    }
}
