import EncoreEngine
import EncoreTransport
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Drains the decision log rings on writer threads and appends JSON Lines to
/// `D/decisions-*.jsonl` and `D/outcomes-*.jsonl` (format: docs/logs.md). Records reach the files
/// within a second, files rotate by size and age, and `stop()` (SIGTERM) drains everything.
/// Never blocks a reactor: full rings drop and count.
///
/// Writer thread `i` of `n` owns rings `i`, `i + n`, ...: each ring has one consumer, so one
/// reactor's records stay in order in the files, and the threads share the files only for the
/// write(2) of a whole buffer of complete lines (under a lock, which also covers rotation).
public final class LogWriter: @unchecked Sendable {
    public let directory: String
    public let log: DecisionLog
    /// Rotate a file past this size (bytes) ...
    public let maxFileBytes: Int
    /// ... or this age (seconds).
    public let maxFileAgeSeconds: Double
    /// Formatting threads (at most one per ring).
    public let writerThreads: Int
    private let stopping = Atomic<Bool>(false)
    private var threads: [pthread_t] = []
    /// Written by whichever writer thread holds the lock; closed by `stop()` after the joins.
    private let decisions: Mutex<RotatingFile>
    private let outcomes: Mutex<RotatingFile>
    /// Bytes written and rotations, over both files (written by whichever writer holds a file's
    /// lock; read by scrapes).
    let bytesWritten = Atomic<UInt64>(0)
    let rotations = Atomic<UInt64>(0)
    /// Drop reporting: writer thread 0 only.
    private var lastDropped = 0
    private var lastDropReport = Date()

    /// Creates `directory` if needed and opens the first files. Throws naming the path.
    /// `writerThreads` (default 2) is capped at the number of rings.
    public init(
        directory: String, log: DecisionLog, maxFileBytes: Int = 256 << 20, maxFileAgeSeconds: Double = 3600,
        writerThreads: Int = 2
    ) throws {
        self.directory = directory
        self.log = log
        self.maxFileBytes = maxFileBytes
        self.maxFileAgeSeconds = maxFileAgeSeconds
        self.writerThreads = max(1, min(writerThreads, log.rings.count))
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw LogWriterError("cannot create log directory \(directory): \(error.localizedDescription)")
        }
        decisions = Mutex(try RotatingFile(directory: directory, prefix: "decisions"))
        outcomes = Mutex(try RotatingFile(directory: directory, prefix: "outcomes"))
        decisions.withLock { $0.counters = self }
        outcomes.withLock { $0.counters = self }
    }

    /// Starts the writer threads.
    public func start() {
        final class Start {
            let writer: LogWriter
            let index: Int
            init(_ writer: LogWriter, _ index: Int) {
                self.writer = writer
                self.index = index
            }
        }
        for index in 0..<writerThreads {
            var thread = pthread_t()
            let box = Unmanaged.passRetained(Start(self, index)).toOpaque()
            pthread_create(
                &thread, nil,
                { raw in
                    let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
                    start.writer.run(index: start.index)
                    return nil
                }, box)
            threads.append(thread)
        }
    }

    /// Drains every ring one last time, flushes and closes the files (call after the reactors
    /// have stopped, e.g. on SIGTERM).
    public func stop() {
        stopping.store(true, ordering: .releasing)
        for thread in threads { pthread_join(thread, nil) }
        threads = []
        decisions.withLock { $0.close() }
        outcomes.withLock { $0.close() }
    }

    /// Text is handed to write(2) once a buffer holds this many bytes (and at the end of every
    /// pass), so the buffer stays cache-sized however far behind the writer is.
    static let flushBytes = 1 << 20
    /// Pause between passes when the rings were (nearly) empty.
    static let idleMicros: UInt32 = 100_000

    /// Nice value of the writer threads: under saturation the reactors (which answer requests)
    /// win the CPU and a full ring drops and counts records, as designed; below saturation the
    /// writers get the idle CPU they need.
    static let writerNice: Int32 = 10

    private func run(index: Int) {
        ThreadPriority.lowerCurrentThread(nice: LogWriter.writerNice)
        let rings = stride(from: index, to: log.rings.count, by: writerThreads).map { log.rings[$0] }
        var scratch = [UInt8](repeating: 0, count: DecisionLog.maxRecordBytes)
        var formatter = DecisionRecordFormatter()
        var decisionText = JSONLineBuffer(capacity: 2 * LogWriter.flushBytes)
        var outcomeText = JSONLineBuffer(capacity: 1 << 16)
        defer {
            decisionText.deallocate()
            outcomeText.deallocate()
        }
        let maxBytes = maxFileBytes
        let maxAge = maxFileAgeSeconds
        while true {
            let last = stopping.load(ordering: .acquiring)
            for ring in rings {
                ring.drain(into: &scratch) { record in
                    guard let type = record.first else { return }
                    if type == DecisionLog.decisionRecord {
                        formatter.appendDecision(record, to: &decisionText)
                        if decisionText.count >= LogWriter.flushBytes {
                            decisions.withLock { $0.write(&decisionText, maxBytes: maxBytes, maxAgeSeconds: maxAge) }
                        }
                    } else if type == DecisionLog.outcomeRecord {
                        formatter.appendOutcome(record, to: &outcomeText)
                        if outcomeText.count >= LogWriter.flushBytes {
                            outcomes.withLock { $0.write(&outcomeText, maxBytes: maxBytes, maxAgeSeconds: maxAge) }
                        }
                    }
                }
            }
            // Every pass ends with a write (and the time-based rotation check), so text waits
            // at most one pass plus `idleMicros`.
            decisions.withLock { $0.write(&decisionText, maxBytes: maxBytes, maxAgeSeconds: maxAge) }
            outcomes.withLock { $0.write(&outcomeText, maxBytes: maxBytes, maxAgeSeconds: maxAge) }
            if index == 0 { reportDrops() }
            if last { break }
            // Behind (a ring more than 1/8 full again): go straight back to draining.
            if !rings.contains(where: { $0.pendingBytes > $0.capacity / 8 }) { usleep(LogWriter.idleMicros) }
        }
    }

    private func reportDrops() {
        let dropped = log.droppedRecords
        if dropped != lastDropped && Date().timeIntervalSince(lastDropReport) >= 10 {
            Log.warning(
                "decision log: \(dropped - lastDropped) records dropped (rings full or records too large); \(dropped) since start"
            )
            lastDropped = dropped
            lastDropReport = Date()
        }
    }

    /// Records dropped so far (also logged every 10 s while it grows).
    public var droppedRecords: Int { log.droppedRecords }

    /// Everything the log writer counts, in one reading (for `/metrics` and the status page).
    public struct Metrics: Sendable {
        /// Records appended to the rings and written (every record counted once, when appended).
        public var recordsWritten: Int
        /// Records dropped (ring full or record too large).
        public var recordsDropped: Int
        /// Bytes written to decision and outcome files.
        public var bytesWritten: UInt64
        /// Files rotated (by size or age).
        public var rotations: UInt64
        /// Bytes waiting in the rings.
        public var pendingBytes: Int
        /// Capacity of the rings together (bytes).
        public var ringBytes: Int
    }

    /// A reading of the writer's counters (any thread).
    public func metrics() -> Metrics {
        Metrics(
            recordsWritten: log.writtenRecords, recordsDropped: log.droppedRecords,
            bytesWritten: bytesWritten.load(ordering: .relaxed), rotations: rotations.load(ordering: .relaxed),
            pendingBytes: log.rings.reduce(0) { $0 + $1.pendingBytes },
            ringBytes: log.rings.reduce(0) { $0 + $1.capacity })
    }
}

public struct LogWriterError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// An append-only file that rolls over to a new name by size and age.
struct RotatingFile {
    let directory: String
    let prefix: String
    private var fd: Int32 = -1
    private var bytes = 0
    private var openedAt = Date()
    private var sequence = 0
    /// The last write failed (its error was reported; the next failure is not).
    private var failed = false
    private(set) var path = ""
    /// Rotated files whose fsync and close are still running in the background.
    private let closing = DispatchGroup()
    /// Where bytes written and rotations are counted.
    weak var counters: LogWriter?

    init(directory: String, prefix: String) throws {
        self.directory = directory
        self.prefix = prefix
        try open()
    }

    private mutating func open() throws {
        sequence += 1
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss"
        let stamp = formatter.string(from: Date())
        path = "\(directory)/\(prefix)-\(stamp)-\(getpid())-\(String(format: "%04d", sequence)).jsonl"
        fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LogWriterError("cannot open log file \(path): \(String(cString: strerror(errno)))") }
        bytes = 0
        openedAt = Date()
    }

    /// Appends `text` (then clears it, keeping its memory); rotates first when the file is full
    /// or old. A write error is reported once (until a write succeeds again) and the unwritten
    /// text is kept for the next try.
    mutating func write(_ text: inout JSONLineBuffer, maxBytes: Int, maxAgeSeconds: Double) {
        if bytes > 0 && (bytes + text.count > maxBytes || Date().timeIntervalSince(openedAt) > maxAgeSeconds) {
            closeInBackground()
            counters?.rotations.add(1, ordering: .relaxed)
            do { try open() } catch {
                Log.error("decision log: \(error)")
                return
            }
        }
        guard !text.isEmpty, fd >= 0 else { return }
        var offset = 0
        let total = text.count
        while offset < total {
            let n = Glibc.write(fd, text.base + offset, total - offset)
            if n < 0 {
                if errno == EINTR { continue }
                if !failed {
                    Log.error("decision log: write to \(path) failed: \(String(cString: strerror(errno))); will retry")
                }
                failed = true
                text.removeFirst(offset)
                bytes += offset
                counters?.bytesWritten.add(UInt64(offset), ordering: .relaxed)
                return
            }
            offset += n
        }
        failed = false
        bytes += total
        counters?.bytesWritten.add(UInt64(total), ordering: .relaxed)
        text.removeAll()
    }

    /// Rotation: the full file's text is already written, so its fsync (which can take a second
    /// for 256 MiB) runs on a background queue while the writer carries on with the next file.
    private mutating func closeInBackground() {
        guard fd >= 0 else { return }
        let old = fd
        let group = closing
        group.enter()
        DispatchQueue.global(qos: .utility).async {
            fsync(old)
            Glibc.close(old)
            group.leave()
        }
        fd = -1
    }

    /// Shutdown: waits for earlier files' background fsyncs, then syncs and closes this one.
    mutating func close() {
        closing.wait()
        guard fd >= 0 else { return }
        fsync(fd)
        Glibc.close(fd)
        fd = -1
    }
}
