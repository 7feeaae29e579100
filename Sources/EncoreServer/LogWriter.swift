import EncoreEngine
import EncoreLogging
import EncoreSupport
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
/// When the disk refuses writes (full, read-only, I/O error) the unwritten text is kept, up to
/// `maxBacklogBytes` per file and writer thread, and every pass retries the disk; records that
/// would grow the backlog past that are dropped and counted (`counters.backlogDropped`), so
/// memory stays bounded however long the disk is out. The condition is logged once when it
/// starts, then once per `reportIntervalSeconds` while it lasts, and once when writes succeed
/// again. `counters.onDisk` counts records whose whole line write(2) accepted: what the
/// shutdown line reports as written.
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
    /// Unwritten text kept per file and writer thread while the disk refuses writes; records
    /// beyond it are dropped and counted.
    public let maxBacklogBytes: Int
    /// Seconds between log lines while writes keep failing (and between drop reports).
    public let reportIntervalSeconds: Double
    /// Fsync the outcome files after every pass that wrote to them (`--durable-outcomes`: the
    /// write-ahead file may forget an outcome only once its log line is synced).
    public let syncOutcomes: Bool
    /// The `replica` field of every record (nil: none).
    public let replica: String?
    private let stopping = Atomic<Bool>(false)
    /// Shared by the writer threads (each adds its own); read by anyone (`counters`).
    private let shared = SharedCounters()
    /// Per writer thread: the monotonic time (ns) at which its last pass that synced the outcome
    /// files began (every record in its rings before then is on disk); written by that thread.
    private let outcomesSyncedNanos: Mutex<[UInt64]>
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

    /// The default backlog bound (per file and writer thread).
    public static let defaultMaxBacklogBytes = 16 << 20

    final class SharedCounters: Sendable {
        let decisionsOnDisk = Atomic<Int>(0)
        let outcomesOnDisk = Atomic<Int>(0)
        let backlogDropped = Atomic<Int>(0)
        let backlogBytes = Atomic<Int>(0)
        let failingFiles = Atomic<Int>(0)
        let unwrittenAtStop = Atomic<Int>(0)
    }

    /// Creates `directory` if needed and opens the first files. Throws naming the path.
    /// `writerThreads` (default 2) is capped at the number of rings.
    public init(
        directory: String, log: DecisionLog, maxFileBytes: Int = 256 << 20, maxFileAgeSeconds: Double = 3600,
        writerThreads: Int = 2, maxBacklogBytes: Int = LogWriter.defaultMaxBacklogBytes,
        reportIntervalSeconds: Double = 10, syncOutcomes: Bool = false, replica: String? = nil
    ) throws {
        self.replica = replica
        self.directory = directory
        self.log = log
        self.maxFileBytes = maxFileBytes
        self.maxFileAgeSeconds = maxFileAgeSeconds
        self.writerThreads = max(1, min(writerThreads, log.rings.count))
        self.maxBacklogBytes = max(maxBacklogBytes, 2 * LogWriter.flushBytes)
        self.reportIntervalSeconds = reportIntervalSeconds
        self.syncOutcomes = syncOutcomes
        outcomesSyncedNanos = Mutex([UInt64](repeating: 0, count: max(1, min(writerThreads, log.rings.count))))
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

    /// What the writer has done so far, for the shutdown line and metrics. Safe from any thread.
    public struct Counters: Sendable, Equatable {
        /// Decision and outcome records whose whole line the kernel accepted (write(2)).
        public var decisionsOnDisk: Int
        public var outcomesOnDisk: Int
        /// Records dropped by the producers: a full ring or a record over `DecisionLog.maxRecordBytes`.
        public var ringDropped: Int
        /// Records dropped by the writer because the backlog of unwritten text was full (the
        /// disk refused writes), plus those still unwritten when `stop()` gave up.
        public var backlogDropped: Int
        /// Unwritten text held now, bytes (at most `maxBacklogBytes` per file and writer thread).
        public var backlogBytes: Int
        /// Whether the last write to some log file failed (the writer keeps retrying).
        public var diskFailing: Bool

        public var onDisk: Int { decisionsOnDisk + outcomesOnDisk }
        public var dropped: Int { ringDropped + backlogDropped }
    }

    /// The writer's counters now (one accessor for the shutdown line and metrics).
    public var counters: Counters {
        Counters(
            decisionsOnDisk: shared.decisionsOnDisk.load(ordering: .relaxed),
            outcomesOnDisk: shared.outcomesOnDisk.load(ordering: .relaxed),
            ringDropped: log.droppedRecords,
            backlogDropped: shared.backlogDropped.load(ordering: .relaxed)
                + shared.unwrittenAtStop.load(ordering: .relaxed),
            backlogBytes: shared.backlogBytes.load(ordering: .relaxed),
            diskFailing: shared.failingFiles.load(ordering: .relaxed) > 0)
    }

    /// The monotonic time (ns, `MonotonicClock.nowNanos`) before which every outcome record
    /// appended to a ring is synced to the outcome files (0 until a pass has synced; only with
    /// `syncOutcomes`).
    public var outcomesSyncedBeforeNanos: UInt64 {
        outcomesSyncedNanos.withLock { $0.min() ?? 0 }
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

    /// The shutdown line: records on disk and every kind of drop, truthfully.
    public var summary: String {
        let c = counters
        return
            "decision log: \(c.onDisk) records written to \(directory) (\(c.decisionsOnDisk) decisions, \(c.outcomesOnDisk) outcomes), \(c.dropped) dropped (\(c.ringDropped) for a full ring or an oversize record, \(c.backlogDropped) because the disk refused writes)"
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
        var formatter = DecisionRecordFormatter(replica: replica)
        var decisionText = JSONLineBuffer(capacity: 2 * LogWriter.flushBytes)
        var outcomeText = JSONLineBuffer(capacity: 1 << 16)
        defer {
            decisionText.deallocate()
            outcomeText.deallocate()
        }
        let maxBytes = maxFileBytes
        let maxAge = maxFileAgeSeconds
        let backlogLimit = maxBacklogBytes
        let shared = self.shared
        var decisionStatus = WriteStatus()
        var outcomeStatus = WriteStatus()
        var backlogDropped = 0
        var heldBytes = 0
        func write(outcomes isOutcomes: Bool, _ text: inout JSONLineBuffer, _ status: inout WriteStatus) {
            let result =
                isOutcomes
                ? outcomes.withLock { $0.write(&text, maxBytes: maxBytes, maxAgeSeconds: maxAge) }
                : decisions.withLock { $0.write(&text, maxBytes: maxBytes, maxAgeSeconds: maxAge) }
            if result.lines > 0 {
                if isOutcomes {
                    shared.outcomesOnDisk.add(result.lines, ordering: .relaxed)
                } else {
                    shared.decisionsOnDisk.add(result.lines, ordering: .relaxed)
                }
            }
            status.record(result, writer: self, prefix: isOutcomes ? "outcomes" : "decisions")
        }
        while true {
            let last = stopping.load(ordering: .acquiring)
            let passStart = MonotonicClock.nowNanos
            var wroteOutcomes = false
            for ring in rings {
                ring.drain(into: &scratch) { record in
                    guard let type = record.first else { return }
                    if type == DecisionLog.decisionRecord {
                        // A full backlog (the disk refuses writes): drop and count, memory stays bounded.
                        guard decisionText.count < backlogLimit else {
                            backlogDropped += 1
                            return
                        }
                        formatter.appendDecision(record, to: &decisionText)
                        if decisionText.count >= LogWriter.flushBytes && !decisionStatus.failing {
                            write(outcomes: false, &decisionText, &decisionStatus)
                        }
                    } else if type == DecisionLog.outcomeRecord {
                        guard outcomeText.count < backlogLimit else {
                            backlogDropped += 1
                            return
                        }
                        formatter.appendOutcome(record, to: &outcomeText)
                        wroteOutcomes = true
                        if outcomeText.count >= LogWriter.flushBytes && !outcomeStatus.failing {
                            write(outcomes: true, &outcomeText, &outcomeStatus)
                        }
                    }
                }
            }
            // Every pass ends with a write (and the time-based rotation check), so text waits
            // at most one pass plus `idleMicros`; a failing disk is retried here once per pass.
            write(outcomes: false, &decisionText, &decisionStatus)
            write(outcomes: true, &outcomeText, &outcomeStatus)
            if backlogDropped > 0 {
                shared.backlogDropped.add(backlogDropped, ordering: .relaxed)
                backlogDropped = 0
            }
            let held = decisionText.count + outcomeText.count
            if held != heldBytes {
                shared.backlogBytes.add(held - heldBytes, ordering: .relaxed)
                heldBytes = held
            }
            if syncOutcomes, outcomeText.isEmpty, !outcomeStatus.failing {
                if wroteOutcomes { outcomes.withLock { $0.sync() } }
                outcomesSyncedNanos.withLock { $0[index] = passStart }
            }
            if index == 0 { reportDrops() }
            if last {
                // What the disk never took is lost: count it as dropped, not written.
                let unwritten = decisionText.lineCount + outcomeText.lineCount
                if unwritten > 0 {
                    shared.unwrittenAtStop.add(unwritten, ordering: .relaxed)
                    Log.error(
                        "decision log: \(unwritten) records never reached the disk (\(held) bytes unwritten at shutdown)"
                    )
                }
                shared.backlogBytes.add(-heldBytes, ordering: .relaxed)
                if decisionStatus.failing { shared.failingFiles.add(-1, ordering: .relaxed) }
                if outcomeStatus.failing { shared.failingFiles.add(-1, ordering: .relaxed) }
                break
            }
            // Behind (a ring more than 1/8 full again): go straight back to draining.
            if !rings.contains(where: { $0.pendingBytes > $0.capacity / 8 }) { usleep(LogWriter.idleMicros) }
        }
    }

    /// One writer thread's view of one file's write errors: logs when writes start failing,
    /// once per `reportIntervalSeconds` while they keep failing, and when they succeed again.
    struct WriteStatus {
        var failing = false
        var since = Date()
        var lastReport = Date.distantPast

        mutating func record(_ result: RotatingFile.WriteResult, writer: LogWriter, prefix: String) {
            if let error = result.error {
                let now = Date()
                if !failing {
                    failing = true
                    since = now
                    writer.shared.failingFiles.add(1, ordering: .relaxed)
                }
                if now.timeIntervalSince(lastReport) >= writer.reportIntervalSeconds {
                    lastReport = now
                    let c = writer.counters
                    Log.error(
                        "decision log: writing \(prefix) to \(writer.directory) fails (\(error)) for \(Int(now.timeIntervalSince(since))) s; retrying every pass, \(c.backlogBytes) bytes held (at most \(writer.maxBacklogBytes) per file and writer thread), \(c.backlogDropped) records dropped for it since start"
                    )
                }
            } else if result.attempted && failing {
                failing = false
                lastReport = .distantPast
                writer.shared.failingFiles.add(-1, ordering: .relaxed)
                Log.info(
                    "decision log: writing \(prefix) to \(writer.directory) succeeds again after \(Int(Date().timeIntervalSince(since))) s"
                )
            }
        }
    }

    private func reportDrops() {
        let dropped = counters.dropped
        if dropped != lastDropped && Date().timeIntervalSince(lastDropReport) >= reportIntervalSeconds {
            Log.warning(
                "decision log: \(dropped - lastDropped) records dropped (rings full, records too large or the disk refusing writes); \(dropped) since start"
            )
            lastDropped = dropped
            lastDropReport = Date()
        }
    }

    /// Records dropped so far, for any reason (also logged every 10 s while it grows).
    public var droppedRecords: Int { counters.dropped }

    /// Everything the log writer counts, in one reading (for `/metrics` and the status page).
    public struct Metrics: Sendable {
        /// Records whose whole line the kernel accepted (on disk, or in its page cache).
        public var recordsWritten: Int
        /// Records dropped: a full ring or a record too large (`ringDropped`), or the backlog
        /// full while the disk refused writes (`backlogDropped`).
        public var recordsDropped: Int
        public var ringDropped: Int
        public var backlogDropped: Int
        /// Unwritten text held while the disk refuses writes (bytes), and whether it does.
        public var backlogBytes: Int
        public var diskFailing: Bool
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
        let c = counters
        return Metrics(
            recordsWritten: c.onDisk, recordsDropped: c.dropped, ringDropped: c.ringDropped,
            backlogDropped: c.backlogDropped, backlogBytes: c.backlogBytes, diskFailing: c.diskFailing,
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
    /// The last write stopped inside a line (a failure): no rotation until it is finished.
    private var midLine = false
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

    /// What one `write` did: complete lines the kernel accepted, and the error if it failed.
    struct WriteResult {
        var lines = 0
        var error: String? = nil
        /// Whether any bytes were handed to write(2) (an empty buffer attempts nothing).
        var attempted = false
    }

    /// Appends `text` (then clears it, keeping its memory); rotates first when the file is full
    /// or old (never in the middle of a line a failed write left half written). A failed write
    /// keeps the unwritten text for the next try; the caller reports the error.
    mutating func write(_ text: inout JSONLineBuffer, maxBytes: Int, maxAgeSeconds: Double) -> WriteResult {
        var result = WriteResult()
        if bytes > 0 && !midLine
            && (bytes + text.count > maxBytes || Date().timeIntervalSince(openedAt) > maxAgeSeconds)
        {
            closeInBackground()
            counters?.rotations.add(1, ordering: .relaxed)
            do { try open() } catch {
                result.error = "\(error)"
                return result
            }
        }
        if fd < 0 {
            // A rotation failed to open the next file: try again now.
            do { try open() } catch {
                result.error = "\(error)"
                return result
            }
        }
        guard !text.isEmpty else { return result }
        result.attempted = true
        var offset = 0
        let total = text.count
        while offset < total {
            let n = Glibc.write(fd, text.base + offset, total - offset)
            if n < 0 {
                if errno == EINTR { continue }
                result.error = "write to \(path): \(String(cString: strerror(errno)))"
                break
            }
            offset += n
        }
        // Lines are counted once their newline is accepted; a half-written line is finished
        // by the next write to this same file.
        result.lines = JSONLineBuffer.countLines(text.base, offset)
        counters?.bytesWritten.add(UInt64(offset), ordering: .relaxed)
        midLine = offset > 0 ? text.base[offset - 1] != 0x0A : midLine
        bytes += offset
        if offset == total {
            text.removeAll()
        } else {
            text.removeFirst(offset)
        }
        return result
    }

    /// Makes the current file's written text durable (fsync).
    mutating func sync() {
        if fd >= 0 { fsync(fd) }
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
