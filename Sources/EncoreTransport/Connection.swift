import CEncoreLinux

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
    var session: HTTP2Session!
    private var tls: TLSStream?
    private var handshaking = false
    /// OpenSSL asked to write (WANT_WRITE) before it can go on.
    private var tlsWantsWrite = false

    /// Bytes waiting for the socket: out[outStart...].
    private var out: [UInt8] = []
    private var outStart = 0
    var pendingOutputBytes: Int { out.count - outStart }

    var isDirty = false
    var registeredEvents: UInt32 = 0
    private var readPaused = false
    /// Close once the output buffer is flushed.
    private var closeAfterFlush = false
    /// Close now (fatal I/O or protocol error).
    private var dead = false

    // gRPC stream state (see Connection+Streams.swift)
    var slots: [StreamSlot] = []
    var freeSlots: [Int] = []
    var openStreams = 0
    /// Scratch for percent-encoded grpc-message values (reused).
    var messageScratch: [UInt8] = []

    var lastActivityNanos: UInt64
    private var resetWindowStartNanos: UInt64 = 0
    private var resetsInWindow = 0
    private var streamsInWindow = 0
    private var calmedDown = false
    private var draining = false

    init(fd: Int32, index: Int, generation: UInt64, reactor: Reactor) throws(TransportError) {
        self.fd = fd
        self.index = index
        self.generation = generation
        self.reactor = reactor
        lastActivityNanos = reactor.now
        if let context = reactor.shared.configuration.tls {
            guard let stream = TLSStream(context: context, fd: fd) else {
                throw TransportError("cannot create a TLS session")
            }
            tls = stream
            handshaking = true
        }
        out.reserveCapacity(16 << 10)
    }

    /// Starts HTTP/2 now (h2c) or after the handshake (TLS).
    func start() {
        if handshaking {
            advanceHandshake()
        } else {
            startSession()
        }
    }

    private func startSession() {
        do {
            session = try HTTP2Session(owner: self, settings: reactor.shared.settings, pool: reactor.blockPool)
        } catch {
            Log.rateLimited("cannot start an HTTP/2 session: \(error)")
            dead = true
        }
    }

    // MARK: Events

    func handle(events: UInt32) {
        if handshaking {
            advanceHandshake()
        } else {
            var shouldRead = events & UInt32(CENCORE_EPOLLIN) != 0
            if events & (UInt32(CENCORE_EPOLLHUP) | UInt32(CENCORE_EPOLLERR)) != 0 {
                // Always reported, even without EPOLLIN interest: never leave it unhandled.
                if readPaused { dead = true } else { shouldRead = true }
            }
            if events & UInt32(CENCORE_EPOLLOUT) != 0 && tlsWantsWrite {
                tlsWantsWrite = false
                shouldRead = true
            }
            if shouldRead { readAvailable() }
        }
        reactor.markDirty(self)
    }

    private func advanceHandshake() {
        guard let tls else { return }
        switch tls.handshake() {
        case .bytes:
            handshaking = false
            tlsWantsWrite = false
            guard tls.negotiatedH2 else {
                Log.rateLimited("tls handshake failed with \(Socket.peerName(fd)): ALPN h2 was not negotiated")
                dead = true
                return
            }
            startSession()
            readAvailable()
        case .wantRead:
            tlsWantsWrite = false
        case .wantWrite:
            tlsWantsWrite = true
        case .closed:
            dead = true
        case .failed(let reasons):
            Log.rateLimited("tls handshake failed with \(Socket.peerName(fd)): \(reasons)")
            dead = true
        }
        reactor.markDirty(self)
    }

    /// Reads until the socket (or OpenSSL) has nothing more, feeding nghttp2.
    private func readAvailable() {
        guard !dead, session != nil else { return }
        let buffer = reactor.readBuffer
        var reads = 0
        while !readPaused && !dead {
            let count: Int
            if let tls {
                switch tls.read(into: buffer) {
                case .bytes(let n): count = n
                case .wantRead: return
                case .wantWrite:
                    tlsWantsWrite = true
                    return
                case .closed:
                    dead = true
                    return
                case .failed(let reasons):
                    Log.rateLimited("tls error with \(Socket.peerName(fd)): \(reasons)")
                    dead = true
                    return
                }
            } else {
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno != EAGAIN && errno != EWOULDBLOCK { dead = true }
                    return
                }
                if n == 0 {
                    dead = true
                    return
                }
                count = n
            }
            lastActivityNanos = reactor.now
            if !session.receive(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) {
                // Bad preface or an unrecoverable protocol error: send what nghttp2 queued
                // (usually GOAWAY) and close.
                closeAfterFlush = true
                readPaused = true
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
        if !dead, !handshaking, let session {
            let chunk = reactor.shared.configuration.writeChunkBytes
            var rounds = 0
            while rounds < 8 {
                rounds += 1
                let ok = session.drainOutput { bytes in
                    out.append(contentsOf: bytes)
                    return pendingOutputBytes < chunk
                }
                if !ok { dead = true; break }
                if !writeOut() { break }
                if !session.wantsWrite { break }
            }
        } else if !dead {
            _ = writeOut()
        }
        if dead
            || (pendingOutputBytes == 0 && (closeAfterFlush || (!handshaking && session != nil && !session.isAlive)))
        {
            cancelAll()
            reactor.remove(self)
            return
        }
        updateInterest()
    }

    /// Writes as much of the buffer as the socket takes. Returns true if it is empty afterwards.
    private func writeOut() -> Bool {
        while pendingOutputBytes > 0 {
            let written: Int = out.withUnsafeBytes { all in
                let pending = UnsafeRawBufferPointer(rebasing: all[outStart...])
                if let tls {
                    switch tls.write(pending) {
                    case .bytes(let n): return n
                    case .wantWrite:
                        tlsWantsWrite = true
                        return 0
                    case .wantRead: return 0
                    case .closed:
                        dead = true
                        return 0
                    case .failed(let reasons):
                        Log.rateLimited("tls write error with \(Socket.peerName(fd)): \(reasons)")
                        dead = true
                        return 0
                    }
                }
                let n = send(fd, pending.baseAddress, pending.count, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { return -1 }
                    if errno != EAGAIN && errno != EWOULDBLOCK { dead = true }
                    return 0
                }
                return n
            }
            if written < 0 { continue }
            if written == 0 { break }
            outStart += written
        }
        if outStart == out.count {
            out.removeAll(keepingCapacity: true)
            outStart = 0
            return true
        }
        if outStart > 64 << 10 {
            out.removeSubrange(0..<outStart)
            outStart = 0
        }
        return false
    }

    private func updateInterest() {
        let limit = reactor.shared.configuration.maxPendingOutputBytes
        if !readPaused && pendingOutputBytes > limit {
            readPaused = true
        } else if readPaused && !closeAfterFlush && pendingOutputBytes <= limit / 2 {
            readPaused = false
            // OpenSSL may hold decrypted bytes that epoll will not report again.
            readAvailable()
        }
        var wanted: UInt32 = readPaused ? 0 : UInt32(CENCORE_EPOLLIN)
        if pendingOutputBytes > 0 || tlsWantsWrite { wanted |= UInt32(CENCORE_EPOLLOUT) }
        if wanted != registeredEvents { reactor.modify(self, events: wanted) }
    }

    func closeSocket() {
        if let tls, !handshaking { tls.shutdown() }
        close(fd)
    }

    // MARK: Lifecycle

    /// Rapid-reset protection (CVE-2023-44487). Counts, per one-second window, the streams a
    /// client opened and the in-flight streams it reset. When the resets pass the limit and make
    /// up more than half of the streams opened in the window, the connection gets GOAWAY
    /// ENHANCE_YOUR_CALM. A client that cancels some of its calls (deadlines, user aborts)
    /// never reaches the ratio; a reset flood does at once.
    func streamOpenedForResetAccounting() {
        rollResetWindow()
        streamsInWindow += 1
    }

    func resetReceived(inFlight: Bool) {
        guard inFlight else { return }
        rollResetWindow()
        resetsInWindow += 1
        let limit = reactor.shared.configuration.rapidResetLimitPerSecond
        if resetsInWindow > limit && resetsInWindow * 2 > streamsInWindow && !calmedDown {
            calmedDown = true
            Log.rateLimited(
                "rapid reset from \(Socket.peerName(fd)): \(resetsInWindow) in-flight streams reset within one second (limit \(limit)); GOAWAY ENHANCE_YOUR_CALM"
            )
            session.terminateEnhanceYourCalm()
            closeAfterFlush = true
            readPaused = true
        }
    }

    private func rollResetWindow() {
        let now = reactor.now
        if now &- resetWindowStartNanos > 1_000_000_000 {
            resetWindowStartNanos = now
            resetsInWindow = 0
            streamsInWindow = 0
        }
    }

    func checkIdle(now: UInt64, timeoutNanos: UInt64) {
        guard openStreams == 0, !closeAfterFlush, now &- lastActivityNanos >= timeoutNanos else { return }
        if let session, !handshaking {
            session.submitGracefulGoaway()
        }
        closeAfterFlush = true
        reactor.markDirty(self)
    }

    func beginDrain() {
        draining = true
        if handshaking || session == nil {
            dead = true
        } else {
            session.submitShutdownNotice()
        }
        reactor.markDirty(self)
    }

    func sendFinalGoaway() {
        guard let session, !handshaking else { return }
        session.submitGracefulGoaway()
        reactor.markDirty(self)
    }

    var isDraining: Bool { draining }
}
