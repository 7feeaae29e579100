import EncoreLogging
import EncoreSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The gRPC server: N reactor threads serving the routes of one `GRPCRouter`.
///
/// `start()` binds every listener (so address errors surface at once) and spawns the reactors;
/// `shutdown()` begins a graceful drain; `waitUntilStopped()` returns when every reactor has
/// exited (drained, or the drain deadline passed).
public final class GRPCServer: Sendable {
    public let configuration: GRPCServerConfiguration
    private let shared: ServerShared
    private let state = Mutex<State>(State())

    private struct State {
        var reactors: [Reactor] = []
        var threads: [pthread_t] = []
        var boundPort = 0
        var started = false
        var drainDeadlineNanos: UInt64 = 0
    }

    /// `serving` is shared with handlers that report the drain (health).
    ///
    /// `maxConnections` is clamped to what the open-file limit allows (with a warning), so the
    /// limit is met by refusing or evicting connections, not by accept() failing with EMFILE.
    public init(configuration: GRPCServerConfiguration, router: GRPCRouter, serving: ServingState = ServingState()) {
        var configuration = configuration
        let budget = FileDescriptorLimit.connectionBudget(
            softLimit: FileDescriptorLimit.current().soft, inUse: FileDescriptorLimit.openDescriptors() ?? 64,
            threads: configuration.threads)
        if configuration.maxConnections > budget {
            Log.warning(
                "max-connections \(configuration.maxConnections) for \(configuration.host) is more than the open-file limit allows (\(FileDescriptorLimit.current().soft) descriptors): using \(budget); raise the limit (ulimit -n, LimitNOFILE=) to serve more"
            )
            configuration.maxConnections = budget
        }
        self.configuration = configuration
        shared = ServerShared(configuration: configuration, router: router, serving: serving)
    }

    /// True once a drain has begun (health checks report NOT_SERVING).
    public var isDraining: Bool { shared.serving.draining.load(ordering: .acquiring) }

    /// Connections open right now across all reactors.
    public var openConnections: Int { shared.openConnections.load(ordering: .relaxed) }

    /// The transport's counters summed over the reactors (zero before `start`).
    public func metricsReading() -> TransportMetricsReading {
        let blocks = state.withLock { $0.reactors.map(\.metrics) }
        return shared.metricsLayout.read(blocks, open: openConnections)
    }

    /// The port the listeners are bound to (the chosen one when configured with port 0).
    public var port: Int { state.withLock { $0.boundPort } }

    /// Listens on `listeners` (bound earlier with `GRPCListeners.bind`, so a taken port is
    /// reported before a slow start-up), or binds now when nil, and starts the reactor threads.
    /// Returns the bound port. Throws a `TransportError` naming the address or resource that
    /// failed; nothing is left running on failure.
    @discardableResult
    public func start(listeners reserved: GRPCListeners? = nil) throws(TransportError) -> Int {
        try configuration.validate()
        let reservation: GRPCListeners
        if let reserved { reservation = reserved } else { reservation = try GRPCListeners.bind(configuration) }
        let listeners = reservation.take()
        let port = reservation.port
        guard listeners.count == configuration.threads else {
            listeners.forEach { Socket.close($0) }
            throw TransportError(
                "\(listeners.count) listeners were bound for \(configuration.threads) reactor threads (already started?)"
            )
        }
        do {
            for fd in listeners { try Socket.startListening(fd, host: configuration.host, port: port) }
        } catch {
            listeners.forEach { Socket.close($0) }
            throw error
        }
        var reactors: [Reactor] = []
        for (i, fd) in listeners.enumerated() {
            do {
                reactors.append(try Reactor(index: i, shared: shared, listenFD: fd))
            } catch {
                listeners[i...].forEach { Socket.close($0) }
                throw error
            }
        }
        var threads: [pthread_t] = []
        for reactor in reactors {
            var thread = pthread_t()
            let box = Unmanaged.passRetained(reactor).toOpaque()
            let rv = pthread_create(
                &thread, nil,
                { raw in
                    let reactor = Unmanaged<Reactor>.fromOpaque(raw!).takeRetainedValue()
                    reactor.run()
                    return nil
                }, box)
            guard rv == 0 else {
                Unmanaged<Reactor>.fromOpaque(box).release()
                reactors.forEach { $0.mailbox.post(.stop) }
                threads.forEach { pthread_join($0, nil) }
                throw TransportError("pthread_create: \(Socket.errnoText(rv))")
            }
            threads.append(thread)
        }
        state.withLock {
            $0.reactors = reactors
            $0.threads = threads
            $0.boundPort = port
            $0.started = true
        }
        return port
    }

    /// Begins a graceful drain: health turns NOT_SERVING, listeners close (new connections are
    /// refused), every connection gets GOAWAY, in-flight calls run to completion. After
    /// `drainTimeoutNanos` whatever is left is closed. Safe to call more than once.
    public func shutdown() {
        guard !shared.serving.draining.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Health watchers hear NOT_SERVING before the connections hear GOAWAY.
        shared.serving.beginDrain()
        let reactors = state.withLock { s -> [Reactor] in
            s.drainDeadlineNanos = MonotonicClock.nowNanos + configuration.drainTimeoutNanos
            return s.reactors
        }
        reactors.forEach { $0.mailbox.post(.drain) }
    }

    /// Closes every connection now, without waiting for in-flight calls.
    public func stopNow() {
        shared.serving.beginDrain()
        state.withLock { $0.reactors }.forEach { $0.mailbox.post(.stop) }
    }

    /// Blocks until every reactor has exited; enforces the drain deadline. Returns true if the
    /// drain finished before the deadline (no call was cut off).
    @discardableResult
    public func waitUntilStopped() -> Bool {
        var clean = true
        while true {
            let (reactors, deadline) = state.withLock { ($0.reactors, $0.drainDeadlineNanos) }
            if reactors.allSatisfy({ $0.finished.load(ordering: .acquiring) }) { break }
            if deadline != 0 && MonotonicClock.nowNanos >= deadline && clean {
                clean = false
                Log.warning("drain deadline passed with calls still in flight; closing remaining connections")
                reactors.forEach { $0.mailbox.post(.stop) }
            }
            usleep(10_000)
        }
        let threads = state.withLock { s -> [pthread_t] in
            let t = s.threads
            s.threads = []
            return t
        }
        threads.forEach { pthread_join($0, nil) }
        return clean
    }
}

/// One socket per reactor, bound but not yet listening: reserves a port (and reports a bad or
/// taken address) before a slow start-up, while nothing can connect yet. The first socket is
/// bound exclusively, so a port that another process holds, even another Encore with
/// SO_REUSEPORT, is refused with "address already in use"; the others share the port through
/// SO_REUSEPORT. Sockets not handed to `GRPCServer.start` are closed on deinit.
public final class GRPCListeners: Sendable {
    /// The bound port (the chosen one when configured with port 0).
    public let port: Int
    private let sockets: Mutex<[Int32]>

    private init(sockets: [Int32], port: Int) {
        self.sockets = Mutex(sockets)
        self.port = port
    }

    /// Validates `configuration` and binds `configuration.threads` sockets to its address.
    /// Throws a `TransportError` naming the setting or address; nothing stays bound on failure.
    public static func bind(_ configuration: GRPCServerConfiguration) throws(TransportError) -> GRPCListeners {
        try configuration.validate()
        var sockets: [Int32] = []
        var port = configuration.port
        do {
            for i in 0..<configuration.threads {
                let (fd, bound) = try Socket.bind(host: configuration.host, port: port, exclusive: i == 0)
                sockets.append(fd)
                port = bound
            }
        } catch {
            sockets.forEach { Socket.close($0) }
            throw error
        }
        return GRPCListeners(sockets: sockets, port: port)
    }

    /// Hands the sockets over (once; later calls get none).
    func take() -> [Int32] {
        sockets.withLock { s in
            let fds = s
            s = []
            return fds
        }
    }

    deinit {
        sockets.withLock { $0.forEach { Socket.close($0) } }
    }
}
