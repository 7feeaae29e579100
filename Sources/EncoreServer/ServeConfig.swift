import EncoreCrypto
import EncoreEngine
import EncoreStore
import EncoreTransport

/// The `encore serve --config F` file (docs/configuration.md): JSON with the sections
/// `holdout`, `rules`, `counters`, `data`, `logs`, `models`, `idempotency`, `admin`, `security`. Every key is optional; an unknown
/// key or a value of the wrong type or range is an error at start that names the key. Command
/// line flags win over the file; the file wins over the demo's defaults.
public struct ServeConfig: Sendable, Equatable {
    public var holdoutShare: Double? = nil
    public var holdoutSalt: String? = nil
    public var frequencyCapPerDay: Int? = nil
    public var declineSuppressionDays: Double? = nil
    public var minExpectedValue: Double? = nil
    public var budgets: [String: OfferRules.Budget]? = nil
    public var counterCustomers: Int? = nil
    public var stateFile: String? = nil
    public var stateSaveIntervalSeconds: Double? = nil
    /// `counters.durable_outcomes`: as `--durable-outcomes`.
    public var durableOutcomes: Bool? = nil
    /// `logs.backlog_bytes`: unwritten log text kept per file and writer thread (disk refusing).
    public var logBacklogBytes: Int? = nil
    public var catalogFile: String? = nil
    public var customersFile: String? = nil
    public var snapshotFile: String? = nil
    public var trustedKeyFiles: [String]? = nil
    public var logDirectory: String? = nil
    public var logRingBytes: Int? = nil
    public var requireOPE: Bool? = nil
    public var opeMargin: Double? = nil
    public var idempotencyWindowSeconds: Double? = nil
    public var idempotencyTableEntries: Int? = nil
    /// `admin.tokens`: bearer tokens of the admin plane (SHA-256, name, roles).
    public var adminTokens: [AdminToken]? = nil
    /// `admin.clients`: mTLS client certificates (name, subject, roles); `admin.client_ca`;
    /// `admin.data_plane_auth`.
    public var adminClients: [AdminClient]? = nil
    public var clientCAFile: String? = nil
    public var dataPlaneAuth: Bool? = nil
    /// `security.decision_key_file`, `security.previous_decision_keys` (hex),
    /// `security.previous_decision_key_files`: the decision-id MAC keys (docs/security.md).
    public var decisionKeyFile: String? = nil
    public var previousDecisionKeys: [SipHash24.Key]? = nil
    public var previousDecisionKeyFiles: [String]? = nil

    public init() {}

    /// The keys each section accepts.
    static let sections: [String: Set<String>] = [
        "holdout": ["share", "salt"],
        "rules": ["frequency_cap_per_day", "decline_suppression_days", "min_expected_value", "budgets"],
        "counters": ["max_customers", "state_file", "save_interval_seconds", "durable_outcomes"],
        "data": ["catalog", "customers", "snapshot", "trusted_keys"],
        "logs": ["dir", "ring_bytes", "backlog_bytes"],
        "models": ["require_ope", "ope_margin"],
        "idempotency": ["window_seconds", "table_entries"],
        "admin": ["tokens", "clients", "client_ca", "data_plane_auth"],
        "security": ["decision_key_file", "previous_decision_keys", "previous_decision_key_files"],
    ]

    /// Reads and parses a config file.
    /// - Throws: `TransportError` naming the file and, for a bad value, the key.
    public init(contentsOf path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TransportError("config \(path): cannot read the file")
        }
        try self.init(json: text, source: path)
    }

    /// Parses config JSON; `source` names it in errors.
    public init(json text: String, source: String) throws {
        func fail(_ message: String) -> TransportError { TransportError("config \(source): \(message)") }
        let root: JSONValue
        do { root = try JSONValue(parsing: text) } catch let e as StoreError { throw fail(e.message) }
        guard case .object(let top) = root else { throw fail("expected a JSON object at the top level") }
        for (section, value) in top {
            guard let allowed = ServeConfig.sections[section] else {
                throw fail(
                    "unknown key '\(section)' (sections: \(ServeConfig.sections.keys.sorted().joined(separator: ", ")))"
                )
            }
            guard case .object(let fields) = value else { throw fail("'\(section)' must be an object") }
            for key in fields.keys where !allowed.contains(key) {
                throw fail("unknown key '\(section).\(key)' (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
        }
        func field(_ section: String, _ key: String) -> JSONValue? {
            guard case .object(let fields)? = top[section], let v = fields[key], v != .null else { return nil }
            return v
        }
        func number(_ section: String, _ key: String, _ range: ClosedRange<Double>) throws -> Double? {
            guard let v = field(section, key) else { return nil }
            let d: Double
            switch v {
            case .integer(let i): d = Double(i)
            case .number(let n): d = n
            default: throw fail("'\(section).\(key)' must be a number, got \(v)")
            }
            guard d.isFinite, range.contains(d) else {
                throw fail("'\(section).\(key)' must be in \(range.lowerBound)...\(range.upperBound), got \(v)")
            }
            return d
        }
        func integer(_ section: String, _ key: String, _ range: ClosedRange<Int64>) throws -> Int? {
            guard let v = field(section, key) else { return nil }
            guard let i = v.exactInteger, range.contains(i) else {
                throw fail(
                    "'\(section).\(key)' must be an integer in \(range.lowerBound)...\(range.upperBound), got \(v)")
            }
            return Int(i)
        }
        func string(_ section: String, _ key: String) throws -> String? {
            guard let v = field(section, key) else { return nil }
            guard case .string(let s) = v, !s.isEmpty else {
                throw fail("'\(section).\(key)' must be a non-empty string, got \(v)")
            }
            return s
        }
        func bool(_ section: String, _ key: String) throws -> Bool? {
            guard let v = field(section, key) else { return nil }
            guard case .bool(let b) = v else { throw fail("'\(section).\(key)' must be true or false, got \(v)") }
            return b
        }
        holdoutShare = try number("holdout", "share", 0...1)
        holdoutSalt = try string("holdout", "salt")
        frequencyCapPerDay = try integer("rules", "frequency_cap_per_day", 0...Int64(OfferRules.maxFrequencyCap))
        declineSuppressionDays = try number("rules", "decline_suppression_days", 0...3650)
        minExpectedValue = try number("rules", "min_expected_value", -1e12...1e12)
        if let v = field("rules", "budgets") {
            guard case .object(let byOffer) = v else {
                throw fail(
                    "'rules.budgets' must be an object of offer id → {\"daily_shows\": N} or {\"daily_acceptances\": N}"
                )
            }
            var budgets: [String: OfferRules.Budget] = [:]
            for (offer, budget) in byOffer {
                do { budgets[offer] = try OfferRules.parseBudget(budget, key: "rules.budgets.\(offer)") } catch let e
                    as StoreError
                { throw fail(e.message) }
            }
            self.budgets = budgets
        }
        counterCustomers = try integer("counters", "max_customers", 1...(1 << 28))
        stateFile = try string("counters", "state_file")
        stateSaveIntervalSeconds = try number("counters", "save_interval_seconds", 0...86400)
        durableOutcomes = try bool("counters", "durable_outcomes")
        catalogFile = try string("data", "catalog")
        customersFile = try string("data", "customers")
        snapshotFile = try string("data", "snapshot")
        if let v = field("data", "trusted_keys") {
            guard case .array(let items) = v else { throw fail("'data.trusted_keys' must be an array of file paths") }
            trustedKeyFiles = try items.map { item in
                guard case .string(let s) = item, !s.isEmpty else {
                    throw fail("'data.trusted_keys' must be an array of file paths, got \(item)")
                }
                return s
            }
        }
        logDirectory = try string("logs", "dir")
        logRingBytes = try integer("logs", "ring_bytes", 65536...(1 << 30))
        logBacklogBytes = try integer("logs", "backlog_bytes", Int64(2 << 20)...(1 << 32))
        requireOPE = try bool("models", "require_ope")
        opeMargin = try number("models", "ope_margin", 0...1_000_000)
        idempotencyWindowSeconds = try number("idempotency", "window_seconds", 60...86_400)
        idempotencyTableEntries = try integer("idempotency", "table_entries", 1024...(1 << 28))
        if let v = field("admin", "tokens") {
            adminTokens = try ServeConfig.parseTokens(v, fail: fail)
        }
        if let v = field("admin", "clients") {
            adminClients = try ServeConfig.parseClients(v, fail: fail)
        }
        clientCAFile = try string("admin", "client_ca")
        dataPlaneAuth = try bool("admin", "data_plane_auth")
        decisionKeyFile = try string("security", "decision_key_file")
        if let v = field("security", "previous_decision_keys") {
            let shape =
                "'security.previous_decision_keys' must be an array of keys, each 32 hex digits (a key that was the decision key before a rotation)"
            guard case .array(let items) = v else { throw fail(shape) }
            // A bad entry is named by its index only: the value is a secret.
            previousDecisionKeys = try items.enumerated().map { i, item in
                guard case .string(let text) = item, let key = SipHash24.Key(hex: text) else {
                    throw fail("'security.previous_decision_keys[\(i)]': not 32 hex digits; \(shape)")
                }
                return key
            }
        }
        if let v = field("security", "previous_decision_key_files") {
            guard case .array(let items) = v else {
                throw fail("'security.previous_decision_key_files' must be an array of file paths")
            }
            previousDecisionKeyFiles = try items.map { item in
                guard case .string(let s) = item, !s.isEmpty else {
                    throw fail("'security.previous_decision_key_files' must be an array of file paths, got \(item)")
                }
                return s
            }
        }
    }

    /// `admin.tokens`: `[{"name": "ci", "sha256": "<64 hex digits>", "roles": ["models.push"]}]`.
    static func parseTokens(_ value: JSONValue, fail: (String) -> TransportError) throws -> [AdminToken] {
        let shape =
            "'admin.tokens' must be an array of {\"name\": ..., \"sha256\": \"<64 hex digits of the token's SHA-256>\", \"roles\": [...]}"
        guard case .array(let items) = value else { throw fail(shape) }
        var tokens: [AdminToken] = []
        for (i, item) in items.enumerated() {
            let key = "admin.tokens[\(i)]"
            guard case .object(let fields) = item else { throw fail("'\(key)': \(shape)") }
            for k in fields.keys where !["name", "sha256", "roles"].contains(k) {
                throw fail("unknown key '\(key).\(k)' (allowed: name, roles, sha256)")
            }
            guard case .string(let name)? = fields["name"], !name.isEmpty else {
                throw fail("'\(key).name' must be a non-empty string")
            }
            if tokens.contains(where: { $0.name == name }) { throw fail("'\(key).name': '\(name)' is used twice") }
            guard case .string(let hex)? = fields["sha256"], let digest = ServeConfig.hexBytes(hex), digest.count == 32
            else {
                throw fail(
                    "'\(key).sha256' must be the 64 hex digits of the token's SHA-256 (e.g. printf %s \"$TOKEN\" | sha256sum), never the token itself"
                )
            }
            if tokens.contains(where: { $0.sha256 == digest }) {
                throw fail("'\(key).sha256': the same token hash is configured twice")
            }
            tokens.append(AdminToken(name: name, sha256: digest, roles: try parseRoles(fields["roles"], key, fail)))
        }
        return tokens
    }

    /// `admin.clients`: `[{"name": "deployer", "subject": "CN=deployer", "roles": ["models.push"]}]`;
    /// the subject is matched against the certificate's `CN=<common name>`, `DNS:<name>` or
    /// `URI:<uri>` names.
    static func parseClients(_ value: JSONValue, fail: (String) -> TransportError) throws -> [AdminClient] {
        let shape =
            "'admin.clients' must be an array of {\"name\": ..., \"subject\": \"CN=<common name>\" | \"DNS:<name>\" | \"URI:<uri>\", \"roles\": [...]}"
        guard case .array(let items) = value else { throw fail(shape) }
        var clients: [AdminClient] = []
        for (i, item) in items.enumerated() {
            let key = "admin.clients[\(i)]"
            guard case .object(let fields) = item else { throw fail("'\(key)': \(shape)") }
            for k in fields.keys where !["name", "subject", "roles"].contains(k) {
                throw fail("unknown key '\(key).\(k)' (allowed: name, roles, subject)")
            }
            guard case .string(let name)? = fields["name"], !name.isEmpty else {
                throw fail("'\(key).name' must be a non-empty string")
            }
            if clients.contains(where: { $0.name == name }) { throw fail("'\(key).name': '\(name)' is used twice") }
            guard case .string(let subject)? = fields["subject"],
                ["CN=", "DNS:", "URI:"].contains(where: { subject.hasPrefix($0) && subject.count > $0.count })
            else {
                throw fail("'\(key).subject' must be \"CN=<common name>\", \"DNS:<name>\" or \"URI:<uri>\"")
            }
            clients.append(AdminClient(name: name, subject: subject, roles: try parseRoles(fields["roles"], key, fail)))
        }
        return clients
    }

    static func parseRoles(_ value: JSONValue?, _ key: String, _ fail: (String) -> TransportError) throws -> Set<
        AdminRole
    > {
        let known = AdminRole.allCases.map(\.rawValue).joined(separator: ", ")
        guard case .array(let roleValues)? = value, !roleValues.isEmpty else {
            throw fail("'\(key).roles' must be a non-empty array of roles (\(known))")
        }
        var roles: Set<AdminRole> = []
        for r in roleValues {
            guard case .string(let text) = r, let role = AdminRole(rawValue: text) else {
                throw fail("'\(key).roles': unknown role \(r) (roles: \(known))")
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

    /// Each setting of `self`, else of `base`.
    public func overlaying(_ base: ServeConfig) -> ServeConfig {
        var out = self
        out.holdoutShare = holdoutShare ?? base.holdoutShare
        out.holdoutSalt = holdoutSalt ?? base.holdoutSalt
        out.frequencyCapPerDay = frequencyCapPerDay ?? base.frequencyCapPerDay
        out.declineSuppressionDays = declineSuppressionDays ?? base.declineSuppressionDays
        out.minExpectedValue = minExpectedValue ?? base.minExpectedValue
        out.budgets = budgets ?? base.budgets
        out.counterCustomers = counterCustomers ?? base.counterCustomers
        out.stateFile = stateFile ?? base.stateFile
        out.stateSaveIntervalSeconds = stateSaveIntervalSeconds ?? base.stateSaveIntervalSeconds
        out.durableOutcomes = durableOutcomes ?? base.durableOutcomes
        out.logBacklogBytes = logBacklogBytes ?? base.logBacklogBytes
        out.catalogFile = catalogFile ?? base.catalogFile
        out.customersFile = customersFile ?? base.customersFile
        out.snapshotFile = snapshotFile ?? base.snapshotFile
        out.trustedKeyFiles = trustedKeyFiles ?? base.trustedKeyFiles
        out.logDirectory = logDirectory ?? base.logDirectory
        out.logRingBytes = logRingBytes ?? base.logRingBytes
        out.requireOPE = requireOPE ?? base.requireOPE
        out.opeMargin = opeMargin ?? base.opeMargin
        out.idempotencyWindowSeconds = idempotencyWindowSeconds ?? base.idempotencyWindowSeconds
        out.idempotencyTableEntries = idempotencyTableEntries ?? base.idempotencyTableEntries
        out.adminTokens = adminTokens ?? base.adminTokens
        out.adminClients = adminClients ?? base.adminClients
        out.clientCAFile = clientCAFile ?? base.clientCAFile
        out.dataPlaneAuth = dataPlaneAuth ?? base.dataPlaneAuth
        out.decisionKeyFile = decisionKeyFile ?? base.decisionKeyFile
        out.previousDecisionKeys = previousDecisionKeys ?? base.previousDecisionKeys
        out.previousDecisionKeyFiles = previousDecisionKeyFiles ?? base.previousDecisionKeyFiles
        return out
    }
}

extension EncoreServer.Options {
    /// Fills every setting no flag gave from `config` (flags win).
    mutating func apply(_ config: ServeConfig) {
        if !holdoutShareSet, let share = config.holdoutShare { engine.holdoutShare = share }
        if let salt = config.holdoutSalt { engine.holdoutSalt = salt }
        if let cap = config.frequencyCapPerDay { engine.rules.frequencyCapPerDay = cap }
        if let days = config.declineSuppressionDays { engine.rules.declineSuppressionDays = days }
        if let value = config.minExpectedValue { engine.rules.minExpectedValue = value }
        if let budgets = config.budgets { engine.rules.budgets = budgets }
        if let n = config.counterCustomers { engine.counterCustomers = n }
        if stateFile == nil { stateFile = config.stateFile }
        if let seconds = config.stateSaveIntervalSeconds { stateSaveIntervalSeconds = seconds }
        if !durableOutcomes, let durable = config.durableOutcomes { durableOutcomes = durable }
        if let bytes = config.logBacklogBytes { logBacklogBytes = bytes }
        if catalogFile == nil { catalogFile = config.catalogFile }
        if customersFile == nil { customersFile = config.customersFile }
        if snapshotFile == nil { snapshotFile = config.snapshotFile }
        if trustedKeyFiles.isEmpty, let keys = config.trustedKeyFiles { trustedKeyFiles = keys }
        if logDirectory == nil { logDirectory = config.logDirectory }
        if let bytes = config.logRingBytes { logRingBytes = bytes }
        if !requireOPE, let require = config.requireOPE { requireOPE = require }
        if let margin = config.opeMargin { opeMargin = margin }
        if let seconds = config.idempotencyWindowSeconds { engine.idempotencyWindowSeconds = seconds }
        if let entries = config.idempotencyTableEntries { engine.idempotencyTableEntries = entries }
        if adminTokens.isEmpty, let tokens = config.adminTokens { adminTokens = tokens }
        if adminClients.isEmpty, let clients = config.adminClients { adminClients = clients }
        if clientCAFile == nil { clientCAFile = config.clientCAFile }
        if let on = config.dataPlaneAuth { dataPlaneAuth = on }
        if decisionKeyFile == nil { decisionKeyFile = config.decisionKeyFile }
        if let keys = config.previousDecisionKeys { previousDecisionKeys = keys }
        if let files = config.previousDecisionKeyFiles { previousDecisionKeyFiles = files }
    }
}
