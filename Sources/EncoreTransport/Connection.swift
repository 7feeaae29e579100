internal import CEncoreLinux
import EncoreLogging
import EncoreMetrics
import EncoreSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One accepted TCP connection: its socket, optional TLS, its nghttp2 session, its gRPC
/// streams and its output buffer. Confined to the owning reactor's thread.
///
/// This file holds the I/O side (reading, writing, backpressure, lifecycle);
/// `Connection+Streams.swift` holds the gRPC side driven by nghttp2's callbacks.
final class Connection {
    let fd: Int32
    let index: Int
    let generation: UInt64
    unowned(unsafe) let reactor: Reactor
    var session: HTTP2Session! {
        didSet { sessionRef = session.map { Unmanaged.passUnretained($0) } }
    }
    /// `session`, unretained: the request path calls it through `withSession`.
    private var sessionRef: Unmanaged<HTTP2Session>?
    private var tls: TLSStream?
    /// Lifecycle, read interest and idle/reset accounting: every rule is in the machine;
    /// this class performs its actions.
    var machine: ConnectionStateMachine

    /// Bytes waiting for the socket. Created last in init (nothing leaks when init throws)
    /// and freed in deinit.
    private var out: OutputBuffer
    var pendingOutputBytes: Int { out.count }

    var registeredEvents: UInt32 = 0

    /// The reactor's transport counters and their layout (unretained: the reactor and its
    /// server outlive the connection), so counting touches no reference count.
    let metricsCells: CounterCells
    /// The server's metrics layout's offsets, copied (see `TransportMetricsLayout.Offsets`).
    let metricsOffsets: TransportMetricsLayout.Offsets
    /// Why the connection closed (set when it does; counted by `Reactor.remove`).
    var closeReason = ConnectionCloseReason.peerClosed
    /// Answered calls waiting for their latency observation: the histogram's first cell and the
    /// call's start. Observed at the end of the flush that handed their last bytes to the
    /// socket, with one clock read per flush. Capacity reserved at init.
    var pendingLatency: [(cell: Int, startNanos: UInt64)] = []
    /// The server began a drain while this connection was open.
    var drainRequested = false

    // gRPC stream state (see Connection+Streams.swift)
    /// Copied from the server at accept, so the request path reads them from `self` without
    /// reference counting (not through `reactor.shared`).
    let router: GRPCRouter
    let streamLimits: (maxConcurrentStreams: Int, maxHeaderListBytes: Int, maxMessageBytes: Int)
    /// How fast requests must arrive (checked on idle ticks).
    let arrivalLimits: RequestArrivalLimits
    /// The server's budget of buffered request bytes (unretained: the server outlives the
    /// connection), reached through `withRequestBudget` so accounting touches no reference count.
    private let requestBudgetRef: Unmanaged<RequestMemoryBudget>
    /// How long a response may make no progress toward the client (0: no limit).
    let responseWriteTimeoutNanos: UInt64
    /// Since when output has waited without any of it being written (0: not stalled), and the
    /// buffer position then.
    private var outputStallSinceNanos: UInt64 = 0
    private var outputStallMark = 0
    var slots: [StreamSlot] = []
    /// The same slots, unretained: the request path borrows them through `withSlot`.
    var slotRefs: [Unmanaged<StreamSlot>] = []
    var freeSlots: [Int] = []
    /// Scratch for percent-encoded grpc-message values (reused).
    var messageScratch: [UInt8] = []
    /// The peer, read at accept (still nameable after the peer left).
    let peer: PeerAddress
    /// The principal of the verified client certificate (mTLS), else anonymous: the principal
    /// of every stream without an `authorization` header.
    var certificatePrincipal = GRPCCallContext.anonymous
    /// The last `authorization` value verified on this connection, its principal and the
    /// credentials generation it was verified under (see `GRPCCredentials`).
    var cachedAuthorization: [UInt8] = []
    var cachedAuthorizationPrincipal = GRPCCallContext.anonymous
    var cachedAuthorizationGeneration: UInt64 = .max

    init(fd: Int32, index: Int, generation: UInt64, reactor: Reactor) throws(TransportError) {
        self.fd = fd
        self.index = index
        self.generation = generation
        self.reactor = reactor
        peer = PeerAddress(fd: fd)
        let configuration = reactor.shared.configuration
        router = reactor.shared.router
        metricsCells = reactor.metrics.cells
        metricsOffsets = reactor.shared.metricsLayout.offsets
        requestBudgetRef = Unmanaged.passUnretained(reactor.shared.requestBudget)
        pendingLatency.reserveCapacity(configuration.maxConcurrentStreams + 8)
        streamLimits = (
            configuration.maxConcurrentStreams, configuration.maxHeaderListBytes, configuration.maxMessageBytes
        )
        responseWriteTimeoutNanos = configuration.responseWriteTimeoutNanos
        arrivalLimits = RequestArrivalLimits(
            headerTimeoutNanos: configuration.requestHeaderTimeoutNanos,
            minBytesPerSecond: configuration.minRequestBytesPerSecond,
            progressWindowNanos: configuration.requestProgressWindowNanos)
        if let context = configuration.tls {
            guard let stream = TLSStream(context: context, fd: fd) else {
                throw TransportError("cannot create a TLS session")
            }
            tls = stream
        }
        machine = ConnectionStateMachine(
            tls: tls != nil, now: reactor.now,
            limits: .init(
                maxPendingOutputBytes: configuration.maxPendingOutputBytes,
                idleTimeoutNanos: configuration.idleTimeoutNanos,
                rapidResetLimitPerSecond: configuration.rapidResetLimitPerSecond,
                maxConcurrentStreams: configuration.maxConcurrentStreams,
                maxOversizedHeaderListsPerSecond: configuration.maxOversizedHeaderListsPerSecond,
                maxBufferedRequestBytes: configuration.maxConnectionBufferedRequestBytes > 0
                    ? configuration.maxConnectionBufferedRequestBytes : Int.max,
                maxHeaderBytesPerSecond: configuration.maxHeaderBytesPerSecond > 0
                    ? configuration.maxHeaderBytesPerSecond : Int.max))
        out = OutputBuffer(capacity: 16 << 10)
    }

    deinit { out.deallocate() }

    /// Runs `body` with the session, borrowed without reference counting (calling a method on
    /// the stored property retained and released it). Only while the session exists.
    @inline(__always)
    func withSession<R>(_ body: (HTTP2Session) -> R) -> R {
        sessionRef!._withUnsafeGuaranteedRef(body)
    }

    /// Counts streams with a deadline on the reactor (which checks deadlines only while there
    /// are some), without reference counting: mutating the reactor through the unowned(unsafe)
    /// reference retained and released it.
    @inline(__always)
    func adjustDeadlineStreams(_ delta: Int) {
        Unmanaged.passUnretained(reactor)._withUnsafeGuaranteedRef { $0.deadlineStreams += delta }
    }

    /// Runs `body` with the server's request-byte budget, without reference counting.
    @inline(__always)
    func withRequestBudget<R>(_ body: (RequestMemoryBudget) -> R) -> R {
        requestBudgetRef._withUnsafeGuaranteedRef(body)
    }

    /// Starts HTTP/2 now (h2c) or after the handshake (TLS).
    func start() {
        if machine.state == .handshaking {
            advanceHandshake()
        } else {
            perform(machine.started())
        }
    }

    // MARK: Performing the machine's actions

    /// Does what the state machine asked, in the order `ConnectionStateMachine.Actions` lists.
    @inline(__always)
    func perform(_ actions: ConnectionStateMachine.Actions) {
        if actions.isEmpty { return }
        performSlow(actions)
    }

    private func performSlow(_ actions: ConnectionStateMachine.Actions) {
        if actions.contains(.startSession) { startSession() }
        if actions.contains(.submitFirstGoaway) { session?.submitShutdownNotice() }
        if actions.contains(.submitFinalGoaway) { session?.submitGracefulGoaway() }
        if actions.contains(.enhanceYourCalm) {
            if machine.state == .closing(.headerAbuse) {
                Log.rateLimited(
                    "header lists over the limit from \(peer): \(machine.oversizedInWindow) within one second; GOAWAY ENHANCE_YOUR_CALM"
                )
            } else if machine.state == .closing(.headerBytes) {
                Log.rateLimited(
                    "decoded header bytes from \(peer) over --max-header-bytes-per-second (\(machine.limits.maxHeaderBytesPerSecond)) within one second; GOAWAY ENHANCE_YOUR_CALM"
                )
            } else {
                Log.rateLimited(
                    "rapid reset from \(peer): \(machine.resetsInWindow) in-flight streams reset within one second (limit \(machine.limits.rapidResetLimitPerSecond)); GOAWAY ENHANCE_YOUR_CALM"
                )
            }
            session?.terminateEnhanceYourCalm()
        }
        if actions.contains(.armTimer), let deadline = machine.timerDeadlineNanos { reactor.armTimer(at: deadline) }
        if actions.contains(.read) { readAvailable() }
        if actions.contains(.flush) || actions.contains(.close) { reactor.markDirty(self) }
    }

    private func startSession() {
        do {
            session = try HTTP2Session(
                delegate: self, settings: reactor.shared.settings, template: reactor.sessionTemplate)
            out.append(session.takeGreeting())
        } catch {
            Log.rateLimited("cannot start an HTTP/2 session: \(error)")
            perform(machine.sessionFailed())
        }
    }

    // MARK: Events

    func handle(events: UInt32) {
        if machine.state == .handshaking {
            advanceHandshake()
        } else {
            perform(
                machine.socketReady(
                    readable: events & UInt32(CENCORE_EPOLLIN) != 0,
                    writable: events & UInt32(CENCORE_EPOLLOUT) != 0,
                    hangUp: events & (UInt32(CENCORE_EPOLLHUP) | UInt32(CENCORE_EPOLLERR)) != 0))
        }
        reactor.markDirty(self)
    }

    private func advanceHandshake() {
        guard let tls else { return }
        let step: ConnectionStateMachine.HandshakeStep
        switch tls.handshake() {
        case .bytes:
            let h2 = tls.negotiatedH2
            if !h2 {
                Log.rateLimited("tls handshake failed with \(peer): ALPN h2 was not negotiated")
            }
            if let credentials = reactor.shared.configuration.credentials, let names = tls.peerCertificateNames {
                certificatePrincipal = credentials.principal(certificateNames: names)
            }
            step = .complete(negotiatedH2: h2)
        case .wantRead: step = .wantsRead
        case .wantWrite: step = .wantsWrite
        case .closed: step = .failed
        case .failed(let reasons):
            let certificate = tls.certificateVerifyFailure.map { " (client certificate: \($0))" } ?? ""
            Log.rateLimited("tls handshake failed with \(peer): \(reasons)\(certificate)")
            step = .failed
        }
        switch step {
        case .failed, .complete(negotiatedH2: false): closeReason = .tlsHandshake
        default: break
        }
        perform(machine.handshakeProgressed(step))
    }

    /// Reads until the socket (or OpenSSL) has nothing more, feeding nghttp2.
    private func readAvailable() {
        guard machine.hasSession, session != nil else { return }
        let buffer = reactor.readBuffer
        var reads = 0
        while machine.wantsInput {
            let count: Int
            if let tls {
                switch tls.read(into: buffer) {
                case .bytes(let n): count = n
                case .wantRead: return
                case .wantWrite:
                    machine.tlsWantsWrite()
                    return
                case .closed:
                    perform(machine.transportFailed())
                    return
                case .failed(let reasons):
                    // OpenSSL 3 reports a socket closed without close_notify as an error; many
                    // clients close that way. With nothing in flight it is an ordinary close.
                    if reasons.contains("unexpected eof while reading") && machine.closeWithoutNotifyIsNormal {
                        Log.debug("tls: \(peer) closed the connection without close_notify (idle)")
                    } else {
                        Log.rateLimited("tls error with \(peer): \(reasons)")
                    }
                    perform(machine.transportFailed())
                    return
                }
            } else {
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno != EAGAIN && errno != EWOULDBLOCK { perform(machine.transportFailed()) }
                    return
                }
                if n == 0 {
                    perform(machine.transportFailed())
                    return
                }
                count = n
            }
            machine.bytesRead(now: reactor.now)
            if !session.receive(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) {
                // Bad preface or an unrecoverable protocol error: send what nghttp2 queued
                // (usually GOAWAY) and close.
                perform(machine.protocolError())
                return
            }
            reads += 1
            // Level-triggered: a short plain read means the socket is drained for now.
            if tls == nil && (count < buffer.count || reads >= 16) { return }
        }
    }

    // MARK: Output

    /// Moves nghttp2's output into the buffer and writes it; updates epoll interest; closes the
    /// connection when it is finished. Called once per loop turn for each dirty connection.
    func flush() {
        if machine.hasSession, let session {
            let chunk = reactor.shared.configuration.writeChunkBytes
            var rounds = 0
            while rounds < 8 {
                rounds += 1
                let ok = session.drainOutput { bytes in
                    out.append(bytes)
                    return pendingOutputBytes < chunk
                }
                if !ok {
                    _ = machine.transportFailed()
                    break
                }
                if !writeOut() { break }
                if !session.wantsWrite { break }
            }
        } else if machine.isOpen {
            _ = writeOut()
        }
        if !pendingLatency.isEmpty { observeLatencies() }
        let sessionAlive = machine.hasSession && session != nil && session.isAlive
        let stateBefore = machine.state
        let actions = machine.outputFlushed(pendingOutputBytes: pendingOutputBytes, sessionAlive: sessionAlive)
        if actions.contains(.close) {
            closeReason = closeReason(before: stateBefore)
            cancelAll()
            reactor.remove(self)
            return
        }
        if actions.contains(.resumeReading) { readAvailable() }
        updateInterest()
    }

    private func observeLatencies() {
        let end = MonotonicClock.nowNanos
        for (cell, start) in pendingLatency {
            LatencyBuckets.observe(end &- min(start, end), into: metricsCells, at: cell)
        }
        pendingLatency.removeAll(keepingCapacity: true)
    }

    /// The `encore_connections_closed_total` reason for a close decided in `state`.
    private func closeReason(before state: ConnectionStateMachine.State) -> ConnectionCloseReason {
        switch state {
        case .handshaking: return .tlsHandshake
        case .closing(.idle): return .idle
        case .closing(.calmDown), .closing(.headerAbuse), .closing(.headerBytes): return .rapidReset
        case .closing(.protocolError): return session?.sawBadPreface == true ? .badPreface : .protocolError
        case .draining: return .drain
        default: return closeReason == .peerClosed && drainRequested ? .drain : closeReason
        }
    }

    /// Writes as much of the buffer as the socket takes. Returns true if it is empty afterwards.
    private func writeOut() -> Bool {
        while pendingOutputBytes > 0 {
            let written: Int = {
                let pending = out.pending
                if let tls {
                    switch tls.write(pending) {
                    case .bytes(let n): return n
                    case .wantWrite:
                        machine.tlsWantsWrite()
                        return 0
                    case .wantRead: return 0
                    case .closed:
                        _ = machine.transportFailed()
                        return 0
                    case .failed(let reasons):
                        Log.rateLimited("tls write error with \(peer): \(reasons)")
                        _ = machine.transportFailed()
                        return 0
                    }
                }
                let n = send(fd, pending.baseAddress, pending.count, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { return -1 }
                    if errno != EAGAIN && errno != EWOULDBLOCK { _ = machine.transportFailed() }
                    return 0
                }
                return n
            }()
            if written < 0 { continue }
            if written == 0 { break }
            out.consume(written)
        }
        if out.count == 0 { return true }
        out.compact(ifWrittenExceeds: 64 << 10)
        return false
    }

    private func updateInterest() {
        var wanted: UInt32 = machine.wantsInput ? UInt32(CENCORE_EPOLLIN) : 0
        if machine.wantsOutput(pendingOutputBytes: pendingOutputBytes) { wanted |= UInt32(CENCORE_EPOLLOUT) }
        if wanted != registeredEvents { reactor.modify(self, events: wanted) }
    }

    /// Closes the socket and ends the session (which holds this connection as its delegate:
    /// dropping it here breaks that cycle).
    func closeSocket() {
        if let tls, machine.handshakeComplete { tls.shutdown() }
        close(fd)
        session = nil
    }

    // MARK: Lifecycle (driven by the reactor)

    /// The reactor ticked; `checkIdle` on the ticks that check the idle timeout.
    func tick(now: UInt64, checkIdle: Bool) {
        if checkIdle && machine.openStreams > 0 && machine.hasSession && session != nil {
            checkRequestArrival(now: now)
            checkResponseWrites(now: now, timeoutNanos: responseWriteTimeoutNanos)
        }
        if checkIdle && responseWriteTimeoutNanos > 0 { checkOutputStall(now: now) }
        perform(machine.timerTick(now: now, checkIdle: checkIdle))
    }

    /// Output waiting for a socket that takes none of it for the response write timeout: the
    /// client stopped reading altogether (its streams cannot even be reset), so the connection
    /// is closed.
    private func checkOutputStall(now: UInt64) {
        guard pendingOutputBytes > 0, machine.isOpen else {
            outputStallSinceNanos = 0
            return
        }
        let mark = out.start &+ out.end &* 31
        if outputStallSinceNanos == 0 || mark != outputStallMark {
            outputStallSinceNanos = now
            outputStallMark = mark
            return
        }
        guard now &- outputStallSinceNanos >= responseWriteTimeoutNanos else { return }
        Log.rateLimited(
            "\(peer) has read nothing for the response write timeout (\(pendingOutputBytes) bytes waiting); closing the connection"
        )
        perform(machine.transportFailed())
    }

    /// Closes the connection at once to make room for a new one (`maxConnections` reached and
    /// this one idle the longest): GOAWAY NO_ERROR is sent if the socket takes it.
    func evict() {
        closeReason = .evicted
        if machine.hasSession, let session {
            session.submitGracefulGoaway()
            _ = session.drainOutput { bytes in
                out.append(bytes)
                return true
            }
            _ = writeOut()
        }
        _ = machine.transportFailed()
        cancelAll()
        reactor.remove(self)
    }

    /// The server began a graceful shutdown.
    func beginDrain() {
        drainRequested = true
        perform(machine.drainRequested(now: reactor.now))
    }
}
