/// How fast a request must arrive, so a client cannot hold a stream slot (and with it a
/// connection slot) by sending headers and then nothing, or a body a trickle at a time.
struct RequestArrivalLimits: Equatable {
    /// A stream's request headers must be complete this long after its first HEADERS frame
    /// (0: no limit).
    var headerTimeoutNanos: UInt64 = 10_000_000_000
    /// While the client is still sending a request message (or, for a call that takes one
    /// message, has not ended its side), it must send at least this many bytes per second,
    /// measured over `progressWindowNanos` (0: no limit).
    var minBytesPerSecond = 32 << 10
    var progressWindowNanos: UInt64 = 5_000_000_000
}

/// One stream's arrival watch: a pure rule, checked on the reactor's idle ticks (every 250 ms)
/// from what the stream already holds, so the request path does no extra work.
///
/// The window marks belong to one stream (by its slot generation): a new stream in the slot
/// starts a new window at the first check.
struct RequestArrivalWatch: Equatable {
    enum Verdict: Equatable {
        case onTime
        /// The headers were not complete within `headerTimeoutNanos`.
        case headersTooSlow
        /// Less than `minBytesPerSecond` arrived in the last window.
        case bodyTooSlow
    }

    /// What the stream holds at a check.
    struct Sample: Equatable {
        /// When the stream's first HEADERS frame was read.
        var openedNanos: UInt64
        var headersComplete: Bool
        /// The client has not ended its side and the call is not answered yet.
        var receiving: Bool
        /// Bytes of a request message not yet complete.
        var partialMessageBytes: Int
        /// Request messages completed so far.
        var messages: Int
        /// The call takes a stream of messages: a pause between two messages is allowed.
        var streamsRequests: Bool
    }

    private(set) var generation: UInt64 = .max
    private(set) var windowStartNanos: UInt64 = 0
    private var bytesAtWindowStart = 0
    private var messagesAtWindowStart = 0

    init() {}

    mutating func check(generation: UInt64, _ sample: Sample, now: UInt64, limits: RequestArrivalLimits) -> Verdict {
        if generation != self.generation {
            self.generation = generation
            startWindow(sample, now)
        }
        if !sample.headersComplete {
            let late = limits.headerTimeoutNanos > 0 && now &- sample.openedNanos >= limits.headerTimeoutNanos
            return late ? .headersTooSlow : .onTime
        }
        guard sample.receiving, limits.minBytesPerSecond > 0 else { return .onTime }
        if sample.streamsRequests && sample.partialMessageBytes == 0 {
            // Between two messages of a stream of requests: waiting is the client's right.
            startWindow(sample, now)
            return .onTime
        }
        let elapsed = now &- windowStartNanos
        guard elapsed >= limits.progressWindowNanos else { return .onTime }
        if sample.messages == messagesAtWindowStart {
            let required = Int(min(elapsed / 1_000_000, UInt64(Int32.max))) * limits.minBytesPerSecond / 1000
            if sample.partialMessageBytes - bytesAtWindowStart < required { return .bodyTooSlow }
        }
        startWindow(sample, now)
        return .onTime
    }

    private mutating func startWindow(_ sample: Sample, _ now: UInt64) {
        windowStartNanos = now
        bytesAtWindowStart = sample.partialMessageBytes
        messagesAtWindowStart = sample.messages
    }
}

/// One stream's response-write watch: a response (or a streaming call's queued messages) that
/// makes no progress toward the client for `timeoutNanos` is reset, so a client that opens
/// streams with a zero flow-control window, or never ends its side, cannot hold them forever.
/// Checked on idle ticks; keyed by the slot generation like `RequestArrivalWatch`.
struct ResponseWriteWatch: Equatable {
    private(set) var generation: UInt64 = .max
    private(set) var sinceNanos: UInt64 = 0
    private var progressMark = 0

    init() {}

    /// `pending`: the stream has a response (part) the client has not taken; `progress`: a
    /// number that changes whenever response bytes move on (bytes handed to nghttp2, messages
    /// queued). Returns true when the stream has been stuck for `timeoutNanos` (0: never).
    mutating func isStuck(generation: UInt64, pending: Bool, progress: Int, now: UInt64, timeoutNanos: UInt64) -> Bool {
        if generation != self.generation || !pending || progress != progressMark {
            self.generation = generation
            sinceNanos = now
            progressMark = progress
            return false
        }
        return timeoutNanos > 0 && now &- sinceNanos >= timeoutNanos
    }
}
