import EncoreEngine
import EncoreTransport
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Drains the decision log rings on its own thread and appends JSON Lines to
/// `D/decisions-*.jsonl` and `D/outcomes-*.jsonl` (format: docs/logs.md). Writes every 200 ms
/// (so records reach the files within a second), rotates files by size and age, and drains
/// everything on `stop()` (SIGTERM). Never blocks a reactor: full rings drop and count.
public final class LogWriter: @unchecked Sendable {
    public let directory: String
    public let log: DecisionLog
    /// Rotate a file past this size (bytes) ...
    public let maxFileBytes: Int
    /// ... or this age (seconds).
    public let maxFileAgeSeconds: Double
    private let stopping = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    private var thread = pthread_t()
    private var decisions: RotatingFile
    private var outcomes: RotatingFile
    private var lastDropped = 0
    private var lastDropReport = Date()

    /// Creates `directory` if needed and opens the first files. Throws naming the path.
    public init(directory: String, log: DecisionLog, maxFileBytes: Int = 256 << 20, maxFileAgeSeconds: Double = 3600)
        throws
    {
        self.directory = directory
        self.log = log
        self.maxFileBytes = maxFileBytes
        self.maxFileAgeSeconds = maxFileAgeSeconds
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw LogWriterError("cannot create log directory \(directory): \(error.localizedDescription)")
        }
        decisions = try RotatingFile(directory: directory, prefix: "decisions")
        outcomes = try RotatingFile(directory: directory, prefix: "outcomes")
    }

    /// Starts the writer thread.
    public func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(
            &thread, nil,
            { raw in
                let writer = Unmanaged<LogWriter>.fromOpaque(raw!).takeRetainedValue()
                writer.run()
                return nil
            }, box)
    }

    /// Drains every ring one last time, flushes and closes the files (call after the reactors
    /// have stopped, e.g. on SIGTERM).
    public func stop() {
        stopping.store(true, ordering: .releasing)
        pthread_join(thread, nil)
    }

    /// Text is handed to write(2) once a file's buffer holds this many bytes (and at the end of
    /// every pass), so the buffer stays cache-sized however far behind the writer is.
    static let flushBytes = 1 << 20
    /// Pause between passes when the rings were (nearly) empty.
    static let idleMicros: UInt32 = 100_000

    private func run() {
        var scratch = [UInt8](repeating: 0, count: DecisionLog.maxRecordBytes)
        var formatter = DecisionRecordFormatter()
        var decisionText = JSONLineBuffer(capacity: 2 * LogWriter.flushBytes)
        var outcomeText = JSONLineBuffer(capacity: 1 << 16)
        defer {
            decisionText.deallocate()
            outcomeText.deallocate()
        }
        while true {
            let last = stopping.load(ordering: .acquiring)
            for ring in log.rings {
                ring.drain(into: &scratch) { record in
                    guard let type = record.first else { return }
                    if type == DecisionLog.decisionRecord {
                        formatter.appendDecision(record, to: &decisionText)
                        if decisionText.count >= LogWriter.flushBytes {
                            decisions.write(&decisionText, maxBytes: maxFileBytes, maxAgeSeconds: maxFileAgeSeconds)
                        }
                    } else if type == DecisionLog.outcomeRecord {
                        formatter.appendOutcome(record, to: &outcomeText)
                        if outcomeText.count >= LogWriter.flushBytes {
                            outcomes.write(&outcomeText, maxBytes: maxFileBytes, maxAgeSeconds: maxFileAgeSeconds)
                        }
                    }
                }
            }
            decisions.write(&decisionText, maxBytes: maxFileBytes, maxAgeSeconds: maxFileAgeSeconds)
            outcomes.write(&outcomeText, maxBytes: maxFileBytes, maxAgeSeconds: maxFileAgeSeconds)
            reportDrops()
            if last { break }
            // Behind (a ring more than 1/8 full again): go straight back to draining.
            if !log.rings.contains(where: { $0.pendingBytes > $0.capacity / 8 }) { usleep(LogWriter.idleMicros) }
        }
        decisions.close()
        outcomes.close()
        finished.store(true, ordering: .releasing)
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
                return
            }
            offset += n
        }
        failed = false
        bytes += total
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
