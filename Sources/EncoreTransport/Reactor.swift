internal import CEncoreLinux
import EncoreLogging
import EncoreMetrics
import EncoreSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// State shared by every reactor of one server. Written only where noted.
final class ServerShared: Sendable {
    let configuration: GRPCServerConfiguration
    let router: GRPCRouter
    let settings: HTTP2Settings
    /// Open connections across reactors: incremented on accept, decremented on close.
    let openConnections = Atomic<Int>(0)
    /// Set once by `GRPCServer.shutdown`; read by handlers (health) and reactors.
    let serving: ServingState
    /// Where each reactor keeps its transport counters (`Reactor.metrics`).
    let metricsLayout: TransportMetricsLayout
    /// Request bytes held by all connections, against `maxBufferedRequestBytes`.
    let requestBudget: RequestMemoryBudget

    init(configuration: GRPCServerConfiguration, router: GRPCRouter, serving: ServingState) {
        self.configuration = configuration
        self.router = router
        self.serving = serving
        metricsLayout = TransportMetricsLayout(router: router)
        requestBudget = RequestMemoryBudget(limit: configuration.maxBufferedRequestBytes)
        settings = HTTP2Settings(
            maxConcurrentStreams: UInt32(configuration.maxConcurrentStreams),
            maxHeaderListBytes: UInt32(configuration.maxHeaderListBytes))
    }
}

/// One event loop on one thread: a SO_REUSEPORT listener, an epoll set, the connections it
/// accepted, and a mailbox for answers from other threads. Everything but the mailbox is
/// confined to the reactor's thread.
/// Whether the server is draining. Written once by `GRPCServer.shutdown` (any thread); read
/// lock-free by handlers such as the health check.
public final class ServingState: Sendable {
    let draining = Atomic<Bool>(false)
    /// Called once when the drain begins (health watchers); registered by handlers at start-up
    /// or per call, run by `GRPCServer.shutdown`/`stopNow` on their thread.
    private let observers = Mutex<(fired: Bool, list: [@Sendable () -> Void])>((false, []))

    /// Set by `announceDrain` (any thread) before the drain itself: health says NOT_SERVING
    /// while everything is still served, so a load balancer's health check takes the server out
    /// before its listener closes (`encore serve --drain-notice`).
    let announced = Atomic<Bool>(false)

    public init() {}

    /// True once a drain has begun or been announced (what health checks report).
    public var isDraining: Bool { draining.load(ordering: .relaxed) || announced.load(ordering: .relaxed) }

    /// Makes `isDraining` true without changing what is served, and tells the drain observers
    /// (health watchers see NOT_SERVING from now on).
    public func announceDrain() {
        announced.store(true, ordering: .releasing)
        fireObservers()
    }

    /// Runs `body` once when the drain begins, before the reactors are told to drain (at once if
    /// it has begun already).
    public func onDrain(_ body: @escaping @Sendable () -> Void) {
        let runNow = observers.withLock { state -> Bool in
            if state.fired { return true }
            state.list.append(body)
            return false
        }
        if runNow { body() }
    }

    /// Marks the drain begun and runs the observers (once).
    func beginDrain() {
        draining.store(true, ordering: .releasing)
        fireObservers()
    }

    private func fireObservers() {
        let list = observers.withLock { state -> [@Sendable () -> Void] in
            if state.fired { return [] }
            state.fired = true
            defer { state.list = [] }
            return state.list
        }
        list.forEach { $0() }
    }
}

final class Reactor: @unchecked Sendable {
    let index: Int
    let shared: ServerShared
    let mailbox: ReactorMailbox
    private let epollFD: Int32
    private var listenFD: Int32
    /// Connections by index (epoll data = index + 2); nil entries are free.
    private var connections: [Connection?] = []
    private var freeIndices: [Int] = []
    private var nextGeneration: UInt64 = 1
    /// Connections that need a flush at the end of this loop turn.
    private var dirty: [Connection] = []
    private var messages: [ReactorMessage] = []
    private let events: UnsafeMutablePointer<cencore_event>
    private static let maxEvents = 256
    /// nghttp2's allocator for every session of this reactor (outlives them: sessions are
    /// closed in `closeAll` before the reactor goes away).
    let blockPool: BlockPool
    /// nghttp2 callbacks, options and allocator for every session of this reactor (built once).
    let sessionTemplate: HTTP2SessionTemplate
    /// Read buffer shared by all connections of this reactor (data is consumed before the next read).
    let readBuffer: UnsafeMutableRawBufferPointer
    /// Monotonic time at the start of the current loop turn.
    private(set) var now: UInt64 = MonotonicClock.nowNanos
    private var nextTickNanos: UInt64 = 0
    private var nextIdleCheckNanos: UInt64 = 0
    /// Streams with a grpc-timeout on this reactor (drives the fast tick).
    var deadlineStreams = 0
    private var draining = false
    private var stopping = false
    /// Set when the loop has exited.
    let finished = Atomic<Bool>(false)
    private let tag: (listener: UInt64, mailbox: UInt64) = (0, 1)
    /// This reactor's transport counters (written only on this thread; `TransportMetricsLayout`).
    let metrics: CounterBlock
    /// Plaintext connections whose first bytes are not read yet, when HTTP/1.1 requests are
    /// handed off (`GRPCServerConfiguration.http1Handoff`): fd to accept time. Admin plane only.
    private var sniffing: [Int32: UInt64] = [:]
    /// epoll data of a sniffed socket: this bit plus the fd.
    private static let sniffTag: UInt64 = 1 << 63
    /// A descriptor held in reserve (/dev/null): when accept() fails with EMFILE it is closed
    /// to accept the pending connection and close it at once, so the listener does not stay
    /// readable and spin the loop.
    private var reserveFD: Int32 = -1
    /// The listener is out of the epoll set until this time (EMFILE with no reserve): 0 when it
    /// is polled.
    private var listenerPausedUntilNanos: UInt64 = 0

    init(index: Int, shared: ServerShared, listenFD: Int32) throws(TransportError) {
        self.index = index
        self.shared = shared
        self.listenFD = listenFD
        mailbox = try ReactorMailbox()
        metrics = CounterBlock(count: shared.metricsLayout.cellCount)
        do {
            let pool = BlockPool()
            blockPool = pool
            sessionTemplate = try HTTP2SessionTemplate(pool: pool)
        } catch {
            throw TransportError("cannot set up nghttp2: \(error)")
        }
        epollFD = cencore_epoll_create()
        guard epollFD >= 0 else { throw TransportError("epoll_create1: \(Socket.errnoText())") }
        events = .allocate(capacity: Reactor.maxEvents)
        readBuffer = .allocate(byteCount: 64 << 10, alignment: 16)
        try add(fd: listenFD, events: UInt32(CENCORE_EPOLLIN), data: tag.listener)
        try add(fd: mailbox.eventFD, events: UInt32(CENCORE_EPOLLIN), data: tag.mailbox)
        reserveFD = Reactor.openReserve()
    }

    deinit {
        if reserveFD >= 0 { close(reserveFD) }
        close(epollFD)
        if listenFD >= 0 { close(listenFD) }
        events.deallocate()
        readBuffer.deallocate()
    }

    // MARK: The loop

    func run() {
        while !stopping && !(draining && connections.allSatisfy({ $0 == nil })) {
            let timeoutMillis: Int32 = deadlineStreams > 0 ? 2 : (draining ? 20 : 250)
            let n = cencore_epoll_wait(epollFD, events, Int32(Reactor.maxEvents), timeoutMillis)
            now = MonotonicClock.nowNanos
            if n < 0 && errno != EINTR {
                Log.error("reactor \(index): epoll_wait: \(Socket.errnoText())")
                break
            }
            for i in 0..<max(0, Int(n)) {
                let event = events[i]
                switch event.data {
                case tag.listener: acceptConnections()
                case tag.mailbox: drainMailbox()
                case let data where data & Reactor.sniffTag != 0: sniff(Int32(truncatingIfNeeded: data))
                default:
                    let slot = Int(event.data - 2)
                    guard slot < connections.count, let connection = connections[slot] else { continue }
                    connection.handle(events: event.events)
                }
            }
            flushDirty()
            if now >= nextTickNanos { tick() }
        }
        closeAll()
        finished.store(true, ordering: .releasing)
    }

    func markDirty(_ connection: Connection) {
        if connection.machine.scheduleFlush() { dirty.append(connection) }
    }

    /// Makes the loop tick by `deadlineNanos` (a connection's timer, e.g. the final GOAWAY).
    func armTimer(at deadlineNanos: UInt64) {
        if deadlineNanos < nextTickNanos { nextTickNanos = deadlineNanos }
    }

    private func flushDirty() {
        var i = 0
        while i < dirty.count {
            let connection = dirty[i]
            connection.machine.flushBegan()
            connection.flush()
            i += 1
        }
        dirty.removeAll(keepingCapacity: true)
    }

    private func tick() {
        nextTickNanos = now + (deadlineStreams > 0 ? 2_000_000 : 50_000_000)
        if listenerPausedUntilNanos != 0 { resumeListenerIfDue() }
        let checkIdle = now >= nextIdleCheckNanos
        if checkIdle { nextIdleCheckNanos = now + 250_000_000 }
        if checkIdle && !sniffing.isEmpty { expireSniffing() }
        guard deadlineStreams > 0 || checkIdle || draining else { return }
        for case let connection? in connections {
            if deadlineStreams > 0 { connection.expireDeadlines(now: now) }
            connection.tick(now: now, checkIdle: checkIdle)
        }
        flushDirty()
    }

    // MARK: Accepting

    private func acceptConnections() {
        for _ in 0..<64 {
            let fd = Socket.accept(listenFD)
            if fd < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
                if errno == EMFILE || errno == ENFILE {
                    Log.rateLimited(
                        "accept: \(Socket.errnoText()): closing new connections at once (raise the file-descriptor limit, or lower --max-connections)"
                    )
                    if !refuseWithReserve() { return }
                    continue
                }
                continue  // ECONNABORTED and friends: the next one may be fine
            }
            let layout = shared.metricsLayout
            metrics.cells.add(layout.acceptedCell)
            let open = shared.openConnections.add(1, ordering: .relaxed).newValue
            if open > shared.configuration.maxConnections && !draining, let victim = evictionVictim() {
                // Make room: slots held by idle (or stalled) connections must not lock out new
                // clients.
                Log.rateLimited(
                    "\(shared.configuration.maxConnections) connections open (max-connections): closing the one idle the longest (\(victim.peer)) for a new one"
                )
                victim.evict()
            } else if open > shared.configuration.maxConnections || draining {
                shared.openConnections.subtract(1, ordering: .relaxed)
                metrics.cells.add(layout.closedBase + ConnectionCloseReason.maxConnections.rawValue)
                if !draining {
                    Log.rateLimited(
                        "refusing connection from \(Socket.peerName(fd)): \(shared.configuration.maxConnections) connections open (max-connections)"
                    )
                }
                close(fd)
                continue
            }
            Socket.setNoDelay(fd)
            if shared.configuration.http1Handoff != nil && shared.configuration.tls == nil {
                startSniffing(fd)
                continue
            }
            adopt(fd)
        }
    }

    private static func openReserve() -> Int32 { open("/dev/null", O_RDONLY | O_CLOEXEC) }

    /// Out of descriptors: frees the reserve to accept one pending connection and close it
    /// (the client sees its connection closed instead of a listener that never answers, and
    /// the loop does not spin on a listener that stays readable). With no reserve (another
    /// thread took the descriptor) the listener is left out of epoll for 100 ms. Returns true
    /// when a connection was taken off the backlog.
    private func refuseWithReserve() -> Bool {
        defer { if reserveFD < 0 { reserveFD = Reactor.openReserve() } }
        if reserveFD >= 0 {
            close(reserveFD)
            reserveFD = -1
            let fd = Socket.accept(listenFD)
            if fd >= 0 {
                close(fd)
                metrics.cells.add(shared.metricsLayout.acceptedCell)
                metrics.cells.add(shared.metricsLayout.closedBase + ConnectionCloseReason.maxConnections.rawValue)
                return true
            }
        }
        pauseListener()
        return false
    }

    private func pauseListener() {
        guard listenFD >= 0, listenerPausedUntilNanos == 0 else { return }
        _ = cencore_epoll_ctl(epollFD, Int32(CENCORE_EPOLL_CTL_DEL), listenFD, 0, 0)
        listenerPausedUntilNanos = now + 100_000_000
        armTimer(at: listenerPausedUntilNanos)
    }

    private func resumeListenerIfDue() {
        guard listenerPausedUntilNanos != 0, now >= listenerPausedUntilNanos else { return }
        listenerPausedUntilNanos = 0
        guard listenFD >= 0 else { return }
        _ = cencore_epoll_ctl(epollFD, Int32(CENCORE_EPOLL_CTL_ADD), listenFD, UInt32(CENCORE_EPOLLIN), tag.listener)
    }

    /// The connection of this reactor idle the longest, if one may be evicted
    /// (`ConnectionStateMachine.evictionIdleNanos`). Only at the connection limit: a scan.
    private func evictionVictim() -> Connection? {
        let minIdle = shared.configuration.evictionMinIdleNanos
        var best: (connection: Connection, idle: UInt64)? = nil
        for case let connection? in connections {
            guard let idle = connection.machine.evictionIdleNanos(now: now, minIdleNanos: minIdle) else { continue }
            if best == nil || idle > best!.idle { best = (connection, idle) }
        }
        return best?.connection
    }

    /// Serves an accepted socket with HTTP/2.
    private func adopt(_ fd: Int32) {
        let slot: Int
        if let free = freeIndices.popLast() {
            slot = free
        } else {
            slot = connections.count
            connections.append(nil)
        }
        nextGeneration += 1
        do {
            let connection = try Connection(fd: fd, index: slot, generation: nextGeneration, reactor: self)
            connections[slot] = connection
            try add(fd: fd, events: UInt32(CENCORE_EPOLLIN), data: UInt64(slot) + 2)
            connection.registeredEvents = UInt32(CENCORE_EPOLLIN)
            connection.start()
            markDirty(connection)
            Log.debug("reactor \(index): accepted a connection from \(connection.peer)")
        } catch {
            Log.rateLimited("cannot set up connection: \(error)")
            if let connection = connections[slot] {
                remove(connection)
            } else {
                close(fd)
                freeIndices.append(slot)
                shared.openConnections.subtract(1, ordering: .relaxed)
            }
        }
    }

    // MARK: Sniffing HTTP/1.1 (admin plane)

    /// The HTTP/2 client preface starts with these bytes; an HTTP/1.1 request line cannot.
    private static let prefacePrefix: [UInt8] = Array("PRI ".utf8)

    private func startSniffing(_ fd: Int32) {
        do {
            try add(fd: fd, events: UInt32(CENCORE_EPOLLIN), data: Reactor.sniffTag | UInt64(UInt32(bitPattern: fd)))
            sniffing[fd] = now
        } catch {
            close(fd)
            shared.openConnections.subtract(1, ordering: .relaxed)
        }
    }

    /// Peeks at a new plaintext connection's first bytes: the HTTP/2 preface keeps it here (it
    /// is read again by the session); anything else goes to the HTTP/1.1 server with the
    /// socket, unread. Cold path: admin connections only.
    private func sniff(_ fd: Int32) {
        guard sniffing[fd] != nil else { return }
        var head = [UInt8](repeating: 0, count: Reactor.prefacePrefix.count)
        let n = recv(fd, &head, head.count, Int32(MSG_PEEK))
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
        if n == 0 || n < 0 {
            stopSniffing(fd)
            close(fd)
            metrics.cells.add(shared.metricsLayout.closedBase + ConnectionCloseReason.peerClosed.rawValue)
            return
        }
        if head[0..<n].elementsEqual(Reactor.prefacePrefix[0..<n]) {
            // A preface split after fewer than 4 bytes: wait for the rest (level-triggered, so
            // this may spin briefly; clients send the preface in one segment).
            guard n == Reactor.prefacePrefix.count else { return }
            stopSniffing(fd)
            adopt(fd)
            return
        }
        stopSniffing(fd)
        guard let handoff = shared.configuration.http1Handoff else {
            close(fd)
            return
        }
        handoff(fd)
    }

    /// Forgets a sniffed socket (it is not counted as an open HTTP/2 connection any more).
    private func stopSniffing(_ fd: Int32) {
        _ = cencore_epoll_ctl(epollFD, Int32(CENCORE_EPOLL_CTL_DEL), fd, 0, 0)
        sniffing[fd] = nil
        shared.openConnections.subtract(1, ordering: .relaxed)
    }

    /// Closes sniffed sockets that sent nothing within the idle timeout.
    private func expireSniffing() {
        let limit = shared.configuration.idleTimeoutNanos
        for (fd, since) in sniffing where now &- since >= limit {
            stopSniffing(fd)
            close(fd)
            metrics.cells.add(shared.metricsLayout.closedBase + ConnectionCloseReason.idle.rawValue)
        }
    }

    /// Closes a connection's socket and forgets it.
    func remove(_ connection: Connection) {
        guard connections.indices.contains(connection.index), connections[connection.index] === connection else {
            return
        }
        _ = cencore_epoll_ctl(epollFD, Int32(CENCORE_EPOLL_CTL_DEL), connection.fd, 0, 0)
        Log.debug("reactor \(index): closing the connection from \(connection.peer)")
        connection.closeSocket()
        connections[connection.index] = nil
        freeIndices.append(connection.index)
        shared.openConnections.subtract(1, ordering: .relaxed)
        metrics.cells.add(shared.metricsLayout.closedBase + connection.closeReason.rawValue)
    }

    func connection(at index: Int, generation: UInt64) -> Connection? {
        guard connections.indices.contains(index), let c = connections[index], c.generation == generation else {
            return nil
        }
        return c
    }

    private func closeAll() {
        for case let connection? in connections {
            connection.cancelAll()
            connection.closeReason = .drain
            remove(connection)
        }
        for fd in sniffing.keys {
            stopSniffing(fd)
            close(fd)
        }
    }

    // MARK: Mailbox

    private func drainMailbox() {
        mailbox.take(into: &messages)
        for message in messages {
            switch message {
            case .complete(let address, let result):
                guard let connection = connection(at: address.connectionIndex, generation: address.connectionGeneration)
                else { continue }
                connection.complete(address, result)
            case .streamSend(let address, let message):
                guard let connection = connection(at: address.connectionIndex, generation: address.connectionGeneration)
                else { continue }
                connection.streamSend(address, message)
            case .streamFinish(let address, let status):
                guard let connection = connection(at: address.connectionIndex, generation: address.connectionGeneration)
                else { continue }
                connection.streamFinish(address, status)
            case .completeHTTP(let address, let response):
                guard let connection = connection(at: address.connectionIndex, generation: address.connectionGeneration)
                else { continue }
                connection.completeHTTP(address, response)
            case .drain:
                beginDrain()
            case .stop:
                stopping = true
            }
        }
        messages.removeAll(keepingCapacity: true)
    }

    private func beginDrain() {
        guard !draining else { return }
        draining = true
        if listenFD >= 0 {
            _ = cencore_epoll_ctl(epollFD, Int32(CENCORE_EPOLL_CTL_DEL), listenFD, 0, 0)
            close(listenFD)
            listenFD = -1
        }
        // Each connection sends GOAWAY(2^31-1) now and the final GOAWAY naming the last stream
        // shortly after (ConnectionStateMachine.Drain), so streams the client opened before it
        // saw the notice are still served.
        for case let connection? in connections { connection.beginDrain() }
    }

    // MARK: epoll registration

    private func add(fd: Int32, events: UInt32, data: UInt64) throws(TransportError) {
        guard cencore_epoll_ctl(epollFD, Int32(CENCORE_EPOLL_CTL_ADD), fd, events, data) == 0 else {
            throw TransportError("epoll_ctl ADD: \(Socket.errnoText())")
        }
    }

    /// Changes a connection's interest set (only called when it changes).
    func modify(_ connection: Connection, events: UInt32) {
        _ = cencore_epoll_ctl(
            epollFD, Int32(CENCORE_EPOLL_CTL_MOD), connection.fd, events, UInt64(connection.index) + 2)
        connection.registeredEvents = events
    }
}
