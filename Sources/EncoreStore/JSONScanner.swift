/// A hand-written JSON tokenizer over one line of bytes. The catalog builds `JSONValue`s with it;
/// the customer loader uses its allocation-free pieces (`scanString` into a reused scratch
/// buffer, `scanNumberText`) directly, so a 10M-line file costs no per-line `String`.
struct JSONScanner {
    /// A syntax error at a 1-based byte column of the line.
    struct SyntaxError: Error {
        var column: Int
        var reason: String
    }

    let bytes: UnsafeRawBufferPointer
    var pos = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var atEnd: Bool { pos >= bytes.count }

    func syntaxError(_ reason: String, at column: Int? = nil) -> SyntaxError {
        SyntaxError(column: (column ?? pos) + 1, reason: reason)
    }

    @inline(__always) mutating func skipWhitespace() {
        while pos < bytes.count {
            let b = bytes[pos]
            guard b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A else { return }
            pos += 1
        }
    }

    /// The next non-whitespace byte, or nil at the end.
    @inline(__always) mutating func peek() -> UInt8? {
        skipWhitespace()
        return pos < bytes.count ? bytes[pos] : nil
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws {
        guard peek() == byte else {
            throw syntaxError(atEnd ? "expected \(what), found end of line" : "expected \(what)")
        }
        pos += 1
    }

    /// Scans a string (the opening quote is the next token). Without escapes the result points
    /// into the line; with escapes the decoded UTF-8 is written to `scratch` (reused, grows only
    /// when a longer string appears) and the result points there, valid until the next call.
    mutating func scanString(scratch: ByteBuffer) throws -> UnsafeRawBufferPointer {
        try expect(0x22, "'\"'")
        let start = pos
        while pos < bytes.count {
            let b = bytes[pos]
            if b == 0x22 {
                pos += 1
                return UnsafeRawBufferPointer(rebasing: bytes[start..<(pos - 1)])
            }
            if b == 0x5C { break }
            if b < 0x20 { throw syntaxError("control character in string") }
            pos += 1
        }
        guard pos < bytes.count else { throw syntaxError("unterminated string", at: start - 1) }
        scratch.removeAll()
        scratch.append(UnsafeRawBufferPointer(rebasing: bytes[start..<pos]))
        while pos < bytes.count {
            let b = bytes[pos]
            pos += 1
            switch b {
            case 0x22:
                return scratch.bytes
            case 0x5C:
                try decodeEscape(into: scratch)
            case 0..<0x20:
                throw syntaxError("control character in string", at: pos - 1)
            default:
                scratch.append(b)
            }
        }
        throw syntaxError("unterminated string", at: start - 1)
    }

    private mutating func decodeEscape(into out: ByteBuffer) throws {
        guard pos < bytes.count else { throw syntaxError("unterminated escape") }
        let e = bytes[pos]
        pos += 1
        switch e {
        case 0x22, 0x5C, 0x2F: out.append(e)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4()
            if (0xD800..<0xDC00).contains(scalar) {
                guard pos + 1 < bytes.count, bytes[pos] == 0x5C, bytes[pos + 1] == UInt8(ascii: "u") else {
                    throw syntaxError("unpaired surrogate")
                }
                pos += 2
                let low = try hex4()
                guard (0xDC00..<0xE000).contains(low) else { throw syntaxError("unpaired surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw syntaxError("unpaired surrogate")
            }
            switch scalar {
            case 0..<0x80: out.append(UInt8(scalar))
            case 0x80..<0x800:
                out.append(UInt8(0xC0 | scalar >> 6))
                out.append(UInt8(0x80 | scalar & 0x3F))
            case 0x800..<0x10000:
                out.append(UInt8(0xE0 | scalar >> 12))
                out.append(UInt8(0x80 | scalar >> 6 & 0x3F))
                out.append(UInt8(0x80 | scalar & 0x3F))
            default:
                out.append(UInt8(0xF0 | scalar >> 18))
                out.append(UInt8(0x80 | scalar >> 12 & 0x3F))
                out.append(UInt8(0x80 | scalar >> 6 & 0x3F))
                out.append(UInt8(0x80 | scalar & 0x3F))
            }
        default:
            throw syntaxError("invalid escape", at: pos - 2)
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count else { throw syntaxError("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: throw syntaxError("invalid hex digit in \\u escape")
            }
            v = v << 4 | UInt32(d)
            pos += 1
        }
        return v
    }

    /// Scans a JSON number's text (strict JSON grammar) and returns it as a slice of the line.
    mutating func scanNumberText() throws -> UnsafeRawBufferPointer {
        skipWhitespace()
        let start = pos
        @inline(__always) func digits() -> Int {
            let s = pos
            while pos < bytes.count, bytes[pos] &- 0x30 < 10 { pos += 1 }
            return pos - s
        }
        if pos < bytes.count, bytes[pos] == 0x2D { pos += 1 }
        let intStart = pos
        let intDigits = digits()
        guard intDigits > 0 else { throw syntaxError("expected a value", at: start) }
        if intDigits > 1, bytes[intStart] == 0x30 { throw syntaxError("leading zero in number", at: start) }
        if pos < bytes.count, bytes[pos] == 0x2E {
            pos += 1
            guard digits() > 0 else { throw syntaxError("expected digits after '.'") }
        }
        if pos < bytes.count, bytes[pos] | 0x20 == 0x65 {
            pos += 1
            if pos < bytes.count, bytes[pos] == 0x2B || bytes[pos] == 0x2D { pos += 1 }
            guard digits() > 0 else { throw syntaxError("expected exponent digits") }
        }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<pos])
    }

    /// Parses any JSON value into a `JSONValue` (allocates; for catalog-sized inputs).
    mutating func parseValue(depth: Int = 0) throws -> JSONValue {
        guard depth < 64 else { throw syntaxError("nesting deeper than 64") }
        guard let b = peek() else { throw syntaxError("expected a value, found end of line") }
        let scratch = ByteBuffer()
        switch b {
        case 0x7B:
            pos += 1
            var object: [String: JSONValue] = [:]
            if peek() == 0x7D {
                pos += 1
                return .object(object)
            }
            while true {
                let key = String(decoding: try scanString(scratch: scratch), as: UTF8.self)
                try expect(0x3A, "':'")
                object[key] = try parseValue(depth: depth + 1)
                guard let sep = peek() else { throw syntaxError("expected ',' or '}', found end of line") }
                pos += 1
                if sep == 0x7D { return .object(object) }
                guard sep == 0x2C else { throw syntaxError("expected ',' or '}'", at: pos - 1) }
            }
        case 0x5B:
            pos += 1
            var array: [JSONValue] = []
            if peek() == 0x5D {
                pos += 1
                return .array(array)
            }
            while true {
                array.append(try parseValue(depth: depth + 1))
                guard let sep = peek() else { throw syntaxError("expected ',' or ']', found end of line") }
                pos += 1
                if sep == 0x5D { return .array(array) }
                guard sep == 0x2C else { throw syntaxError("expected ',' or ']'", at: pos - 1) }
            }
        case 0x22:
            return .string(String(decoding: try scanString(scratch: scratch), as: UTF8.self))
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default:
            let text = try scanNumberText()
            let isInteger = !text.contains(0x2E) && !text.contains(0x65) && !text.contains(0x45)
            let s = String(decoding: text, as: UTF8.self)
            if isInteger, let i = Int64(s) { return .integer(i) }
            guard let d = Double(s), d.isFinite else { throw syntaxError("number out of range", at: pos - text.count) }
            return .number(d)
        }
    }

    private mutating func literal(_ word: StaticString, _ value: JSONValue) throws -> JSONValue {
        let n = word.utf8CodeUnitCount
        guard pos + n <= bytes.count,
            word.withUTF8Buffer({ w in (0..<n).allSatisfy { w[$0] == bytes[pos + $0] } })
        else { throw syntaxError("expected a value") }
        pos += n
        return value
    }
}
