import EncoreClient
import EncoreSupport
import EncoreTransport
import Histogram
import Synchronization

/// Counters a load thread publishes for the once-a-second progress line. Written only by its
/// load thread (relaxed stores), read by the main thread.
final class WorkerProgress: Sendable {
    let completed = Atomic<UInt64>(0)
    let errors = Atomic<UInt64>(0)
    /// Open loop: requests due but not yet sent (the sender is behind).
    let backlog = Atomic<UInt64>(0)
}

/// Counts for the measured window of one load thread (merged into a `BenchResult`).
struct WindowCounts {
    /// Calls sent whose (intended) send time lies in the window.
    var sent: UInt64 = 0
    /// Of those, calls that ended with gRPC OK (their latencies are in the histogram).
    var ok: UInt64 = 0
    /// OK calls that completed inside the window (throughput).
    var completedInWindow: UInt64 = 0
    /// Failed calls of the window by kind: index 0...16 gRPC status, 17 HTTP, 18 reset,
    /// 19 connection lost, 20 missing grpc-status, 21 timed out (unfinished after the drain).
    var errors = [UInt64](repeating: 0, count: 22)

    static let kindNames: [String] =
        (0...16).map { "grpc_\($0)" } + ["http", "reset", "connection_lost", "missing_status", "timeout"]

    static func kind(_ status: Int32) -> Int {
        switch status {
        case 0...16: return Int(status)
        case ClientCallStatus.httpError: return 17
        case ClientCallStatus.streamReset: return 18
        case ClientCallStatus.connectionLost: return 19
        case ClientCallStatus.missingStatus: return 20
        default: return 17
        }
    }
    static let timeoutKind = 21

    mutating func add(_ other: WindowCounts) {
        sent += other.sent
        ok += other.ok
        completedInWindow += other.completedInWindow
        for i in errors.indices { errors[i] += other.errors[i] }
    }
}

/// One load thread: its connections, its poll loop, its histogram. Created on the main thread,
/// then used only by its own thread until `run` returns (the main thread reads the results after
/// joining it).
final class LoadWorker: @unchecked Sendable {
    let index: Int
    private let connections: [HTTP2ClientConnection]
    private let poller: LoadPoller
    private let pool: RequestPool
    private let mode: BenchOptions.Mode
    private let coCorrection: Bool
    private let startNanos: UInt64
    private let measureStartNanos: UInt64
    private let endNanos: UInt64
    private let drainDeadlineNanos: UInt64
    private let schedule: OpenLoopSchedule?
    let progress = WorkerProgress()
    /// Latencies (nanoseconds) of the OK calls of the window.
    private(set) var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1_000, highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
    private(set) var counts = WindowCounts()
    /// Connection failures, one line each.
    private(set) var failures: [String] = []
    private var poolIndex: Int
    private var nextRequest: UInt64 = 0
    private var roundRobin = 0
    private var completedTotal: UInt64 = 0
    private var errorsTotal: UInt64 = 0

    init(
        index: Int, threads: Int, connections: [HTTP2ClientConnection], pool: RequestPool, options: BenchOptions,
        startNanos: UInt64
    ) {
        self.index = index
        self.connections = connections
        poller = LoadPoller(fds: connections.map(\.fd))
        self.pool = pool
        mode = options.mode
        coCorrection = options.coCorrection
        self.startNanos = startNanos
        measureStartNanos = startNanos + UInt64(options.warmupSeconds * 1e9)
        endNanos = measureStartNanos + UInt64(options.durationSeconds * 1e9)
        drainDeadlineNanos = endNanos + UInt64(options.drainSeconds * 1e9)
        if case .rate(let perSecond) = options.mode {
            schedule = OpenLoopSchedule(
                ratePerSecond: perSecond, thread: index, threads: threads, startNanos: startNanos, endNanos: endNanos)
        } else {
            schedule = nil
        }
        poolIndex = index * 7919
    }

    /// The load loop; returns after the drain.
    func run() {
        LoadPoller.useFineTimers()
        while true {
            var now = MonotonicClock.nowNanos
            if now >= drainDeadlineNanos { break }
            var backlogged = false
            if let schedule {
                // Open loop: send everything due (intended time <= now) that a connection has room for.
                while schedule.contains(nextRequest) {
                    let intended = schedule.intendedNanos(nextRequest)
                    if intended > now { break }
                    guard let connection = nextFreeConnection() else {
                        backlogged = true
                        break
                    }
                    // The tag is where the latency starts; it also decides whether the call is
                    // part of the measured window.
                    let tag = coCorrection ? intended : now
                    _ = connection.submit(body: pool.body(poolIndex), tag: tag)
                    poolIndex &+= 1
                    nextRequest += 1
                    if tag >= measureStartNanos && tag < endNanos { counts.sent += 1 }
                }
                if backlogged {
                    let due = UInt64(Double(now - min(now, schedule.firstNanos)) / schedule.intervalNanos) + 1
                    progress.backlog.store(due > nextRequest ? due - nextRequest : 0, ordering: .relaxed)
                } else {
                    progress.backlog.store(0, ordering: .relaxed)
                }
            } else if now >= startNanos && now < endNanos {
                // Closed loop: fill every connection (from the common start on: a call sent
                // before it would belong to no window, not even with --warmup 0).
                for connection in connections {
                    while connection.canSubmit {
                        _ = connection.submit(body: pool.body(poolIndex), tag: now)
                        poolIndex &+= 1
                        if now >= measureStartNanos { counts.sent += 1 }
                    }
                }
            }
            var anyInFlight = false
            var anyAlive = false
            for (i, connection) in connections.enumerated() {
                poller.setWantsWrite(i, connection.flush())
                if connection.inFlight > 0 { anyInFlight = true }
                if connection.failure == nil { anyAlive = true }
            }
            let sendingDone: Bool
            if let schedule { sendingDone = !schedule.contains(nextRequest) } else { sendingDone = now >= endNanos }
            if !anyAlive || (sendingDone && !anyInFlight) { break }
            // Sleep until the next intended send, the end, or a socket event.
            var wakeNanos = sendingDone ? drainDeadlineNanos : now < startNanos ? startNanos : endNanos
            if let schedule, !backlogged, schedule.contains(nextRequest) {
                wakeNanos = min(wakeNanos, schedule.intendedNanos(nextRequest))
            }
            now = MonotonicClock.nowNanos
            let timeout = wakeNanos > now ? Int64(min(wakeNanos - now, 100_000_000)) : 0
            let ready = poller.wait(timeoutNanos: timeout)
            if ready > 0 {
                for (i, connection) in connections.enumerated() {
                    if poller.isReadable(i) { connection.readAvailable() }
                    if poller.isWritable(i) { connection.flush() }
                }
            }
            let done = MonotonicClock.nowNanos
            for connection in connections {
                connection.drainFinished { tag, status in record(tag: tag, status: status, now: done) }
            }
            progress.completed.store(completedTotal, ordering: .relaxed)
            progress.errors.store(errorsTotal, ordering: .relaxed)
        }
        finishDrain()
    }

    private func finishDrain() {
        // Calls still in flight, or never sent, when the drain ended: time-outs of the window.
        for connection in connections {
            connection.drainFinished { tag, status in record(tag: tag, status: status, now: MonotonicClock.nowNanos) }
            if let failure = connection.failure { failures.append(failure) }
            if connection.droppedFinished > 0 {
                failures.append("\(connection.droppedFinished) finished calls were not counted (internal error)")
            }
        }
        var unfinished: UInt64 = 0
        for connection in connections { unfinished += UInt64(connection.inFlight) }
        if let schedule {
            var k = nextRequest
            while schedule.contains(k) {
                if schedule.intendedNanos(k) >= measureStartNanos { unfinished += 1 }
                k += 1
            }
        }
        counts.errors[WindowCounts.timeoutKind] += unfinished
        errorsTotal += unfinished
        progress.errors.store(errorsTotal, ordering: .relaxed)
    }

    @inline(__always)
    private func nextFreeConnection() -> HTTP2ClientConnection? {
        for _ in 0..<connections.count {
            let c = connections[roundRobin]
            roundRobin += 1
            if roundRobin == connections.count { roundRobin = 0 }
            if c.canSubmit { return c }
        }
        return nil
    }

    @inline(__always)
    private func record(tag: UInt64, status: Int32, now: UInt64) {
        completedTotal += 1
        let inWindow = tag >= measureStartNanos && tag < endNanos
        if status == ClientCallStatus.ok {
            if inWindow {
                counts.ok += 1
                _ = histogram.record(now > tag ? now - tag : 0)
            }
            if now >= measureStartNanos && now < endNanos { counts.completedInWindow += 1 }
        } else {
            errorsTotal += 1
            if inWindow { counts.errors[WindowCounts.kind(status)] += 1 }
        }
    }
}
