extension CustomerChunkParser {
    /// Reads one CSV field starting at `i` (a quoted field may hold `""`-escaped quotes and
    /// commas, but not line breaks), leaving `i` on the separator or the line end. The result
    /// points into the line, or into `scratch` for a quoted field.
    @inline(__always)
    func csvField(_ line: UnsafeRawBufferPointer, _ i: inout Int, column: Int) throws -> UnsafeRawBufferPointer {
        let n = line.count
        if i < n, line[i] == 0x22 {
            scratch.removeAll()
            var j = i + 1
            while true {
                guard j < n else { throw StoreError(.malformed, "column \(column): unterminated quoted field") }
                let b = line[j]
                j += 1
                if b == 0x22 {
                    if j < n, line[j] == 0x22 {
                        scratch.append(0x22)
                        j += 1
                    } else {
                        break
                    }
                } else {
                    scratch.append(b)
                }
            }
            guard j == n || line[j] == 0x2C else {
                throw StoreError(.malformed, "column \(column): text after the closing quote")
            }
            i = j
            return scratch.bytes
        }
        let start = i
        while i < n, line[i] != 0x2C { i += 1 }
        return UnsafeRawBufferPointer(rebasing: line[start..<i])
    }

    private func columnCountError(_ line: UnsafeRawBufferPointer) -> StoreError {
        var fields = 1
        var quoted = false
        for b in line {
            if b == 0x22 { quoted.toggle() } else if b == 0x2C && !quoted { fields += 1 }
        }
        return StoreError(.malformed, "expected \(featureCount + 2) columns, found \(fields)")
    }

    /// Whether `bytes` are valid UTF-8. A customer id that is not could never match a request
    /// (gRPC strings are UTF-8) and would read back altered (found by the customers-csv fuzz
    /// target). ASCII, the usual case, is checked without building a String.
    static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if !bytes.contains(where: { $0 >= 0x80 }) { return true }
        return String(validating: bytes, as: UTF8.self) != nil
    }

    /// Parses `customer_id,segments,<features>` into `row`. An empty feature cell is a missing
    /// value and stores 0; anything else must be a finite decimal number.
    func parseCSVLine(_ line: UnsafeRawBufferPointer, row: Int, line lineNumber: Int) throws {
        let n = line.count
        var i = 0
        let id = try csvField(line, &i, column: 1)
        guard !id.isEmpty else { throw StoreError(.missingField, "column 1 (customer_id) is empty") }
        guard CustomerChunkParser.isValidUTF8(id) else {
            throw StoreError(.invalidField, "column 1 (customer_id) is not valid UTF-8")
        }
        arena.append(id)
        guard i < n else { throw columnCountError(line) }
        i += 1
        let segmentField = try csvField(line, &i, column: 2)
        var mask: UInt64 = 0
        var s = 0
        while s < segmentField.count {
            var e = s
            while e < segmentField.count, segmentField[e] != 0x7C { e += 1 }
            if e > s {
                let bit = try segments.intern(UnsafeRawBufferPointer(rebasing: segmentField[s..<e]), line: lineNumber)
                mask |= 1 << UInt64(bit)
            }
            s = e + 1
        }
        masks[row] = mask
        let base = line.baseAddress!
        let rowStart = row &* featureCount
        for j in 0..<featureCount {
            guard i < n else { throw columnCountError(line) }
            i += 1  // the comma
            if i == n || line[i] == 0x2C {
                matrix[rowStart &+ j] = 0
                continue
            }
            let fieldStart = i
            if line[i] != 0x22, let v = DecimalParser.scan(base, &i, n), i == n || line[i] == 0x2C {
                try store(v, row: row, column: j, line: lineNumber)
                continue
            }
            i = fieldStart
            let field = try csvField(line, &i, column: j + 3)
            if let v = DecimalParser.parse(field) {
                try store(v, row: row, column: j, line: lineNumber)
                continue
            }
            let text = String(decoding: field, as: UTF8.self)
            if DecimalParser.spellsNonFinite(field) {
                throw StoreError(.invalidField, "\(columnLabel(j)): \(text) is not allowed (features must be finite)")
            }
            throw StoreError(.invalidField, "\(columnLabel(j)): \"\(text)\" is not a number")
        }
        guard i == n else { throw columnCountError(line) }
    }

    /// Parses the CSV header: `customer_id,segments,` then unique, non-empty feature names.
    /// - Throws: `StoreError(.malformed)` naming the file, line 1 and the column at fault.
    static func csvHeader(_ line: UnsafeRawBufferPointer, file: String) throws -> [String] {
        var names: [String] = []
        for part in line.split(separator: 0x2C, omittingEmptySubsequences: false) {
            var name = String(decoding: part, as: UTF8.self)
            if name.hasSuffix("\r") { name.removeLast() }
            if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
                name = String(name.dropFirst().dropLast()).replacingOccurrences("\"\"", with: "\"")
            }
            names.append(name)
        }
        func fail(_ message: String) -> StoreError {
            StoreError(.malformed, "bad header: \(message)", file: file, line: 1)
        }
        guard names.count >= 2, names[0] == "customer_id", names[1] == "segments" else {
            throw fail(
                "expected it to start with customer_id,segments (got \"\(names.prefix(2).joined(separator: ","))\")")
        }
        var seen: Set<String> = []
        for (k, name) in names.enumerated().dropFirst(2) {
            guard !name.isEmpty else { throw fail("column \(k + 1) has an empty feature name") }
            guard seen.insert(name).inserted else { throw fail("column \(k + 1) repeats feature name \"\(name)\"") }
        }
        return Array(names.dropFirst(2))
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
