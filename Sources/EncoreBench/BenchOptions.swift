import EncoreTransport

/// What one `encore bench` run does.
public struct BenchOptions: Sendable {
    /// How requests are paced.
    public enum Mode: Sendable, Equatable {
        /// Closed loop: every connection keeps `streams` calls in flight, a new one as soon as one
        /// finishes (as fast as the server allows). Latency runs from the actual send.
        case max
        /// Open loop: `perSecond` requests at fixed intervals, whatever the server does; latency
        /// runs from the intended send time (unless `coCorrection` is off).
        case rate(perSecond: Double)
    }

    public var host = "127.0.0.1"
    public var port = 50051
    /// TLS with ALPN h2 and this client context (its verification settings: `--ca-file`,
    /// `--cert`/`--key`, `--insecure-skip-verify`); nil: h2c.
    public var tls: TLSContext? = nil
    public var mode = Mode.max
    /// Measured seconds (after the warm-up).
    public var durationSeconds = 10.0
    /// Seconds of load before measuring (its calls are not counted).
    public var warmupSeconds = 2.0
    /// Connections in total, spread over the threads.
    public var connections = 4
    /// Most calls in flight per connection.
    public var streams = 8
    /// Load threads, each with its own poll loop over its share of the connections.
    public var threads = 1
    /// Open loop only: measure from the intended send time (true) or from the actual send time
    /// (false: what a naive load generator reports; for demonstrating coordinated omission).
    public var coCorrection = true
    /// Seconds to wait after the end for calls still in flight (or still to be sent in an open
    /// loop that fell behind); whatever is left then counts as timed out (an error).
    public var drainSeconds = 2.0
    /// gRPC method path.
    public var path = "/encore.v1.Decisions/Decide"
    /// Print a progress line on stderr each second.
    public var progress = true

    public init() {}

    /// Threads actually used: no more than connections.
    public var effectiveThreads: Int { max(1, min(threads, connections)) }
}
