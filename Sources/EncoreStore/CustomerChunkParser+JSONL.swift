extension CustomerChunkParser {
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        literal.utf8CodeUnitCount == bytes.count
            && literal.withUTF8Buffer { IdIndex.equal(UnsafeRawBufferPointer($0), bytes) }
    }

    /// Parses `{"customer_id": "...", "segments": [...], "features": {...}}` into `row`.
    /// Keys may come in any order; `segments` and `features` may be omitted (no segments,
    /// every feature 0); a feature missing from `features` is 0. Unknown keys, unknown feature
    /// names and non-numeric values are errors naming the key.
    func parseJSONLine(_ line: UnsafeRawBufferPointer, row: Int, line lineNumber: Int) throws {
        let rowStart = row &* featureCount
        (matrix + rowStart).update(repeating: 0, count: featureCount)
        var mask: UInt64 = 0
        var sawID = false
        var s = JSONScanner(line)
        do {
            try s.expect(0x7B, "'{'")
            if s.peek() != 0x7D {
                while true {
                    let key = try s.scanString(scratch: scratch)
                    if CustomerChunkParser.equals(key, "customer_id") {
                        try s.expect(0x3A, "':'")
                        guard s.peek() == 0x22 else {
                            throw StoreError(.invalidField, "key \"customer_id\" must be a string")
                        }
                        let id = try s.scanString(scratch: scratch)
                        guard !id.isEmpty else { throw StoreError(.missingField, "key \"customer_id\" is empty") }
                        guard CustomerChunkParser.isValidUTF8(id) else {
                            throw StoreError(.invalidField, "key \"customer_id\" is not valid UTF-8")
                        }
                        guard !sawID else { throw StoreError(.malformed, "key \"customer_id\" appears twice") }
                        arena.append(id)
                        sawID = true
                    } else if CustomerChunkParser.equals(key, "segments") {
                        try s.expect(0x3A, "':'")
                        mask = try parseSegments(&s, line: lineNumber)
                    } else if CustomerChunkParser.equals(key, "features") {
                        try s.expect(0x3A, "':'")
                        try parseFeatures(&s, row: row, line: lineNumber)
                    } else {
                        throw StoreError(
                            .invalidField,
                            "unknown key \"\(String(decoding: key, as: UTF8.self))\" "
                                + "(expected customer_id, segments, features)")
                    }
                    guard let sep = s.peek() else { throw s.syntaxError("expected ',' or '}', found end of line") }
                    s.pos += 1
                    if sep == 0x7D { break }
                    guard sep == 0x2C else { throw s.syntaxError("expected ',' or '}'", at: s.pos - 1) }
                }
            } else {
                s.pos += 1
            }
            s.skipWhitespace()
            guard s.atEnd else { throw s.syntaxError("unexpected text after the JSON object") }
        } catch let e as JSONScanner.SyntaxError {
            throw StoreError(.malformed, "malformed JSON at column \(e.column): \(e.reason)")
        }
        guard sawID else { throw StoreError(.missingField, "key \"customer_id\" is missing") }
        masks[row] = mask
    }

    private func parseSegments(_ s: inout JSONScanner, line: Int) throws -> UInt64 {
        guard s.peek() == 0x5B else { throw StoreError(.invalidField, "key \"segments\" must be an array of strings") }
        s.pos += 1
        var mask: UInt64 = 0
        if s.peek() == 0x5D {
            s.pos += 1
            return 0
        }
        while true {
            guard s.peek() == 0x22 else {
                throw StoreError(.invalidField, "key \"segments\" must be an array of strings")
            }
            let name = try s.scanString(scratch: scratch)
            if !name.isEmpty { mask |= 1 << UInt64(try segments.intern(name, line: line)) }
            guard let sep = s.peek() else { throw s.syntaxError("expected ',' or ']', found end of line") }
            s.pos += 1
            if sep == 0x5D { return mask }
            guard sep == 0x2C else { throw s.syntaxError("expected ',' or ']'", at: s.pos - 1) }
        }
    }

    private func parseFeatures(_ s: inout JSONScanner, row: Int, line: Int) throws {
        guard s.peek() == 0x7B else { throw StoreError(.invalidField, "key \"features\" must be an object") }
        s.pos += 1
        if s.peek() == 0x7D {
            s.pos += 1
            return
        }
        var expected = 0
        while true {
            let name = try s.scanString(scratch: scratch)
            // Lines usually repeat the schema's order: try the next column before hashing.
            var j = expected
            if j >= featureCount || !IdIndex.equal(featureIndex.id(at: j), name) {
                j = Int(featureIndex.lookup(name))
                guard j >= 0 else {
                    throw StoreError(
                        .invalidField,
                        "unknown feature \"\(String(decoding: name, as: UTF8.self))\" (not in the first line's features)"
                    )
                }
            }
            expected = j + 1
            try s.expect(0x3A, "':'")
            guard let b = s.peek(), b == 0x2D || b &- 0x30 < 10 else {
                throw StoreError(.invalidField, "\(columnLabel(j)) must be a number")
            }
            let text = try s.scanNumberText()
            guard let v = DecimalParser.parse(text) else {
                throw StoreError(.invalidField, "\(columnLabel(j)) must be a number")
            }
            try store(v, row: row, column: j, line: line)
            guard let sep = s.peek() else { throw s.syntaxError("expected ',' or '}', found end of line") }
            s.pos += 1
            if sep == 0x7D { return }
            guard sep == 0x2C else { throw s.syntaxError("expected ',' or '}'", at: s.pos - 1) }
        }
    }

    /// The feature names of a JSONL file: the keys of the first line's `features` object, in order.
    /// - Throws: `StoreError` naming the file and line if the line is malformed.
    static func jsonlSchema(_ line: UnsafeRawBufferPointer, file: String, line lineNumber: Int) throws -> [String] {
        var s = JSONScanner(line)
        let scratch = ByteBuffer()
        var names: [String] = []
        do {
            try s.expect(0x7B, "'{'")
            guard s.peek() != 0x7D else { return [] }
            while true {
                let key = String(decoding: try s.scanString(scratch: scratch), as: UTF8.self)
                try s.expect(0x3A, "':'")
                if key == "features", s.peek() == 0x7B {
                    s.pos += 1
                    if s.peek() == 0x7D {
                        s.pos += 1
                    } else {
                        while true {
                            names.append(String(decoding: try s.scanString(scratch: scratch), as: UTF8.self))
                            try s.expect(0x3A, "':'")
                            _ = try s.parseValue()
                            guard let sep = s.peek() else { throw s.syntaxError("expected ',' or '}'") }
                            s.pos += 1
                            if sep == 0x7D { break }
                        }
                    }
                } else {
                    _ = try s.parseValue()
                }
                guard let sep = s.peek() else { throw s.syntaxError("expected ',' or '}'") }
                s.pos += 1
                if sep == 0x7D { break }
            }
        } catch let e as JSONScanner.SyntaxError {
            throw StoreError(
                .malformed, "malformed JSON at column \(e.column): \(e.reason)", file: file, line: lineNumber)
        }
        var seen: Set<String> = []
        for name in names where !seen.insert(name).inserted {
            throw StoreError(.malformed, "feature \"\(name)\" appears twice", file: file, line: lineNumber)
        }
        return names
    }
}
