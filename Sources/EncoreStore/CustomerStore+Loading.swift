import Dispatch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension CustomerStore {
    /// Prints `customers: N lines parsed` on stderr; the default progress reporter of `load`.
    public static let stderrProgress: @Sendable (Int) -> Void = { lines in
        let text = "customers: \(lines / 1_000_000)M lines parsed\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
    }

    /// Loads customers from a CSV or JSONL file: by extension (`.csv`; `.jsonl`/`.ndjson`), else
    /// by the first byte (`{` means JSONL).
    ///
    /// The file is mapped, its lines counted, then parsed by up to `threads` threads (default:
    /// one per core, at most 4), each owning a run of whole lines. Blank lines are skipped; any
    /// bad line fails the whole load (nothing is silently dropped). A `customer_id` that repeats
    /// is an error naming both lines (files are snapshots of the truth; to change a customer,
    /// use `CustomerTable.upsert`).
    ///
    /// - Parameters:
    ///   - progress: called with the number of lines parsed after every millionth line (from a
    ///     loader thread); `stderrProgress` by default, nil for silence.
    /// - Throws: `StoreError` whose message names the file, the line and the column or key.
    public static func load(
        contentsOf path: String, format: CustomerFileFormat? = nil, threads: Int? = nil,
        progress: (@Sendable (Int) -> Void)? = CustomerStore.stderrProgress
    ) throws -> CustomerStore {
        let file = try MappedFile(path: path)
        let bytes = file.bytes
        let format = format ?? sniffFormat(path: path, bytes: bytes)

        // Schema: the CSV header, or the first JSONL line's feature keys.
        var dataStart = 0
        var firstDataLine = 1
        let featureNames: [String]
        switch format {
        case .csv:
            guard !bytes.isEmpty else { throw StoreError(.malformed, "bad header: the file is empty", file: path) }
            dataStart = file.lineStart(atOrAfter: 1)
            let end = dataStart > 0 && bytes[dataStart - 1] == 0x0A ? dataStart - 1 : dataStart
            featureNames = try CustomerChunkParser.csvHeader(
                UnsafeRawBufferPointer(rebasing: bytes[0..<end]), file: path)
            firstDataLine = 2
        case .jsonl:
            var start = 0
            var lineNumber = 1
            var names: [String] = []
            while start < bytes.count {
                let next = file.lineStart(atOrAfter: start + 1)
                let line = UnsafeRawBufferPointer(rebasing: bytes[start..<next])
                let content = line.last == 0x0A ? UnsafeRawBufferPointer(rebasing: line.dropLast()) : line
                if !CustomerChunkParser.isBlank(content) {
                    names = try CustomerChunkParser.jsonlSchema(line, file: path, line: lineNumber)
                    break
                }
                start = next
                lineNumber += 1
            }
            featureNames = names
        }
        let featureIndex = try IdIndex(featureNames)
        let featureCount = featureNames.count

        // Split the data into chunks of whole lines and count each chunk's lines in parallel.
        let threadCount = max(1, min(threads ?? min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 4), 64))
        let dataBytes = bytes.count - dataStart
        let chunkCount = dataBytes < (1 << 22) ? 1 : threadCount
        var bounds = [dataStart]
        for k in 1..<max(chunkCount, 1) {
            bounds.append(max(bounds[k - 1], file.lineStart(atOrAfter: dataStart + dataBytes / chunkCount * k)))
        }
        bounds.append(bytes.count)
        let chunkBounds = bounds
        let lineCounts = parallelMap(chunkCount) { k -> Int in
            let range = chunkBounds[k]..<chunkBounds[k + 1]
            // Count in 16 MiB steps, dropping each step's pages so RSS stays low.
            var n = 0
            var at = range.lowerBound
            while at < range.upperBound {
                let stepEnd = min(at + (16 << 20), range.upperBound)
                n += file.countNewlines(in: at..<stepEnd)
                file.release(at..<stepEnd)
                at = stepEnd
            }
            let unterminated = !range.isEmpty && file.bytes[range.upperBound - 1] != 0x0A
            return n + (unterminated ? 1 : 0)
        }
        let maxRows = lineCounts.reduce(0, +)
        guard maxRows < Int(Int32.max) else {
            throw StoreError(.limitExceeded, "\(maxRows) lines: at most \(Int32.max - 1) customers", file: path)
        }

        // Parse. Each chunk writes rows rowBase[k]..< rowBase[k] + parser.rows.
        let matrix = UnsafeMutablePointer<Float>.allocate(capacity: max(maxRows * featureCount, 1))
        let masks = UnsafeMutablePointer<UInt64>.allocate(capacity: max(maxRows, 1))
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: maxRows + 1)
        var owned = true
        defer {
            if owned {
                matrix.deallocate()
                masks.deallocate()
                offsets.deallocate()
            }
        }
        var parsers: [CustomerChunkParser] = []
        var rowBase = 0
        for k in 0..<chunkCount {
            parsers.append(
                CustomerChunkParser(
                    file: file, format: format, featureNames: featureNames, featureIndex: featureIndex,
                    matrix: matrix, masks: masks, offsets: offsets, range: bounds[k]..<bounds[k + 1],
                    rowBase: rowBase, firstLine: firstDataLine + rowBase))
            rowBase += lineCounts[k]
        }
        do {
            let reporter = LoadProgress(progress)
            let running = parsers
            _ = parallelMap(chunkCount) { k -> Int in
                running[k].run(progress: reporter)
                return 0
            }
        }
        if let error = parsers.lazy.compactMap(\.error).first { throw error }

        // Merge: segment bits to one table, rows packed together, arenas concatenated.
        let segmentNames = try mergeSegments(parsers, masks: masks, file: path)
        var count = 0
        var arenaBytes = 0
        for p in parsers {
            if count != p.rowBase {
                (matrix + count * featureCount).update(
                    from: matrix + p.rowBase * featureCount, count: p.rows * featureCount)
                (masks + count).update(from: masks + p.rowBase, count: p.rows)
                (offsets + count).update(from: offsets + p.rowBase, count: p.rows)
            }
            for r in count..<(count + p.rows) { offsets[r] += arenaBytes }
            count += p.rows
            arenaBytes += p.arena.count
        }
        offsets[count] = arenaBytes
        let arena = UnsafeMutablePointer<UInt8>.allocate(capacity: max(arenaBytes, 1))
        var at = 0
        for p in parsers {
            (arena + at).update(from: p.arena.base, count: p.arena.count)
            at += p.arena.count
        }
        let defaults = UnsafeMutablePointer<Float>.allocate(capacity: max(featureCount, 1))
        defaults.initialize(repeating: 0, count: max(featureCount, 1))
        for j in 0..<featureCount where count > 0 {
            defaults[j] = Float(parsers.reduce(0.0) { $0 + $1.sums[j] } / Double(count))
        }
        owned = false
        parsers.removeAll()
        let ids: IdIndex
        do {
            ids = try IdIndex(arena: arena, offsets: offsets, count: count)
        } catch let dup as IdIndex.Duplicate {
            matrix.deallocate()
            masks.deallocate()
            defaults.deallocate()
            // `IdIndex` freed `arena` and `offsets` when it threw.
            let lines = lineNumbers(
                ofRows: [dup.first, dup.duplicate], file: file, from: dataStart, firstLine: firstDataLine)
            throw StoreError(
                .duplicateID, "duplicate customer_id \"\(dup.id)\" (first on line \(lines[0]))", file: path,
                line: lines[1])
        }
        return try CustomerStore(
            featureNames: featureNames, segmentNames: segmentNames, ids: ids, matrix: matrix, masks: masks,
            defaults: defaults)
    }

    static func sniffFormat(path: String, bytes: UnsafeRawBufferPointer) -> CustomerFileFormat {
        let lower = path.lowercased()
        if lower.hasSuffix(".csv") { return .csv }
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") { return .jsonl }
        let first = bytes.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D && $0 != 0x0A }
        return first == 0x7B ? .jsonl : .csv
    }

    /// Gives every segment one global bit (first appearance in file order) and rewrites the
    /// later chunks' masks from their local bits.
    private static func mergeSegments(
        _ parsers: [CustomerChunkParser], masks: UnsafeMutablePointer<UInt64>, file: String
    ) throws -> [String] {
        var names: [String] = []
        var bitOf: [String: Int] = [:]
        for p in parsers {
            var remap: [Int] = []
            for local in 0..<p.segments.count {
                let name = p.segments.string(at: local)
                if let bit = bitOf[name] {
                    remap.append(bit)
                    continue
                }
                guard names.count < SegmentTable.maxSegments else {
                    throw StoreError(
                        .limitExceeded,
                        "segment \"\(name)\" is the 65th distinct segment (a store holds at most 64)",
                        file: file, line: p.segments.firstLines[local])
                }
                bitOf[name] = names.count
                remap.append(names.count)
                names.append(name)
            }
            guard remap.enumerated().contains(where: { $0.offset != $0.element }) else { continue }
            for r in p.rowBase..<(p.rowBase + p.rows) {
                var mask = masks[r]
                var out: UInt64 = 0
                while mask != 0 {
                    out |= 1 << UInt64(remap[mask.trailingZeroBitCount])
                    mask &= mask - 1
                }
                masks[r] = out
            }
        }
        return names
    }

    /// The file line numbers of data rows `rows` (for error messages; rescans the file).
    private static func lineNumbers(ofRows rows: [Int], file: MappedFile, from start: Int, firstLine: Int) -> [Int] {
        var result = [Int](repeating: 0, count: rows.count)
        var row = 0
        var line = firstLine
        var i = start
        let bytes = file.bytes
        while i < bytes.count, result.contains(0) {
            let next = file.lineStart(atOrAfter: i + 1)
            var end = next
            if end > i, bytes[end - 1] == 0x0A { end -= 1 }
            if !CustomerChunkParser.isBlank(UnsafeRawBufferPointer(rebasing: bytes[i..<end])) {
                for (k, r) in rows.enumerated() where r == row { result[k] = line }
                row += 1
            }
            line += 1
            i = next
        }
        return result
    }

    /// Runs `body(0..<n)` on up to `n` threads and returns the results in order.
    static func parallelMap<T: Sendable>(_ n: Int, _ body: @Sendable @escaping (Int) -> T) -> [T] {
        let results = ResultSlots<T>(n)
        DispatchQueue.concurrentPerform(iterations: n) { k in results.set(k, body(k)) }
        return results.values
    }
}

/// Write-once result slots for `parallelMap`: slot `k` is written by iteration `k` only, and
/// read after `concurrentPerform` returns (which orders the writes before the reads).
private final class ResultSlots<T>: @unchecked Sendable {
    private var slots: [T?]
    init(_ n: Int) { slots = Array(repeating: nil, count: n) }
    func set(_ k: Int, _ value: T) { slots.withUnsafeMutableBufferPointer { $0[k] = value } }
    var values: [T] { slots.map { $0! } }
}
