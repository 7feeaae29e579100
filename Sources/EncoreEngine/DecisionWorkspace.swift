import EncoreCrypto
import EncoreMetrics
import EncoreModel
import EncoreStore
import EncoreSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One thread's decision state: scratch buffers sized once, a cached reference to the active
/// model and a decision counter. `decide` runs eligibility, features, scoring, exploration and
/// slate selection without allocating, locking, logging or making a syscall.
public final class DecisionWorkspace {
    let engine: DecisionEngine
    let threadIndex: Int
    private var reader: Published<ActiveModel>.Reader
    private var counter: UInt64 = 0
    let holdoutSeed: UInt64
    /// Scored vector (padded to 8).
    var z: UnsafeMutableBufferPointer<Float>
    var candidates: UnsafeMutableBufferPointer<Int32>
    var rewards: UnsafeMutableBufferPointer<Double>
    var scores: UnsafeMutableBufferPointer<Double>
    var probabilities: UnsafeMutableBufferPointer<Double>
    /// Per catalog offer: the decision number that last marked it (dedupes candidates).
    var marks: UnsafeMutableBufferPointer<UInt64>
    var capacity = 0
    var zCapacity = 0
    /// Candidates in the order the policy saw them, kept for the log (slot 1 reorders `candidates`).
    var loggedCandidates: UnsafeMutableBufferPointer<Int32>
    /// This thread's log ring (nil: logging off).
    let logRing: LogRing?
    var lastCustomerFeatures = UnsafeBufferPointer<Float>(start: nil, count: 0)
    var lastSegments: UInt64 = 0
    /// The current decision's time (Unix milliseconds), shared by rules and the log record.
    var nowMillis: Int64 = 0
    /// The customer's counter entry read for this decision, and its per-offer summary (rules).
    var counterPayload: UnsafeMutableBufferPointer<UInt64>
    var historyOffers: UnsafeMutableBufferPointer<Int32>
    var historyDeclinedAtMinute: UnsafeMutableBufferPointer<Int64>
    var historyRecentShows: UnsafeMutableBufferPointer<Int32>
    /// Request field hashes for static rules.
    var requestHashes: RequestHashes
    /// Per catalog offer: the rule stamp of the decision whose customer history blocks it.
    var blockMarks: UnsafeMutableBufferPointer<UInt64>
    var ruleStamp: UInt64 = 0
    /// Per static rule group: the stamp of the decision that evaluated it, and the result
    /// (bit 0: passes).
    var groupMarks: UnsafeMutableBufferPointer<UInt64>
    /// The current decision's idempotency key (0: no `request_id`).
    var requestKey: UInt64 = 0
    /// The decision-id MAC's state after this thread's id prefix, and after the prefix of
    /// idempotent ids (thread field `ff`): absorbed once, copied per decision.
    let macPrefix: SipHash24
    let idempotentMACPrefix: SipHash24
    /// Whether the last `score` call computed only finite scores.
    var scoresFinite = true
    /// Candidates this thread's decisions dropped because the offer's paced budget was spent,
    /// per catalog index (`offerMetricsCapacity` of them; later offers share the last cell).
    /// Written by this workspace's thread only; read by scrapes.
    public let budgetExhaustions = CounterBlock(count: DecisionWorkspace.offerMetricsCapacity + 1)
    let budgetCells: CounterCells

    /// Offers with their own per-offer metric cells; offers past it are counted together.
    public static let offerMetricsCapacity = 1024

    /// Largest request feature magnitude accepted (float32's largest finite value).
    static let maxFeatureMagnitude = Double(Float.greatestFiniteMagnitude)

    init(engine: DecisionEngine, threadIndex: Int) {
        self.engine = engine
        self.threadIndex = threadIndex
        reader = Published.Reader(engine.active)
        budgetCells = budgetExhaustions.cells
        holdoutSeed = StableHash.hash(engine.configuration.holdoutSalt)
        macPrefix = DecisionID.prefixState(
            key: engine.decisionKey, instance: engine.instanceID, thread: UInt64(threadIndex & 0xFF))
        idempotentMACPrefix = DecisionID.prefixState(key: engine.decisionKey, instance: engine.instanceID, thread: 0xFF)
        z = .allocate(capacity: 8)
        candidates = .allocate(capacity: 1)
        rewards = .allocate(capacity: 1)
        scores = .allocate(capacity: 1)
        probabilities = .allocate(capacity: 1)
        marks = .allocate(capacity: 1)
        loggedCandidates = .allocate(capacity: 1)
        blockMarks = .allocate(capacity: 1)
        groupMarks = .allocate(capacity: 1)
        counterPayload = .allocate(capacity: CustomerCounters.payloadWords)
        counterPayload.initialize(repeating: 0)
        historyOffers = .allocate(capacity: CustomerCounters.payloadWords * 2)
        historyOffers.initialize(repeating: 0)
        historyDeclinedAtMinute = .allocate(capacity: CustomerCounters.payloadWords * 2)
        historyDeclinedAtMinute.initialize(repeating: 0)
        historyRecentShows = .allocate(capacity: CustomerCounters.payloadWords * 2)
        historyRecentShows.initialize(repeating: 0)
        requestHashes = RequestHashes(categories: .allocate(capacity: 128))
        requestHashes.categories.initialize(repeating: 0)
        if let log = engine.log, threadIndex < log.rings.count {
            logRing = log.rings[threadIndex]
        } else {
            logRing = nil
        }
        ensureCapacity(offers: 64, width: 64)
    }

    deinit {
        z.deallocate()
        candidates.deallocate()
        rewards.deallocate()
        scores.deallocate()
        probabilities.deallocate()
        marks.deallocate()
        loggedCandidates.deallocate()
        counterPayload.deallocate()
        blockMarks.deallocate()
        groupMarks.deallocate()
        historyOffers.deallocate()
        historyDeclinedAtMinute.deallocate()
        historyRecentShows.deallocate()
        requestHashes.categories.deallocate()
    }

    /// Grows scratch buffers (only when a model with more offers or features is published).
    private func ensureCapacity(offers: Int, width: Int) {
        if offers > capacity {
            let n = max(offers, 64)
            for buffer in [rewards, scores, probabilities] { buffer.deallocate() }
            candidates.deallocate()
            marks.deallocate()
            loggedCandidates.deallocate()
            loggedCandidates = .allocate(capacity: n)
            candidates = .allocate(capacity: n)
            rewards = .allocate(capacity: n)
            scores = .allocate(capacity: n)
            probabilities = .allocate(capacity: n)
            marks = .allocate(capacity: n)
            marks.initialize(repeating: 0)
            blockMarks.deallocate()
            blockMarks = .allocate(capacity: n)
            blockMarks.initialize(repeating: 0)
            groupMarks.deallocate()
            groupMarks = .allocate(capacity: n)
            groupMarks.initialize(repeating: 0)
            capacity = n
        }
        let padded = (width + 7) / 8 * 8
        if padded > zCapacity {
            z.deallocate()
            z = .allocate(capacity: max(padded, 8))
            z.initialize(repeating: 0)
            zCapacity = padded
        }
    }

    /// Decides for `input`, writing the result into `output`. Throws `EngineError` (with a static
    /// message naming the field) for invalid input; nothing eligible is not an error (empty
    /// placements).
    ///
    /// A request with a `request_id` is idempotent: its decision id is derived from (request id,
    /// customer) instead of this thread's counter, and the draw is seeded from that id, so a
    /// retry gets the same id and placements (while the model and the rule state are the same),
    /// and is logged once within the window (`RequestIDTable`). Such ids carry thread field
    /// `ff`, which no reactor thread has (at most 255 of them), and 40 bits of the key in the
    /// counter field.
    public func decide(_ input: DecisionInput, into output: inout DecisionOutput) throws(EngineError) {
        counter &+= 1
        let customerKey = input.customerID.count > 0 ? CustomerCounters.key(input.customerID) : 0
        if input.requestID.count > 0 {
            requestKey = StableHash.hash(input.requestID, seed: customerKey ^ DecisionWorkspace.requestKeySeed)
            writeDecisionID(requestKey & 0xFF_FFFF_FFFF, thread: 0xFF, customerKey: customerKey, into: &output)
        } else {
            requestKey = 0
            writeDecisionID(counter, thread: UInt64(threadIndex & 0xFF), customerKey: customerKey, into: &output)
        }
        try run(input, decisionNumber: counter, customerKey: customerKey, into: &output)
    }

    /// Mixed into request keys so they are not the holdout's or the counters' hashes.
    static let requestKeySeed: UInt64 = 0x7265_7175_6573_7469

    /// Replays a logged decision: the same request, decision id and model version give the same
    /// choices with the same propensities (randomness is seeded from the id and the version).
    public func replay(_ input: DecisionInput, decisionID: String, into output: inout DecisionOutput)
        throws(EngineError)
    {
        let bytes = Array(decisionID.utf8.prefix(64))
        withUnsafeMutableBytes(of: &output.decisionID) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        output.decisionIDLength = bytes.count
        counter &+= 1
        requestKey = 0
        let customerKey = input.customerID.count > 0 ? CustomerCounters.key(input.customerID) : 0
        try run(input, decisionNumber: counter, customerKey: customerKey, into: &output)
    }

    private func run(
        _ input: DecisionInput, decisionNumber: UInt64, customerKey: UInt64, into output: inout DecisionOutput
    ) throws(EngineError) {
        let configuration = engine.configuration
        output.surfaceIndex = -1
        guard let surface = Surface(utf8: input.surface) else {
            throw EngineError(
                .invalidArgument, "surface: unknown surface (expected cart, payment, thank_you, confirmation or email)")
        }
        output.surfaceIndex = surface.index
        guard input.slots <= 2 else { throw EngineError(.invalidArgument, "slots: must be 0, 1 or 2 (0 means 1)") }
        let slots = input.slots == 0 ? 1 : Int(input.slots)
        guard input.candidateCount <= RequestLimits.candidates else {
            throw EngineError(.invalidArgument, RequestLimits.candidatesMessage)
        }
        let maxID = RequestLimits.idBytes
        guard input.customerID.count <= maxID else {
            throw EngineError(.invalidArgument, RequestLimits.customerIDMessage)
        }
        guard input.requestID.count <= maxID else {
            throw EngineError(.invalidArgument, RequestLimits.requestIDMessage)
        }
        guard input.orderID.count <= maxID else {
            throw EngineError(.invalidArgument, RequestLimits.orderIDMessage)
        }
        for id in input.candidates where id.count > maxID {
            throw EngineError(.invalidArgument, RequestLimits.candidateIDMessage)
        }
        try validateOrderFields(input)
        guard input.featureKeys.count <= RequestLimits.features else {
            throw EngineError(.invalidArgument, RequestLimits.featuresMessage)
        }
        // Features are scored as float32: a value beyond its range (or NaN, which fails the
        // comparison) would become infinite in the context vector.
        for k in 0..<input.featureKeys.count {
            guard abs(input.featureValues[k]) <= DecisionWorkspace.maxFeatureMagnitude else {
                throw EngineError(
                    .invalidArgument,
                    "features: every value must be finite and within float32 range (|value| <= 3.4028234663852886e38)")
            }
            guard input.featureKeys[k].count <= RequestLimits.featureKeyBytes else {
                throw EngineError(.invalidArgument, "features: a key is longer than 128 bytes")
            }
        }

        let model = reader.current()
        output.model = model
        nowMillis = input.nowMillis != 0 ? input.nowMillis : DecisionLog.nowMillis
        lastCustomerFeatures = UnsafeBufferPointer(start: nil, count: 0)
        lastSegments = 0
        output.knownCustomer = false
        defer {
            if logRing != nil, requestKey == 0 || engine.requestIDs?.claim(requestKey, nowMillis: nowMillis) != false {
                logDecision(input, output, model: model)
            }
        }
        output.placementCount = 0
        output.jointPropensity = 1
        output.unknownCandidates = 0
        output.eligibleCount = 0
        output.uniformFallback = false

        // Sticky holdout: a stable hash of (salt, customer id).
        let share = configuration.holdoutShare
        if share > 0, input.customerID.count > 0 {
            let unit = Double(StableHash.hash(input.customerID, seed: holdoutSeed) >> 11) * 0x1.0p-53
            if unit < share {
                output.holdout = true
                return
            }
        }
        output.holdout = false

        ensureCapacity(offers: model.catalog.count, width: model.width)
        var n = collectCandidates(
            input, surface: surface, model: model, decisionNumber: decisionNumber, output: &output)
        output.eligibleCount = n
        guard n > 0 else { return }

        let customer = model.customers.lookup(input.customerID)
        output.knownCustomer = customer.isKnown
        lastCustomerFeatures = customer.features
        lastSegments = customer.segments
        n = applyRules(
            count: n, input, model: model, segments: customer.segments, customerKey: customerKey,
            nowSeconds: nowMillis / 1000)
        output.eligibleCount = n
        guard n > 0 else { return }
        if model.snapshot != nil {
            evaluateFeatures(input, surface: surface, customer: customer, model: model)
        }
        let eligible = n
        var exploration = model.exploration
        n = score(count: n, model: model)
        if !scoresFinite {
            // Extreme features overflowed a score: no policy can rank non-finite scores, so this
            // decision explores uniformly over every eligible offer (the relevance threshold,
            // which needs a finite expected value, is not applied), with scores reported as 0.
            n = eligible
            for i in 0..<n {
                scores[i] = 0
                rewards[i] = 0
            }
            exploration = .uniform
            output.uniformFallback = true
            engine.nonFiniteScoreFallbacks.add(1, ordering: .relaxed)
        }
        output.eligibleCount = n
        guard n > 0 else { return }
        if logRing != nil { loggedCandidates.baseAddress!.update(from: candidates.baseAddress!, count: n) }

        var random = SplitMix64(seed: output.withDecisionIDBody { StableHash.hash($0, seed: model.versionHash) })
        let first = choose(count: n, exploration: exploration, random: &random)
        output.first = PlacementResult(
            offerIndex: candidates[first], slot: 0, propensity: probabilities[first], score: scores[first],
            expectedValue: expectedValue(first, model: model))
        output.placementCount = 1
        output.jointPropensity = probabilities[first]
        guard slots == 2, n >= 2 else { return }
        // Slot 1 is drawn from the remaining candidates under the same policy: its propensity
        // is conditional on slot 0. A snapshot with a slot-1 model rescores them given slot 0's
        // offer first (not after a uniform fallback, which has no scores to condition).
        candidates.swapAt(first, n - 1)
        rewards.swapAt(first, n - 1)
        scores.swapAt(first, n - 1)
        if let slot1 = model.slot1, !output.uniformFallback {
            conditionSlot1(count: n - 1, on: candidates[n - 1], slot1, logistic: model.link == .logistic)
        }
        let second = choose(count: n - 1, exploration: exploration, random: &random)
        output.second = PlacementResult(
            offerIndex: candidates[second], slot: 1, propensity: probabilities[second], score: scores[second],
            expectedValue: expectedValue(second, model: model))
        output.placementCount = 2
        output.jointPropensity *= probabilities[second]
    }

    /// Refuses order fields and feature keys over their `RequestLimits` (the messages name the
    /// field and the limit; a unit test holds them to the constants).
    private func validateOrderFields(_ input: DecisionInput) throws(EngineError) {
        guard input.currency.count <= RequestLimits.currencyBytes else {
            throw EngineError(.invalidArgument, "order.currency: longer than 16 bytes")
        }
        guard input.country.count <= RequestLimits.countryBytes else {
            throw EngineError(.invalidArgument, "order.country: longer than 16 bytes")
        }
        guard input.channel.count <= RequestLimits.channelBytes else {
            throw EngineError(.invalidArgument, "order.channel: longer than 64 bytes")
        }
        guard input.device.count <= RequestLimits.deviceBytes else {
            throw EngineError(.invalidArgument, "order.device: longer than 64 bytes")
        }
        guard input.shippingMethod.count <= RequestLimits.shippingMethodBytes else {
            throw EngineError(.invalidArgument, "order.shipping_method: longer than 64 bytes")
        }
        guard max(input.itemCount, input.categories.count, input.items.count) <= RequestLimits.lineItems else {
            throw EngineError(.invalidArgument, "order.items: more than 128 line items")
        }
        for category in input.categories where category.count > RequestLimits.categoryBytes {
            throw EngineError(.invalidArgument, "order.items.category: longer than 128 bytes")
        }
        for item in input.items {
            guard item.sku.count <= RequestLimits.skuBytes else {
                throw EngineError(.invalidArgument, "order.items.sku: longer than 64 bytes")
            }
            guard item.category.count <= RequestLimits.categoryBytes else {
                throw EngineError(.invalidArgument, "order.items.category: longer than 128 bytes")
            }
        }
    }

    /// Eligible catalog indices into `candidates`: the request's restriction (deduplicated,
    /// unknown ids counted and ignored) intersected with the surface's offers.
    private func collectCandidates(
        _ input: DecisionInput, surface: Surface, model: ActiveModel, decisionNumber: UInt64,
        output: inout DecisionOutput
    ) -> Int {
        let catalog = model.catalog
        var n = 0
        if input.candidates.isEmpty {
            let list = model.bySurface[surface.bit.trailingZeroBitCount]
            for index in list {
                candidates[n] = index
                n += 1
            }
            return n
        }
        let mark = (UInt64(bitPattern: Int64(threadIndex)) << 56) ^ decisionNumber ^ 0x8000_0000_0000_0000
        var unknown = 0
        for id in input.candidates {
            let index = catalog.index(of: id)
            if index < 0 {
                unknown += 1
                continue
            }
            let i = Int(index)
            guard marks[i] != mark, catalog.offers[i].surfaces.contains(surface) else { continue }
            marks[i] = mark
            candidates[n] = index
            n += 1
        }
        if unknown > 0 {
            output.unknownCandidates = unknown
            engine.unknownCandidatesIgnored.add(unknown, ordering: .relaxed)
        }
        return n
    }

    private func expectedValue(_ i: Int, model: ActiveModel) -> Double {
        model.objective == .revenue ? rewards[i] * model.valueCents[Int(candidates[i])] : rewards[i]
    }

    /// Draws one of the first `count` candidates from the policy's distribution.
    private func choose(count: Int, exploration: Exploration, random: inout SplitMix64) -> Int {
        exploration.distribution(
            rewards: UnsafeBufferPointer(rewards), count: count, into: probabilities)
        let u = random.nextUnit()
        var cumulative = 0.0
        for i in 0..<count {
            cumulative += probabilities[i]
            if u < cumulative { return i }
        }
        // Rounding left u above the last cumulative sum: take the last candidate with mass.
        var last = count - 1
        while last > 0 && probabilities[last] == 0 { last -= 1 }
        return last
    }

    /// Writes "<12 hex instance>-<2 hex thread>-<10 hex counter>-<16 hex customer key>-<16 hex
    /// MAC>" (`DecisionID`, 60 ASCII bytes). The customer key lets ReportOutcome update that
    /// customer's counters without any server-side lookup
    /// (`DecisionEngine.customerKey(fromDecisionID:)`); the MAC (SipHash-2-4 of the first 43
    /// bytes under the engine's key) lets it refuse ids it did not issue.
    private func writeDecisionID(
        _ number: UInt64, thread threadField: UInt64, customerKey: UInt64, into output: inout DecisionOutput
    ) {
        let instance = DecisionWorkspace.hex16(engine.instanceID)
        let thread = DecisionWorkspace.hex16(threadField)
        let count = DecisionWorkspace.hex16(number & 0xFF_FFFF_FFFF)
        let customer = DecisionWorkspace.hex16(customerKey)
        withUnsafeMutableBytes(of: &output.decisionID) { raw in
            var p = 0
            func put(_ digits: (UInt64, UInt64), _ width: Int) {
                withUnsafeBytes(of: digits) { d in
                    raw.baseAddress!.advanced(by: p).copyMemory(from: d.baseAddress! + (16 - width), byteCount: width)
                }
                p += width
            }
            put(instance, 12)
            raw[p] = UInt8(ascii: "-")
            p += 1
            put(thread, 2)
            raw[p] = UInt8(ascii: "-")
            p += 1
            put(count, 10)
            raw[p] = UInt8(ascii: "-")
            p += 1
            put(customer, 16)
            let mac = DecisionID.mac(
                UnsafeRawBufferPointer(raw), prefix: threadField == 0xFF ? idempotentMACPrefix : macPrefix)
            raw[p] = UInt8(ascii: "-")
            p += 1
            put(DecisionWorkspace.hex16(mac), 16)
            output.decisionIDLength = p
        }
    }

    /// The 16 lowercase hex digits of `value`, most significant first, as two words of ASCII in
    /// memory order (SWAR: no table, no loop).
    @inline(__always)
    static func hex16(_ value: UInt64) -> (UInt64, UInt64) {
        @inline(__always) func hex8(_ v: UInt64) -> UInt64 {
            var x = v & 0xFFFF_FFFF
            x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF
            x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF
            x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F
            // Byte i holds nibble i (least significant first); digits >= 10 become letters.
            let letters = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
            let ascii = x &+ 0x3030_3030_3030_3030 &+ letters &* 39
            return ascii.byteSwapped.littleEndian
        }
        return (hex8(value >> 32), hex8(value))
    }
}
