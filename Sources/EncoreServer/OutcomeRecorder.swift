import EncoreEngine
import EncoreMetrics
import EncoreModel
import EncoreProtocol
import EncoreSupport
import EncoreTransport
import Synchronization

/// `Decisions/ReportOutcome`: validates an outcome, refuses a decision id whose MAC does not
/// verify (`DecisionEngine.verifyDecisionID`), drops repeats of the same (decision id,
/// offer id, outcome), and appends it to the reporting thread's log ring. Runs inline on the
/// reactor; the repeat filter takes a short mutex (outcomes arrive on any thread), never on
/// the Decide path. With `--durable-outcomes` the validated outcome goes to `OutcomeJournal`
/// instead, which answers the call after its write-ahead record is synced.
final class OutcomeRecorder: @unchecked Sendable {
    let engine: DecisionEngine
    let log: DecisionLog?
    /// Recent (decision id, offer id, outcome) keys: a repeat is acknowledged, not counted again.
    let repeats: OutcomeRepeats
    /// `--durable-outcomes`: outcomes go through the write-ahead journal and are acknowledged
    /// once it has synced them (nil: logged and counted inline, acknowledged at once).
    let journal: OutcomeJournal?
    /// One decoder per reactor thread.
    private var decoders: [OutcomeRequestDecoder]

    static let unverifiedMessage: StaticString =
        "decision_id: not a decision id this service issued (its MAC does not verify under the decision key or a previous key; ids from a process without --decision-key-file or --state-file stop verifying when it restarts)"

    /// One model reader per reactor thread (the catalog and rules the outcome is counted with).
    private var readers: [Published<ActiveModel>.Reader]
    /// Per reactor thread: acknowledged outcomes by (offer, outcome) and revenue by offer
    /// (`OutcomeMetrics` layout). Written only by that thread.
    let metrics: [CounterBlock]
    private let cells: [CounterCells]

    init(
        engine: DecisionEngine, repeats: OutcomeRepeats = OutcomeRepeats(), journal: OutcomeJournal? = nil,
        threads reactorThreads: Int = 1
    ) {
        self.engine = engine
        self.repeats = repeats
        self.journal = journal
        log = engine.log
        let threads = max(log?.rings.count ?? 0, 256)
        decoders = Array(repeating: OutcomeRequestDecoder(), count: threads)
        readers = Array(repeating: Published.Reader(engine.active), count: threads)
        metrics = (0..<max(reactorThreads, 1)).map { _ in CounterBlock(count: OutcomeMetrics.cellCount) }
        cells = metrics.map(\.cells)
    }

    /// The default mode: validates, then logs and counts inline; answered at once.
    func report(_ request: UnsafeRawBufferPointer, thread: Int) -> GRPCStatus {
        if let refusal = validate(request, thread: thread) { return refusal }
        let decoder = decoders[thread]
        let decisionID = decoder.decisionID.bytes(in: request)
        let offerID = decoder.offerID.bytes(in: request)
        let key = OutcomeRepeats.key(decisionID: decisionID, offerID: offerID, outcome: decoder.outcome)
        guard repeats.insert(key) else { return .ok }
        let nowMillis = DecisionLog.nowMillis
        if let log, thread < log.rings.count {
            log.appendOutcome(
                thread: thread, decisionID: decisionID, offerID: offerID, outcome: decoder.outcome,
                revenueCents: decoder.revenueCents, nowMillis: nowMillis)
        }
        if let kind = OutcomeKind(rawValue: decoder.outcome) {
            let offer = engine.recordOutcome(
                decisionID: decisionID, offerID: offerID, outcome: kind, nowMillis: nowMillis,
                model: readers[thread].current())
            if thread < cells.count {
                cells[thread].add(OutcomeMetrics.cell(offer: offer, outcome: kind))
                if offer >= 0 {
                    cells[thread].add(OutcomeMetrics.revenue(offer: offer), UInt64(max(decoder.revenueCents, 0)))
                }
            }
        }
        return .ok
    }

    /// `--durable-outcomes`: validates on the reactor, then hands the outcome to the journal,
    /// which answers the call once its record is synced (the repeat filter, log and counters
    /// are applied there, in journal order).
    func reportDurably(_ request: UnsafeRawBufferPointer, thread: Int, call: GRPCDeferredCall)
        -> GRPCDeferrableResult
    {
        if let refusal = validate(request, thread: thread) { return .now(refusal) }
        let decoder = decoders[thread]
        journal!.enqueue(
            decisionID: decoder.decisionID.bytes(in: request), offerID: decoder.offerID.bytes(in: request),
            outcome: decoder.outcome, revenueCents: decoder.revenueCents, nowMillis: DecisionLog.nowMillis,
            call: call)
        return .later
    }

    /// Decodes and checks one request; nil when it may be recorded, else the refusal.
    private func validate(_ request: UnsafeRawBufferPointer, thread: Int) -> GRPCStatus? {
        do {
            try decoders[thread].decode(request)
        } catch {
            return GRPCStatus(.invalidArgument, "OutcomeRequest could not be decoded: \(error.message)")
        }
        let decoder = decoders[thread]
        let decisionID = decoder.decisionID.bytes(in: request)
        let offerID = decoder.offerID.bytes(in: request)
        guard decisionID.count > 0 else {
            return GRPCStatus(.invalidArgument, static: "decision_id: must not be empty")
        }
        guard offerID.count > 0 else { return GRPCStatus(.invalidArgument, static: "offer_id: must not be empty") }
        guard decisionID.count <= 256, offerID.count <= 256 else {
            return GRPCStatus(.invalidArgument, static: "decision_id, offer_id: at most 256 bytes each")
        }
        guard (1...4).contains(decoder.outcome) else {
            return GRPCStatus(
                .invalidArgument,
                static: "outcome: must be SHOWN, ACCEPTED, DECLINED or IGNORED (not OUTCOME_UNSPECIFIED)")
        }
        guard RequestLimits.revenueCents.contains(decoder.revenueCents) else {
            return GRPCStatus(
                .invalidArgument, static: "revenue_cents: must be in 0...100000000000 (minor currency units)")
        }
        // Only an id this service issued may move counters or budgets: a made-up id (or one
        // whose customer part was edited) does not verify, and is refused, counted, not logged.
        guard engine.verifyDecisionID(decisionID) else {
            engine.unverifiedOutcomes.add(1, ordering: .relaxed)
            return GRPCStatus(.invalidArgument, static: OutcomeRecorder.unverifiedMessage)
        }
        return nil
    }
}

/// The repeat filter of ReportOutcome: two generations of at most `generationSize` keys each,
/// so memory stays bounded and a repeat within the last 1-2 million outcomes is recognised.
/// Outcomes arrive on any thread (and the journal's): a short mutex, never on the Decide path.
final class OutcomeRepeats: Sendable {
    private let seen = Mutex<(current: Set<UInt64>, previous: Set<UInt64>)>(([], []))
    static let generationSize = 1 << 20
    /// Outcomes acknowledged as repeats (not logged or counted again).
    let repeats = Atomic<Int>(0)

    init() {}

    static func key(decisionID: UnsafeRawBufferPointer, offerID: UnsafeRawBufferPointer, outcome: Int32) -> UInt64 {
        StableHash.hash(decisionID, seed: StableHash.hash(offerID) &+ UInt64(outcome))
    }

    /// Inserts `key`; false (and counted) when it was seen recently.
    func insert(_ key: UInt64) -> Bool {
        let fresh = seen.withLock { sets -> Bool in
            if sets.current.contains(key) || sets.previous.contains(key) { return false }
            if sets.current.count >= OutcomeRepeats.generationSize {
                sets.previous = sets.current
                sets.current.removeAll(keepingCapacity: true)
            }
            sets.current.insert(key)
            return true
        }
        if !fresh { repeats.add(1, ordering: .relaxed) }
        return fresh
    }

    /// Forgets `key` (its outcome could not be made durable: a retry must be recorded).
    func remove(_ key: UInt64) {
        seen.withLock { sets in
            sets.current.remove(key)
            sets.previous.remove(key)
        }
    }
}

/// Cells of an `OutcomeRecorder` thread's counters: per offer (catalog index, past
/// `offerMetricsCapacity` in one row) the four outcomes and the revenue reported (cents), then
/// outcomes for offers not in the catalog.
enum OutcomeMetrics {
    static let rowCells = 5
    static let rows = DecisionWorkspace.offerMetricsCapacity + 1
    static func row(_ offer: Int32) -> Int { min(Int(offer), DecisionWorkspace.offerMetricsCapacity) * rowCells }
    static func cell(offer: Int32, outcome: OutcomeKind) -> Int {
        offer < 0 ? unknownOffer : row(offer) + Int(outcome.rawValue) - 1
    }
    static func revenue(offer: Int32) -> Int { row(offer) + 4 }
    static let unknownOffer = rows * rowCells
    static let cellCount = unknownOffer + 1
}
