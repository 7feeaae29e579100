import EncoreClient
import EncoreSupport
import EncoreTransport
import Foundation
import Histogram

/// Runs one load: opens the connections, starts one load thread per `effectiveThreads`, prints a
/// progress line each second (stderr), joins the threads and merges their histograms.
public enum BenchRunner {
    /// Runs `options` with bodies from `pool`. Throws if a connection cannot be opened.
    /// `log` receives progress lines (one a second) when `options.progress` is set.
    public static func run(
        _ options: BenchOptions, pool: RequestPool, log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws -> BenchResult {
        let threads = options.effectiveThreads
        var perThread = [[HTTP2ClientConnection]](repeating: [], count: threads)
        for c in 0..<options.connections {
            perThread[c % threads].append(
                try HTTP2ClientConnection(
                    host: options.host, port: options.port, path: options.path, tls: options.tls,
                    maxStreams: options.streams))
        }
        // Start 50 ms from now so every thread begins on the same schedule.
        let start = MonotonicClock.nowNanos + 50_000_000
        let workers = (0..<threads).map {
            LoadWorker(
                index: $0, threads: threads, connections: perThread[$0], pool: pool, options: options, startNanos: start
            )
        }
        perThread = []
        let finished = DispatchGroup()
        for worker in workers {
            finished.enter()
            let thread = Thread {
                worker.run()
                finished.leave()
            }
            thread.name = "encore-bench-\(worker.index)"
            thread.start()
        }
        let warmupEnd = start + UInt64(options.warmupSeconds * 1e9)
        var lastCompleted: UInt64 = 0
        var lastTime = start
        var second = 0
        while finished.wait(timeout: .now() + .seconds(1)) == .timedOut {
            guard options.progress else { continue }
            let now = MonotonicClock.nowNanos
            var completed: UInt64 = 0
            var errors: UInt64 = 0
            var backlog: UInt64 = 0
            for w in workers {
                completed += w.progress.completed.load(ordering: .relaxed)
                errors += w.progress.errors.load(ordering: .relaxed)
                backlog += w.progress.backlog.load(ordering: .relaxed)
            }
            second += 1
            let rate = Double(completed - lastCompleted) * 1e9 / Double(max(1, now - lastTime))
            let phase = now < warmupEnd ? "warm-up" : "measure"
            var line = "bench: \(second)s \(phase)  \(fmt(rate, 0)) req/s  \(completed) done  \(errors) errors"
            if case .rate = options.mode { line += "  backlog \(backlog)" }
            log(line)
            lastCompleted = completed
            lastTime = now
        }
        var histogram = Histogram<UInt64>(
            lowestDiscernibleValue: 1_000, highestTrackableValue: 120_000_000_000,
            numberOfSignificantValueDigits: .three)
        var counts = WindowCounts()
        var failures: [String] = []
        for w in workers {
            histogram.add(w.histogram)
            counts.add(w.counts)
            failures += w.failures
        }
        return BenchResult(options: options, threads: threads, histogram: histogram, counts: counts, failures: failures)
    }
}
