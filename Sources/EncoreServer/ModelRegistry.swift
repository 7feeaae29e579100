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
    /// Previously active snapshots kept loaded for instant rollback.
    public let keepPrevious = 3
    /// Pushed-but-never-activated snapshots kept at most.
    public let keepPending = 4
    private let state = Mutex(State())

    public init(
        engine: DecisionEngine, customers: CustomerTable, trustedKeys: [Ed25519.PublicKey], initial: Loaded?,
        requireOPE: Bool = false
    ) {
        self.engine = engine
        self.requireOPE = requireOPE
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

    /// The offline-evaluation gate (`--require-ope`): the candidate's DR 95% lower bound must be
    /// at least the active policy's estimated value (the active snapshot's own DR estimate, else
    /// the logging policy's value in the candidate's report). FAILED_PRECONDITION otherwise.
    func opeGate(_ candidate: ModelSnapshot, force: Bool) throws(GRPCStatus) {
        guard requireOPE, !force else { return }
        guard let report = candidate.opeReportJSON.flatMap(Self.estimates) else {
            throw GRPCStatus(
                .failedPrecondition,
                "offline evaluation required (--require-ope): snapshot \(candidate.version) carries no OPE report with estimates.dr; activate with force to override"
            )
        }
        guard let lower = report.drLower else {
            throw GRPCStatus(
                .failedPrecondition, "offline evaluation required: snapshot \(candidate.version) has no DR interval")
        }
        let active = engine.active.value
        let activeValue: Double?
        if active.snapshot?.version == candidate.version {
            return
        } else if let own = active.snapshot?.opeReportJSON.flatMap(Self.estimates)?.drValue {
            activeValue = own
        } else {
            activeValue = report.loggingValue
        }
        guard let activeValue else {
            throw GRPCStatus(
                .failedPrecondition,
                "offline evaluation required: no estimate of the active policy \(active.version)'s value to compare with"
            )
        }
        if lower < activeValue {
            throw GRPCStatus(
                .failedPrecondition,
                "offline evaluation gate: snapshot \(candidate.version) DR lower 95% bound \(lower) is below the active policy \(active.version)'s estimated value \(activeValue); activate with force to override"
            )
        }
    }

    struct Estimates {
        var drValue: Double?
        var drLower: Double?
        var loggingValue: Double?
    }

    static func estimates(_ json: String) -> Estimates? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let estimates = object["estimates"] as? [String: Any], let dr = estimates["dr"] as? [String: Any]
        else { return nil }
        func number(_ v: Any?) -> Double? {
            guard let v else { return nil }
            switch v {
            case let d as Double: return d
            case let i as Int: return Double(i)
            case let n as NSNumber: return n.doubleValue
            default: return nil
            }
        }
        var lower: Double? = nil
        if let ci = dr["ci95"] as? [Any], let first = ci.first {
            lower = number(first)
        } else if let ci = dr["ci95"] as? [Double], let first = ci.first {
            lower = first
        }
        var loggingValue: Double? = nil
        if let logging = estimates["logging"] as? [String: Any] { loggingValue = number(logging["value"]) }
        return Estimates(
            drValue: number(dr["value"]), drLower: lower ?? number(dr["value"]), loggingValue: loggingValue)
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
