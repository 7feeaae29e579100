import Benchmark
@_exported import EncoreBenchWorkloads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How the suite runs, from the environment (set by scripts/bench-micro.sh):
/// - `BENCHMARK_QUICK=1`: a few hundred iterations per benchmark (CI's threshold check).
/// - `BENCHMARK_THRESHOLDS=1`: measure only the metrics with checked-in thresholds (allocations
///   and instructions), so `thresholds update` never records a wall-clock figure.
public enum BenchSupport {
    static func flag(_ name: String) -> Bool {
        guard let value = getenv(name) else { return false }
        let text = String(cString: value)
        return !text.isEmpty && text != "0"
    }

    public static var quick: Bool { flag("BENCHMARK_QUICK") }
    public static var thresholdsOnly: Bool { flag("BENCHMARK_THRESHOLDS") }

    /// Thresholds are checked for allocations and instructions only, never wall clock:
    /// allocations must not grow at all, instructions may drift by 10 %.
    public static var thresholds: [BenchmarkMetric: BenchmarkThresholds] {
        [
            .mallocCountTotal: .init(absolute: [.p90: 0]),
            .instructions: .init(relative: [.p90: 10.0]),
        ]
    }

    /// The configuration every Encore micro-benchmark uses. `scalingFactor` is the number of
    /// operations one measured iteration performs (loop over `benchmark.scaledIterations`).
    public static func configuration(scalingFactor: BenchmarkScalingFactor = .kilo) -> Benchmark.Configuration {
        let metrics: [BenchmarkMetric] =
            thresholdsOnly
            ? [.mallocCountTotal, .instructions]
            : [.wallClock, .throughput, .instructions, .mallocCountTotal]
        return .init(
            metrics: metrics,
            timeUnits: .nanoseconds,
            warmupIterations: quick ? 5 : 20,
            scalingFactor: scalingFactor,
            maxDuration: quick ? .milliseconds(300) : .seconds(2),
            maxIterations: quick ? 100 : 5_000,
            thresholds: thresholds
        )
    }
}
