import Synchronization

/// The file formats `CustomerStore.load` reads.
public enum CustomerFileFormat: String, Sendable {
    /// `customer_id,segments,<feature>...` with a header line; segments `|`-separated.
    case csv
    /// One `{"customer_id": ..., "segments": [...], "features": {...}}` object per line.
    case jsonl
}

/// Counts lines across loader threads and reports every millionth.
final class LoadProgress: Sendable {
    /// Lines parsed so far (loader threads add in batches; read for reporting).
    private let lines = Atomic<Int>(0)
    private let report: (@Sendable (Int) -> Void)?
    static let every = 1_000_000

    init(_ report: (@Sendable (Int) -> Void)?) { self.report = report }

    func add(_ n: Int) {
        guard let report else { return }
        let after = lines.add(n, ordering: .relaxed).newValue
        if (after - n) / LoadProgress.every != after / LoadProgress.every { report(after) }
    }
}

/// Parses one chunk of a customer file (a run of whole lines) on one loader thread, writing
/// rows straight into the shared matrix and mask arrays from `rowBase` on (chunks own disjoint
/// row ranges), ids into a thread-local arena, segments into a thread-local `SegmentTable`.
/// Nothing is allocated per line.
final class CustomerChunkParser: @unchecked Sendable {
    let file: MappedFile
    let format: CustomerFileFormat
    let featureCount: Int
    /// Column names for messages: `customer_id`, `segments`, then the features.
    let featureNames: [String]
    let featureIndex: IdIndex
    let matrix: UnsafeMutablePointer<Float>
    let masks: UnsafeMutablePointer<UInt64>
    /// Thread-local id offsets are written here per row, rebased after the merge.
    let offsets: UnsafeMutablePointer<Int>
    let range: Range<Int>
    let rowBase: Int
    let firstLine: Int

    let arena = ByteBuffer(capacity: 1 << 20)
    let segments = SegmentTable()
    let scratch = ByteBuffer()
    let sums: UnsafeMutablePointer<Double>
    /// Rows written (non-blank lines parsed).
    private(set) var rows = 0
    /// The first error, which stops this chunk.
    private(set) var error: StoreError?

    init(
        file: MappedFile, format: CustomerFileFormat, featureNames: [String], featureIndex: IdIndex,
        matrix: UnsafeMutablePointer<Float>, masks: UnsafeMutablePointer<UInt64>,
        offsets: UnsafeMutablePointer<Int>, range: Range<Int>, rowBase: Int, firstLine: Int
    ) {
        self.file = file
        self.format = format
        self.featureNames = featureNames
        self.featureCount = featureNames.count
        self.featureIndex = featureIndex
        self.matrix = matrix
        self.masks = masks
        self.offsets = offsets
        self.range = range
        self.rowBase = rowBase
        self.firstLine = firstLine
        sums = .allocate(capacity: max(featureCount, 1))
        sums.initialize(repeating: 0, count: max(featureCount, 1))
    }

    deinit { sums.deallocate() }

    /// Parses every line of the chunk; stops at the first error (kept in `error`).
    func run(progress: LoadProgress) {
        let bytes = file.bytes
        guard let base = bytes.baseAddress else { return }
        var lineNumber = firstLine
        var start = range.lowerBound
        var releasedUpTo = start
        var pendingProgress = 0
        let releaseStep = 16 << 20
        while start < range.upperBound {
            var end = start
            if let nl = memchrNewline(base + start, range.upperBound - start) {
                end = start + nl
            } else {
                end = range.upperBound
            }
            var lineEnd = end
            if lineEnd > start, base.load(fromByteOffset: lineEnd - 1, as: UInt8.self) == 0x0D { lineEnd -= 1 }
            let line = UnsafeRawBufferPointer(start: base + start, count: lineEnd - start)
            if !CustomerChunkParser.isBlank(line) {
                do {
                    let row = rowBase + rows
                    offsets[row] = arena.count
                    switch format {
                    case .csv: try parseCSVLine(line, row: row, line: lineNumber)
                    case .jsonl: try parseJSONLine(line, row: row, line: lineNumber)
                    }
                    rows += 1
                } catch let e as StoreError {
                    error = StoreError(e.code, e.message, file: file.path, line: lineNumber)
                    return
                } catch {
                    self.error = StoreError(.malformed, "\(error)", file: file.path, line: lineNumber)
                    return
                }
            }
            lineNumber += 1
            pendingProgress += 1
            if pendingProgress == 65_536 {
                progress.add(pendingProgress)
                pendingProgress = 0
            }
            start = end + 1
            if start - releasedUpTo >= releaseStep {
                file.release(releasedUpTo..<start)
                releasedUpTo = start
            }
        }
        progress.add(pendingProgress)
        file.release(releasedUpTo..<range.upperBound)
    }

    @inline(__always)
    private func memchrNewline(_ p: UnsafeRawPointer, _ n: Int) -> Int? {
        var i = 0
        while i + 8 <= n {
            let x = p.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ 0x0A0A_0A0A_0A0A_0A0A
            let zero = (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
            if zero != 0 { return i + zero.trailingZeroBitCount / 8 }
            i += 8
        }
        while i < n {
            if p.load(fromByteOffset: i, as: UInt8.self) == 0x0A { return i }
            i += 1
        }
        return nil
    }

    /// Whether a line holds only spaces, tabs and carriage returns.
    static func isBlank(_ line: UnsafeRawBufferPointer) -> Bool {
        for b in line where b != 0x20 && b != 0x09 && b != 0x0D { return false }
        return true
    }

    /// Stores a finite value and adds it to the column sum.
    @inline(__always)
    func store(_ value: Double, row: Int, column j: Int, line: Int) throws {
        let f = Float(value)
        guard f.isFinite else {
            throw StoreError(.invalidField, "\(columnLabel(j)): value \(value) is out of Float32 range")
        }
        matrix[row &* featureCount &+ j] = f
        sums[j] += Double(f)
    }

    /// `column 5 (f2)` for CSV, `feature "f2"` for JSONL.
    func columnLabel(_ j: Int) -> String {
        format == .csv ? "column \(j + 3) (\(featureNames[j]))" : "feature \"\(featureNames[j])\""
    }
}
