import EncoreMetrics
import Foundation
import Synchronization

/// Readings of the server's totals taken every `intervalSeconds` (the last `capacity` of them:
/// ten minutes), so the status page can plot rates and latency quantiles over the recent
/// minutes without Prometheus. Written by the sampling timer, read by `/status.json`.
final class StatusHistory: Sendable {
    struct Sample: Sendable {
        var unixSeconds: Double
        var treated: UInt64
        var holdout: UInt64
        var latency: LatencyBuckets.Reading
        /// Data-plane gRPC calls answered, and those not OK.
        var calls: UInt64
        var errors: UInt64
        var shown: UInt64
        var accepted: UInt64
    }

    static let intervalSeconds = 2.0
    static let capacity = 300
    private let samples = Mutex<[Sample]>([])

    func append(_ sample: Sample) {
        samples.withLock { s in
            s.append(sample)
            if s.count > StatusHistory.capacity { s.removeFirst(s.count - StatusHistory.capacity) }
        }
    }

    var all: [Sample] { samples.withLock { $0 } }
}

extension ServerMetrics {
    /// Takes one reading for the status page's history.
    func sample() {
        let data = dataServer.metricsReading()
        let totals = decisionTotals()
        var calls: UInt64 = 0
        var errors: UInt64 = 0
        for call in data.calls {
            calls &+= call.count
            if call.status != 0 { errors &+= call.count }
        }
        let shown = totals.outcomeSum(0)
        let accepted = totals.outcomeSum(1)
        history.append(
            .init(
                unixSeconds: Date().timeIntervalSince1970, treated: totals.treated, holdout: totals.holdout,
                latency: decideLatency(data), calls: calls, errors: errors, shown: shown, accepted: accepted))
    }

    /// Samples every `StatusHistory.intervalSeconds` until the timer is cancelled.
    func startSampling() -> DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        timer.schedule(deadline: .now(), repeating: StatusHistory.intervalSeconds)
        timer.setEventHandler { [self] in sample() }
        timer.resume()
        return timer
    }
}
