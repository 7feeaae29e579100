import Histogram

/// The outcome of one `encore bench` run: throughput, latency percentiles of the measured window
/// (from the intended send time in an open loop), and errors by kind.
public struct BenchResult: Sendable {
    public var mode: BenchOptions.Mode
    public var connections: Int
    public var streams: Int
    public var threads: Int
    public var durationSeconds: Double
    public var warmupSeconds: Double
    public var coCorrected: Bool
    /// Calls sent in the measured window.
    public var sent: UInt64
    /// Calls of the window that ended with gRPC OK.
    public var ok: UInt64
    /// Calls of the window that failed: non-OK gRPC status, HTTP error, reset, lost connection,
    /// or not finished by the end of the drain.
    public var errors: UInt64
    /// `errors` by kind (`grpc_<code>`, `http`, `reset`, `connection_lost`, `missing_status`,
    /// `timeout`); kinds with no error are left out.
    public var errorKinds: [(String, UInt64)]
    /// OK responses received during the window, per second.
    public var throughputRPS: Double
    /// Latency percentiles and extremes, microseconds.
    public var p50Micros: Double
    public var p90Micros: Double
    public var p99Micros: Double
    public var p999Micros: Double
    public var maxMicros: Double
    public var meanMicros: Double
    /// Why connections failed, if any did.
    public var connectionFailures: [String]

    /// The open loop's target rate (nil for `--max`).
    public var targetRate: Double? {
        if case .rate(let r) = mode { return r }
        return nil
    }

    init(options: BenchOptions, threads: Int, histogram: Histogram<UInt64>, counts: WindowCounts, failures: [String]) {
        mode = options.mode
        connections = options.connections
        streams = options.streams
        self.threads = threads
        durationSeconds = options.durationSeconds
        warmupSeconds = options.warmupSeconds
        coCorrected = options.mode == .max ? false : options.coCorrection
        sent = counts.sent
        ok = counts.ok
        errors = counts.errors.reduce(0, +)
        errorKinds = zip(WindowCounts.kindNames, counts.errors).filter { $0.1 > 0 }.map { ($0.0, $0.1) }
        throughputRPS = Double(counts.completedInWindow) / options.durationSeconds
        func micros(_ nanos: UInt64) -> Double { Double(nanos) / 1000 }
        let empty = histogram.totalCount == 0
        p50Micros = empty ? 0 : micros(histogram.valueAtPercentile(50))
        p90Micros = empty ? 0 : micros(histogram.valueAtPercentile(90))
        p99Micros = empty ? 0 : micros(histogram.valueAtPercentile(99))
        p999Micros = empty ? 0 : micros(histogram.valueAtPercentile(99.9))
        maxMicros = empty ? 0 : micros(histogram.max)
        meanMicros = empty ? 0 : histogram.mean / 1000
        connectionFailures = failures
    }

    /// Fields of the JSON object, in order (numbers already formatted).
    var jsonFields: [(String, String)] {
        var f: [(String, String)] = [
            ("mode", "\"\(targetRate == nil ? "max" : "rate")\""),
            ("rate", targetRate.map { fmt($0, 1) } ?? "null"),
            ("throughput_rps", fmt(throughputRPS, 1)),
            ("p50_us", fmt(p50Micros, 1)), ("p90_us", fmt(p90Micros, 1)), ("p99_us", fmt(p99Micros, 1)),
            ("p999_us", fmt(p999Micros, 1)), ("max_us", fmt(maxMicros, 1)), ("mean_us", fmt(meanMicros, 1)),
            ("errors", "\(errors)"), ("ok", "\(ok)"), ("sent", "\(sent)"),
            ("connections", "\(connections)"), ("streams", "\(streams)"), ("threads", "\(threads)"),
            ("duration_s", fmt(durationSeconds, 3)), ("warmup_s", fmt(warmupSeconds, 3)),
            ("co_corrected", coCorrected ? "true" : "false"),
        ]
        if let r = targetRate { f.append(("rate_ratio", fmt(throughputRPS / r, 4))) }
        f.append(("error_kinds", "{" + errorKinds.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"))
        return f
    }

    /// One line of JSON: `throughput_rps`, `p50_us`, `p90_us`, `p99_us`, `p999_us`, `max_us`,
    /// `errors` and the run's settings.
    public var json: String {
        "{" + jsonFields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }

    /// A few lines for a person.
    public var summary: String {
        var lines: [String] = []
        let load: String
        if let r = targetRate {
            load = "open loop at \(fmt(r, 0)) req/s (latency from the \(coCorrected ? "intended" : "actual") send time)"
        } else {
            load = "closed loop (--max)"
        }
        lines.append(
            "\(load), \(connections) connections x \(streams) streams, \(threads) thread\(threads == 1 ? "" : "s"), "
                + "\(fmt(durationSeconds, 1)) s after \(fmt(warmupSeconds, 1)) s warm-up")
        var t = "throughput  \(fmt(throughputRPS, 0)) req/s"
        if let r = targetRate { t += " (\(fmt(100 * throughputRPS / r, 1))% of target)" }
        lines.append(t)
        lines.append(
            "latency us  p50 \(fmt(p50Micros, 1))  p90 \(fmt(p90Micros, 1))  p99 \(fmt(p99Micros, 1))  "
                + "p99.9 \(fmt(p999Micros, 1))  max \(fmt(maxMicros, 1))  mean \(fmt(meanMicros, 1))")
        var e = "calls       \(sent) sent, \(ok) ok, \(errors) errors"
        if !errorKinds.isEmpty { e += " (" + errorKinds.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ")" }
        lines.append(e)
        for f in connectionFailures { lines.append("connection failed: \(f)") }
        return lines.joined(separator: "\n")
    }
}

/// Formats `v` with `decimals` digits after the point (no Foundation, no locale).
func fmt(_ v: Double, _ decimals: Int) -> String {
    guard v.isFinite else { return "null" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = v < 0
    let scaled = (abs(v) * scale).rounded()
    let whole = (scaled / scale).rounded(.down)
    var text = String(Int64(whole))
    if decimals > 0 {
        let fraction = String(Int64(scaled - whole * scale))
        text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }
    return negative && scaled != 0 ? "-" + text : text
}
