import EncoreCrypto
import EncoreEngine
import EncoreModel
import EncoreStore
import EncoreTransport
import Foundation

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
        public var engine = EngineConfiguration()
        /// Directory for decision and outcome logs (nil: no logs).
        public var logDirectory: String? = nil
        /// Log ring size per reactor thread (bytes).
        public var logRingBytes = DecisionLog.defaultRingBytes
        /// Whether `engine.holdoutShare` was set explicitly (the demo defaults to 5%).
        public var holdoutShareSet = false
        /// `--config F`: rules, holdout, counters, data and log settings (ServeConfig).
        public var configFile: String? = nil
        /// Where rule counters are saved on SIGTERM (and periodically) and loaded at start
        /// (nil: counters live in memory only).
        public var stateFile: String? = nil
        /// Seconds between periodic saves of the rule counters (0: only on SIGTERM).
        public var stateSaveIntervalSeconds = 60.0
        /// Records and bytes per Catalog/UpsertOffers and Customers/UpsertCustomers stream.
        public var upsertLimits = UpsertLimits()
        /// Admin uploads (PushSnapshot and upserts) in flight at once, and the bytes they may
        /// hold together (`AdminUploadBudget`).
        public var maxAdminUploads = AdminUploadBudget.defaultMaxUploads
        public var maxAdminUploadBytes = AdminUploadBudget.defaultMaxBytes
        /// Testing only: an artificial Decide stall (`encore serve --debug-stall-ms`); nil is off.
        public var debugStall: DecisionsService.DebugStall? = nil

        public init() {}

        /// True when the embedded demo is served.
        public var servesDemo: Bool { demo || (catalogFile == nil && customersFile == nil && snapshotFile == nil) }
    }

    public let options: Options
    public let server: GRPCServer
    public let engine: DecisionEngine
    public let registry: ModelRegistry
    public let logWriter: LogWriter?
    /// Saves and restores the rule counters (nil without a state file).
    let ruleState: RuleStatePersistence?

    /// Loads the data, builds the routes and the transport. Throws with a message naming the
    /// file and problem for bad TLS files, catalogs, customer files, snapshots or keys.
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
        let trustedKeys = try options.trustedKeyFiles.map { path in
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw TransportError("cannot read trusted key file \(path)")
            }
            do { return try Ed25519.PublicKey(pem: text) } catch {
                throw TransportError("trusted key \(path): \(error)")
            }
        }
        let userConfig = try options.configFile.map { try ServeConfig(contentsOf: $0) } ?? ServeConfig()
        var probe = options
        probe.apply(userConfig)
        let config =
            probe.servesDemo
            ? userConfig.overlaying(try ServeConfig(json: DemoConfig.json, source: "<demo>")) : userConfig
        options.apply(config)
        let data = try ServedData.load(options)
        if let problem = options.engine.validationError() { throw TransportError(problem) }
        for offer in options.engine.rules.budgets.keys where data.catalog.index(of: offer) < 0 {
            throw TransportError("config: 'rules.budgets.\(offer)': no offer with that id in the catalog")
        }
        self.options = options
        let customerTable = CustomerTable(base: data.customers)
        let model = try ActiveModel(
            snapshot: data.snapshot?.snapshot, catalog: data.catalog, customers: customerTable.current,
            rules: options.engine.rules)
        let log = options.logDirectory.map { _ in
            DecisionLog(threads: options.transport.threads, ringBytes: options.logRingBytes)
        }
        logWriter = try options.logDirectory.map { try LogWriter(directory: $0, log: log!) }
        let engine = DecisionEngine(configuration: options.engine, model: model, log: log)
        self.engine = engine
        let interval = options.stateSaveIntervalSeconds
        ruleState = try options.stateFile.map { path in
            try RuleStatePersistence(path: path, engine: engine, intervalSeconds: interval)
        }
        registry = ModelRegistry(
            engine: engine, customers: customerTable, trustedKeys: trustedKeys, initial: data.snapshot,
            requireOPE: options.requireOPE)

        let serving = ServingState()
        var router = GRPCRouter()
        HealthService(serving: serving).register(in: &router)
        DecisionsService(engine: engine, threads: options.transport.threads, debugStall: options.debugStall)
            .register(in: &router)
        let uploads = AdminUploadBudget(maxUploads: options.maxAdminUploads, maxBytes: options.maxAdminUploadBytes)
        ModelsService(registry: registry, uploads: uploads).register(in: &router)
        CatalogService(registry: registry, limits: options.upsertLimits, uploads: uploads).register(in: &router)
        CustomersService(registry: registry, limits: options.upsertLimits, uploads: uploads).register(in: &router)
        if options.diagnostics { DiagnosticsService().register(in: &router) }
        server = GRPCServer(configuration: options.transport, router: router, serving: serving)
        let active = engine.active.value
        Log.info(
            "serving \(options.servesDemo ? "the embedded demo: " : "")\(active.catalog.count) offers, \(active.customers.customerCount) customers x \(active.customers.featureNames.count) features, model \(active.version) (\(ModelRegistry.describe(active.exploration)))"
        )
    }

    /// Serves until SIGTERM or SIGINT, then drains. Returns the process exit code (0 after a
    /// clean or deadline-bounded drain).
    public func runUntilSignalled() throws -> Int32 {
        SignalWaiter.blockTerminationSignals()
        logWriter?.start()
        ruleState?.start()
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
        ruleState?.stop()
        if let logWriter {
            logWriter.stop()
            Log.info(
                "decision log: \(logWriter.log.writtenRecords) records written to \(logWriter.directory), \(logWriter.droppedRecords) dropped"
            )
        }
        Log.info(
            "decisions: \(engine.unknownCandidatesIgnored.load(ordering: .relaxed)) unknown candidate_offer_ids ignored since start, \(engine.nonFiniteScoreFallbacks.load(ordering: .relaxed)) uniform fallbacks for non-finite scores; rule counters: \(engine.counters.evictions.load(ordering: .relaxed)) customers evicted, \(engine.unattributedOutcomes.load(ordering: .relaxed)) outcomes with a foreign decision id"
        )
        Log.info(clean ? "stopped: every in-flight call completed" : "stopped: drain deadline cut off in-flight calls")
        return 0
    }
}

/// The catalog, customers and initial snapshot a server starts with.
struct ServedData {
    var catalog: OfferCatalog
    var customers: CustomerStore
    var snapshot: ModelRegistry.Loaded?

    static func load(_ options: EncoreServer.Options) throws -> ServedData {
        if options.servesDemo {
            guard options.catalogFile == nil, options.customersFile == nil, options.snapshotFile == nil else {
                throw TransportError("--demo cannot be combined with --catalog, --customers or --snapshot")
            }
            let catalog = try OfferCatalog(jsonl: DemoCatalog.jsonl, source: "<embedded demo catalog>")
            let customers = try DemoCustomers.store()
            let snapshot = try DemoModel.snapshot(seed: DemoModel.defaultSeed)
            let bytes = try SnapshotFile.write(snapshot)
            let (read, metadata) = try SnapshotFile.read(bytes)
            return ServedData(
                catalog: catalog, customers: customers,
                snapshot: .init(snapshot: read, metadata: metadata, loadedAtMillis: ModelRegistry.nowMillis()))
        }
        guard let catalogFile = options.catalogFile else {
            throw TransportError("--catalog is required unless the embedded demo is served (--demo)")
        }
        let catalog = try OfferCatalog(contentsOf: catalogFile)
        let customers =
            try options.customersFile.map { try CustomerStore.load(contentsOf: $0) } ?? CustomerStore.empty()
        var snapshot: ModelRegistry.Loaded? = nil
        if let path = options.snapshotFile {
            let trusted = try options.trustedKeyFiles.map { path in
                try Ed25519.PublicKey(pem: try String(contentsOfFile: path, encoding: .utf8))
            }
            let (read, metadata) = try SnapshotFile.read(path: path, trustedKeys: trusted)
            snapshot = .init(snapshot: read, metadata: metadata, loadedAtMillis: ModelRegistry.nowMillis())
        }
        return ServedData(catalog: catalog, customers: customers, snapshot: snapshot)
    }
}
