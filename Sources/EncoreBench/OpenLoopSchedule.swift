/// When an open-loop sender means to send each request: request `k` (0-based) of one load thread
/// is due at `firstNanos + k * intervalNanos`, whatever happened to earlier requests. Latency is
/// measured from this intended time, not from when the request actually left (which a slow
/// server delays): that is the correction for coordinated omission.
public struct OpenLoopSchedule: Sendable, Equatable {
    /// Intended send time of request 0 (monotonic nanoseconds).
    public let firstNanos: UInt64
    /// Nanoseconds between two intended sends of this thread.
    public let intervalNanos: Double
    /// No request is intended at or after this time.
    public let endNanos: UInt64

    /// The schedule of thread `thread` of `threads`, which share `ratePerSecond` evenly; the
    /// threads' sends are interleaved (thread i starts i/threads of an interval later).
    public init(ratePerSecond: Double, thread: Int, threads: Int, startNanos: UInt64, endNanos: UInt64) {
        precondition(ratePerSecond > 0 && threads > 0 && thread >= 0 && thread < threads)
        intervalNanos = 1e9 * Double(threads) / ratePerSecond
        firstNanos = startNanos + UInt64(intervalNanos * Double(thread) / Double(threads))
        self.endNanos = endNanos
    }

    /// Intended send time of request `k`.
    @inline(__always)
    public func intendedNanos(_ k: UInt64) -> UInt64 {
        firstNanos &+ UInt64(Double(k) * intervalNanos)
    }

    /// Whether request `k` is part of the run (intended before the end).
    @inline(__always)
    public func contains(_ k: UInt64) -> Bool { intendedNanos(k) < endNanos }

    /// Number of requests intended in `[firstNanos, endNanos)`.
    public var totalRequests: UInt64 {
        guard endNanos > firstNanos else { return 0 }
        return UInt64((Double(endNanos - firstNanos) / intervalNanos).rounded(.up))
    }
}
