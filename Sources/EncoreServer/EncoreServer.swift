import EncoreTransport

/// Wires Encore's services onto the transport and runs the server's lifecycle.
public final class EncoreServer: Sendable {
    /// What `encore serve` configures.
    public struct Options: Sendable {
        public var transport = GRPCServerConfiguration()
        /// PEM certificate chain and key; both or neither.
        public var tlsCertificateFile: String? = nil
        public var tlsKeyFile: String? = nil
        /// Registers `encore.v1.Diagnostics` (off by default).
        public var diagnostics = false

        public init() {}
    }

    public let options: Options
    public let server: GRPCServer

    /// Builds the routes and the transport. Throws with a clear message for bad TLS files or
    /// options.
    public init(options: Options) throws {
        var options = options
        switch (options.tlsCertificateFile, options.tlsKeyFile) {
        case (let cert?, let key?):
            options.transport.tls = try TLSContext(certificateChainFile: cert, privateKeyFile: key)
        case (nil, nil):
            break
        default:
            throw TransportError("--tls-cert and --tls-key must be given together")
        }
        self.options = options
        let serving = ServingState()
        var router = GRPCRouter()
        HealthService(serving: serving).register(in: &router)
        DecisionsService().register(in: &router)
        if options.diagnostics { DiagnosticsService().register(in: &router) }
        server = GRPCServer(configuration: options.transport, router: router, serving: serving)
    }

    /// Serves until SIGTERM or SIGINT, then drains. Returns the process exit code (0 after a
    /// clean or deadline-bounded drain).
    public func runUntilSignalled() throws -> Int32 {
        SignalWaiter.blockTerminationSignals()
        let port = try server.start()
        let transport = options.transport
        let host = transport.host.contains(":") ? "[\(transport.host)]" : transport.host
        Log.info(
            "listening on \(host):\(port) (\(transport.tls == nil ? "h2c" : "tls"), \(transport.threads) threads)")
        let signal = SignalWaiter.waitForTermination()
        Log.info(
            "\(SignalWaiter.name(signal)) received: draining (health NOT_SERVING, no new connections, up to \(transport.drainTimeoutNanos / 1_000_000_000) s for in-flight calls)"
        )
        server.shutdown()
        let clean = server.waitUntilStopped()
        Log.info(clean ? "stopped: every in-flight call completed" : "stopped: drain deadline cut off in-flight calls")
        return 0
    }
}
