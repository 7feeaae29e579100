import EncoreEngine
import EncoreLogging
import EncoreModel
import EncoreStore
import EncoreSupport
import EncoreTransport
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `--durable-outcomes`: the write-ahead journal of ReportOutcome. A reactor validates the
/// outcome and queues it here (`enqueue`, a short lock); the journal's thread takes everything
/// queued at once, appends one record per new outcome to the segment file and syncs it
/// (fdatasync) — one sync for the whole batch, so concurrent calls share it (group commit) —
/// and only then applies the repeat filter's verdict, appends the outcome to its log ring and
/// changes the rule counters, and answers every call of the batch (`GRPCDeferredCall.answer`,
/// one post per reactor). The reactor never waits for the disk.
///
/// Segments are `<state file>.wal-<first sequence, 20 digits>`: "ENCWAL01", then records
/// `u32 body length, body, u64 StableHash(body)` with body = `u64 sequence, i64 time (Unix ms),
/// i32 outcome, i64 revenue_cents, u16 + decision id, u16 + offer id` (little-endian). A record
/// is acknowledged only after it is synced, so a torn record at a segment's end (a crash
/// mid-write) was never acknowledged and is ignored.
///
/// The state file records the last sequence its counters include (`RuleStateFile` version 3);
/// it is captured with the counters under `applied`, which the journal thread holds while it
/// applies a batch, so it is exact. At start `replay` applies the later records to the counters
/// and writes the outcome lines the log files lack (matched by decision id, offer id, outcome);
/// the server then saves the state and removes the replayed segments. After each periodic save
/// the journal removes the segments the state covers once their outcome lines are synced to the
/// log files (`LogWriter.syncOutcomes`).
final class OutcomeJournal: @unchecked Sendable {
    let statePath: String
    let engine: DecisionEngine
    let repeats: OutcomeRepeats
    /// The log the journal appends outcome records to, through its own ring `ringIndex` (the
    /// journal thread is that ring's only producer); nil without `--log-dir`.
    let log: DecisionLog?
    let ringIndex: Int
    /// Set before `start`: segment removal waits until the outcome lines are synced.
    var logWriter: LogWriter?
    /// Rotate segments past this size (bytes).
    static let segmentBytes = 64 << 20
    static let magic = Array("ENCWAL01".utf8)

    /// The last sequence whose outcome the counters include. The journal thread holds the lock
    /// while it applies a batch; a state save holds it while it copies the counters.
    let applied = Mutex<UInt64>(0)
    /// The last sequence a saved state file includes (set by `checkpointed`, read by the
    /// journal thread).
    private let checkpoint = Atomic<UInt64>(0)
    /// Outcomes answered UNAVAILABLE because the journal could not be written, and records
    /// written (both read at shutdown and by metrics).
    let failedOutcomes = Atomic<Int>(0)
    let journaledOutcomes = Atomic<Int>(0)

    // The queue: reactors append, the journal thread swaps it out. Guarded by `mutex`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var queued: [Pending] = []
    private var queuedCalls: [GRPCDeferredCall] = []
    private var queuedBytes: [UInt8] = []
    private var stopping = false
    private var waiting = false

    struct Pending {
        var offset: Int
        var decisionLength: Int
        var offerLength: Int
        var outcome: Int32
        var revenueCents: Int64
        var nowMillis: Int64
    }

    // The journal thread's own state.
    private var thread: pthread_t? = nil
    private var fd: Int32 = -1
    private var segment: Segment? = nil
    private var closed: [Segment] = []
    private var nextSequence: UInt64 = 1
    private var lastFailureReport = Date.distantPast
    private var failingSince: Date? = nil

    struct Segment {
        var path: String
        var bytes: Int
        var lastSequence: UInt64
        /// `MonotonicClock.nowNanos` after the last batch written to it was applied (its log
        /// records were in the ring by then).
        var appliedNanos: UInt64
    }

    init(statePath: String, engine: DecisionEngine, repeats: OutcomeRepeats, log: DecisionLog?, ringIndex: Int) {
        self.statePath = statePath
        self.engine = engine
        self.repeats = repeats
        self.log = log
        self.ringIndex = ringIndex
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        pthread_cond_init(condition, nil)
        queued.reserveCapacity(4096)
        queuedCalls.reserveCapacity(4096)
        queuedBytes.reserveCapacity(1 << 20)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(condition)
        mutex.deallocate()
        condition.deallocate()
    }

    // MARK: Reactor side

    /// Queues one validated outcome; `call` is answered once it is durable (or UNAVAILABLE).
    func enqueue(
        decisionID: UnsafeRawBufferPointer, offerID: UnsafeRawBufferPointer, outcome: Int32, revenueCents: Int64,
        nowMillis: Int64, call: GRPCDeferredCall
    ) {
        pthread_mutex_lock(mutex)
        let offset = queuedBytes.count
        queuedBytes.append(contentsOf: decisionID)
        queuedBytes.append(contentsOf: offerID)
        queued.append(
            Pending(
                offset: offset, decisionLength: decisionID.count, offerLength: offerID.count, outcome: outcome,
                revenueCents: revenueCents, nowMillis: nowMillis))
        queuedCalls.append(call)
        let wake = waiting
        pthread_mutex_unlock(mutex)
        if wake { pthread_cond_signal(condition) }
    }

    // MARK: Lifecycle

    func start() {
        final class Box {
            let journal: OutcomeJournal
            init(_ journal: OutcomeJournal) { self.journal = journal }
        }
        var t = pthread_t()
        let box = Unmanaged.passRetained(Box(self)).toOpaque()
        pthread_create(
            &t, nil,
            { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.journal.run()
                return nil
            }, box)
        thread = t
    }

    /// Writes and answers everything queued, then stops the thread and closes the segment
    /// (call after the reactors have stopped).
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_mutex_unlock(mutex)
        pthread_cond_signal(condition)
        if let thread { pthread_join(thread, nil) }
        thread = nil
        if fd >= 0 {
            close(fd)
            fd = -1
        }
    }

    /// A state file including every outcome through `sequence` is on disk: the segments it
    /// covers may go once their log lines are synced.
    func checkpointed(through sequence: UInt64) {
        var current = checkpoint.load(ordering: .relaxed)
        while current < sequence {
            let (exchanged, original) = checkpoint.compareExchange(
                expected: current, desired: sequence, ordering: .acquiringAndReleasing)
            if exchanged { break }
            current = original
        }
    }

    // MARK: The journal thread

    private func run() {
        var batch: [Pending] = []
        var calls: [GRPCDeferredCall] = []
        var bytes: [UInt8] = []
        batch.reserveCapacity(4096)
        calls.reserveCapacity(4096)
        bytes.reserveCapacity(1 << 20)
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        var keys: [UInt64] = []
        var fresh: [Bool] = []
        while true {
            pthread_mutex_lock(mutex)
            if queued.isEmpty && !stopping {
                // Wake at least once a second for segment removal after a checkpoint.
                var deadline = timespec()
                clock_gettime(CLOCK_REALTIME, &deadline)
                deadline.tv_sec += 1
                waiting = true
                while queued.isEmpty && !stopping {
                    if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
                }
                waiting = false
            }
            let done = stopping && queued.isEmpty
            swap(&queued, &batch)
            swap(&queuedCalls, &calls)
            swap(&queuedBytes, &bytes)
            pthread_mutex_unlock(mutex)
            if !batch.isEmpty {
                process(batch, calls, bytes, out: &out, keys: &keys, fresh: &fresh)
                batch.removeAll(keepingCapacity: true)
                calls.removeAll(keepingCapacity: true)
                bytes.removeAll(keepingCapacity: true)
            }
            removeCoveredSegments()
            if done { break }
        }
    }

    private func process(
        _ batch: [Pending], _ calls: [GRPCDeferredCall], _ bytes: [UInt8], out: inout [UInt8], keys: inout [UInt64],
        fresh: inout [Bool]
    ) {
        out.removeAll(keepingCapacity: true)
        keys.removeAll(keepingCapacity: true)
        fresh.removeAll(keepingCapacity: true)
        let firstSequence = nextSequence
        bytes.withUnsafeBytes { raw in
            for p in batch {
                let decision = UnsafeRawBufferPointer(rebasing: raw[p.offset..<(p.offset + p.decisionLength)])
                let offer = UnsafeRawBufferPointer(
                    rebasing: raw[(p.offset + p.decisionLength)..<(p.offset + p.decisionLength + p.offerLength)])
                let key = OutcomeRepeats.key(decisionID: decision, offerID: offer, outcome: p.outcome)
                keys.append(key)
                // A repeat is answered with this batch: its original was written in this batch
                // or an earlier one, so it is durable when this batch's answers go out.
                let isFresh = repeats.insert(key)
                fresh.append(isFresh)
                if isFresh {
                    OutcomeJournal.encode(
                        sequence: nextSequence, nowMillis: p.nowMillis, outcome: p.outcome,
                        revenueCents: p.revenueCents, decisionID: decision, offerID: offer, into: &out)
                    nextSequence += 1
                }
            }
        }
        if nextSequence > firstSequence {
            if let failure = append(out) {
                nextSequence = firstSequence
                for i in keys.indices where fresh[i] { repeats.remove(keys[i]) }
                failedOutcomes.add(batch.count, ordering: .relaxed)
                reportFailure(failure)
                let status = GRPCStatus(
                    .unavailable,
                    "durable outcomes: the write-ahead file could not be written (\(failure)); the outcome was not recorded, retry"
                )
                calls.withUnsafeBufferPointer { GRPCDeferredCall.answer($0, with: status) }
                return
            }
            if let since = failingSince {
                Log.info(
                    "durable outcomes: the write-ahead file is written again after \(Int(Date().timeIntervalSince(since))) s"
                )
                failingSince = nil
                lastFailureReport = .distantPast
            }
        }
        let model = engine.active.value
        applied.withLock { appliedThrough in
            bytes.withUnsafeBytes { raw in
                for (i, p) in batch.enumerated() where fresh[i] {
                    let decision = UnsafeRawBufferPointer(rebasing: raw[p.offset..<(p.offset + p.decisionLength)])
                    let offer = UnsafeRawBufferPointer(
                        rebasing: raw[(p.offset + p.decisionLength)..<(p.offset + p.decisionLength + p.offerLength)])
                    apply(
                        decisionID: decision, offerID: offer, outcome: p.outcome, revenueCents: p.revenueCents,
                        nowMillis: p.nowMillis, model: model)
                }
            }
            appliedThrough = nextSequence - 1
        }
        let written = Int(nextSequence - firstSequence)
        journaledOutcomes.add(written, ordering: .relaxed)
        if written > 0 {
            segment?.lastSequence = nextSequence - 1
            segment?.appliedNanos = MonotonicClock.nowNanos
        }
        calls.withUnsafeBufferPointer { GRPCDeferredCall.answer($0, with: .ok) }
    }

    /// Logs (waiting for room in the ring rather than dropping: the outcome is acknowledged)
    /// and counts one outcome.
    private func apply(
        decisionID: UnsafeRawBufferPointer, offerID: UnsafeRawBufferPointer, outcome: Int32, revenueCents: Int64,
        nowMillis: Int64, model: ActiveModel
    ) {
        if let log {
            var tries = 0
            while !log.appendOutcome(
                thread: ringIndex, decisionID: decisionID, offerID: offerID, outcome: outcome,
                revenueCents: revenueCents, nowMillis: nowMillis)
            {
                // A full ring (the log writer is behind): wait for it, up to 5 s, then the drop
                // is counted like any other.
                tries += 1
                if tries > 5000 { break }
                log.rings[ringIndex].dropped.add(-1, ordering: .relaxed)
                usleep(1000)
            }
        }
        if let kind = OutcomeKind(rawValue: outcome) {
            engine.recordOutcome(
                decisionID: decisionID, offerID: offerID, outcome: kind, nowMillis: nowMillis, model: model)
        }
    }

    /// Appends `out` to the current segment (opening one if needed) and syncs it. On failure the
    /// segment is cut back to its last complete record (or abandoned) and the error returned.
    private func append(_ out: [UInt8]) -> String? {
        if fd < 0 || (segment?.bytes ?? 0) > OutcomeJournal.segmentBytes {
            if let failure = openSegment() { return failure }
        }
        var written = 0
        var failure: String? = nil
        out.withUnsafeBytes { raw in
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = "write to \(segment!.path): \(String(cString: strerror(errno)))"
                    return
                }
                written += n
            }
            if fdatasync(fd) != 0 { failure = "fdatasync of \(segment!.path): \(String(cString: strerror(errno)))" }
        }
        if let failure {
            // Nothing of this batch is acknowledged: cut it off so later records follow a
            // complete one (replay stops at the first damaged record of a segment).
            if ftruncate(fd, off_t(segment!.bytes)) != 0 || fdatasync(fd) != 0 {
                closeSegment()
            }
            return failure
        }
        segment!.bytes += out.count
        return nil
    }

    private func openSegment() -> String? {
        closeSegment()
        let path = OutcomeJournal.segmentPath(statePath, first: nextSequence)
        let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard f >= 0 else { return "cannot create \(path): \(String(cString: strerror(errno)))" }
        let ok = OutcomeJournal.magic.withUnsafeBytes { write(f, $0.baseAddress!, $0.count) == $0.count }
        guard ok, fsync(f) == 0, OutcomeJournal.syncDirectory(of: path) else {
            let why = String(cString: strerror(errno))
            close(f)
            unlink(path)
            return "cannot start \(path): \(why)"
        }
        fd = f
        segment = Segment(path: path, bytes: OutcomeJournal.magic.count, lastSequence: 0, appliedNanos: 0)
        return nil
    }

    private func closeSegment() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        if let s = segment {
            if s.lastSequence == 0 {
                unlink(s.path)
            } else {
                closed.append(s)
            }
        }
        segment = nil
    }

    /// Removes the segments a saved state covers whose outcome lines are synced to the logs; the
    /// current segment is closed first when the state covers all of it.
    private func removeCoveredSegments() {
        let covered = checkpoint.load(ordering: .acquiring)
        guard covered > 0 else { return }
        if let s = segment, s.lastSequence > 0, s.lastSequence <= covered { closeSegment() }
        let synced = logWriter?.outcomesSyncedBeforeNanos ?? UInt64.max
        closed.removeAll { s in
            guard s.lastSequence <= covered, synced > s.appliedNanos else { return false }
            unlink(s.path)
            return true
        }
    }

    private func reportFailure(_ failure: String) {
        let now = Date()
        if failingSince == nil { failingSince = now }
        guard now.timeIntervalSince(lastFailureReport) >= 10 else { return }
        lastFailureReport = now
        Log.error(
            "durable outcomes: \(failure); ReportOutcome answers UNAVAILABLE (nothing acknowledged is lost) and every batch retries the disk; \(failedOutcomes.load(ordering: .relaxed)) outcomes refused so far"
        )
    }

    // MARK: Records

    static func segmentPath(_ statePath: String, first: UInt64) -> String {
        let digits = String(first)
        return statePath + ".wal-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    static func encode(
        sequence: UInt64, nowMillis: Int64, outcome: Int32, revenueCents: Int64, decisionID: UnsafeRawBufferPointer,
        offerID: UnsafeRawBufferPointer, into out: inout [UInt8]
    ) {
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        let bodyLength = 8 + 8 + 4 + 8 + 2 + decisionID.count + 2 + offerID.count
        put(UInt32(bodyLength))
        let start = out.count
        put(sequence)
        put(nowMillis)
        put(outcome)
        put(revenueCents)
        put(UInt16(decisionID.count))
        out.append(contentsOf: decisionID)
        put(UInt16(offerID.count))
        out.append(contentsOf: offerID)
        let hash = out.withUnsafeBytes { StableHash.hash(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        put(hash)
    }

    /// One record read back.
    struct Record {
        var sequence: UInt64
        var nowMillis: Int64
        var outcome: Int32
        var revenueCents: Int64
        var decisionID: [UInt8]
        var offerID: [UInt8]
    }

    /// The complete records of one segment file, in order; stops at the first torn or damaged
    /// one (`damaged` then says where).
    static func read(segment path: String) throws -> (records: [Record], damagedAt: Int?) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SetupError("--durable-outcomes: cannot read \(path)")
        }
        let bytes = [UInt8](data)
        // An empty or headerless file: created by a crash before its first record.
        guard bytes.count >= magic.count else { return ([], nil) }
        guard Array(bytes[0..<magic.count]) == magic else {
            throw SetupError("--durable-outcomes: \(path) is not an Encore write-ahead file (bad magic)")
        }
        var records: [Record] = []
        var p = magic.count
        func u<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
        }
        while p < bytes.count {
            guard p + 4 <= bytes.count else { return (records, p) }
            let length = Int(u(p, UInt32.self))
            let body = p + 4
            guard length >= 32, body + length + 8 <= bytes.count else { return (records, p) }
            let hash = bytes.withUnsafeBytes {
                StableHash.hash(UnsafeRawBufferPointer(rebasing: $0[body..<(body + length)]))
            }
            guard hash == u(body + length, UInt64.self) else { return (records, p) }
            let decisionLength = Int(u(body + 28, UInt16.self))
            let offerAt = body + 30 + decisionLength
            guard offerAt + 2 <= body + length else { return (records, p) }
            let offerLength = Int(u(offerAt, UInt16.self))
            guard offerAt + 2 + offerLength == body + length else { return (records, p) }
            records.append(
                Record(
                    sequence: u(body, UInt64.self), nowMillis: u(body + 8, Int64.self),
                    outcome: u(body + 16, Int32.self),
                    revenueCents: u(body + 20, Int64.self), decisionID: Array(bytes[(body + 30)..<offerAt]),
                    offerID: Array(bytes[(offerAt + 2)..<(offerAt + 2 + offerLength)])))
            p = body + length + 8
        }
        return (records, nil)
    }

    /// The segment files beside `statePath`, oldest first.
    static func segments(_ statePath: String) -> [String] {
        let directory = (statePath as NSString).deletingLastPathComponent
        let prefix = (statePath as NSString).lastPathComponent + ".wal-"
        let dir = directory.isEmpty ? "." : directory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasPrefix(prefix) && $0.dropFirst(prefix.count).allSatisfy(\.isNumber) }.sorted()
            .map { dir + "/" + $0 }
    }

    static func syncDirectory(of path: String) -> Bool {
        let directory = (path as NSString).deletingLastPathComponent
        let d = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { return false }
        defer { close(d) }
        return fsync(d) == 0
    }

    // MARK: Replay

    /// What `replay` did.
    struct ReplaySummary {
        var records = 0
        var appliedToCounters = 0
        var relogged = 0
        var segments = 0
    }

    /// At start, before serving: reads every segment, applies to the counters the outcomes after
    /// `appliedThrough` (what the loaded state file includes), marks all of them seen (a retry
    /// after the restart is a repeat), and writes to a new outcome log file every outcome the
    /// log files in `logDirectory` lack. The segments are removed by `finishReplay` once the
    /// state is saved.
    func replay(appliedThrough: UInt64, logDirectory: String?) throws -> ReplaySummary {
        var summary = ReplaySummary()
        let paths = OutcomeJournal.segments(statePath)
        var records: [Record] = []
        for path in paths {
            let (found, damagedAt) = try OutcomeJournal.read(segment: path)
            if let damagedAt {
                Log.warning(
                    "durable outcomes: \(path): a torn or damaged record at byte \(damagedAt) and what follows ignored (a crash while writing: never acknowledged)"
                )
            }
            records += found
        }
        records.sort { $0.sequence < $1.sequence }
        summary.segments = paths.count
        summary.records = records.count
        let model = engine.active.value
        var last = appliedThrough
        for r in records {
            let key = r.decisionID.withUnsafeBytes { d in
                r.offerID.withUnsafeBytes { o in OutcomeRepeats.key(decisionID: d, offerID: o, outcome: r.outcome) }
            }
            _ = repeats.insert(key)
            guard r.sequence > appliedThrough, let kind = OutcomeKind(rawValue: r.outcome) else { continue }
            r.decisionID.withUnsafeBytes { d in
                r.offerID.withUnsafeBytes { o in
                    engine.recordOutcome(decisionID: d, offerID: o, outcome: kind, nowMillis: r.nowMillis, model: model)
                }
            }
            summary.appliedToCounters += 1
            last = max(last, r.sequence)
        }
        if let logDirectory, !records.isEmpty {
            summary.relogged = try OutcomeJournal.relog(records, directory: logDirectory)
        }
        applied.withLock { $0 = last }
        nextSequence = last + 1
        closed = paths.map { Segment(path: $0, bytes: 0, lastSequence: last, appliedNanos: 0) }
        return summary
    }

    /// After the replay's state save: the replayed segments are covered by the state file and
    /// their outcome lines are synced, so they go.
    func finishReplay() {
        for s in closed { unlink(s.path) }
        closed = []
        if let first = OutcomeJournal.segments(statePath).first { _ = OutcomeJournal.syncDirectory(of: first) }
    }

    /// Writes (and syncs) the outcomes of `records` that no `outcomes-*.jsonl` file in
    /// `directory` holds to a new outcome file; returns how many.
    static func relog(_ records: [Record], directory: String) throws -> Int {
        var logged = Set<String>()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix("outcomes-") && name.hasSuffix(".jsonl") {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { continue }
            for line in data.split(separator: 0x0A) {
                guard
                    let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                    let decision = object["decision_id"] as? String, let offer = object["offer_id"] as? String,
                    let outcome = object["outcome"] as? String
                else { continue }
                logged.insert(decision + "\u{0}" + offer + "\u{0}" + outcome)
            }
        }
        var text = JSONLineBuffer(capacity: 1 << 16)
        defer { text.deallocate() }
        let formatter = DecisionRecordFormatter()
        var missing = 0
        var record: [UInt8] = []
        for r in records {
            let name =
                DecisionRecordFormatter.outcomeNames.indices.contains(Int(r.outcome))
                ? DecisionRecordFormatter.outcomeNames[Int(r.outcome)] : "code_\(r.outcome)"
            let key =
                String(decoding: r.decisionID, as: UTF8.self) + "\u{0}" + String(decoding: r.offerID, as: UTF8.self)
                + "\u{0}" + name
            guard logged.insert(key).inserted else { continue }
            record.removeAll(keepingCapacity: true)
            func put<T: FixedWidthInteger>(_ v: T) {
                withUnsafeBytes(of: v.littleEndian) { record.append(contentsOf: $0) }
            }
            put(DecisionLog.outcomeRecord)
            put(r.nowMillis)
            put(UInt16(r.decisionID.count))
            record += r.decisionID
            put(UInt16(r.offerID.count))
            record += r.offerID
            put(UInt32(bitPattern: r.outcome))
            put(r.revenueCents)
            record.withUnsafeBytes { formatter.appendOutcome($0, to: &text) }
            missing += 1
        }
        guard missing > 0 else { return 0 }
        let formatterDate = DateFormatter()
        formatterDate.locale = Locale(identifier: "en_US_POSIX")
        formatterDate.timeZone = TimeZone(identifier: "UTC")
        formatterDate.dateFormat = "yyyyMMdd'T'HHmmss"
        let path = "\(directory)/outcomes-\(formatterDate.string(from: Date()))-\(getpid())-replayed.jsonl"
        let f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard f >= 0 else {
            throw SetupError("--durable-outcomes: cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(f) }
        var offset = 0
        while offset < text.count {
            let n = write(f, text.base + offset, text.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw SetupError("--durable-outcomes: cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        guard fsync(f) == 0, syncDirectory(of: path) else {
            throw SetupError("--durable-outcomes: cannot sync \(path): \(String(cString: strerror(errno)))")
        }
        return missing
    }
}
