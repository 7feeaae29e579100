/// One decision request as borrowed byte views (valid only during `decide`). The transport
/// layer fills it from the decoded protobuf without copying; the engine never sees wire bytes.
public struct DecisionInput {
    public var surface = UnsafeRawBufferPointer(start: nil, count: 0)
    public var customerID = UnsafeRawBufferPointer(start: nil, count: 0)
    public var requestID = UnsafeRawBufferPointer(start: nil, count: 0)
    public var orderID = UnsafeRawBufferPointer(start: nil, count: 0)
    /// Order total in minor currency units.
    public var totalCents: Int64 = 0
    /// Sum of line-item quantities.
    public var itemQuantity: Int64 = 0
    /// One entry per line item: its category.
    public var categories = UnsafeBufferPointer<UnsafeRawBufferPointer>(start: nil, count: 0)
    /// The line items in full (for the decision log); may be empty when logging is off.
    public var items = UnsafeBufferPointer<LineItemInput>(start: nil, count: 0)
    /// How many line items the request held, which may exceed what the decoder stored (more
    /// than `RequestLimits.lineItems` is refused).
    public var itemCount = 0
    public var currency = UnsafeRawBufferPointer(start: nil, count: 0)
    public var shippingMethod = UnsafeRawBufferPointer(start: nil, count: 0)
    public var channel = UnsafeRawBufferPointer(start: nil, count: 0)
    public var device = UnsafeRawBufferPointer(start: nil, count: 0)
    public var country = UnsafeRawBufferPointer(start: nil, count: 0)
    public var isGift = false
    /// The request's `features` map, as parallel key/value views.
    public var featureKeys = UnsafeBufferPointer<UnsafeRawBufferPointer>(start: nil, count: 0)
    public var featureValues = UnsafeBufferPointer<Double>(start: nil, count: 0)
    /// `candidate_offer_ids` (empty: the whole catalog). `candidateCount` is the number the
    /// request named, which may exceed what the decoder stored.
    public var candidates = UnsafeBufferPointer<UnsafeRawBufferPointer>(start: nil, count: 0)
    public var candidateCount = 0
    /// Requested slots as sent (0 means 1).
    public var slots: UInt32 = 0
    /// Wall-clock time of the decision in Unix milliseconds (0: the engine reads the clock).
    /// Rules (caps, suppression, budgets, campaign windows) and the log use it.
    public var nowMillis: Int64 = 0

    public init() {}
}

/// One line item as borrowed views.
public struct LineItemInput {
    public var sku: UnsafeRawBufferPointer
    public var category: UnsafeRawBufferPointer
    public var priceCents: Int64
    public var quantity: UInt32

    public init(sku: UnsafeRawBufferPointer, category: UnsafeRawBufferPointer, priceCents: Int64, quantity: UInt32) {
        self.sku = sku
        self.category = category
        self.priceCents = priceCents
        self.quantity = quantity
    }
}

/// One chosen offer.
public struct PlacementResult: Sendable, Equatable {
    /// Index of the offer in the active catalog.
    public var offerIndex: Int32
    public var slot: UInt32
    /// Probability that the policy chose this offer for this slot (conditional on earlier slots).
    public var propensity: Double
    /// The scorer's raw output (before the link function).
    public var score: Double
    /// Expected reward in the objective's unit (conversion probability, or cents).
    public var expectedValue: Double
}

/// The result of one decision, written into a reused value by `DecisionWorkspace.decide`.
public struct DecisionOutput {
    /// ASCII decision id bytes (`decisionIDLength` of them are valid; `DecisionID.length` for
    /// ids Decide writes, up to 64 for a replayed one).
    public var decisionID: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    public var decisionIDLength = 0
    public var placementCount = 0
    public var first = PlacementResult(offerIndex: -1, slot: 0, propensity: 0, score: 0, expectedValue: 0)
    public var second = PlacementResult(offerIndex: -1, slot: 1, propensity: 0, score: 0, expectedValue: 0)
    public var holdout = false
    /// The request's surface (`Surface.allCases` index), or -1 when it was not valid.
    public var surfaceIndex = -1
    /// Candidates left after eligibility filtering.
    public var eligibleCount = 0
    /// Product of the placements' propensities (the probability of the whole slate).
    public var jointPropensity = 1.0
    /// Unknown `candidate_offer_ids` ignored in this request.
    public var unknownCandidates = 0
    /// The customer was found in the feature store (false: cold start).
    public var knownCustomer = false
    /// The scores were not finite (extreme features), so the decision used the uniform policy
    /// over the eligible offers (counted in `DecisionEngine.nonFiniteScoreFallbacks`).
    public var uniformFallback = false
    /// The model that decided (its version names every log record).
    public var model: ActiveModel? = nil

    public init() {}

    /// Calls `body` with the decision id bytes.
    public func withDecisionID<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        var copy = decisionID
        let n = decisionIDLength
        return withUnsafeBytes(of: &copy) { body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    /// Calls `body` with the id's first `DecisionID.bodyLength` bytes (all of a shorter one):
    /// what the random draw is seeded from, so the MAC (and the key) does not change a draw.
    public func withDecisionIDBody<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        var copy = decisionID
        let n = min(decisionIDLength, DecisionID.bodyLength)
        return withUnsafeBytes(of: &copy) { body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    /// The decision id as a String (allocates; for tools and tests).
    public var decisionIDString: String { withDecisionID { String(decoding: $0, as: UTF8.self) } }

    public func placement(_ i: Int) -> PlacementResult { i == 0 ? first : second }
}
