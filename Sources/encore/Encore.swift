import ArgumentParser
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

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "TCP port (0 picks a free port, printed on stderr).")
    var port = 50051

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain file; enables TLS (ALPN h2).")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key file for --tls-cert.")
    var tlsKey: String?

    @Option(help: "Address of the admin plane (Models, Catalog, Customers, Diagnostics).")
    var adminHost = "127.0.0.1"

    @Option(help: "Admin plane TCP port (0 picks a free port, printed on stderr).")
    var adminPort = 50052

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

    @Option(help: "Largest request message in bytes.")
    var maxMessageBytes = 4 << 20

    @Option(help: "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection.")
    var maxConcurrentStreams = 128

    @Option(help: "HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE in bytes.")
    var maxHeaderListBytes = 16 << 10

    @Option(help: "Seconds a connection with no open stream may stay idle before GOAWAY.")
    var idleTimeout: Double = 300

    @Option(
        help:
            "Open connections across all threads; at the limit a new connection takes the place of the one idle the longest (if idle for --evict-idle-after), else it is closed at once."
    )
    var maxConnections = 10_000

    @Option(
        help: "Seconds a connection must have sent nothing before a new one may take its place at --max-connections.")
    var evictIdleAfter: Double = 1

    @Option(help: "Seconds a stream's request headers may take to arrive before RST_STREAM (0: no limit).")
    var requestHeaderTimeout: Double = 10

    @Option(
        help:
            "Bytes per second a request body must arrive at (measured over --request-progress-window) while the client still owes it; slower: RESOURCE_EXHAUSTED (0: no limit)."
    )
    var minRequestBytesPerSecond = 32 << 10

    @Option(help: "Seconds over which --min-request-bytes-per-second is measured (at least 1).")
    var requestProgressWindow: Double = 5

    @Option(
        help:
            "Seconds a response may make no progress toward the client (zero flow-control window, client not reading) before its stream is reset, or its connection closed when the socket takes nothing (0: no limit)."
    )
    var responseWriteTimeout: Double = 30

    @Option(
        help:
            "In-flight streams a connection may reset per second (once resets also exceed half of its new streams; ten times this whatever the ratio, cancels after a deadline included) before GOAWAY ENHANCE_YOUR_CALM."
    )
    var rapidResetLimit = 100

    @Option(
        help:
            "Requests with a header list over --max-header-list-bytes a connection may send per second before GOAWAY ENHANCE_YOUR_CALM (HPACK bombs)."
    )
    var maxOversizedHeaderLists = 3

    @Option(help: "Seconds in-flight calls may take to finish after SIGTERM/SIGINT.")
    var drainTimeout: Double = 10

    @Option(
        help:
            "Seconds after SIGTERM during which health reports NOT_SERVING while everything is still served (new connections too), so a load balancer's health check takes this replica out before the drain closes its listener (docs/scaling.md)."
    )
    var drainNotice: Double = 0

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

    @Option(help: "Share of customers held out (0...1); the demo defaults to 0.05.")
    var holdoutShare: Double?

    @Option(help: "Config file (JSON): rules, holdout, counters, data and log settings (docs/configuration.md).")
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

    @Option(help: "Seconds between two scans of --snapshot-dir.")
    var snapshotDirInterval: Double = 2
    @Option(help: "Most records one Catalog/UpsertOffers or Customers/UpsertCustomers stream may carry.")
    var maxUpsertRecords = UpsertLimits().maxRecords

    @Option(help: "Most message bytes one Catalog/UpsertOffers or Customers/UpsertCustomers stream may carry.")
    var maxUpsertBytes = UpsertLimits().maxBytes

    @Option(
        help:
            "Most offers one surface may have eligible (a decision scores each); a catalog or upsert past it is refused."
    )
    var maxOffersPerSurface = 1_000

    @Option(help: "Most admin uploads (PushSnapshot, UpsertOffers, UpsertCustomers) in flight at once.")
    var maxAdminUploads = AdminUploadBudget.defaultMaxUploads

    @Option(help: "Most bytes all admin uploads in flight may hold together.")
    var maxAdminUploadBytes = AdminUploadBudget.defaultMaxBytes

    // Testing only (hidden from --help; docs/bench-command.md): makes the reactor thread that
    // handles every N-th Decide call (counted per reactor thread) sleep this long first, so a test
    // can check that `encore bench` reports server stalls. Off by default; when off, the plain
    // Decide handler is registered and nothing is counted.
    @Option(name: .customLong("debug-stall-ms"), help: .hidden) var debugStallMillis: Double = 0
    @Option(name: .customLong("debug-stall-every"), help: .hidden) var debugStallEvery = 1000
    // Testing only (hidden): with --diagnostics, also serve Diagnostics (Echo, Collect: no state)
    // on the data plane, whose transport the interop suite drives through it.
    @Flag(name: .customLong("debug-diagnostics-on-data-plane"), help: .hidden) var debugDiagnosticsOnDataPlane = false

    var upsertLimits: UpsertLimits {
        var limits = UpsertLimits()
        limits.maxRecords = maxUpsertRecords
        limits.maxBytes = maxUpsertBytes
        return limits
    }

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
        if let instanceID, Self.parseInstanceID(instanceID) == nil {
            throw ValidationError("--instance-id must be 1 to 12 hex digits (0-9, a-f), got '\(instanceID)'")
        }
        if let replicaName, replicaName.isEmpty || replicaName.utf8.count > 128 {
            throw ValidationError("--replica-name must be 1 to 128 bytes")
        }
        if !(snapshotDirInterval > 0 && snapshotDirInterval.isFinite && snapshotDirInterval <= 3600) {
            throw ValidationError("--snapshot-dir-interval must be a number of seconds in (0, 3600]")
        }
        if (tlsCert == nil) != (tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key must be given together")
        }
        if (adminTlsCert == nil) != (adminTlsKey == nil) {
            throw ValidationError("--admin-tls-cert and --admin-tls-key must be given together")
        }
        if !(idleTimeout > 0 && idleTimeout.isFinite) {
            throw ValidationError("--idle-timeout must be a positive number of seconds")
        }
        if !(evictIdleAfter >= 0 && evictIdleAfter <= 86400) {
            throw ValidationError("--evict-idle-after must be 0 to 86400 seconds")
        }
        if !(requestHeaderTimeout >= 0 && requestHeaderTimeout <= 86400) {
            throw ValidationError("--request-header-timeout must be 0 to 86400 seconds")
        }
        if !(responseWriteTimeout >= 0 && responseWriteTimeout <= 86400) {
            throw ValidationError("--response-write-timeout must be 0 to 86400 seconds")
        }
        if maxOversizedHeaderLists < 0 { throw ValidationError("--max-oversized-header-lists must be 0 or more") }
        if minRequestBytesPerSecond < 0 {
            throw ValidationError("--min-request-bytes-per-second must be 0 or more")
        }
        if !(requestProgressWindow >= 1 && requestProgressWindow <= 3600) {
            throw ValidationError("--request-progress-window must be 1 to 3600 seconds")
        }
        if !(drainNotice >= 0 && drainNotice <= 600) {
            throw ValidationError("--drain-notice must be 0 to 600 seconds")
        }
        if !(drainTimeout >= 0 && drainTimeout.isFinite) {
            throw ValidationError("--drain-timeout must be zero or more seconds")
        }
        if let problem = upsertLimits.validationError() { throw ValidationError(problem) }
        if maxOffersPerSurface < 1 { throw ValidationError("--max-offers-per-surface must be positive") }
        if let problem = AdminUploadBudget.validationError(maxUploads: maxAdminUploads, maxBytes: maxAdminUploadBytes) {
            throw ValidationError(problem)
        }
    }

    /// `text` as a decision-id prefix: 1 to 12 hex digits, or nil.
    static func parseInstanceID(_ text: String) -> UInt64? {
        let hexDigits = Set("0123456789abcdefABCDEF".utf8)
        guard (1...12).contains(text.utf8.count), text.utf8.allSatisfy(hexDigits.contains) else { return nil }
        return UInt64(text, radix: 16)
    }

    func run() throws {
        Log.bootstrap(
            format: EncoreLogHandler.Format(rawValue: logFormat)!, level: EncoreLogHandler.level(named: logLevel)!)
        // Every connection is a descriptor: take the hard limit, not the default soft 1,024.
        FileDescriptorLimit.raiseSoftLimit()
        var options = EncoreServer.Options()
        options.transport.host = host
        options.transport.port = port
        if let threads { options.transport.threads = threads }
        options.transport.maxMessageBytes = maxMessageBytes
        options.transport.maxConcurrentStreams = maxConcurrentStreams
        options.transport.maxHeaderListBytes = maxHeaderListBytes
        options.transport.idleTimeoutNanos = UInt64(idleTimeout * 1e9)
        options.transport.maxConnections = maxConnections
        options.transport.evictionMinIdleNanos = UInt64(evictIdleAfter * 1e9)
        options.transport.requestHeaderTimeoutNanos = UInt64(requestHeaderTimeout * 1e9)
        options.transport.minRequestBytesPerSecond = minRequestBytesPerSecond
        options.transport.requestProgressWindowNanos = UInt64(requestProgressWindow * 1e9)
        options.transport.responseWriteTimeoutNanos = UInt64(responseWriteTimeout * 1e9)
        options.transport.rapidResetLimitPerSecond = rapidResetLimit
        options.transport.maxOversizedHeaderListsPerSecond = maxOversizedHeaderLists
        options.transport.drainTimeoutNanos = UInt64(drainTimeout * 1e9)
        options.tlsCertificateFile = tlsCert
        options.tlsKeyFile = tlsKey
        options.adminHost = adminHost
        options.adminPort = adminPort
        options.adminTLSCertificateFile = adminTlsCert
        options.adminTLSKeyFile = adminTlsKey
        options.insecureAdmin = insecureAdmin
        options.clientCAFile = clientCA
        options.diagnostics = diagnostics
        options.diagnosticsOnDataPlane = diagnostics && debugDiagnosticsOnDataPlane
        options.demo = demo
        options.catalogFile = catalog
        options.customersFile = customers
        options.snapshotFile = snapshot
        options.trustedKeyFiles = trustedKeys
        options.logDirectory = logDir
        options.requireOPE = requireOpe
        options.configFile = config
        options.stateFile = stateFile
        options.durableOutcomes = durableOutcomes
        options.maxOffersPerSurface = maxOffersPerSurface
        options.decisionKeyFile = decisionKeyFile
        options.replicaName = replicaName
        options.drainNoticeSeconds = drainNotice
        options.snapshotDirectory = snapshotDir
        options.snapshotDirectoryIntervalSeconds = snapshotDirInterval
        options.upsertLimits = upsertLimits
        options.maxAdminUploads = maxAdminUploads
        options.maxAdminUploadBytes = maxAdminUploadBytes
        if let holdoutShare {
            options.engine.holdoutShare = holdoutShare
            options.holdoutShareSet = true
        }
        if let instanceID {
            options.engine.instanceID = Self.parseInstanceID(instanceID)
        }
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
