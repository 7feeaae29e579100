import EncoreCrypto
import EncoreDemo
import EncoreEngine
import EncoreLogging
import EncoreModel
import EncoreStore
import EncoreTransport
import Foundation

/// Wires Encore's services onto the transport and runs the server's lifecycle.
public final class EncoreServer: Sendable {
    /// What `encore serve` configures, resolved by `ServeSettings.resolve` (defaults, demo,
    /// config file, flags). The property initialisers are the defaults.
    public struct Options: Sendable {
        public var transport = GRPCServerConfiguration()
        /// PEM certificate chain and key; both or neither.
        public var tlsCertificateFile: String? = nil
        public var tlsKeyFile: String? = nil
        /// The admin plane's address (Models, Catalog, Customers, Diagnostics); port 0 picks one.
        public var adminHost = "127.0.0.1"
        public var adminPort = 50052
        /// PEM certificate chain and key of the admin plane; nil uses the data plane's pair.
        public var adminTLSCertificateFile: String? = nil
        public var adminTLSKeyFile: String? = nil
        /// Allows a non-loopback admin address without authentication (warned about each minute).
        public var insecureAdmin = false
        /// Bearer tokens of the admin plane (config `admin.tokens`); empty: no authentication.
        public var adminTokens: [AdminToken] = []
        /// mTLS clients (config `admin.clients`): certificate names mapped to roles.
        public var adminClients: [AdminClient] = []
        /// `--client-ca F` (config `admin.client_ca`): PEM bundle client certificates must chain
        /// to, on every TLS listener.
        public var clientCAFile: String? = nil
        /// Config `admin.data_plane_auth`: Decide needs role `decide`, ReportOutcome `report`.
        public var dataPlaneAuth = false
        /// Registers `encore.v1.Diagnostics` on the admin plane (off by default).
        public var diagnostics = false
        /// Testing only: with `diagnostics`, serve Diagnostics on the data plane too.
        public var diagnosticsOnDataPlane = false
        /// Serve the embedded demo (catalog, 100,000 customers, demo snapshot). Implied when no
        /// catalog, customers or snapshot file is given.
        public var demo = false
        public var catalogFile: String? = nil
        public var customersFile: String? = nil
        public var snapshotFile: String? = nil
        /// PEM Ed25519 public keys; when any is given, only snapshots signed by one are accepted.
        public var trustedKeyFiles: [String] = []
        /// Refuse to activate snapshots whose offline DR lower bound is below the active
        /// policy's estimated value (unless forced).
        public var requireOPE = false
        /// The gate's margin (`models.ope_margin`): see `ModelRegistry.opeMargin`.
        public var opeMargin = 0.0
        public var engine = EngineConfiguration()
        /// Directory for decision and outcome logs (nil: no logs).
        public var logDirectory: String? = nil
        /// Log ring size per reactor thread (bytes).
        public var logRingBytes = DecisionLog.defaultRingBytes
        /// `--config F`: the file the settings were resolved from (`ServeSettings`), re-read for
        /// credentials on SIGHUP.
        public var configFile: String? = nil
        /// Where rule counters are saved on SIGTERM (and periodically) and loaded at start
        /// (nil: counters live in memory only).
        public var stateFile: String? = nil
        /// The decision-id MAC key (32 hex digits); nil: the state file's, else generated.
        public var decisionKeyFile: String? = nil
        /// Keys of before a rotation that still verify (config `security.previous_decision_keys`
        /// and `security.previous_decision_key_files`).
        public var previousDecisionKeys: [SipHash24.Key] = []
        public var previousDecisionKeyFiles: [String] = []
        /// Seconds between periodic saves of the rule counters (0: only on SIGTERM).
        public var stateSaveIntervalSeconds = 60.0
        /// `--durable-outcomes`: ReportOutcome is acknowledged only once its outcome is synced to
        /// the write-ahead journal beside the state file (`OutcomeJournal`); needs `stateFile`.
        public var durableOutcomes = false
        /// Unwritten log text kept per file and writer thread while the disk refuses writes.
        public var logBacklogBytes = LogWriter.defaultMaxBacklogBytes
        /// Most offers one surface may have eligible (catalog file and upserts).
        public var maxOffersPerSurface = OfferCatalog.defaultMaxOffersPerSurface
        /// Records and bytes per Catalog/UpsertOffers and Customers/UpsertCustomers stream.
        public var upsertLimits = UpsertLimits()
        /// Admin uploads (PushSnapshot and upserts) in flight at once, and the bytes they may
        /// hold together (`AdminUploadBudget`).
        public var maxAdminUploads = AdminUploadBudget.defaultMaxUploads
        public var maxAdminUploadBytes = AdminUploadBudget.defaultMaxBytes
        /// The `replica` field of every log record (`--replica-name`); nil: the instance id (the
        /// 12 hex digits decision ids start with).
        public var replicaName: String? = nil
        /// Seconds between SIGTERM and the drain during which health says NOT_SERVING but every
        /// call and new connection is still served, so a load balancer's health check takes this
        /// replica out first (`--drain-notice`; 0: drain at once).
        public var drainNoticeSeconds = 0.0
        /// `--snapshot-dir D`: snapshots to pick up from a directory (`SnapshotDirectoryWatcher`).
        public var snapshotDirectory: String? = nil
        public var snapshotDirectoryIntervalSeconds = 2.0
        /// Testing only: an artificial Decide stall (`encore serve --debug-stall-ms`); nil is off.
        public var debugStall: DecisionsService.DebugStall? = nil

        public init() {}

        /// True when the embedded demo is served.
        public var servesDemo: Bool { demo || (catalogFile == nil && customersFile == nil && snapshotFile == nil) }
    }

    public let options: Options
    /// The data plane: Decisions and Health.
    public let server: GRPCServer
    /// The admin plane: Models, Catalog, Customers, Diagnostics and Health (one reactor thread).
    public let adminServer: GRPCServer
    public let engine: DecisionEngine
    public let registry: ModelRegistry
    /// The data plane's Decisions service (its counters, e.g. `customerHeaderMismatches`).
    public let decisions: DecisionsService
    public let logWriter: LogWriter?
    /// `--snapshot-dir`'s watcher (nil without one).
    public let snapshotWatcher: SnapshotDirectoryWatcher?
    /// Saves and restores the rule counters (nil without a state file).
    let ruleState: RuleStatePersistence?
    /// The write-ahead journal of `--durable-outcomes` (nil otherwise).
    let journal: OutcomeJournal?
    /// Each plane's sockets, bound at init (before the data loads), listening from `run`.
    let listeners: GRPCListeners
    let adminListeners: GRPCListeners
    /// Bearer tokens and role checks of the admin plane.
    public let authorizer: AdminAuthorizer
    /// The audit log of admin calls.
    public let audit: AdminAudit
    /// The data plane's and the admin plane's health (announced NOT_SERVING by `--drain-notice`).
    let serving: ServingState
    let adminServing: ServingState
    /// Every counter of the server, for `/metrics` and the status page (docs/operations.md).
    public let metrics: ServerMetrics
    /// The admin plane's HTTP/1.1 server (`/metrics`, `/status` for Prometheus and browsers).
    let http1: AdminHTTP1Server

    /// Loads the data, builds the routes and the transport. Throws with a message naming the
    /// file and problem for bad TLS files, catalogs, customer files, snapshots or keys.
    public init(options: Options) throws {
        var options = options
        if let ca = options.clientCAFile { try checkReadable(ca, "--client-ca") }
        if let cert = options.tlsCertificateFile, let key = options.tlsKeyFile {
            options.transport.tls = try TLSContext(
                certificateChainFile: cert, privateKeyFile: key, clientCAFile: options.clientCAFile)
        }
        var admin = options.transport
        admin.host = options.adminHost
        admin.port = options.adminPort
        admin.threads = 1
        if let cert = options.adminTLSCertificateFile, let key = options.adminTLSKeyFile {
            admin.tls = try TLSContext(
                certificateChainFile: cert, privateKeyFile: key, clientCAFile: options.clientCAFile)
        }
        let trustedKeys = try options.trustedKeyFiles.map { path in
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw SetupError("--trusted-key \(path): cannot read the file")
            }
            do { return try Ed25519.PublicKey(pem: text) } catch {
                throw SetupError("--trusted-key \(path): \(error)")
            }
        }
        try EncoreServer.checkAdminExposure(options)
        let authorizer = AdminAuthorizer(
            tokens: options.adminTokens, clients: options.adminClients, dataPlaneAuth: options.dataPlaneAuth)
        // Always installed on the admin plane (a SIGHUP reload may add the first token); on the
        // data plane only when it authenticates, so Decide pays nothing otherwise.
        admin.credentials = authorizer
        if options.dataPlaneAuth { options.transport.credentials = authorizer }
        let adminHTTP = AdminHTTP(authorizer: authorizer)
        let http1 = AdminHTTP1Server(endpoints: adminHTTP)
        self.http1 = http1
        admin.http1Handoff = { fd in http1.adopt(fd) }
        // Everything an operator can get wrong is checked before the data loads (a customer file
        // can take seconds): the address is bound (not yet listening), files are opened, the log
        // directory is created.
        listeners = try GRPCListeners.bind(options.transport)
        do { adminListeners = try GRPCListeners.bind(admin) } catch {
            throw SetupError("admin plane (--admin-host/--admin-port): \(error)")
        }
        for (flag, path) in [
            ("--catalog", options.catalogFile), ("--customers", options.customersFile),
            ("--snapshot", options.snapshotFile),
        ] {
            if let path { try checkReadable(path, flag) }
        }
        if let stateFile = options.stateFile { try checkStateFileLocation(stateFile) }
        let keys = try DecisionKeys.resolve(options)
        options.engine.decisionKey = keys.current
        options.engine.previousDecisionKeys = keys.previous
        // With --durable-outcomes the journal thread has a ring of its own, after the reactors'.
        let log = options.logDirectory.map { _ in
            DecisionLog(
                threads: options.transport.threads + (options.durableOutcomes ? 1 : 0), ringBytes: options.logRingBytes)
        }
        // The instance id is drawn here rather than by the engine so the log records can name it.
        let fixedInstanceID = options.engine.instanceID != nil
        if !fixedInstanceID {
            var generator = SystemRandomNumberGenerator()
            options.engine.instanceID = generator.next() & EngineConfiguration.maxInstanceID
        }
        let instanceHex = String(options.engine.instanceID!, radix: 16)
        let replica = options.replicaName ?? String(repeating: "0", count: 12 - instanceHex.count) + instanceHex
        logWriter = try options.logDirectory.map {
            try LogWriter(
                directory: $0, log: log!, maxBacklogBytes: options.logBacklogBytes,
                syncOutcomes: options.durableOutcomes, replica: replica)
        }
        let data = try ServedData.load(options, trustedKeys: trustedKeys)
        if let problem = data.catalog.perSurfaceLimitProblem(maxOffersPerSurface: options.maxOffersPerSurface) {
            throw SetupError("--catalog \(options.catalogFile ?? "<demo>"): \(problem)")
        }
        for offer in options.engine.rules.budgets.keys where data.catalog.index(of: offer) < 0 {
            throw SetupError("config: 'rules.budgets.\(offer)': no offer with that id in the catalog")
        }
        self.options = options
        let customerTable = CustomerTable(base: data.customers)
        let model = try ActiveModel(
            snapshot: data.snapshot?.snapshot, catalog: data.catalog, customers: customerTable.current,
            rules: options.engine.rules)
        let engine = DecisionEngine(configuration: options.engine, model: model, log: log)
        self.engine = engine
        let interval = options.stateSaveIntervalSeconds
        ruleState = try options.stateFile.map { path in
            try RuleStatePersistence(path: path, engine: engine, intervalSeconds: interval, decisionKey: keys.stateKey)
        }
        let repeats = OutcomeRepeats()
        // Segments left by a run with --durable-outcomes are replayed even if this one runs
        // without it, so switching the mode off never forgets an acknowledged outcome.
        if let ruleState, options.durableOutcomes || !OutcomeJournal.segments(ruleState.path).isEmpty {
            let journal = OutcomeJournal(
                statePath: ruleState.path, engine: engine, repeats: repeats, log: log,
                ringIndex: options.transport.threads)
            let replayed = try journal.replay(
                appliedThrough: ruleState.loadedJournalSequence, logDirectory: options.logDirectory)
            ruleState.journal = journal
            journal.logWriter = logWriter
            // The replayed outcomes are in the state file before the journal forgets them.
            try ruleState.saveNow()
            journal.finishReplay()
            Log.info(
                "durable outcomes: replayed \(replayed.records) write-ahead records from \(replayed.segments) segment files (\(replayed.appliedToCounters) applied to the rule counters, \(replayed.relogged) outcome lines the logs lacked written)"
                    + (options.durableOutcomes
                        ? "; ReportOutcome is acknowledged once its outcome is synced to \(ruleState.path).wal-*"
                        : "; --durable-outcomes is off: outcomes are acknowledged at once from now on")
            )
            if options.durableOutcomes {
                self.journal = journal
            } else {
                ruleState.journal = nil
                self.journal = nil
            }
        } else {
            journal = nil
        }
        // A generated key is on disk before the first id is issued under it, so a crash does not
        // orphan the outcomes of the ids this process hands out.
        if case .generatedIntoStateFile = keys.source { try ruleState?.saveNow() }
        Log.info(keys.description)
        registry = ModelRegistry(
            engine: engine, customers: customerTable, trustedKeys: trustedKeys, initial: data.snapshot,
            requireOPE: options.requireOPE, opeMargin: options.opeMargin,
            maxOffersPerSurface: options.maxOffersPerSurface)

        let registry = self.registry
        snapshotWatcher = try options.snapshotDirectory.map {
            try SnapshotDirectoryWatcher(
                directory: $0, intervalSeconds: options.snapshotDirectoryIntervalSeconds, registry: registry)
        }

        // One serving state per plane: each server's shutdown drains its own reactors (and its
        // health turns NOT_SERVING).
        let serving = ServingState()
        let adminServing = ServingState()
        self.serving = serving
        self.adminServing = adminServing
        var adminRouter = GRPCRouter()
        HealthService(serving: adminServing).register(in: &adminRouter)
        let uploads = AdminUploadBudget(maxUploads: options.maxAdminUploads, maxBytes: options.maxAdminUploadBytes)
        ModelsService(registry: registry, authorizer: authorizer, uploads: uploads).register(in: &adminRouter)
        CatalogService(registry: registry, limits: options.upsertLimits, uploads: uploads).register(in: &adminRouter)
        CustomersService(registry: registry, limits: options.upsertLimits, uploads: uploads).register(in: &adminRouter)
        if options.diagnostics { DiagnosticsService().register(in: &adminRouter) }
        let health = "grpc.health.v1.Health"
        let diagnostics = options.diagnostics ? ["encore.v1.Diagnostics"] : []
        ReflectionService(
            services: [health, "encore.v1.Models", "encore.v1.Catalog", "encore.v1.Customers"] + diagnostics
        )
        .register(in: &adminRouter)
        adminHTTP.register(in: &adminRouter)
        var router = GRPCRouter()
        HealthService(serving: serving).register(in: &router)
        decisions = DecisionsService(
            engine: engine, threads: options.transport.threads, debugStall: options.debugStall,
            outcomes: OutcomeRecorder(
                engine: engine, repeats: repeats, journal: journal, threads: options.transport.threads)
        )
        decisions.register(in: &router)
        if options.diagnosticsOnDataPlane { DiagnosticsService().register(in: &router) }
        // Registered before the admin paths are refused here: the data plane has its own.
        ReflectionService(
            services: [health, "encore.v1.Decisions"] + (options.diagnosticsOnDataPlane ? diagnostics : [])
        ).register(in: &router)
        let adminPort = adminListeners.port
        let adminAddress = EncoreServer.hostPort(admin.host, adminPort)
        router.refuse(pathsOf: adminRouter) { path in
            GRPCStatus(
                .permissionDenied,
                "\(path.dropFirst()) is an admin method: it is served on the admin plane at \(adminAddress) (port \(adminPort)), not on this data plane"
            )
        }
        server = GRPCServer(
            configuration: options.transport, router: authorizer.guardingDataPlane(router), serving: serving)
        let audit = AdminAudit(
            log: try AuditLog(directory: options.logDirectory, replica: replica), authorizer: authorizer)
        adminServer = GRPCServer(
            configuration: admin, router: audit.recording(authorizer.guarding(adminRouter)), serving: adminServing)
        self.audit = audit
        self.authorizer = authorizer
        metrics = ServerMetrics(
            dataServer: server, adminServer: adminServer, decisions: decisions, engine: engine, registry: registry,
            logWriter: logWriter, authorizer: authorizer)
        adminHTTP.attach(metrics)
        let active = engine.active.value
        Log.info(
            "serving \(options.servesDemo ? "the embedded demo: " : "")\(active.catalog.count) offers, \(active.customers.customerCount) customers x \(active.customers.featureNames.count) features, model \(active.version) (\(ModelRegistry.describe(active.exploration)))"
        )
        if fixedInstanceID {
            let hex = String(engine.instanceID, radix: 16)
            Log.warning(
                "decision ids start with the fixed instance id \(String(repeating: "0", count: 12 - hex.count) + hex) (--instance-id: for tests and simulations only)"
            )
        }
    }

    /// Serves until SIGTERM or SIGINT, then drains. Returns the process exit code (0 after a
    /// clean or deadline-bounded drain).
    public func runUntilSignalled() throws -> Int32 {
        SignalWaiter.blockTerminationSignals()
        logWriter?.start()
        journal?.start()
        ruleState?.start()
        if let snapshotWatcher {
            Log.info(
                "snapshot dir: watching \(snapshotWatcher.directory) every \(snapshotWatcher.intervalSeconds) s\(registry.trustedKeys.isEmpty ? "" : " (signed snapshots only)")"
            )
            snapshotWatcher.start()
        }
        let admin = adminServer.configuration
        let adminPort = try adminServer.start(listeners: adminListeners)
        // Not "listening on": tools and tests read that line for the data plane's port.
        Log.notice(
            "admin plane at \(EncoreServer.hostPort(admin.host, adminPort)) (\(admin.tls == nil ? "h2c" : "tls"): Models, Catalog, Customers\(options.diagnostics ? ", Diagnostics" : ""), Health, reflection; GET /metrics, /status over \(admin.tls == nil ? "HTTP/1.1 and h2c" : "HTTP/2"))",
            ["plane": "admin", "host": "\(admin.host)", "port": "\(adminPort)"]
        )
        let sampler = metrics.startSampling()
        let insecureWarning =
            options.insecureAdmin && options.adminTokens.isEmpty && !EncoreServer.isLoopback(admin.host)
            ? startInsecureWarning() : nil
        if authorizer.enabled {
            Log.info(
                "admin plane: \(authorizer.credentials.summary)\(options.dataPlaneAuth ? "; data plane too (Decide: role decide, ReportOutcome: role report)" : "")"
            )
        }
        let port: Int
        do { port = try server.start(listeners: listeners) } catch {
            adminServer.stopNow()
            adminServer.waitUntilStopped()
            sampler.cancel()
            http1.shutdown()
            throw error
        }
        let transport = options.transport
        let host = transport.host.contains(":") ? "[\(transport.host)]" : transport.host
        Log.notice(
            "listening on \(host):\(port) (\(transport.tls == nil ? "h2c" : "tls"), \(transport.threads) threads)",
            ["plane": "data", "host": "\(transport.host)", "port": "\(port)"])
        let signal = SignalWaiter.waitForTermination(onHangUp: { [self] in reloadCredentials() })
        if options.drainNoticeSeconds > 0 {
            serving.announceDrain()
            adminServing.announceDrain()
            Log.notice(
                "\(SignalWaiter.name(signal)) received: health NOT_SERVING, still serving for \(options.drainNoticeSeconds) s (--drain-notice) so load balancers take this replica out, then draining"
            )
            usleep(UInt32(min(options.drainNoticeSeconds, 3600) * 1_000_000))
        }
        Log.notice(
            "\(SignalWaiter.name(signal)) received: draining (health NOT_SERVING, no new connections, up to \(transport.drainTimeoutNanos / 1_000_000_000) s for in-flight calls)"
        )
        snapshotWatcher?.stop()
        server.shutdown()
        adminServer.shutdown()
        let clean = server.waitUntilStopped()
        _ = adminServer.waitUntilStopped()
        sampler.cancel()
        http1.shutdown()
        insecureWarning?.cancel()
        // Every acknowledged outcome is in the journal and the counters before the final save.
        journal?.stop()
        let stateFailure = ruleState?.stop()
        if let logWriter {
            logWriter.stop()
            Log.info(logWriter.summary)
        }
        if let journal {
            Log.info(
                "durable outcomes: \(journal.journaledOutcomes.load(ordering: .relaxed)) outcomes journaled, \(journal.failedOutcomes.load(ordering: .relaxed)) refused UNAVAILABLE (the journal could not be written)"
            )
        }
        Log.info(
            "decisions: \(engine.unknownCandidatesIgnored.load(ordering: .relaxed)) unknown candidate_offer_ids ignored since start, \(engine.nonFiniteScoreFallbacks.load(ordering: .relaxed)) uniform fallbacks for non-finite scores; rule counters: \(engine.counters.evictions.load(ordering: .relaxed)) customers evicted, \(engine.unattributedOutcomes.load(ordering: .relaxed)) outcomes with a foreign decision id; \(engine.unverifiedOutcomes.load(ordering: .relaxed)) outcomes refused (decision id did not verify); \(decisions.customerHeaderMismatches) Decide calls whose x-encore-customer header disagreed with customer_id"
        )
        if let stateFailure, let ruleState {
            Log.error(
                "rule state: the final save to \(ruleState.path) failed (\(stateFailure)): "
                    + (journal == nil
                        ? "the declines, shows and budget spend acknowledged since the last successful save are lost"
                        : "the outcomes since the last successful save are kept in the write-ahead journal \(ruleState.path).wal-* and replayed at the next start")
                    + "; exiting with status 1")
            return 1
        }
        Log.notice(
            clean ? "stopped: every in-flight call completed" : "stopped: drain deadline cut off in-flight calls")
        return 0
    }
}

extension EncoreServer {
    /// `host:port`, with an IPv6 literal in brackets.
    static func hostPort(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// True when every address `host` resolves to is a loopback address (127.0.0.0/8, ::1).
    static func isLoopback(_ host: String) -> Bool { PeerAddress.isLoopback(host: host) }

    /// Safe default: without authentication the admin plane (which can change what Encore
    /// serves) may only listen on loopback, unless `--insecure-admin` says otherwise.
    static func checkAdminExposure(_ options: Options) throws {
        guard options.adminTokens.isEmpty, options.adminClients.isEmpty, !isLoopback(options.adminHost),
            !options.insecureAdmin
        else { return }
        throw SetupError(
            "--admin-host \(options.adminHost) is not a loopback address, and the admin plane (Models, Catalog, Customers) has no authentication configured: anyone who reaches it could push models and change the catalog. Configure bearer tokens in the --config file ({\"admin\": {\"tokens\": [{\"name\": \"ci\", \"sha256\": \"<sha256 of the token>\", \"roles\": [\"models.push\", \"models.activate\", \"read\"]}]}}, see docs/security.md), keep the admin plane on 127.0.0.1 (the default), or pass --insecure-admin to serve it unauthenticated (a warning is logged each minute)"
        )
    }

    /// SIGHUP: re-reads the `--config` file's `admin.tokens` and `admin.clients`, validates them
    /// and swaps them in atomically; a file that does not parse (or would remove every
    /// credential) keeps the old set, and the log says why.
    func reloadCredentials() {
        guard let path = options.configFile else {
            Log.warning("SIGHUP: no --config file to reload credentials from; nothing changed")
            return
        }
        do {
            // The same reader and checks as at start; only the credentials are taken.
            var reread = EncoreServer.Options()
            try ServeSettings.Layer.file(path).apply(to: &reread)
            let next = AdminAuthorizer.Credentials(tokens: reread.adminTokens, clients: reread.adminClients)
            if !next.clients.isEmpty && options.clientCAFile == nil {
                throw SetupError("'admin.clients' needs --client-ca, which this server was started without")
            }
            try authorizer.reload(next)
            Log.info("SIGHUP: credentials reloaded from \(path) (\(next.isEmpty ? "none" : next.summary))")
        } catch {
            Log.error("SIGHUP: credentials not reloaded, the previous ones stay in force: \(error)")
        }
    }

    /// Logs the insecure-admin warning now and every minute until the timer is cancelled.
    func startInsecureWarning() -> DispatchSourceTimer {
        let address = EncoreServer.hostPort(adminServer.configuration.host, adminServer.port)
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        timer.schedule(deadline: .now(), repeating: .seconds(60))
        timer.setEventHandler {
            Log.warning(
                "--insecure-admin: the admin plane at \(address) accepts unauthenticated calls from any address that can reach it (anyone can push models and change the catalog)"
            )
        }
        timer.resume()
        return timer
    }
}

/// The catalog, customers and initial snapshot a server starts with.
struct ServedData {
    var catalog: OfferCatalog
    var customers: CustomerStore
    var snapshot: ModelRegistry.Loaded?

    /// The data `options` name (the settings resolver has checked that they name either the demo
    /// or a catalog); `trustedKeys` verify the initial snapshot's signature.
    static func load(_ options: EncoreServer.Options, trustedKeys: [Ed25519.PublicKey]) throws -> ServedData {
        if options.servesDemo {
            let catalog = try OfferCatalog(jsonl: DemoCatalog.jsonl, source: "<embedded demo catalog>")
            let customers = try DemoCustomers.store()
            let snapshot = try DemoModel.snapshot(seed: DemoModel.defaultSeed)
            let bytes = try SnapshotFile.write(snapshot)
            let (read, metadata) = try SnapshotFile.read(bytes)
            return ServedData(
                catalog: catalog, customers: customers,
                snapshot: .init(snapshot: read, metadata: metadata, loadedAtMillis: ModelRegistry.nowMillis()))
        }
        let catalog = try OfferCatalog(contentsOf: options.catalogFile!)
        let customers =
            try options.customersFile.map { try CustomerStore.load(contentsOf: $0) } ?? CustomerStore.empty()
        var snapshot: ModelRegistry.Loaded? = nil
        if let path = options.snapshotFile {
            let (read, metadata) = try SnapshotFile.read(path: path, trustedKeys: trustedKeys)
            snapshot = .init(snapshot: read, metadata: metadata, loadedAtMillis: ModelRegistry.nowMillis())
        }
        return ServedData(catalog: catalog, customers: customers, snapshot: snapshot)
    }
}

/// Throws naming `flag`, the path and the OS reason unless `path` is a readable regular file.
func checkReadable(_ path: String, _ flag: String) throws {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SetupError("\(flag) \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
        throw SetupError("\(flag) \(path): not a regular file")
    }
}

/// Throws unless the state file's directory exists (the file itself is created at the first save).
func checkStateFileLocation(_ path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    var isDirectory: ObjCBool = false
    let dir = directory.isEmpty ? "." : directory
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw SetupError("--state-file \(path): directory \(dir) does not exist")
    }
}
