import EncoreCrypto
import EncoreEngine
import EncoreModel
import EncoreProtocol
import EncoreStore
import Foundation
import Synchronization

/// The snapshots this server has loaded and which one is active, and the only writer of the
/// active state (`engine.active` and the customer table behind it).
///
/// Every admin write is a read-modify-write of the active model: a push binds the new snapshot
/// to the active catalog and customers, an offer upsert applies its offers to the active catalog
/// and rebinds the snapshot, a customer upsert applies its records to the customer table and
/// rebinds. Each runs from the read of the current state to the publish of the next one inside
/// the one `state` lock, so no write is computed from a state another write is replacing, and
/// every acknowledged write is in every later state. Work that depends only on the request
/// (parsing, checksum and signature checks) runs before the lock. Writers are admin calls, off the
/// reactor threads; decisions read `engine.active` lock-free through `Published` and never wait
/// on the lock. Refusals are `RegistryError`s; the services map them to gRPC statuses.
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
    /// The customer table behind the active model (upserts publish new generations, only
    /// through `upsertCustomers`).
    public let customers: CustomerTable
    public let trustedKeys: [Ed25519.PublicKey]
    /// With `encore serve --require-ope`: activation refuses a snapshot whose offline DR lower
    /// bound is below the active policy's estimated value, unless forced.
    public let requireOPE: Bool
    /// With `requireOPE`: how far the candidate's DR lower bound must be above the active
    /// policy's DR estimate in the same comparison (`models.ope_margin`, the reward's unit).
    public let opeMargin: Double
    /// Most offers one surface may have eligible; an upsert past it is refused
    /// (`OfferCatalog.defaultMaxOffersPerSurface`).
    public let maxOffersPerSurface: Int
    /// Previously active snapshots kept loaded for instant rollback.
    public let keepPrevious = 3
    /// Pushed-but-never-activated snapshots kept at most.
    public let keepPending = 4
    /// Serializes every write of the active state (see the type's comment). Written and read by
    /// admin calls only; `engine.active` is published only while it is held.
    private let state = Mutex(State())
    /// Pushes, activations, rollbacks and refusals, for metrics and the status page.
    public let events = ModelEvents()
    /// The last snapshot file served by `snapshotFile` (GetSnapshot asks once per part).
    private let exported = Mutex<SnapshotFileExport?>(nil)

    public init(
        engine: DecisionEngine, customers: CustomerTable, trustedKeys: [Ed25519.PublicKey], initial: Loaded?,
        requireOPE: Bool = false, opeMargin: Double = 0,
        maxOffersPerSurface: Int = OfferCatalog.defaultMaxOffersPerSurface
    ) {
        self.maxOffersPerSurface = maxOffersPerSurface
        self.engine = engine
        self.requireOPE = requireOPE
        self.opeMargin = opeMargin
        self.customers = customers
        self.trustedKeys = trustedKeys
        if let initial { state.withLock { $0.loaded = [initial] } }
        events.record(.started, version: engine.active.value.version)
    }

    /// The active model version.
    public var activeVersion: String { engine.active.value.version }

    /// Validates a pushed snapshot (format, checksum, signature, NaN, schema against the running
    /// store) and keeps it loaded; activates it when asked. Throws `.failedPrecondition` naming
    /// the problem (also for the offline gate when activating).
    public func push(_ bytes: [UInt8], activate: Bool) throws(RegistryError) -> (Encore_V1_ModelInfo, Bool) {
        // Reading and verifying the file depend on nothing the other writes change.
        let snapshot: ModelSnapshot
        let metadata: SnapshotFile.Metadata
        do {
            (snapshot, metadata) = try SnapshotFile.read(bytes, trustedKeys: trustedKeys)
        } catch {
            events.record(.pushRefused, version: "", detail: "\(error)")
            throw RegistryError(.failedPrecondition, "snapshot refused: \(error)")
        }
        let loaded = Loaded(snapshot: snapshot, metadata: metadata, loadedAtMillis: Self.nowMillis())
        return try state.withLock { state throws(RegistryError) in
            let current = engine.active.value
            let bound: ActiveModel
            do throws(RegistryError) { bound = try Self.bind(snapshot, to: current, refusal: "snapshot refused") } catch
            {
                events.record(.pushRefused, version: snapshot.version, detail: error.message)
                throw error
            }
            events.record(.pushed, version: snapshot.version)
            if activate { try gate(snapshot, force: false, active: current) }
            if let i = state.loaded.firstIndex(where: { $0.snapshot.version == snapshot.version }) {
                state.loaded.remove(at: i)
            }
            state.loaded.insert(loaded, at: 0)
            if activate {
                activateLocked(&state, bound)
                events.record(.activated, version: snapshot.version)
            }
            trim(&state)
            return (info(loaded, active: engine.active.value.version), activate)
        }
    }

    /// Makes the loaded snapshot `version` active. `.notFound` if it is not loaded,
    /// `.failedPrecondition` if the offline gate or binding refuses it.
    public func activate(version: String, force: Bool = false) throws(RegistryError) -> Encore_V1_ModelInfo {
        try state.withLock { state throws(RegistryError) in
            guard let loaded = state.loaded.first(where: { $0.snapshot.version == version }) else {
                throw RegistryError(.notFound, "no loaded snapshot has version \(version) (see Models/List)")
            }
            let current = engine.active.value
            try gate(loaded.snapshot, force: force, active: current)
            let bound = try Self.bind(
                loaded.snapshot, to: current, refusal: "snapshot \(loaded.snapshot.version) refused")
            activateLocked(&state, bound)
            events.record(.activated, version: version, detail: force ? "forced" : "")
            return info(loaded, active: version)
        }
    }

    /// Re-activates the previously active snapshot. `.failedPrecondition` if there is none or it
    /// cannot serve the running catalog and store.
    public func rollback() throws(RegistryError) -> Encore_V1_ModelInfo {
        try state.withLock { state throws(RegistryError) in
            while let previous = state.history.popLast() {
                guard let loaded = state.loaded.first(where: { $0.snapshot.version == previous }) else { continue }
                let bound = try Self.bind(
                    loaded.snapshot, to: engine.active.value, refusal: "rollback to \(previous) refused")
                engine.active.publish(bound)
                events.record(.rolledBack, version: previous)
                return info(loaded, active: previous)
            }
            throw RegistryError(.failedPrecondition, "no previous snapshot to roll back to")
        }
    }

    /// Every loaded snapshot, newest first, and the active version (one consistent view).
    public func list() -> (models: [Encore_V1_ModelInfo], active: String) {
        state.withLock { state in
            let active = engine.active.value.version
            return (state.loaded.map { info($0, active: active) }, active)
        }
    }

    /// Applies `offers` (parsed, not yet interned) to the active catalog as one new generation and
    /// republishes the active snapshot bound to it: inserted offers are appended, existing ids
    /// replaced in place. Returns how many were applied and the new catalog's size.
    /// `.invalidArgument` if the batch breaks a catalog rule, `.failedPrecondition` if the active
    /// snapshot cannot serve the new catalog; nothing is published then.
    public func upsertOffers(_ offers: [Offer]) throws(RegistryError) -> (upserted: Int, total: Int) {
        try state.withLock { _ throws(RegistryError) in
            let current = engine.active.value
            let catalog: OfferCatalog
            do {
                catalog = try current.catalog.upserting(offers)
            } catch {
                throw RegistryError(.invalidArgument, "offers refused: \(error)")
            }
            if let problem = catalog.perSurfaceLimitProblem(maxOffersPerSurface: maxOffersPerSurface) {
                throw RegistryError(.resourceExhausted, "offers refused: with them \(problem)")
            }
            let next: ActiveModel
            do {
                next = try current.rebinding(catalog: catalog)
            } catch {
                throw RegistryError(
                    .failedPrecondition, "the active snapshot cannot serve the new catalog: \(error)")
            }
            engine.active.publish(next)
            return (offers.count, catalog.count)
        }
    }

    /// Applies a batch of customer upserts and republishes the active model over the new
    /// customer generation (both atomically visible to the next decision; all or nothing).
    /// `.invalidArgument` naming the record for a bad one, `.resourceExhausted` when the overlay
    /// is full, `.failedPrecondition` if the active snapshot cannot serve the new generation;
    /// nothing is published then.
    public func upsertCustomers(_ records: [CustomerUpsert]) throws(RegistryError) -> CustomerUpsertResult {
        try state.withLock { _ throws(RegistryError) in
            do {
                return try customers.upsert(records) { generation in
                    do {
                        engine.active.publish(try engine.active.value.rebinding(customers: generation))
                    } catch {
                        throw RegistryError(
                            .failedPrecondition, "the active snapshot cannot serve the new customers: \(error)")
                    }
                }
            } catch let error as RegistryError {
                throw error
            } catch let error as StoreError {
                throw RegistryError(
                    error.code == .resourceExhausted ? .resourceExhausted : .invalidArgument, error.message)
            } catch {
                throw RegistryError(.invalidArgument, "\(error)")
            }
        }
    }

    /// `snapshot` bound to `current`'s catalog, customers and rule settings; `.failedPrecondition`
    /// prefixed with `refusal` when it cannot serve them.
    private static func bind(_ snapshot: ModelSnapshot, to current: ActiveModel, refusal: String) throws(RegistryError)
        -> ActiveModel
    {
        do {
            return try ActiveModel(
                snapshot: snapshot, catalog: current.catalog, customers: current.customers,
                rules: current.ruleSettings)
        } catch {
            throw RegistryError(.failedPrecondition, "\(refusal): \(error)")
        }
    }

    /// Replay protection with `--trusted-key`: activating a snapshot created before the active
    /// one would let anyone holding an old signed file roll the service back silently, so it
    /// needs `force` (role `models.force`). Rollback is exempt: going back is its purpose.
    func replayGate(_ candidate: ModelSnapshot, force: Bool, active: ActiveModel) throws(RegistryError) {
        guard !trustedKeys.isEmpty, !force, let current = active.snapshot, current.version != candidate.version
        else { return }
        guard candidate.createdAtMillis < current.createdAtMillis else { return }
        throw RegistryError(
            .failedPrecondition,
            "snapshot \(candidate.version) was created at \(candidate.createdAtMillis) ms, before the active \(current.version) (\(current.createdAtMillis) ms): with trusted keys an older signed snapshot is only activated with Models/Activate force=true (role models.force), or by Models/Rollback"
        )
    }

    /// The offline-evaluation gate (`--require-ope`). The candidate's OPE report must carry a
    /// comparison with the active policy on the same logs (`ope.comparison`, written by
    /// `encore-learn train/evaluate --server`), made against the version active now, in which
    /// the candidate's DR 95% lower bound is at least the active policy's DR estimate plus
    /// `opeMargin`. A number a snapshot reports about itself on other logs is never compared
    /// with another snapshot's. FAILED_PRECONDITION with the reason otherwise.
    /// `active` is the model the candidate would replace, read under the lock by the caller.
    /// `opeGate`, counting a refusal.
    private func gate(_ candidate: ModelSnapshot, force: Bool, active: ActiveModel) throws(RegistryError) {
        do throws(RegistryError) {
            try replayGate(candidate, force: force, active: active)
            try opeGate(candidate, force: force, active: active)
        } catch {
            events.record(.gateRefused, version: candidate.version, detail: error.message)
            throw error
        }
    }

    func opeGate(_ candidate: ModelSnapshot, force: Bool, active: ActiveModel) throws(RegistryError) {
        guard requireOPE, !force else { return }
        if active.snapshot?.version == candidate.version { return }
        let how =
            "estimate it against the active policy on the same logs (encore-learn train or evaluate --server ADMIN_HOST:PORT), or activate with force"
        guard let json = candidate.opeReportJSON, let report = GateEvidence(json) else {
            throw RegistryError(
                .failedPrecondition,
                "offline evaluation required (--require-ope): snapshot \(candidate.version) carries no OPE report; \(how)"
            )
        }
        guard let comparison = report.comparison else {
            throw RegistryError(
                .failedPrecondition,
                "offline evaluation required (--require-ope): snapshot \(candidate.version)'s OPE report has no comparison with the active policy \(active.version) on the same logs (ope.comparison); its own estimates on other logs are not comparable; \(how)"
            )
        }
        guard comparison.activeVersion == active.version else {
            throw RegistryError(
                .failedPrecondition,
                "offline evaluation gate: snapshot \(candidate.version) was compared with \(comparison.activeVersion), but \(active.version) is active; \(how)"
            )
        }
        guard let lower = comparison.candidateDRLower, let activeDR = comparison.activeDR else {
            throw RegistryError(
                .failedPrecondition,
                "offline evaluation gate: snapshot \(candidate.version)'s comparison lacks the DR estimates (candidate_estimates.dr.ci95, active_estimates.dr.value)"
            )
        }
        if !(lower >= activeDR + opeMargin) {
            let margin = opeMargin == 0 ? "" : " + margin \(opeMargin)"
            throw RegistryError(
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
    public func snapshotFile(version: String) throws(RegistryError) -> SnapshotFileExport {
        let snapshot: ModelSnapshot
        if version.isEmpty {
            guard let active = engine.active.value.snapshot else {
                throw RegistryError(
                    .notFound, "no snapshot is active: the policy is uniform over the eligible offers (version uniform)"
                )
            }
            snapshot = active
        } else {
            guard let loaded = state.withLock({ $0.loaded.first { $0.snapshot.version == version } }) else {
                throw RegistryError(.notFound, "no loaded snapshot has version \(version) (see Models/List)")
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
            throw RegistryError(.internalError, "snapshot \(snapshot.version) could not be encoded: \(error)")
        }
        let export = SnapshotFileExport(
            version: snapshot.version, createdAtMillis: snapshot.createdAtMillis, bytes: bytes,
            sha256: bytes.withUnsafeBytes { SHA256.hex(SHA256.digest($0)) })
        exported.withLock { $0 = export }
        return export
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
