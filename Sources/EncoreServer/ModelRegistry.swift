import EncoreCrypto
import EncoreEngine
import EncoreModel
import EncoreProtocol
import EncoreStore
import EncoreTransport
import Foundation
import Synchronization

/// The snapshots this server has loaded and which one is active. Admin operations (push,
/// activate, rollback, catalog/customer upserts) run off the reactor threads, serialized by a
/// mutex, and publish a new `ActiveModel` with one atomic swap: decisions never wait on them.
public final class ModelRegistry: Sendable {
    /// A validated snapshot held in memory.
    public struct Loaded: Sendable {
        public var snapshot: ModelSnapshot
        public var metadata: SnapshotFile.Metadata
        public var loadedAtMillis: Int64
    }

    private struct State {
        /// Newest first.
        var loaded: [Loaded] = []
        /// Versions that were active before the current one, most recent last.
        var history: [String] = []
    }

    public let engine: DecisionEngine
    /// The customer table behind the active model (upserts publish new generations).
    public let customers: CustomerTable
    public let trustedKeys: [Ed25519.PublicKey]
    /// With `encore serve --require-ope`: activation refuses a snapshot whose offline DR lower
    /// bound is below the active policy's estimated value, unless forced.
    public let requireOPE: Bool
    /// With `requireOPE`: how far the candidate's DR lower bound must be above the active
    /// policy's DR estimate in the same comparison (`models.ope_margin`, the reward's unit).
    public let opeMargin: Double
    /// Previously active snapshots kept loaded for instant rollback.
    public let keepPrevious = 3
    /// Pushed-but-never-activated snapshots kept at most.
    public let keepPending = 4
    private let state = Mutex(State())
    /// The last snapshot file served by `snapshotFile` (GetSnapshot asks once per part).
    private let exported = Mutex<SnapshotFileExport?>(nil)

    public init(
        engine: DecisionEngine, customers: CustomerTable, trustedKeys: [Ed25519.PublicKey], initial: Loaded?,
        requireOPE: Bool = false, opeMargin: Double = 0
    ) {
        self.engine = engine
        self.requireOPE = requireOPE
        self.opeMargin = opeMargin
        self.customers = customers
        self.trustedKeys = trustedKeys
        if let initial { state.withLock { $0.loaded = [initial] } }
    }

    /// The active model version.
    public var activeVersion: String { engine.active.value.version }

    /// Validates a pushed snapshot (format, checksum, signature, NaN, schema against the running
    /// store) and keeps it loaded; activates it when asked. Throws `GRPCStatus`
    /// FAILED_PRECONDITION naming the problem.
    public func push(_ bytes: [UInt8], activate: Bool) throws(GRPCStatus) -> (Encore_V1_ModelInfo, Bool) {
        let snapshot: ModelSnapshot
        let metadata: SnapshotFile.Metadata
        do {
            (snapshot, metadata) = try SnapshotFile.read(bytes, trustedKeys: trustedKeys)
        } catch {
            throw GRPCStatus(.failedPrecondition, "snapshot refused: \(error)")
        }
        let current = engine.active.value
        let bound: ActiveModel
        do {
            bound = try ActiveModel(
                snapshot: snapshot, catalog: current.catalog, customers: current.customers,
                rules: current.ruleSettings)
        } catch {
            throw GRPCStatus(.failedPrecondition, "snapshot refused: \(error)")
        }
        let loaded = Loaded(snapshot: snapshot, metadata: metadata, loadedAtMillis: Self.nowMillis())
        if activate { try opeGate(snapshot, force: false) }
        return state.withLock { state in
            if let i = state.loaded.firstIndex(where: { $0.snapshot.version == snapshot.version }) {
                state.loaded.remove(at: i)
            }
            state.loaded.insert(loaded, at: 0)
            if activate { activateLocked(&state, bound) }
            trim(&state)
            return (info(loaded, active: engine.active.value.version), activate)
        }
    }

    /// Makes the loaded snapshot `version` active. NOT_FOUND if it is not loaded.
    public func activate(version: String, force: Bool = false) throws(GRPCStatus) -> Encore_V1_ModelInfo {
        try state.withLock { state throws(GRPCStatus) in
            guard let loaded = state.loaded.first(where: { $0.snapshot.version == version }) else {
                throw GRPCStatus(.notFound, "no loaded snapshot has version \(version) (see Models/List)")
            }
            try opeGate(loaded.snapshot, force: force)
            try bindAndActivate(&state, loaded)
            return info(loaded, active: version)
        }
    }

    /// Re-activates the previously active snapshot. FAILED_PRECONDITION if there is none.
    public func rollback() throws(GRPCStatus) -> Encore_V1_ModelInfo {
        try state.withLock { state throws(GRPCStatus) in
            while let previous = state.history.popLast() {
                guard let loaded = state.loaded.first(where: { $0.snapshot.version == previous }) else { continue }
                let current = engine.active.value
                let bound: ActiveModel
                do {
                    bound = try ActiveModel(
                        snapshot: loaded.snapshot, catalog: current.catalog, customers: current.customers,
                        rules: current.ruleSettings)
                } catch {
                    throw GRPCStatus(.failedPrecondition, "rollback to \(previous) refused: \(error)")
                }
                engine.active.publish(bound)
                return info(loaded, active: previous)
            }
            throw GRPCStatus(.failedPrecondition, "no previous snapshot to roll back to")
        }
    }

    /// Every loaded snapshot, newest first.
    public func list() -> (models: [Encore_V1_ModelInfo], active: String) {
        let active = activeVersion
        return state.withLock { state in (state.loaded.map { info($0, active: active) }, active) }
    }

    /// Republishes the active snapshot bound to a new catalog and/or customer store (upserts).
    public func rebind(catalog: OfferCatalog? = nil, customers: CustomerGeneration? = nil) throws(GRPCStatus) {
        try state.withLock { _ throws(GRPCStatus) in
            do {
                engine.active.publish(try engine.active.value.rebinding(catalog: catalog, customers: customers))
            } catch {
                throw GRPCStatus(.failedPrecondition, "the active snapshot cannot serve the new data: \(error)")
            }
        }
    }

    /// The offline-evaluation gate (`--require-ope`). The candidate's OPE report must carry a
    /// comparison with the active policy on the same logs (`ope.comparison`, written by
    /// `encore-learn train/evaluate --server`), made against the version active now, in which
    /// the candidate's DR 95% lower bound is at least the active policy's DR estimate plus
    /// `opeMargin`. A number a snapshot reports about itself on other logs is never compared
    /// with another snapshot's. FAILED_PRECONDITION with the reason otherwise.
    func opeGate(_ candidate: ModelSnapshot, force: Bool) throws(GRPCStatus) {
        guard requireOPE, !force else { return }
        let active = engine.active.value
        if active.snapshot?.version == candidate.version { return }
        let how =
            "estimate it against the active policy on the same logs (encore-learn train or evaluate --server ADMIN_HOST:PORT), or activate with force"
        guard let json = candidate.opeReportJSON, let report = GateEvidence(json) else {
            throw GRPCStatus(
                .failedPrecondition,
                "offline evaluation required (--require-ope): snapshot \(candidate.version) carries no OPE report; \(how)"
            )
        }
        guard let comparison = report.comparison else {
            throw GRPCStatus(
                .failedPrecondition,
                "offline evaluation required (--require-ope): snapshot \(candidate.version)'s OPE report has no comparison with the active policy \(active.version) on the same logs (ope.comparison); its own estimates on other logs are not comparable; \(how)"
            )
        }
        guard comparison.activeVersion == active.version else {
            throw GRPCStatus(
                .failedPrecondition,
                "offline evaluation gate: snapshot \(candidate.version) was compared with \(comparison.activeVersion), but \(active.version) is active; \(how)"
            )
        }
        guard let lower = comparison.candidateDRLower, let activeDR = comparison.activeDR else {
            throw GRPCStatus(
                .failedPrecondition,
                "offline evaluation gate: snapshot \(candidate.version)'s comparison lacks the DR estimates (candidate_estimates.dr.ci95, active_estimates.dr.value)"
            )
        }
        if !(lower >= activeDR + opeMargin) {
            let margin = opeMargin == 0 ? "" : " + margin \(opeMargin)"
            throw GRPCStatus(
                .failedPrecondition,
                "offline evaluation gate: snapshot \(candidate.version) DR lower 95% bound \(lower) is below the active policy \(active.version)'s DR estimate \(activeDR)\(margin) on the same \(comparison.decisions.map(String.init) ?? "?") decisions; activate with force to override"
            )
        }
    }

    /// What the gate reads from a snapshot's OPE report JSON (python/encore/learn/compare.py).
    struct GateEvidence {
        struct Comparison {
            var activeVersion: String
            var activeDR: Double?
            var candidateDRLower: Double?
            var decisions: Int?
        }
        var comparison: Comparison?

        /// nil when `json` is not a JSON object.
        init?(_ json: String) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
                return nil
            }
            func number(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }
            func dr(_ estimates: Any?) -> [String: Any]? { (estimates as? [String: Any])?["dr"] as? [String: Any] }
            guard let c = object["comparison"] as? [String: Any], let version = c["active_version"] as? String else {
                comparison = nil
                return
            }
            let candidate = dr(c["candidate_estimates"])
            let lower = (candidate?["ci95"] as? [Any])?.first.flatMap(number) ?? number(candidate?["value"])
            let window = c["log_window"] as? [String: Any]
            comparison = Comparison(
                activeVersion: version, activeDR: number(dr(c["active_estimates"])?["value"]),
                candidateDRLower: lower, decisions: (window?["decisions"] as? NSNumber)?.intValue)
        }
    }

    /// A loaded snapshot as a snapshot file (`Models/GetSnapshot`): `version` empty for the
    /// active one. Re-encoded from the validated snapshot without a signature, and kept for the
    /// next call so a part-by-part download encodes it once. NOT_FOUND when no snapshot is
    /// active or `version` is not loaded.
    public func snapshotFile(version: String) throws(GRPCStatus) -> SnapshotFileExport {
        let snapshot: ModelSnapshot
        if version.isEmpty {
            guard let active = engine.active.value.snapshot else {
                throw GRPCStatus(
                    .notFound, "no snapshot is active: the policy is uniform over the eligible offers (version uniform)"
                )
            }
            snapshot = active
        } else {
            guard let loaded = state.withLock({ $0.loaded.first { $0.snapshot.version == version } }) else {
                throw GRPCStatus(.notFound, "no loaded snapshot has version \(version) (see Models/List)")
            }
            snapshot = loaded.snapshot
        }
        if let cached = exported.withLock({ $0 }), cached.version == snapshot.version,
            cached.createdAtMillis == snapshot.createdAtMillis
        {
            return cached
        }
        let bytes: [UInt8]
        do {
            bytes = try SnapshotFile.write(snapshot)
        } catch {
            throw GRPCStatus(.internal, "snapshot \(snapshot.version) could not be encoded: \(error)")
        }
        let export = SnapshotFileExport(
            version: snapshot.version, createdAtMillis: snapshot.createdAtMillis, bytes: bytes,
            sha256: bytes.withUnsafeBytes { SHA256.hex(SHA256.digest($0)) })
        exported.withLock { $0 = export }
        return export
    }

    /// Applies a batch of customer upserts and republishes the active model over the new
    /// customer generation (both atomically visible to the next decision).
    public func upsertCustomers(_ records: [CustomerUpsert]) throws(GRPCStatus) -> CustomerUpsertResult {
        try state.withLock { _ throws(GRPCStatus) in
            let result: CustomerUpsertResult
            do {
                result = try customers.upsert(records)
            } catch let error as StoreError {
                throw GRPCStatus(
                    error.code == .resourceExhausted ? .resourceExhausted : .invalidArgument, error.message)
            } catch {
                throw GRPCStatus(.invalidArgument, "\(error)")
            }
            do {
                engine.active.publish(try engine.active.value.rebinding(customers: customers.current))
            } catch {
                throw GRPCStatus(.failedPrecondition, "the active snapshot cannot serve the new customers: \(error)")
            }
            return result
        }
    }

    private func bindAndActivate(_ state: inout State, _ loaded: Loaded) throws(GRPCStatus) {
        let current = engine.active.value
        do {
            let bound = try ActiveModel(
                snapshot: loaded.snapshot, catalog: current.catalog, customers: current.customers,
                rules: current.ruleSettings)
            activateLocked(&state, bound)
        } catch {
            throw GRPCStatus(.failedPrecondition, "snapshot \(loaded.snapshot.version) refused: \(error)")
        }
    }

    private func activateLocked(_ state: inout State, _ bound: ActiveModel) {
        let previous = engine.active.value.version
        if previous != bound.version {
            state.history.removeAll { $0 == bound.version }
            state.history.append(previous)
        }
        engine.active.publish(bound)
    }

    /// Keeps the active snapshot, the last `keepPrevious` active ones and `keepPending` others.
    private func trim(_ state: inout State) {
        let active = engine.active.value.version
        let previous = Set(state.history.suffix(keepPrevious))
        var pending = 0
        state.loaded.removeAll { loaded in
            let v = loaded.snapshot.version
            if v == active || previous.contains(v) { return false }
            pending += 1
            return pending > keepPending
        }
        state.history = Array(state.history.suffix(keepPrevious))
    }

    private func info(_ loaded: Loaded, active: String) -> Encore_V1_ModelInfo {
        let s = loaded.snapshot
        var m = Encore_V1_ModelInfo()
        m.version = s.version
        m.createdAtMillis = s.createdAtMillis
        m.sha256 = SHA256.hex(loaded.metadata.sha256)
        m.sizeBytes = UInt64(loaded.metadata.fileBytes)
        m.active = s.version == active
        m.exploration = Self.describe(s.exploration)
        m.features = UInt32(s.schema.features.count)
        m.offers = UInt32(s.offerIDs.count)
        m.signed = loaded.metadata.signedBy != nil
        m.signer = loaded.metadata.signedBy.map(SHA256.hex) ?? ""
        m.loadedAtMillis = loaded.loadedAtMillis
        return m
    }

    public static func describe(_ e: Exploration) -> String { ActiveModel.describe(e) }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// A snapshot encoded as a file for `Models/GetSnapshot`.
public struct SnapshotFileExport: Sendable {
    public var version: String
    public var createdAtMillis: Int64
    public var bytes: [UInt8]
    /// Hex SHA-256 of `bytes`.
    public var sha256: String
}
