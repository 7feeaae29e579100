import EncoreCrypto
import EncoreDemo
import EncoreEngine
import EncoreStore
import EncoreTransport

/// Why a setting was refused: names the source (a config file, the demo, a flag) and the key.
/// The one error type of settings resolution (`ServeSettings.resolve`).
public struct SettingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// "config <path>", "config <demo>" or "flags".
    public var source: String
    /// The config key (`holdout.share`) or, for a value given as a flag, the flag (`--holdout-share`);
    /// empty for a problem with the source as a whole (a file that cannot be read).
    public var key: String
    public var problem: String

    public init(source: String, key: String, _ problem: String) {
        self.source = source
        self.key = key
        self.problem = problem
    }

    public var description: String {
        if source == ServeSettings.Layer.flagsSource { return "\(key) \(problem)" }
        if key.isEmpty { return "\(source): \(problem)" }
        // A problem with one entry of a list ("[2].roles: ...") names the entry in the key.
        if problem.hasPrefix("["), let end = problem.firstIndex(where: { $0 == " " || $0 == ":" }) {
            return "\(source): '\(key)\(problem[..<end])'\(problem[end...])"
        }
        return "\(source): '\(key)' \(problem)"
    }
}

/// One value of a layer that a setting refused: the problem without the key (the layer adds it).
struct SettingProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// One setting of `encore serve`: its config file key (`section.name`), its flag (if any), and
/// how a value is checked and stored in `EncoreServer.Options`, whose property initialisers are
/// the defaults. The config file's reader, the flags and the error messages all come from
/// `ServeSettings.all`, so adding a setting is: a field of `Options`, an entry there, and
/// (optionally) a flag of `encore serve` handed to `Layer.flags`.
struct ServeSetting: Sendable {
    /// `section.name` in the config file.
    let key: String
    /// `--flag` of `encore serve`, or nil when only the config file sets it.
    let flag: String?
    /// False for a setting only a flag may give (never read from a file).
    let inFile: Bool
    /// Checks a value and stores it.
    let apply: @Sendable (inout EncoreServer.Options, JSONValue) throws(SettingProblem) -> Void

    var section: Substring { key.prefix { $0 != "." } }
    var name: Substring { key.drop { $0 != "." }.dropFirst() }
}

/// Every setting of `encore serve`, resolved once: the defaults (`EncoreServer.Options()`), then
/// the embedded demo's settings (`DemoConfig`, when the demo is served), then the `--config` file,
/// then the flags (docs/configuration.md). Cross-setting rules (pairs, dependencies) are checked
/// once on the result.
public enum ServeSettings {
    /// Values of one source, by setting key, in the order they are applied.
    public struct Layer: Sendable {
        public static let flagsSource = "flags"
        /// "config <path>", "config <demo>" or "flags".
        public let source: String
        var values: [(key: String, value: JSONValue)] = []

        init(source: String) { self.source = source }

        /// An empty layer of flags; `set` adds what was given.
        public static func flags() -> Layer { Layer(source: flagsSource) }

        /// Reads and parses a config file.
        /// - Throws: `SettingError` naming the file and, for a bad value, the key.
        public static func file(_ path: String) throws(SettingError) -> Layer {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw SettingError(source: "config \(path)", key: "", "cannot read the file")
            }
            return try file(json: text, source: path)
        }

        /// Parses config JSON; `source` names it in errors. Every value is checked here (unknown
        /// keys, types, ranges), so a bad file is refused before anything starts.
        public static func file(json text: String, source: String) throws(SettingError) -> Layer {
            var layer = Layer(source: "config \(source)")
            func fail(_ key: String, _ message: String) -> SettingError {
                SettingError(source: layer.source, key: key, message)
            }
            let root: JSONValue
            do { root = try JSONValue(parsing: text) } catch let e as StoreError {
                throw fail("", e.message)
            } catch { throw fail("", "\(error)") }
            guard case .object(let top) = root else { throw fail("", "expected a JSON object at the top level") }
            let sections = ServeSettings.fileSections
            for (section, value) in top.sorted(by: { $0.key < $1.key }) {
                guard let allowed = sections[section] else {
                    throw fail(
                        "", "unknown key '\(section)' (sections: \(sections.keys.sorted().joined(separator: ", ")))")
                }
                guard case .object(let fields) = value else { throw fail(section, "must be an object") }
                for (name, v) in fields.sorted(by: { $0.key < $1.key }) {
                    guard allowed.contains(name) else {
                        throw fail(
                            "",
                            "unknown key '\(section).\(name)' (allowed: \(allowed.sorted().joined(separator: ", ")))")
                    }
                    if v != .null { layer.values.append(("\(section).\(name)", v)) }
                }
            }
            // Checked now, on a scratch value, so the error names this file.
            var scratch = EncoreServer.Options()
            try layer.apply(to: &scratch)
            return layer
        }

        /// Adds a flag's value (nil: the flag was not given). `key` must be a setting's key.
        public mutating func set(_ key: String, _ value: Int?) { add(key, value.map { .integer(Int64($0)) }) }
        public mutating func set(_ key: String, _ value: Double?) { add(key, value.map { .number($0) }) }
        public mutating func set(_ key: String, _ value: String?) { add(key, value.map { .string($0) }) }
        /// A boolean flag: only `true` is a value (a flag cannot turn off what the file turned on).
        public mutating func set(_ key: String, _ value: Bool) { add(key, value ? .bool(true) : nil) }
        /// A repeatable flag: empty is no value.
        public mutating func set(_ key: String, _ value: [String]) {
            add(key, value.isEmpty ? nil : .array(value.map(JSONValue.string)))
        }

        private mutating func add(_ key: String, _ value: JSONValue?) {
            // A programming error (a flag wired to a key that is not in the table), caught by
            // every start.
            precondition(ServeSettings.byKey[key] != nil, "'\(key)' is not a setting of ServeSettings.all")
            if let value { values.append((key, value)) }
        }

        /// The value this layer gives `key`, if any (the last one).
        func value(of key: String) -> JSONValue? { values.last { $0.key == key }?.value }

        /// Applies every value of this layer to `options`.
        func apply(to options: inout EncoreServer.Options) throws(SettingError) {
            let byKey = ServeSettings.byKey
            for (key, value) in values {
                guard let setting = byKey[key] else {
                    throw SettingError(source: source, key: key, "is not a setting")
                }
                let name = source == Layer.flagsSource ? (setting.flag ?? key) : key
                do { try setting.apply(&options, value) } catch {
                    throw SettingError(source: source, key: name, error.message)
                }
            }
        }
    }

    /// The embedded demo's settings (a 5% holdout, rule defaults, budgets).
    static func demoLayer() throws(SettingError) -> Layer { try Layer.file(json: DemoConfig.json, source: "<demo>") }

    /// Resolves `encore serve`'s settings: defaults, then the demo's (when the demo is served),
    /// then `file` (the `--config` file's layer), then `flags`; then checks the rules between
    /// settings. `Options.configFile` is kept for SIGHUP's reload.
    public static func resolve(file: Layer?, flags: Layer, configFile: String? = nil) throws(SettingError)
        -> EncoreServer.Options
    {
        var probe = EncoreServer.Options()
        try file?.apply(to: &probe)
        try flags.apply(to: &probe)
        var options = EncoreServer.Options()
        if probe.servesDemo { try demoLayer().apply(to: &options) }
        try file?.apply(to: &options)
        try flags.apply(to: &options)
        options.configFile = configFile
        try check(options, file: file, flags: flags)
        return options
    }

    /// The rules between settings, checked once on the resolved value.
    static func check(_ o: EncoreServer.Options, file: Layer?, flags: Layer) throws(SettingError) {
        // Named as the file names it when only the file gave it, else by its flag.
        func fail(_ key: String, _ message: String) -> SettingError {
            if let file, flags.value(of: key) == nil, file.value(of: key) != nil {
                return SettingError(source: file.source, key: key, message)
            }
            return SettingError(source: Layer.flagsSource, key: byKey[key]?.flag ?? "'\(key)'", message)
        }
        if (o.tlsCertificateFile == nil) != (o.tlsKeyFile == nil) {
            throw SettingError(
                source: Layer.flagsSource, key: "--tls-cert and --tls-key",
                "must be given together (listen.tls_cert, listen.tls_key)")
        }
        if (o.adminTLSCertificateFile == nil) != (o.adminTLSKeyFile == nil) {
            throw SettingError(
                source: Layer.flagsSource, key: "--admin-tls-cert and --admin-tls-key",
                "must be given together (admin.tls_cert, admin.tls_key)")
        }
        if o.clientCAFile != nil && o.tlsCertificateFile == nil && o.adminTLSCertificateFile == nil {
            throw fail(
                "admin.client_ca",
                "needs TLS on a plane (--tls-cert/--tls-key or --admin-tls-cert/--admin-tls-key): client certificates are verified in the TLS handshake"
            )
        }
        if !o.adminClients.isEmpty && o.clientCAFile == nil {
            throw fail(
                "admin.clients",
                "maps client certificates to roles, but no --client-ca (or 'admin.client_ca') verifies them")
        }
        if o.dataPlaneAuth && o.adminTokens.isEmpty && o.adminClients.isEmpty {
            throw fail(
                "admin.data_plane_auth",
                "is on but no 'admin.tokens' or 'admin.clients' are configured: no caller could decide")
        }
        if o.adminPort != 0 && o.adminPort == o.transport.port {
            throw fail(
                "admin.port", "\(o.adminPort) is also the data plane's --port: the two planes need two ports")
        }
        if o.durableOutcomes && o.stateFile == nil {
            throw fail(
                "counters.durable_outcomes",
                "needs --state-file (or counters.state_file): the write-ahead journal is kept beside it and folded into it at every save"
            )
        }
        if o.demo && (o.catalogFile != nil || o.customersFile != nil || o.snapshotFile != nil) {
            throw fail("data.demo", "cannot be combined with --catalog, --customers or --snapshot")
        }
        if !o.servesDemo && o.catalogFile == nil {
            throw fail("data.catalog", "is required unless the embedded demo is served (--demo)")
        }
    }

    // MARK: - The table

    static let byKey: [String: ServeSetting] = Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0) })

    /// Section → names the config file accepts.
    static let fileSections: [String: Set<String>] = Dictionary(
        all.filter(\.inFile).map { (String($0.section), [String($0.name)]) }, uniquingKeysWith: { Set($0).union($1) }
    ).mapValues { Set($0) }

    /// Every setting. Ranges are given once here, for the file and the flags alike.
    static let all: [ServeSetting] = [
        // The data plane.
        string("listen.host", "--host") { $0.transport.host = $1 },
        integer("listen.port", "--port", 0...65535) { $0.transport.port = $1 },
        path("listen.tls_cert", "--tls-cert") { $0.tlsCertificateFile = $1 },
        path("listen.tls_key", "--tls-key") { $0.tlsKeyFile = $1 },
        // The admin plane and authentication.
        string("admin.host", "--admin-host") { $0.adminHost = $1 },
        integer("admin.port", "--admin-port", 0...65535) { $0.adminPort = $1 },
        path("admin.tls_cert", "--admin-tls-cert") { $0.adminTLSCertificateFile = $1 },
        path("admin.tls_key", "--admin-tls-key") { $0.adminTLSKeyFile = $1 },
        bool("admin.insecure", "--insecure-admin") { $0.insecureAdmin = $1 },
        path("admin.client_ca", "--client-ca") { $0.clientCAFile = $1 },
        custom("admin.tokens") { o, v throws(SettingProblem) in o.adminTokens = try parseTokens(v) },
        custom("admin.clients") { o, v throws(SettingProblem) in o.adminClients = try parseClients(v) },
        bool("admin.data_plane_auth", nil) { $0.dataPlaneAuth = $1 },
        bool("admin.diagnostics", "--diagnostics") { $0.diagnostics = $1 },
        // The transport (both planes).
        integer("transport.threads", "--threads", 1...255) { $0.transport.threads = $1 },
        integer("transport.max_message_bytes", "--max-message-bytes", 64...(1 << 30)) {
            $0.transport.maxMessageBytes = $1
        },
        integer("transport.max_concurrent_streams", "--max-concurrent-streams", 1...(1 << 16)) {
            $0.transport.maxConcurrentStreams = $1
        },
        integer("transport.max_header_list_bytes", "--max-header-list-bytes", 1024...(1 << 24)) {
            $0.transport.maxHeaderListBytes = $1
        },
        seconds("transport.idle_timeout_seconds", "--idle-timeout", positive: true) {
            $0.transport.idleTimeoutNanos = UInt64($1 * 1e9)
        },
        integer("transport.max_connections", "--max-connections", 1...(1 << 20)) {
            $0.transport.maxConnections = $1
        },
        number("transport.evict_idle_after_seconds", "--evict-idle-after", 0...86400) {
            $0.transport.evictionMinIdleNanos = UInt64($1 * 1e9)
        },
        number("transport.request_header_timeout_seconds", "--request-header-timeout", 0...86400) {
            $0.transport.requestHeaderTimeoutNanos = UInt64($1 * 1e9)
        },
        integer("transport.min_request_bytes_per_second", "--min-request-bytes-per-second", 0...(1 << 40)) {
            $0.transport.minRequestBytesPerSecond = $1
        },
        number("transport.request_progress_window_seconds", "--request-progress-window", 1...3600) {
            $0.transport.requestProgressWindowNanos = UInt64($1 * 1e9)
        },
        number("transport.response_write_timeout_seconds", "--response-write-timeout", 0...86400) {
            $0.transport.responseWriteTimeoutNanos = UInt64($1 * 1e9)
        },
        integer("transport.max_oversized_header_lists", "--max-oversized-header-lists", 0...(1 << 20)) {
            $0.transport.maxOversizedHeaderListsPerSecond = $1
        },
        integer("transport.max_header_bytes_per_second", "--max-header-bytes-per-second", 0...(1 << 40)) {
            $0.transport.maxHeaderBytesPerSecond = $1
        },
        integer("transport.max_connection_buffered_bytes", "--max-connection-buffered-bytes", 0...(1 << 40)) {
            $0.transport.maxConnectionBufferedRequestBytes = $1
        },
        integer("transport.max_buffered_bytes", "--max-buffered-bytes", 0...(1 << 40)) {
            $0.transport.maxBufferedRequestBytes = $1
        },
        integer("transport.rapid_reset_limit", "--rapid-reset-limit", 1...(1 << 20)) {
            $0.transport.rapidResetLimitPerSecond = $1
        },
        seconds("transport.drain_timeout_seconds", "--drain-timeout", positive: false) {
            $0.transport.drainTimeoutNanos = UInt64($1 * 1e9)
        },
        number("transport.drain_notice_seconds", "--drain-notice", 0...600) { $0.drainNoticeSeconds = $1 },
        // What is served.
        bool("data.demo", "--demo") { $0.demo = $1 },
        path("data.catalog", "--catalog") { $0.catalogFile = $1 },
        path("data.customers", "--customers") { $0.customersFile = $1 },
        path("data.snapshot", "--snapshot") { $0.snapshotFile = $1 },
        paths("data.trusted_keys", "--trusted-key") { $0.trustedKeyFiles = $1 },
        path("data.snapshot_dir", "--snapshot-dir") { $0.snapshotDirectory = $1 },
        number("data.snapshot_dir_interval_seconds", "--snapshot-dir-interval", 0.001...3600) {
            $0.snapshotDirectoryIntervalSeconds = $1
        },
        integer("data.max_offers_per_surface", "--max-offers-per-surface", 1...1_000_000) {
            $0.maxOffersPerSurface = $1
        },
        // Admin uploads.
        integer("uploads.max_upsert_records", "--max-upsert-records", 1...10_000_000) {
            $0.upsertLimits.maxRecords = $1
        },
        integer("uploads.max_upsert_bytes", "--max-upsert-bytes", 1...(1 << 32)) { $0.upsertLimits.maxBytes = $1 },
        integer("uploads.max_admin_uploads", "--max-admin-uploads", 1...1024) { $0.maxAdminUploads = $1 },
        integer("uploads.max_admin_upload_bytes", "--max-admin-upload-bytes", 1...(1 << 40)) {
            $0.maxAdminUploadBytes = $1
        },
        // Decisions and rules.
        number("holdout.share", "--holdout-share", 0...1) { $0.engine.holdoutShare = $1 },
        string("holdout.salt", nil) { $0.engine.holdoutSalt = $1 },
        integer("rules.frequency_cap_per_day", nil, 0...OfferRules.maxFrequencyCap) {
            $0.engine.rules.frequencyCapPerDay = $1
        },
        number("rules.decline_suppression_days", nil, 0...3650) { $0.engine.rules.declineSuppressionDays = $1 },
        number("rules.min_expected_value", nil, -1e12...1e12) { $0.engine.rules.minExpectedValue = $1 },
        custom("rules.budgets") { o, v throws(SettingProblem) in o.engine.rules.budgets = try parseBudgets(v) },
        integer("counters.max_customers", nil, 1...(1 << 28)) { $0.engine.counterCustomers = $1 },
        path("counters.state_file", "--state-file") { $0.stateFile = $1 },
        number("counters.save_interval_seconds", nil, 0...86400) { $0.stateSaveIntervalSeconds = $1 },
        bool("counters.durable_outcomes", "--durable-outcomes") { $0.durableOutcomes = $1 },
        number("idempotency.window_seconds", nil, 60...86_400) { $0.engine.idempotencyWindowSeconds = $1 },
        integer("idempotency.table_entries", nil, 1024...(1 << 28)) { $0.engine.idempotencyTableEntries = $1 },
        // Models.
        bool("models.require_ope", "--require-ope") { $0.requireOPE = $1 },
        number("models.ope_margin", nil, 0...1_000_000) { $0.opeMargin = $1 },
        // Logs.
        path("logs.dir", "--log-dir") { $0.logDirectory = $1 },
        integer("logs.ring_bytes", nil, 65536...(1 << 30)) { $0.logRingBytes = $1 },
        integer("logs.backlog_bytes", nil, (2 << 20)...(1 << 32)) { $0.logBacklogBytes = $1 },
        custom("logs.replica_name", "--replica-name") { o, v throws(SettingProblem) in
            guard case .string(let s) = v, (1...128).contains(s.utf8.count) else {
                throw SettingProblem("must be 1 to 128 bytes, got \(v)")
            }
            o.replicaName = s
        },
        // Security.
        path("security.decision_key_file", "--decision-key-file") { $0.decisionKeyFile = $1 },
        custom("security.previous_decision_keys") { o, v throws(SettingProblem) in
            o.previousDecisionKeys = try parsePreviousKeys(v)
        },
        paths("security.previous_decision_key_files", nil) { $0.previousDecisionKeyFiles = $1 },
        // Tests and simulations only: never from a file.
        custom("testing.instance_id", "--instance-id", inFile: false) { o, v throws(SettingProblem) in
            guard case .string(let s) = v, let id = parseInstanceID(s) else {
                throw SettingProblem("must be 1 to 12 hex digits (0-9, a-f), got \(v)")
            }
            o.engine.instanceID = id
        },
    ]

    /// `text` as a decision-id prefix: 1 to 12 hex digits, or nil.
    public static func parseInstanceID(_ text: String) -> UInt64? {
        let hexDigits = Set("0123456789abcdefABCDEF".utf8)
        guard (1...12).contains(text.utf8.count), text.utf8.allSatisfy(hexDigits.contains) else { return nil }
        return UInt64(text, radix: 16)
    }

    // MARK: - Kinds of values

    typealias Store<T> = @Sendable (inout EncoreServer.Options, T) -> Void

    static func custom(
        _ key: String, _ flag: String? = nil, inFile: Bool = true,
        _ apply: @escaping @Sendable (inout EncoreServer.Options, JSONValue) throws(SettingProblem) -> Void
    ) -> ServeSetting {
        ServeSetting(key: key, flag: flag, inFile: inFile, apply: apply)
    }

    static func number(_ key: String, _ flag: String?, _ range: ClosedRange<Double>, _ store: @escaping Store<Double>)
        -> ServeSetting
    {
        custom(key, flag) { o, v throws(SettingProblem) in
            let d: Double
            switch v {
            case .integer(let i): d = Double(i)
            case .number(let n): d = n
            default: throw SettingProblem("must be a number, got \(v)")
            }
            guard d.isFinite, range.contains(d) else {
                throw SettingProblem("must be in \(range.lowerBound)...\(range.upperBound), got \(v)")
            }
            store(&o, d)
        }
    }

    static func seconds(_ key: String, _ flag: String?, positive: Bool, _ store: @escaping Store<Double>)
        -> ServeSetting
    {
        custom(key, flag) { o, v throws(SettingProblem) in
            let d: Double
            switch v {
            case .integer(let i): d = Double(i)
            case .number(let n): d = n
            default: throw SettingProblem("must be a number of seconds, got \(v)")
            }
            // Stored as nanoseconds in a UInt64: at most about 584 years; a day is plenty.
            guard d.isFinite, positive ? d > 0 : d >= 0, d <= 86_400 * 365 else {
                throw SettingProblem(
                    "must be \(positive ? "a positive" : "zero or a positive") number of seconds (at most a year), got \(v)"
                )
            }
            store(&o, d)
        }
    }

    static func integer(_ key: String, _ flag: String?, _ range: ClosedRange<Int>, _ store: @escaping Store<Int>)
        -> ServeSetting
    {
        custom(key, flag) { o, v throws(SettingProblem) in
            guard let i = v.exactInteger, i >= Int64(range.lowerBound), i <= Int64(range.upperBound) else {
                throw SettingProblem("must be an integer in \(range.lowerBound)...\(range.upperBound), got \(v)")
            }
            store(&o, Int(i))
        }
    }

    static func string(_ key: String, _ flag: String?, _ store: @escaping Store<String>) -> ServeSetting {
        custom(key, flag) { o, v throws(SettingProblem) in
            guard case .string(let s) = v, !s.isEmpty else {
                throw SettingProblem("must be a non-empty string, got \(v)")
            }
            store(&o, s)
        }
    }

    static func path(_ key: String, _ flag: String?, _ store: @escaping Store<String>) -> ServeSetting {
        string(key, flag, store)
    }

    static func paths(_ key: String, _ flag: String?, _ store: @escaping Store<[String]>) -> ServeSetting {
        custom(key, flag) { o, v throws(SettingProblem) in
            guard case .array(let items) = v else { throw SettingProblem("must be an array of file paths") }
            var out: [String] = []
            for item in items {
                guard case .string(let s) = item, !s.isEmpty else {
                    throw SettingProblem("must be an array of file paths, got \(item)")
                }
                out.append(s)
            }
            store(&o, out)
        }
    }

    static func bool(_ key: String, _ flag: String?, _ store: @escaping Store<Bool>) -> ServeSetting {
        custom(key, flag) { o, v throws(SettingProblem) in
            guard case .bool(let b) = v else { throw SettingProblem("must be true or false, got \(v)") }
            store(&o, b)
        }
    }

    // MARK: - Structured values

    static func parseBudgets(_ v: JSONValue) throws(SettingProblem) -> [String: OfferRules.Budget] {
        guard case .object(let byOffer) = v else {
            throw SettingProblem(
                "must be an object of offer id → {\"daily_shows\": N} or {\"daily_acceptances\": N}")
        }
        var budgets: [String: OfferRules.Budget] = [:]
        for (offer, budget) in byOffer {
            do { budgets[offer] = try OfferRules.parseBudget(budget, key: "rules.budgets.\(offer)") } catch {
                throw SettingProblem("\(offer): \((error as? StoreError)?.message ?? "\(error)")")
            }
        }
        return budgets
    }

    static func parsePreviousKeys(_ v: JSONValue) throws(SettingProblem) -> [SipHash24.Key] {
        let shape =
            "must be an array of keys, each 32 hex digits (a key that was the decision key before a rotation)"
        guard case .array(let items) = v else { throw SettingProblem(shape) }
        var keys: [SipHash24.Key] = []
        // A bad entry is named by its index only: the value is a secret.
        for (i, item) in items.enumerated() {
            guard case .string(let text) = item, let key = SipHash24.Key(hex: text) else {
                throw SettingProblem("[\(i)]: not 32 hex digits; \(shape)")
            }
            keys.append(key)
        }
        return keys
    }

    /// `admin.tokens`: `[{"name": "ci", "sha256": "<64 hex digits>", "roles": ["models.push"]}]`.
    static func parseTokens(_ value: JSONValue) throws(SettingProblem) -> [AdminToken] {
        try parseNamedEntries(
            value, other: "sha256",
            shape:
                "must be an array of {\"name\": ..., \"sha256\": \"<64 hex digits of the token's SHA-256>\", \"roles\": [...]}"
        ) { at, name, fields, earlier throws(SettingProblem) in
            guard case .string(let hex)? = fields["sha256"], let digest = hexBytes(hex), digest.count == 32 else {
                throw SettingProblem(
                    "\(at).sha256 must be the 64 hex digits of the token's SHA-256 (e.g. printf %s \"$TOKEN\" | sha256sum), never the token itself"
                )
            }
            if earlier.contains(where: { $0.sha256 == digest }) {
                throw SettingProblem("\(at).sha256: the same token hash is configured twice")
            }
            return { AdminToken(name: name, sha256: digest, roles: $0) }
        }
    }

    /// `admin.clients`: `[{"name": "deployer", "subject": "CN=deployer", "roles": ["models.push"]}]`;
    /// the subject is matched against the certificate's `CN=<common name>`, `DNS:<name>` or
    /// `URI:<uri>` names.
    static func parseClients(_ value: JSONValue) throws(SettingProblem) -> [AdminClient] {
        try parseNamedEntries(
            value, other: "subject",
            shape:
                "must be an array of {\"name\": ..., \"subject\": \"CN=<common name>\" | \"DNS:<name>\" | \"URI:<uri>\", \"roles\": [...]}"
        ) { at, name, fields, _ throws(SettingProblem) in
            guard case .string(let subject)? = fields["subject"],
                ["CN=", "DNS:", "URI:"].contains(where: { subject.hasPrefix($0) && subject.count > $0.count })
            else {
                throw SettingProblem("\(at).subject must be \"CN=<common name>\", \"DNS:<name>\" or \"URI:<uri>\"")
            }
            return { AdminClient(name: name, subject: subject, roles: $0) }
        }
    }

    /// A credential list (`admin.tokens`, `admin.clients`): an array of objects with exactly the
    /// keys `name` (non-empty, unique), `roles` and `other`. `make` checks `other` (given the
    /// entry's index `[i]`, name, fields and the entries before it) and returns how to build the
    /// entry from its roles, which are checked after it.
    static func parseNamedEntries<Entry: NamedCredential>(
        _ value: JSONValue, other: String, shape: String,
        _ make: (String, String, [String: JSONValue], [Entry]) throws(SettingProblem) -> (Set<AdminRole>) -> Entry
    ) throws(SettingProblem) -> [Entry] {
        guard case .array(let items) = value else { throw SettingProblem(shape) }
        let allowed = ["name", "roles", other].sorted()
        var entries: [Entry] = []
        for (i, item) in items.enumerated() {
            let at = "[\(i)]"
            guard case .object(let fields) = item else { throw SettingProblem("\(at): \(shape)") }
            for k in fields.keys where !allowed.contains(k) {
                throw SettingProblem("\(at).\(k): unknown key (allowed: \(allowed.joined(separator: ", ")))")
            }
            guard case .string(let name)? = fields["name"], !name.isEmpty else {
                throw SettingProblem("\(at).name must be a non-empty string")
            }
            if entries.contains(where: { $0.name == name }) {
                throw SettingProblem("\(at).name: '\(name)' is used twice")
            }
            let build = try make(at, name, fields, entries)
            entries.append(build(try parseRoles(fields["roles"], at)))
        }
        return entries
    }

    static func parseRoles(_ value: JSONValue?, _ at: String) throws(SettingProblem) -> Set<AdminRole> {
        let known = AdminRole.allCases.map(\.rawValue).joined(separator: ", ")
        guard case .array(let roleValues)? = value, !roleValues.isEmpty else {
            throw SettingProblem("\(at).roles must be a non-empty array of roles (\(known))")
        }
        var roles: Set<AdminRole> = []
        for r in roleValues {
            guard case .string(let text) = r, let role = AdminRole(rawValue: text) else {
                throw SettingProblem("\(at).roles: unknown role \(r) (roles: \(known))")
            }
            roles.insert(role)
        }
        return roles
    }

    /// The bytes of an even-length hex string, or nil.
    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        var i = 0
        while i < digits.count {
            guard let hi = nibble(digits[i]), let lo = nibble(digits[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// What `ServeSettings.parseNamedEntries` needs of a credential: its configured name.
protocol NamedCredential { var name: String { get } }
extension AdminToken: NamedCredential {}
extension AdminClient: NamedCredential {}
