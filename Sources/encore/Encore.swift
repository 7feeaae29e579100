import ArgumentParser
import EncoreLogging
import EncoreServer
import EncoreTransport
import Foundation
import Logging

@main
struct Encore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encore",
        abstract: "Encore: a next-best-offer decisioning engine served over gRPC.",
        subcommands: [
            Serve.self, DecideCommand.self, PushCommand.self, ModelsCommand.self, FleetCommand.self,
            SnapshotCommand.self,
            StoreCommand.self, BenchCommand.self,
        ],
        defaultSubcommand: Serve.self
    )

    /// Parses and runs the command. Usage errors print ArgumentParser's usage text; every
    /// other error prints one `encore: error: ...` line (naming the file, address or field) and
    /// exits 1, the same way for every command.
    static func main() {
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        // `--help` parses to ArgumentParser's own help command, whose run() throws the request
        // for help: that one is ArgumentParser's to print.
        if String(reflecting: type(of: command)).hasPrefix("ArgumentParser.") {
            do { try command.run() } catch { exit(withError: error) }
            return
        }
        do {
            try command.run()
        } catch let error as ExitCode {
            exit(withError: error)
        } catch let error as CleanExit {
            exit(withError: error)
        } catch let error as ValidationError {
            exit(withError: error)
        } catch {
            // Foundation's errors read as sentences, not "NSCocoaErrorDomain Code=4".
            let foundation = error is CocoaError || type(of: error) == NSError.self
            let text = foundation ? (error as NSError).localizedDescription : "\(error)"
            FileHandle.standardError.write(Data("encore: error: \(text)\n".utf8))
            Foundation.exit(1)
        }
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve gRPC (h2c, or TLS with --tls-cert/--tls-key) until SIGTERM or SIGINT, then drain.",
        discussion: """
            With no flags, serves the embedded demo on 127.0.0.1:50051 with one reactor thread per core.
            Two planes: the data plane (--host/--port) serves encore.v1.Decisions and grpc.health.v1.Health;
            the admin plane (--admin-host/--admin-port, default 127.0.0.1:50052) serves encore.v1.Models,
            encore.v1.Catalog, encore.v1.Customers, grpc.health.v1.Health and, with --diagnostics,
            encore.v1.Diagnostics. An admin method called on the data port gets PERMISSION_DENIED.
            Both planes serve gRPC server reflection (v1, v1alpha) for their own services and
            Health/Watch as a server stream. Operational log lines go to stderr
            (--log-format, --log-level; docs/logging.md).
            """
    )

    // Each flag below is a setting of `ServeSettings` (docs/configuration.md names its config key):
    // nil (or false) when not given, so the config file's value, else the default, applies. The
    // defaults shown are `EncoreServer.Options()`'s.
    static let defaults = EncoreServer.Options()

    @Option(help: "Address to listen on (default: \(defaults.transport.host)).")
    var host: String?

    @Option(help: "TCP port (0 picks a free port, printed on stderr; default: \(defaults.transport.port)).")
    var port: Int?

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain file; enables TLS (ALPN h2).")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key file for --tls-cert.")
    var tlsKey: String?

    @Option(
        help: "Address of the admin plane (Models, Catalog, Customers, Diagnostics; default: \(defaults.adminHost)).")
    var adminHost: String?

    @Option(help: "Admin plane TCP port (0 picks a free port, printed on stderr; default: \(defaults.adminPort)).")
    var adminPort: Int?

    @Option(
        name: .customLong("admin-tls-cert"), help: "PEM certificate chain for the admin plane (default: --tls-cert).")
    var adminTlsCert: String?

    @Option(name: .customLong("admin-tls-key"), help: "PEM private key for --admin-tls-cert.")
    var adminTlsKey: String?

    @Flag(
        help:
            "Serve the admin plane on a non-loopback --admin-host without authentication (logs a warning each minute)."
    )
    var insecureAdmin = false

    @Option(
        name: .customLong("client-ca"),
        help:
            "PEM CA bundle for mTLS: TLS listeners verify client certificates against it; config 'admin.clients' maps their names to roles (docs/security.md)."
    )
    var clientCA: String?

    @Option(help: "Reactor threads (default: one per core).")
    var threads: Int?

    @Option(help: "Largest request message in bytes (default: \(defaults.transport.maxMessageBytes)).")
    var maxMessageBytes: Int?

    @Option(
        help:
            "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection (default: \(defaults.transport.maxConcurrentStreams))."
    )
    var maxConcurrentStreams: Int?

    @Option(help: "HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE in bytes (default: \(defaults.transport.maxHeaderListBytes)).")
    var maxHeaderListBytes: Int?

    @Option(
        help:
            "Seconds a connection with no open stream may stay idle before GOAWAY (default: \(defaults.transport.idleTimeoutNanos / 1_000_000_000))."
    )
    var idleTimeout: Double?

    @Option(
        help:
            "Open connections across all threads; at the limit a new connection takes the place of the one idle the longest (if idle for --evict-idle-after), else it is closed at once (default: \(defaults.transport.maxConnections))."
    )
    var maxConnections: Int?

    @Option(
        help:
            "Seconds a connection must have sent nothing before a new one may take its place at --max-connections (default: 1)."
    )
    var evictIdleAfter: Double?

    @Option(help: "Seconds a stream's request headers may take to arrive before RST_STREAM (0: no limit; default: 10).")
    var requestHeaderTimeout: Double?

    @Option(
        help:
            "Bytes per second a request body must arrive at (measured over --request-progress-window) while the client still owes it; slower: RESOURCE_EXHAUSTED (0: no limit; default: \(defaults.transport.minRequestBytesPerSecond))."
    )
    var minRequestBytesPerSecond: Int?

    @Option(help: "Seconds over which --min-request-bytes-per-second is measured (at least 1; default: 5).")
    var requestProgressWindow: Double?

    @Option(
        help:
            "Seconds a response may make no progress toward the client (zero flow-control window, client not reading) before its stream is reset, or its connection closed when the socket takes nothing (0: no limit; default: 30)."
    )
    var responseWriteTimeout: Double?

    @Option(
        help:
            "Requests with a header list over --max-header-list-bytes a connection may send per second before GOAWAY ENHANCE_YOUR_CALM (HPACK bombs; default: \(defaults.transport.maxOversizedHeaderListsPerSecond))."
    )
    var maxOversizedHeaderLists: Int?

    @Option(
        help:
            "Decoded request header bytes (name + value + 32 per field) a connection may send within one second before GOAWAY ENHANCE_YOUR_CALM (HPACK bombs; 0: no bound; default: \(defaults.transport.maxHeaderBytesPerSecond))."
    )
    var maxHeaderBytesPerSecond: Int?

    @Option(
        help:
            "Request bytes the streams of one connection may hold at once; the stream past it gets RESOURCE_EXHAUSTED (0: no bound; default: \(defaults.transport.maxConnectionBufferedRequestBytes))."
    )
    var maxConnectionBufferedBytes: Int?

    @Option(
        help:
            "Request bytes all connections together may hold at once; the stream past it gets RESOURCE_EXHAUSTED, small calls keep a reserve (0: no bound; default: \(defaults.transport.maxBufferedRequestBytes))."
    )
    var maxBufferedBytes: Int?

    @Option(
        help:
            "In-flight streams a connection may reset per second (once resets also exceed half of its new streams; ten times this whatever the ratio, cancels after a deadline included) before GOAWAY ENHANCE_YOUR_CALM (default: \(defaults.transport.rapidResetLimitPerSecond))."
    )
    var rapidResetLimit: Int?

    @Option(
        help:
            "Seconds in-flight calls may take to finish after SIGTERM/SIGINT (default: \(defaults.transport.drainTimeoutNanos / 1_000_000_000))."
    )
    var drainTimeout: Double?

    @Option(
        help:
            "Seconds after SIGTERM during which health reports NOT_SERVING while everything is still served (new connections too), so a load balancer's health check takes this replica out before the drain closes its listener (docs/scaling.md; default: 0)."
    )
    var drainNotice: Double?

    @Flag(help: "Serve encore.v1.Diagnostics (Echo, Collect) for transport checks.")
    var diagnostics = false

    @Flag(
        help:
            "Serve the embedded demo (bundled catalog, 100,000 customers, demo snapshot). Default when no data file is given."
    )
    var demo = false

    @Option(help: "Offer catalog, one JSON object per line (only offer_id is required).")
    var catalog: String?

    @Option(help: "Customer features, CSV (customer_id,segments,<features>) or JSONL.")
    var customers: String?

    @Option(help: "Initial model snapshot (without one the policy is uniform over eligible offers).")
    var snapshot: String?

    @Option(
        name: .customLong("trusted-key"),
        help: "PEM Ed25519 public key; with any, only snapshots signed by one are accepted (repeatable).")
    var trustedKeys: [String] = []

    @Flag(
        help:
            "Refuse to activate a snapshot whose offline DR lower bound is below the active policy's estimated value (override with force)."
    )
    var requireOpe = false

    @Option(
        help: ArgumentHelp(
            "Operational log lines on stderr: text (timestamped `encore: ...` lines) or json (one JSON object per line); docs/logging.md.",
            valueName: "text|json"))
    var logFormat = "text"

    @Option(
        help: ArgumentHelp(
            "Lowest level of operational log lines written: trace, debug, info, notice, warning, error or critical.",
            valueName: "level"))
    var logLevel = "info"

    @Option(help: "Directory for decision and outcome logs (JSON Lines, docs/logs.md).")
    var logDir: String?

    @Option(help: "Share of customers held out (0...1); the demo defaults to 0.05, else 0.")
    var holdoutShare: Double?

    @Option(
        help:
            "Config file (JSON): every setting by its key; flags win over the file, the file over the demo's defaults (docs/configuration.md)."
    )
    var config: String?

    @Option(
        name: .customLong("state-file"),
        help:
            "Where rule counters (declines, shows, budget spend) are saved on SIGTERM and every minute, and loaded at start."
    )
    var stateFile: String?

    @Flag(
        help:
            "Acknowledge ReportOutcome only once its outcome and rule-counter change are synced to a write-ahead journal beside --state-file (group-committed; replayed at start). docs/reliability.md."
    )
    var durableOutcomes = false

    @Option(
        name: .customLong("decision-key-file"),
        help: ArgumentHelp(
            "The 128-bit key decision ids carry a MAC under (32 hex digits, e.g. `openssl rand -hex 16`; chmod 600). Default: the key kept in --state-file, else generated at start (docs/security.md). Replicas that accept each other's outcomes share one.",
            valueName: "file"))
    var decisionKeyFile: String?

    @Option(
        name: .customLong("instance-id"),
        help: ArgumentHelp(
            "For tests and simulations: fix the 12-hex-digit prefix of decision ids (default: random per start), so the same requests in the same order get the same draws on every run (and the same decision ids, MAC included, with a fixed --decision-key-file). Never reuse one across live replicas.",
            valueName: "hex"))
    var instanceID: String?

    @Option(
        name: .customLong("replica-name"),
        help: ArgumentHelp(
            "The `replica` field of every decision and outcome log record (default: the instance id, the 12 hex digits decision ids start with); give each replica of a fleet a stable name (docs/scaling.md).",
            valueName: "name"))
    var replicaName: String?

    @Option(
        name: .customLong("snapshot-dir"),
        help: ArgumentHelp(
            "Watch this directory for snapshot files (*.snap): each new or changed one is validated (signed by a --trusted-key when any is given) and the newest valid one becomes active; refusals are logged with the reason (docs/scaling.md).",
            valueName: "dir"))
    var snapshotDir: String?

    @Option(
        help: "Seconds between two scans of --snapshot-dir (default: \(defaults.snapshotDirectoryIntervalSeconds)).")
    var snapshotDirInterval: Double?

    @Option(
        help:
            "Most records one Catalog/UpsertOffers or Customers/UpsertCustomers stream may carry (default: \(defaults.upsertLimits.maxRecords))."
    )
    var maxUpsertRecords: Int?

    @Option(
        help:
            "Most message bytes one Catalog/UpsertOffers or Customers/UpsertCustomers stream may carry (default: \(defaults.upsertLimits.maxBytes))."
    )
    var maxUpsertBytes: Int?

    @Option(
        help:
            "Most offers one surface may have eligible (a decision scores each); a catalog or upsert past it is refused (default: \(defaults.maxOffersPerSurface))."
    )
    var maxOffersPerSurface: Int?

    @Option(
        help:
            "Most admin uploads (PushSnapshot, UpsertOffers, UpsertCustomers) in flight at once (default: \(defaults.maxAdminUploads))."
    )
    var maxAdminUploads: Int?

    @Option(
        help: "Most bytes all admin uploads in flight may hold together (default: \(defaults.maxAdminUploadBytes)).")
    var maxAdminUploadBytes: Int?

    // Testing only (hidden from --help; docs/bench-command.md): makes the reactor thread that
    // handles every N-th Decide call (counted per reactor thread) sleep this long first, so a test
    // can check that `encore bench` reports server stalls. Off by default; when off, the plain
    // Decide handler is registered and nothing is counted.
    @Option(name: .customLong("debug-stall-ms"), help: .hidden) var debugStallMillis: Double = 0
    @Option(name: .customLong("debug-stall-every"), help: .hidden) var debugStallEvery = 1000
    // Testing only (hidden): with --diagnostics, also serve Diagnostics (Echo, Collect: no state)
    // on the data plane, whose transport the interop suite drives through it.
    @Flag(name: .customLong("debug-diagnostics-on-data-plane"), help: .hidden) var debugDiagnosticsOnDataPlane = false

    func validate() throws {
        if EncoreLogHandler.Format(rawValue: logFormat) == nil {
            throw ValidationError("--log-format must be text or json, got '\(logFormat)'")
        }
        if EncoreLogHandler.level(named: logLevel) == nil {
            throw ValidationError(
                "--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got '\(logLevel)'"
            )
        }
        if !(debugStallMillis >= 0 && debugStallMillis <= 10_000) {
            throw ValidationError("--debug-stall-ms must be 0...10000")
        }
        if debugStallEvery < 1 { throw ValidationError("--debug-stall-every must be positive") }
    }

    /// The flags given, as a settings layer (`ServeSettings`: the keys of docs/configuration.md).
    var flagLayer: ServeSettings.Layer {
        var flags = ServeSettings.Layer.flags()
        flags.set("listen.host", host)
        flags.set("listen.port", port)
        flags.set("listen.tls_cert", tlsCert)
        flags.set("listen.tls_key", tlsKey)
        flags.set("admin.host", adminHost)
        flags.set("admin.port", adminPort)
        flags.set("admin.tls_cert", adminTlsCert)
        flags.set("admin.tls_key", adminTlsKey)
        flags.set("admin.insecure", insecureAdmin)
        flags.set("admin.client_ca", clientCA)
        flags.set("admin.diagnostics", diagnostics)
        flags.set("transport.threads", threads)
        flags.set("transport.max_message_bytes", maxMessageBytes)
        flags.set("transport.max_concurrent_streams", maxConcurrentStreams)
        flags.set("transport.max_header_list_bytes", maxHeaderListBytes)
        flags.set("transport.idle_timeout_seconds", idleTimeout)
        flags.set("transport.max_connections", maxConnections)
        flags.set("transport.evict_idle_after_seconds", evictIdleAfter)
        flags.set("transport.request_header_timeout_seconds", requestHeaderTimeout)
        flags.set("transport.min_request_bytes_per_second", minRequestBytesPerSecond)
        flags.set("transport.request_progress_window_seconds", requestProgressWindow)
        flags.set("transport.response_write_timeout_seconds", responseWriteTimeout)
        flags.set("transport.max_oversized_header_lists", maxOversizedHeaderLists)
        flags.set("transport.max_header_bytes_per_second", maxHeaderBytesPerSecond)
        flags.set("transport.max_connection_buffered_bytes", maxConnectionBufferedBytes)
        flags.set("transport.max_buffered_bytes", maxBufferedBytes)
        flags.set("transport.rapid_reset_limit", rapidResetLimit)
        flags.set("transport.drain_timeout_seconds", drainTimeout)
        flags.set("transport.drain_notice_seconds", drainNotice)
        flags.set("data.demo", demo)
        flags.set("data.catalog", catalog)
        flags.set("data.customers", customers)
        flags.set("data.snapshot", snapshot)
        flags.set("data.trusted_keys", trustedKeys)
        flags.set("data.snapshot_dir", snapshotDir)
        flags.set("data.snapshot_dir_interval_seconds", snapshotDirInterval)
        flags.set("data.max_offers_per_surface", maxOffersPerSurface)
        flags.set("uploads.max_upsert_records", maxUpsertRecords)
        flags.set("uploads.max_upsert_bytes", maxUpsertBytes)
        flags.set("uploads.max_admin_uploads", maxAdminUploads)
        flags.set("uploads.max_admin_upload_bytes", maxAdminUploadBytes)
        flags.set("holdout.share", holdoutShare)
        flags.set("counters.state_file", stateFile)
        flags.set("counters.durable_outcomes", durableOutcomes)
        flags.set("models.require_ope", requireOpe)
        flags.set("logs.dir", logDir)
        flags.set("logs.replica_name", replicaName)
        flags.set("security.decision_key_file", decisionKeyFile)
        flags.set("testing.instance_id", instanceID)
        return flags
    }

    func run() throws {
        Log.bootstrap(
            format: EncoreLogHandler.Format(rawValue: logFormat)!, level: EncoreLogHandler.level(named: logLevel)!)
        // Every connection is a descriptor: take the hard limit, not the default soft 1,024.
        FileDescriptorLimit.raiseSoftLimit()
        var options: EncoreServer.Options
        do {
            let file = try config.map { path throws(SettingError) in try ServeSettings.Layer.file(path) }
            options = try ServeSettings.resolve(file: file, flags: flagLayer, configFile: config)
        } catch {
            Log.error("\(error)")
            throw ExitCode(1)
        }
        options.diagnosticsOnDataPlane = options.diagnostics && debugDiagnosticsOnDataPlane
        if debugStallMillis > 0 {
            options.debugStall = DecisionsService.DebugStall(
                micros: UInt32(debugStallMillis * 1000), every: debugStallEvery)
            Log.warning(
                "debug stall on: Decide sleeps \(debugStallMillis) ms every \(debugStallEvery) calls per reactor thread (testing only)"
            )
        }
        let code: Int32
        do {
            let server = try EncoreServer(options: options)
            code = try server.runUntilSignalled()
        } catch {
            Log.error("\(error)")
            throw ExitCode(1)
        }
        if code != 0 { throw ExitCode(code) }
    }
}
