#if canImport(Glibc)
    import Glibc
#endif

/// A growable byte buffer for JSON Lines text, written through a raw pointer: no per-byte
/// bounds, uniqueness or exclusivity checks, and no `String` per token. The log writer keeps one
/// per file for the life of its thread and hands its bytes to write(2) in large pieces.
///
/// A plain struct over manually managed memory: the owner calls `deallocate()` exactly once and
/// never copies it (copies would share the storage).
struct JSONLineBuffer {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var capacity: Int
    /// Bytes written so far.
    private(set) var count = 0

    /// `capacity` in bytes; the buffer grows (doubling) when a write needs more.
    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    func deallocate() { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    var isEmpty: Bool { count == 0 }

    /// Complete lines held (newline bytes).
    var lineCount: Int { JSONLineBuffer.countLines(base, count) }

    /// The newline bytes among the first `count` at `base`.
    static func countLines(_ base: UnsafePointer<UInt8>, _ count: Int) -> Int {
        var lines = 0
        var p = UnsafeRawPointer(base)
        var left = count
        while left > 0, let hit = memchr(p, 0x0A, left) {
            lines += 1
            let consumed = UnsafeRawPointer(hit) - p + 1
            p += consumed
            left -= consumed
        }
        return lines
    }

    /// Drops everything, keeping the memory.
    mutating func removeAll() { count = 0 }

    /// Drops everything after the first `n` bytes (undoes a partly written line).
    mutating func truncate(to n: Int) {
        precondition(n >= 0 && n <= count)
        count = n
    }

    /// Drops the first `n` bytes (after a partial write), moving the rest to the front.
    mutating func removeFirst(_ n: Int) {
        precondition(n >= 0 && n <= count)
        if n < count { base.update(from: base + n, count: count - n) }
        count -= n
    }

    /// Makes room for `n` more bytes and returns where they go; `commit(_:)` then counts them.
    @inline(__always)
    mutating func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if count + n > capacity { grow(count + n) }
        return base + count
    }

    @inline(__always)
    mutating func commit(_ n: Int) { count += n }

    private mutating func grow(_ needed: Int) {
        var c = capacity * 2
        while c < needed { c *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        bigger.initialize(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity = c
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        reserve(1).pointee = byte
        count += 1
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        UnsafeMutableRawPointer(reserve(bytes.count)).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    /// Appends a copy of `count` bytes already in the buffer at `offset` (text written earlier
    /// in the same line).
    mutating func appendCopy(offset: Int, count n: Int) {
        precondition(offset >= 0 && n >= 0 && offset + n <= count)
        // Reserve first: growing moves the storage the copy reads from.
        let target = reserve(n)
        target.update(from: base + offset, count: n)
        count += n
    }

    /// Appends literal JSON text.
    @inline(__always)
    mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends a decimal integer.
    mutating func appendInteger(_ value: Int64) {
        let p = reserve(20)
        var n = 0
        var magnitude = value.magnitude
        if value < 0 {
            p[0] = UInt8(ascii: "-")
            n = 1
        }
        var digits = 1
        var probe = magnitude
        while probe >= 10 {
            probe /= 10
            digits += 1
        }
        var i = n + digits - 1
        repeat {
            p[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
            magnitude /= 10
            i -= 1
        } while magnitude > 0
        count += n + digits
    }

    /// Appends `bytes` (UTF-8) as a JSON string: quotes, and escapes for `"`, `\` and control
    /// characters.
    mutating func appendQuoted(_ bytes: UnsafeRawBufferPointer) {
        // Worst case: every byte becomes a six-byte \u00XX escape.
        let p = reserve(2 + 6 * bytes.count)
        p[0] = UInt8(ascii: "\"")
        var k = 1
        for b in bytes {
            if b >= 0x20 && b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\") {
                p[k] = b
                k += 1
                continue
            }
            p[k] = UInt8(ascii: "\\")
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                p[k + 1] = b
                k += 2
            case 0x0A:
                p[k + 1] = UInt8(ascii: "n")
                k += 2
            case 0x0D:
                p[k + 1] = UInt8(ascii: "r")
                k += 2
            case 0x09:
                p[k + 1] = UInt8(ascii: "t")
                k += 2
            default:
                let hex: StaticString = "0123456789abcdef"
                p[k + 1] = UInt8(ascii: "u")
                p[k + 2] = UInt8(ascii: "0")
                p[k + 3] = UInt8(ascii: "0")
                p[k + 4] = hex.utf8Start[Int(b >> 4)]
                p[k + 5] = hex.utf8Start[Int(b & 15)]
                k += 6
            }
        }
        p[k] = UInt8(ascii: "\"")
        count += k + 1
    }

    /// Appends `text` as a JSON string.
    mutating func appendQuoted(_ text: String) {
        var copy = text
        copy.withUTF8 { appendQuoted(UnsafeRawBufferPointer($0)) }
    }

    /// Appends the shortest decimal that parses back to exactly `value` (the text of
    /// `Double.description`), or `null` for NaN and infinities, which JSON cannot carry.
    mutating func appendNumber(_ value: Double) { appendFloatingPoint(value) }

    /// Appends the shortest decimal that parses back (as a Float32) to exactly `value` (the text
    /// of `Float.description`, short enough for Swift's inline small-string form: no allocation),
    /// or `null` for NaN and infinities.
    mutating func appendNumber(_ value: Float) { appendFloatingPoint(value) }

    @inline(__always)
    private mutating func appendFloatingPoint<F: BinaryFloatingPoint & CustomStringConvertible>(_ value: F) {
        guard value.isFinite else { return append("null") }
        // Integral values below 2^16 (one-hot features, counts) print as "<integer>.0", exactly as
        // `description` does, without building a String.
        if value.magnitude < 65536, value == value.rounded(.towardZero) {
            if value == 0 && value.sign == .minus { return append("-0.0") }
            appendInteger(Int64(value))
            return append(".0")
        }
        var text = value.description
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }
}
