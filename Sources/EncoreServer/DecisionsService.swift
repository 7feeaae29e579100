import EncoreEngine
import EncoreMetrics
import EncoreProtocol
import EncoreStore
import EncoreSupport
import EncoreTransport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `encore.v1.Decisions`: Decide runs inline on the reactor thread through that thread's
/// `DecideContext` (decoder, engine workspace, output and scratch buffers, all reused), so a
/// decision allocates nothing, takes no lock and makes no syscall.
public final class DecisionsService: Sendable {
    public let engine: DecisionEngine
    private let contexts: DecideContexts
    /// Records outcomes (and counts them per offer).
    let outcomes: OutcomeRecorder

    private let debugStall: DebugStall?

    /// An artificial server stall for testing load generators (`encore serve --debug-stall-ms`):
    /// the reactor thread that handles every `every`-th Decide call (counted per reactor thread)
    /// sleeps `micros` microseconds before deciding, blocking every connection on that thread.
    /// Never for production; off unless both values are positive.
    public struct DebugStall: Sendable {
        public var micros: UInt32
        public var every: Int
        public init(micros: UInt32, every: Int) {
            self.micros = micros
            self.every = every
        }
    }

    /// One context per reactor thread (`threads`). `debugStall` (tests only) makes Decide stall
    /// now and then; nil, the default, registers the plain handler, so it costs nothing.
    public convenience init(engine: DecisionEngine, threads: Int, debugStall: DebugStall? = nil) {
        self.init(
            engine: engine, threads: threads, debugStall: debugStall,
            outcomes: OutcomeRecorder(engine: engine, threads: threads))
    }

    /// `outcomes` answers ReportOutcome (inline, or through the durable journal).
    init(engine: DecisionEngine, threads: Int, debugStall: DebugStall?, outcomes: OutcomeRecorder) {
        self.outcomes = outcomes
        self.engine = engine
        contexts = DecideContexts((0..<threads).map { DecideContext(workspace: engine.makeWorkspace(threadIndex: $0)) })
        self.debugStall = debugStall.flatMap { $0.micros > 0 && $0.every > 0 ? $0 : nil }
    }

    /// Decide calls whose `x-encore-customer` header (the load balancer's routing key) named
    /// another customer than the body's `customer_id`, since start, over every reactor thread.
    /// The body decides; a mismatch means a client routes on the wrong key, so that customer's
    /// rule counters may be split across replicas (docs/scaling.md).
    public var customerHeaderMismatches: Int {
        contexts.all.reduce(0) { $0 + $1.customerHeaderMismatches.load(ordering: .relaxed) }
    }

    /// The latency labels of Decide (its histograms are per surface).
    static let surfaceLabels = Surface.allCases.map(\.rawValue)

    /// Every thread's Decide counters (`DecideMetrics` layout) and budget exhaustion counters.
    var decideBlocks: [CounterBlock] { contexts.all.map(\.metrics) }
    var budgetBlocks: [CounterBlock] { contexts.all.map(\.workspace.budgetExhaustions) }

    public func register(in router: inout GRPCRouter) {
        let contexts = self.contexts
        let labels = DecisionsService.surfaceLabels
        if let stall = debugStall {
            router.register(
                "/encore.v1.Decisions/Decide",
                .inline { request, response, call in
                    let context = contexts.all[call.reactorIndex]
                    context.debugCalls += 1
                    if context.debugCalls % stall.every == 0 { usleep(stall.micros) }
                    return context.decide(request, &response, affinityKeyHash: call.affinityKeyHash)
                }, latencyLabels: labels)
        } else {
            router.register(
                "/encore.v1.Decisions/Decide",
                .inline { request, response, call in
                    contexts.all[call.reactorIndex].decide(request, &response, affinityKeyHash: call.affinityKeyHash)
                }, latencyLabels: labels)
        }
        let outcomes = self.outcomes
        if outcomes.journal != nil {
            router.register(
                "/encore.v1.Decisions/ReportOutcome",
                .deferrable { request, _, context, call in
                    outcomes.reportDurably(request, thread: context.reactorIndex, call: call)
                })
        } else {
            router.register(
                "/encore.v1.Decisions/ReportOutcome",
                .inline { request, _, call in
                    outcomes.report(request, thread: call.reactorIndex)
                })
        }
    }
}

/// Holds the per-thread contexts. Each is used only by its reactor thread (index = reactor).
final class DecideContexts: @unchecked Sendable {
    let all: [DecideContext]
    init(_ all: [DecideContext]) { self.all = all }
}

/// Cells of a `DecideContext`'s counters: decisions by (surface, group), order value by group
/// (sum in cents and sum of squares as a `Double`), treated decisions with nothing placed by
/// surface, and placements per offer (catalog index; past `offerMetricsCapacity` in one cell).
enum DecideMetrics {
    static let surfaces = Surface.allCases.count
    /// group 0: treated, 1: holdout.
    static func decisions(surface: Int, holdout: Bool) -> Int { surface * 2 + (holdout ? 1 : 0) }
    static func orderValueCents(holdout: Bool) -> Int { surfaces * 2 + (holdout ? 1 : 0) }
    static func orderValueSquares(holdout: Bool) -> Int { surfaces * 2 + 2 + (holdout ? 1 : 0) }
    static func empty(surface: Int) -> Int { surfaces * 2 + 4 + surface }
    static let placementBase = surfaces * 3 + 4
    static func placements(offer: Int32) -> Int {
        placementBase + min(Int(offer), DecisionWorkspace.offerMetricsCapacity)
    }
    static let cellCount = placementBase + DecisionWorkspace.offerMetricsCapacity + 1
}

/// One reactor thread's reusable Decide state.
final class DecideContext {
    private var decoder = DecideRequestDecoder()
    let workspace: DecisionWorkspace
    /// This thread's Decide counters (`DecideMetrics`); written only by this reactor thread.
    let metrics = CounterBlock(count: DecideMetrics.cellCount)
    private let cells: CounterCells
    private var output = DecisionOutput()
    private var categories: UnsafeMutableBufferPointer<UnsafeRawBufferPointer>
    private var candidateIDs: UnsafeMutableBufferPointer<UnsafeRawBufferPointer>
    private var featureKeys: UnsafeMutableBufferPointer<UnsafeRawBufferPointer>
    private var featureValues: UnsafeMutableBufferPointer<Double>
    private var placements: UnsafeMutableBufferPointer<PlacementFields>
    private var items: UnsafeMutableBufferPointer<LineItemInput>
    /// Decide calls on this thread, counted only when a debug stall is configured.
    var debugCalls = 0
    /// Decide calls on this thread whose `x-encore-customer` header disagreed with the body's
    /// customer id. Written only by this context's reactor thread (and only on a mismatch), read
    /// by `DecisionsService.customerHeaderMismatches` from any thread.
    let customerHeaderMismatches = Atomic<Int>(0)

    init(workspace: DecisionWorkspace) {
        self.workspace = workspace
        cells = metrics.cells
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        categories = .allocate(capacity: DecideRequestDecoder.maxStoredItems)
        categories.initialize(repeating: empty)
        candidateIDs = .allocate(capacity: DecideRequestDecoder.maxStoredCandidates)
        candidateIDs.initialize(repeating: empty)
        featureKeys = .allocate(capacity: DecideRequestDecoder.maxStoredFeatures)
        featureKeys.initialize(repeating: empty)
        featureValues = .allocate(capacity: DecideRequestDecoder.maxStoredFeatures)
        featureValues.initialize(repeating: 0)
        items = .allocate(capacity: DecideRequestDecoder.maxStoredItems)
        items.initialize(repeating: LineItemInput(sku: empty, category: empty, priceCents: 0, quantity: 0))
        placements = .allocate(capacity: 2)
        placements.initialize(
            repeating: PlacementFields(offerID: empty, slot: 0, propensity: 0, score: 0, expectedValue: 0))
    }

    deinit {
        categories.deallocate()
        candidateIDs.deallocate()
        featureKeys.deallocate()
        featureValues.deallocate()
        placements.deallocate()
        items.deallocate()
    }

    func decide(
        _ request: UnsafeRawBufferPointer, _ response: inout GRPCResponseBuffer, affinityKeyHash: UInt64? = nil
    ) -> GRPCStatus {
        do {
            try decoder.decode(request)
        } catch {
            return GRPCStatus(.invalidArgument, "DecideRequest could not be decoded: \(error.message)")
        }
        var input = DecisionInput()
        input.surface = decoder.surface.bytes(in: request)
        input.customerID = decoder.customerID.bytes(in: request)
        if let affinityKeyHash, GRPCCallContext.affinityHash(input.customerID) != affinityKeyHash {
            customerHeaderMismatches.add(1, ordering: .relaxed)
        }
        input.requestID = decoder.requestID.bytes(in: request)
        input.orderID = decoder.orderID.bytes(in: request)
        input.totalCents = decoder.totalCents
        input.shippingMethod = decoder.shippingMethod.bytes(in: request)
        input.channel = decoder.channel.bytes(in: request)
        input.device = decoder.device.bytes(in: request)
        input.country = decoder.country.bytes(in: request)
        input.isGift = decoder.isGift
        input.slots = decoder.slots
        var quantity: Int64 = 0
        let items = decoder.items
        for i in 0..<items.count {
            categories[i] = items[i].category.bytes(in: request)
            quantity += Int64(items[i].quantity)
            self.items[i] = LineItemInput(
                sku: items[i].sku.bytes(in: request), category: categories[i], priceCents: items[i].priceCents,
                quantity: items[i].quantity)
        }
        input.itemQuantity = quantity
        input.itemCount = decoder.itemCount
        input.categories = UnsafeBufferPointer(rebasing: categories[0..<items.count])
        input.items = UnsafeBufferPointer(rebasing: self.items[0..<items.count])
        input.currency = decoder.currency.bytes(in: request)
        let candidates = decoder.candidates
        for i in 0..<candidates.count { candidateIDs[i] = candidates[i].bytes(in: request) }
        input.candidates = UnsafeBufferPointer(rebasing: candidateIDs[0..<candidates.count])
        input.candidateCount = decoder.candidateCount
        let features = decoder.features
        if decoder.featureCount > features.count {
            return GRPCStatus(.invalidArgument, static: RequestLimits.featuresMessage)
        }
        for i in 0..<features.count {
            featureKeys[i] = features[i].key.bytes(in: request)
            featureValues[i] = features[i].value
        }
        input.featureKeys = UnsafeBufferPointer(rebasing: featureKeys[0..<features.count])
        input.featureValues = UnsafeBufferPointer(rebasing: featureValues[0..<features.count])

        do {
            try workspace.decide(input, into: &output)
        } catch {
            return GRPCStatus(error.code == .invalidArgument ? .invalidArgument : .unavailable, static: error.message)
        }
        guard let model = output.model else { return GRPCStatus(.internal, static: "decision produced no model") }
        count(totalCents: input.totalCents)
        response.metricsLabel = Int32(output.surfaceIndex)
        return output.withDecisionID { decisionID in
            encode(model: model, decisionID: decisionID, version: model.versionBytes, into: &response)
        }
    }

    /// Counts a decision made (plain per-thread cells: no allocation, no shared cache line).
    @inline(__always)
    private func count(totalCents: Int64) {
        let surface = output.surfaceIndex
        guard surface >= 0 else { return }
        let holdout = output.holdout
        cells.add(DecideMetrics.decisions(surface: surface, holdout: holdout))
        let total = max(totalCents, 0)
        cells.add(DecideMetrics.orderValueCents(holdout: holdout), UInt64(total))
        let value = Double(total)
        cells.addDouble(DecideMetrics.orderValueSquares(holdout: holdout), value * value)
        if output.placementCount == 0 {
            if !holdout { cells.add(DecideMetrics.empty(surface: surface)) }
            return
        }
        cells.add(DecideMetrics.placements(offer: output.first.offerIndex))
        if output.placementCount > 1 { cells.add(DecideMetrics.placements(offer: output.second.offerIndex)) }
    }

    private func encode(
        model: ActiveModel, decisionID: UnsafeRawBufferPointer, version: UnsafeRawBufferPointer,
        into response: inout GRPCResponseBuffer
    ) -> GRPCStatus {
        for i in 0..<output.placementCount {
            let p = output.placement(i)
            placements[i] = PlacementFields(
                offerID: model.offerIDBytes(p.offerIndex), slot: p.slot, propensity: p.propensity, score: p.score,
                expectedValue: p.expectedValue)
        }
        response.withAppendableBytes { bytes in
            DecideResponseEncoder.encode(
                decisionID: decisionID,
                placements: UnsafeBufferPointer(rebasing: placements[0..<output.placementCount]),
                modelVersion: version, holdout: output.holdout, into: &bytes)
        }
        return .ok
    }
}
