/// The lifecycle of one server connection, with no I/O: events in, actions out.
///
/// `Connection` owns the socket, TLS and the nghttp2 session; it reports what happened
/// (bytes read, output flushed, a stream opened or closed, a reset received, a timer tick, a
/// drain requested, a handshake step) and performs the actions returned (pause or resume
/// reading, submit the first or final GOAWAY, GOAWAY ENHANCE_YOUR_CALM, flush, close, arm a
/// timer). Every rule about when a connection reads, drains or closes lives here and is tested
/// without sockets (`ConnectionStateMachineTests`).
///
/// Times are monotonic nanoseconds supplied by the caller (the reactor's loop-turn clock).
struct ConnectionStateMachine {
    /// Where the connection is in its life.
    enum State: Equatable {
        /// TLS handshake in progress; no HTTP/2 session yet.
        case handshaking
        /// Serving streams.
        case active
        /// Server shutdown in progress (see `Drain`); existing streams are still served.
        case draining(Drain)
        /// Sending what is queued (a final GOAWAY, an error's GOAWAY), then closing. No more reads.
        case closing(CloseReason)
        /// Finished: the socket is closed (or about to be) and the connection forgotten.
        case closed
    }

    /// The two GOAWAYs of a graceful drain.
    enum Drain: Equatable {
        /// GOAWAY(2^31-1) sent; the final GOAWAY naming the last stream is due at `finalAtNanos`,
        /// so streams the client opened before it saw the notice are still served.
        case firstGoawaySent(finalAtNanos: UInt64)
        /// GOAWAY(last stream id) sent; the session ends once its streams finish.
        case finalGoawaySent
    }

    /// Why a connection is closing after its output is flushed.
    enum CloseReason: Equatable {
        /// No stream and no input for the idle timeout; a final GOAWAY was submitted.
        case idle
        /// nghttp2 rejected the input (bad preface, protocol error); its GOAWAY is queued.
        case protocolError
        /// Rapid reset (CVE-2023-44487): GOAWAY ENHANCE_YOUR_CALM is queued.
        case calmDown
        /// Request header lists over the limit again and again (an HPACK bomb): GOAWAY
        /// ENHANCE_YOUR_CALM is queued.
        case headerAbuse
        /// More decoded header bytes within one second than `maxHeaderBytesPerSecond` (an HPACK
        /// bomb inside header lists of any size): GOAWAY ENHANCE_YOUR_CALM is queued.
        case headerBytes
    }

    /// Whether input is being read (meaningful until the connection is closing).
    enum Input: Equatable {
        case reading
        /// More than `maxPendingOutputBytes` wait for the socket: stop reading until half of it
        /// is written, so a client that does not read cannot make the server buffer without bound.
        case pausedForBackpressure
    }

    /// One step of the TLS handshake, as `TLSStream.handshake()` reported it.
    enum HandshakeStep: Equatable {
        case complete(negotiatedH2: Bool)
        case wantsRead
        case wantsWrite
        /// The peer closed, or OpenSSL failed (the connection logs the reasons).
        case failed
    }

    /// What the connection must do, in the order listed: a set, so an event returns several
    /// without allocating.
    struct Actions: OptionSet, Equatable, CustomStringConvertible {
        let rawValue: UInt16
        /// Create the HTTP/2 session (h2c at once; TLS once the handshake completes).
        static let startSession = Actions(rawValue: 1 << 0)
        /// Read the input that is available now.
        static let read = Actions(rawValue: 1 << 1)
        /// Submit GOAWAY(2^31-1) (shutdown notice).
        static let submitFirstGoaway = Actions(rawValue: 1 << 2)
        /// Submit GOAWAY NO_ERROR naming the last stream processed.
        static let submitFinalGoaway = Actions(rawValue: 1 << 3)
        /// Terminate the session with GOAWAY ENHANCE_YOUR_CALM.
        static let enhanceYourCalm = Actions(rawValue: 1 << 4)
        /// Make sure the connection is flushed at the end of this loop turn.
        static let flush = Actions(rawValue: 1 << 5)
        /// Close the connection now (after cancelling its calls).
        static let close = Actions(rawValue: 1 << 6)
        /// Make sure the reactor ticks by `timerDeadlineNanos`.
        static let armTimer = Actions(rawValue: 1 << 7)
        /// Drop EPOLLIN interest.
        static let pauseReading = Actions(rawValue: 1 << 8)
        /// Restore EPOLLIN interest; read at once (OpenSSL may hold decrypted bytes epoll will
        /// not report again).
        static let resumeReading = Actions(rawValue: 1 << 9)

        var description: String {
            let names = [
                "startSession", "read", "submitFirstGoaway", "submitFinalGoaway", "enhanceYourCalm", "flush",
                "close", "armTimer", "pauseReading", "resumeReading",
            ]
            return "[" + names.indices.filter { rawValue & (1 << $0) != 0 }.map { names[$0] }.joined(separator: ", ")
                + "]"
        }
    }

    /// Limits the machine enforces, from the server configuration.
    struct Limits: Equatable {
        var maxPendingOutputBytes: Int
        var idleTimeoutNanos: UInt64
        var rapidResetLimitPerSecond: Int
        /// SETTINGS_MAX_CONCURRENT_STREAMS as advertised: a stream over it is refused.
        var maxConcurrentStreams: Int = 128
        /// Requests with a header list over the limit a connection may send per second.
        var maxOversizedHeaderListsPerSecond: Int = 3
        /// Delay between the first and the final GOAWAY of a drain.
        var finalGoawayDelayNanos: UInt64 = 300_000_000
        /// Request bytes the connection's streams may hold at once (their unfinished and
        /// unanswered messages); a stream whose bytes would pass it is refused.
        var maxBufferedRequestBytes: Int = 16 << 20
        /// Decoded request header bytes (name + value + 32 per field) the connection may send
        /// within one second before GOAWAY ENHANCE_YOUR_CALM (`Int.max`: no bound).
        var maxHeaderBytesPerSecond: Int = 64 << 20
    }

    private(set) var state: State
    private(set) var input: Input = .reading
    /// OpenSSL asked to write (WANT_WRITE) before it can go on: wait for the socket to be writable.
    private(set) var waitingForWritable = false
    /// Queued for a flush at the end of this loop turn (the reactor's dirty list).
    private(set) var flushScheduled = false
    /// The TLS handshake finished (always true for h2c): the TLS session may be shut down.
    private(set) var handshakeComplete: Bool
    /// Streams nghttp2 opened and has not closed yet.
    private(set) var openStreams = 0
    private(set) var lastActivityNanos: UInt64
    let limits: Limits

    // Rapid-reset accounting: one-second windows.
    private var resetWindowStartNanos: UInt64 = 0
    /// In-flight streams the client reset in the current window (deadline cancels aside).
    private(set) var resetsInWindow = 0
    /// In-flight streams the client reset after their deadline (mostly) passed, in the window.
    private(set) var deadlineResetsInWindow = 0
    private var streamsInWindow = 0

    /// A new connection at `now`; `tls` when a TLS handshake comes first.
    init(tls: Bool, now: UInt64, limits: Limits) {
        state = tls ? .handshaking : .active
        handshakeComplete = !tls
        lastActivityNanos = now
        headerWindowStartNanos = now
        self.limits = limits
    }

    /// True until the socket must be closed.
    var isOpen: Bool { state != .closed }

    /// True once the HTTP/2 session exists (or would, had it not failed): not handshaking, not closed.
    var hasSession: Bool {
        switch state {
        case .active, .draining, .closing: true
        case .handshaking, .closed: false
        }
    }

    /// True while the connection reads its input (the EPOLLIN interest).
    var wantsInput: Bool {
        switch state {
        case .handshaking, .active, .draining: input == .reading
        case .closing, .closed: false
        }
    }

    /// The EPOLLOUT interest: output is pending, or OpenSSL waits for the socket to be writable.
    func wantsOutput(pendingOutputBytes: Int) -> Bool { pendingOutputBytes > 0 || waitingForWritable }

    /// When the reactor must tick next for this connection (the final GOAWAY of a drain).
    var timerDeadlineNanos: UInt64? {
        if case .draining(.firstGoawaySent(let at)) = state { return at }
        return nil
    }

    // MARK: Start and handshake

    /// The connection was accepted and registered.
    mutating func started() -> Actions {
        state == .handshaking ? [] : [.startSession]
    }

    /// The HTTP/2 session could not be created.
    mutating func sessionFailed() -> Actions {
        state = .closed
        return [.close]
    }

    /// `TLSStream.handshake()` made a step.
    mutating func handshakeProgressed(_ step: HandshakeStep) -> Actions {
        guard state == .handshaking else { return [] }
        switch step {
        case .complete(let h2):
            waitingForWritable = false
            guard h2 else {
                state = .closed
                return [.close]
            }
            handshakeComplete = true
            state = .active
            return [.startSession, .read, .flush]
        case .wantsRead:
            waitingForWritable = false
            return [.flush]
        case .wantsWrite:
            waitingForWritable = true
            return [.flush]
        case .failed:
            state = .closed
            return [.close]
        }
    }

    // MARK: Socket events

    /// epoll reported events on a connection past its handshake (`hangUp` for EPOLLHUP or
    /// EPOLLERR). Returns `.read` when input should be read now.
    mutating func socketReady(readable: Bool, writable: Bool, hangUp: Bool) -> Actions {
        guard hasSession else { return [] }
        var read = readable
        if hangUp {
            // Always reported, even without EPOLLIN interest: never leave it unhandled. While
            // reads are off the peer cannot be served any more: close; else reading finds EOF.
            guard wantsInput else {
                state = .closed
                return [.close]
            }
            read = true
        }
        if writable && waitingForWritable {
            waitingForWritable = false
            read = true
        }
        return read ? [.read] : []
    }

    /// OpenSSL needs the socket writable before it can read or write on.
    mutating func tlsWantsWrite() {
        waitingForWritable = true
    }

    /// OpenSSL can go on reading (WANT_READ after a WANT_WRITE during the handshake).
    mutating func tlsWantsRead() {
        waitingForWritable = false
    }

    /// Input bytes arrived at `now` (they count as activity for the idle timeout).
    mutating func bytesRead(now: UInt64) {
        lastActivityNanos = now
    }

    /// Whether the peer closing TLS without close_notify is an ordinary close (logged at debug)
    /// rather than a truncation worth a warning: true when no stream is open.
    var closeWithoutNotifyIsNormal: Bool { openStreams == 0 }

    /// nghttp2 rejected the input: send what it queued (usually GOAWAY) and close.
    mutating func protocolError() -> Actions {
        guard isOpen else { return [] }
        state = .closing(.protocolError)
        return [.flush]
    }

    /// The peer closed, or a read or write failed: close now.
    mutating func transportFailed() -> Actions {
        guard isOpen else { return [] }
        state = .closed
        return [.close]
    }

    // MARK: Streams

    /// nghttp2 opened a request stream at `now`.
    mutating func streamOpened(now: UInt64) {
        openStreams += 1
        lastActivityNanos = now
        rollResetWindow(now)
        streamsInWindow += 1
    }

    /// Whether a new stream may open: the client stays within the advertised
    /// SETTINGS_MAX_CONCURRENT_STREAMS. (The connection asks only when it has no free slot.)
    func admitsStream() -> Bool {
        openStreams < limits.maxConcurrentStreams
    }

    /// A stream over the limit was refused (RST_STREAM REFUSED_STREAM, which gRPC clients retry).
    /// The connection and its calls in flight go on; a refusal is not a reset by the client, so
    /// it does not count toward the rapid-reset rule.
    mutating func streamRefused() -> Actions {
        refusedStreams += 1
        return isOpen ? [.flush] : []
    }

    /// Streams refused over the concurrency limit, in the connection's life.
    private(set) var refusedStreams = 0

    /// nghttp2 closed a stream that `streamOpened` counted.
    mutating func streamClosed() {
        openStreams -= 1
    }

    /// The client sent RST_STREAM; `inFlight` when it named a request stream still being served,
    /// `afterDeadline` when that stream carried a grpc-timeout of which at least half had passed
    /// by the server's clock (the client cancelled because its deadline expired).
    ///
    /// Rapid-reset protection (CVE-2023-44487), per one-second window: GOAWAY ENHANCE_YOUR_CALM
    /// when the in-flight resets pass the limit and make up more than half of the streams opened
    /// in the window (a reset flood), or when all resets, deadline cancels included, pass ten
    /// times the limit whatever the ratio (a flood mixed with completed calls, or one that sets
    /// tiny deadlines). A client that cancels some of its calls never reaches the ratio, and one
    /// whose calls time out (many sequential calls with a short deadline against a slow handler)
    /// is not counted against it.
    mutating func resetReceived(inFlight: Bool, afterDeadline: Bool = false, now: UInt64) -> Actions {
        guard inFlight else { return [] }
        rollResetWindow(now)
        if afterDeadline {
            deadlineResetsInWindow += 1
        } else {
            resetsInWindow += 1
        }
        let limit = limits.rapidResetLimitPerSecond
        let flood = resetsInWindow > limit && resetsInWindow * 2 > streamsInWindow
        guard flood || resetsInWindow + deadlineResetsInWindow > 10 * limit else { return [] }
        switch state {
        case .active, .draining:
            state = .closing(.calmDown)
            return [.enhanceYourCalm, .flush]
        case .handshaking, .closing, .closed:
            return []
        }
    }

    /// A request's header list was over SETTINGS_MAX_HEADER_LIST_SIZE (answered 431). More
    /// than `maxOversizedHeaderListsPerSecond` in one second (an HPACK bomb: a large header in
    /// the dynamic table referenced thousands of times costs the server a full decode per stream
    /// and the client a byte per reference) and the connection gets GOAWAY ENHANCE_YOUR_CALM.
    mutating func headerListTooLarge(now: UInt64) -> Actions {
        if now &- oversizeWindowStartNanos > 1_000_000_000 {
            oversizeWindowStartNanos = now
            oversizedInWindow = 0
        }
        oversizedInWindow += 1
        guard oversizedInWindow > limits.maxOversizedHeaderListsPerSecond else { return [] }
        switch state {
        case .active, .draining:
            state = .closing(.headerAbuse)
            return [.enhanceYourCalm, .flush]
        case .handshaking, .closing, .closed:
            return []
        }
    }

    private var oversizeWindowStartNanos: UInt64 = 0
    /// Header lists over the limit in the current one-second window.
    private(set) var oversizedInWindow = 0

    // MARK: Decoded header bytes

    /// Decoded header bytes since `headerWindowStartNanos`.
    private(set) var headerBytesInWindow = 0
    private var headerWindowStartNanos: UInt64

    /// nghttp2 decoded a request header field of `bytes` (name + value + 32). Returns true when
    /// the count is over `maxHeaderBytesPerSecond`: the caller then asks `headerBytesOverBound`.
    /// One add and one compare per field; the clock is read only past the bound.
    @inline(__always)
    mutating func headerDecoded(bytes: Int) -> Bool {
        headerBytesInWindow &+= bytes
        return headerBytesInWindow > limits.maxHeaderBytesPerSecond
    }

    /// The decoded header bytes passed `maxHeaderBytesPerSecond` at `now`. If that took one
    /// second or more since the count began, the count starts again; in less (a HPACK bomb: a
    /// large dynamic-table entry referenced thousands of times, a byte each on the wire), the
    /// connection gets GOAWAY ENHANCE_YOUR_CALM. So a connection never decodes more than about
    /// twice the bound in any second.
    mutating func headerBytesOverBound(now: UInt64) -> Actions {
        switch state {
        case .active, .draining:
            break
        case .handshaking, .closing, .closed:
            return []
        }
        if now >= headerWindowStartNanos && now - headerWindowStartNanos >= 1_000_000_000 {
            headerWindowStartNanos = now
            headerBytesInWindow = 0
            return []
        }
        state = .closing(.headerBytes)
        return [.enhanceYourCalm, .flush]
    }

    /// Whether request headers are still delivered (false once the connection is closing: the
    /// rest of a bomb's header block is skipped).
    var acceptsHeaders: Bool {
        switch state {
        case .active, .draining: true
        case .handshaking, .closing, .closed: false
        }
    }

    // MARK: Buffered request bytes

    /// Request bytes the connection's streams hold now.
    private(set) var bufferedRequestBytes = 0

    /// The bytes a stream holds changed by `delta`. Returns false when they grew past
    /// `maxBufferedRequestBytes`: the caller refuses that stream (RESOURCE_EXHAUSTED) and gives
    /// its bytes back; the connection and its other streams go on.
    @inline(__always)
    mutating func requestBytesHeld(_ delta: Int) -> Bool {
        bufferedRequestBytes &+= delta
        return delta <= 0 || bufferedRequestBytes <= limits.maxBufferedRequestBytes
    }

    private mutating func rollResetWindow(_ now: UInt64) {
        if now &- resetWindowStartNanos > 1_000_000_000 {
            resetWindowStartNanos = now
            resetsInWindow = 0
            deadlineResetsInWindow = 0
            streamsInWindow = 0
        }
    }

    // MARK: Output

    /// Asks for a flush at the end of the loop turn: true if the caller must queue the
    /// connection (it was not queued yet).
    mutating func scheduleFlush() -> Bool {
        if flushScheduled { return false }
        flushScheduled = true
        return true
    }

    /// The reactor took the connection off its flush queue and is flushing it.
    mutating func flushBegan() {
        flushScheduled = false
    }

    /// A flush wrote what it could; `pendingOutputBytes` still wait for the socket and
    /// `sessionAlive` says whether nghttp2 still expects input or has output.
    /// Returns `.close` when the connection is finished, else the read-interest change.
    mutating func outputFlushed(pendingOutputBytes: Int, sessionAlive: Bool) -> Actions {
        switch state {
        case .closed:
            return [.close]
        case .closing:
            if pendingOutputBytes == 0 {
                state = .closed
                return [.close]
            }
            return []
        case .active, .draining:
            if pendingOutputBytes == 0 && !sessionAlive {
                state = .closed
                return [.close]
            }
        case .handshaking:
            break
        }
        let limit = limits.maxPendingOutputBytes
        switch input {
        case .reading where pendingOutputBytes > limit:
            input = .pausedForBackpressure
            return [.pauseReading]
        case .pausedForBackpressure where pendingOutputBytes <= limit / 2:
            input = .reading
            return [.resumeReading]
        default:
            return []
        }
    }

    // MARK: Eviction

    /// How long the connection has read nothing, if a new connection may take its place at the
    /// connection limit: serving (or handshaking, not draining or closing) and idle for at least
    /// `minIdleNanos`. The reactor evicts the one idle the longest.
    func evictionIdleNanos(now: UInt64, minIdleNanos: UInt64) -> UInt64? {
        switch state {
        case .handshaking, .active:
            let idle = now &- lastActivityNanos
            return now >= lastActivityNanos && idle >= minIdleNanos ? idle : nil
        case .draining, .closing, .closed:
            return nil
        }
    }

    // MARK: Timers and drain

    /// The reactor ticked at `now`; `checkIdle` on the ticks that check the idle timeout.
    mutating func timerTick(now: UInt64, checkIdle: Bool) -> Actions {
        if case .draining(.firstGoawaySent(let at)) = state, now >= at {
            state = .draining(.finalGoawaySent)
            return [.submitFinalGoaway, .flush]
        }
        guard checkIdle, openStreams == 0, now &- lastActivityNanos >= limits.idleTimeoutNanos else { return [] }
        switch state {
        case .handshaking:
            state = .closing(.idle)
            return [.flush]
        case .active, .draining:
            state = .closing(.idle)
            return [.submitFinalGoaway, .flush]
        case .closing, .closed:
            return []
        }
    }

    /// The server began a graceful shutdown at `now`.
    mutating func drainRequested(now: UInt64) -> Actions {
        switch state {
        case .handshaking:
            state = .closed
            return [.close]
        case .active:
            state = .draining(.firstGoawaySent(finalAtNanos: now &+ limits.finalGoawayDelayNanos))
            return [.submitFirstGoaway, .armTimer, .flush]
        case .draining, .closing, .closed:
            return []
        }
    }
}
