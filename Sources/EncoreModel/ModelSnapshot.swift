/// A trained policy, immutable once built: feature schema, per-offer linear models plus shared
/// weights over the (feature + interaction) vector, the link and objective, and exploration.
///
/// Predicted reward of offer a for context vector z:
/// `link(shared · z + weights[a] · z + bias[a])`, where `link` is the logistic function for a
/// conversion probability or the identity. With objective `.revenue`, the expected value is the
/// prediction times the offer's `value_cents`; with `.conversion` it is the prediction.
public final class ModelSnapshot: Sendable {
    public enum Link: String, Sendable, Codable { case logistic, identity }
    public enum Objective: String, Sendable, Codable { case conversion, revenue }

    /// Model version, unique per snapshot (e.g. "demo-7-1a2b3c4d"); named in every decision.
    public let version: String
    /// Creation time, milliseconds since the Unix epoch.
    public let createdAtMillis: Int64
    public let schema: FeatureSchema
    /// Offers this model has weights for (catalog offers missing here use shared weights only).
    public let offerIDs: [String]
    /// `schema.width` weights shared by every offer.
    public let sharedWeights: [Float]
    /// `offerIDs.count × schema.width` weights, row-major by offer.
    public let offerWeights: [Float]
    /// One intercept per offer.
    public let offerBiases: [Float]
    public let link: Link
    public let objective: Objective
    public let exploration: Exploration
    /// Optional JSON sections carried for later stages (eligibility rules, OPE report).
    public let rulesJSON: String?
    public let opeReportJSON: String?
    /// Optional slot-1 model (the SLOT1 section): terms added to a slot-1 candidate's raw score
    /// given the offer drawn for slot 0. nil: slot 1 is scored like slot 0.
    public let slot1: Slot1Model?

    /// Slot 1 conditional on slot 0. For slot-0 offer a and slot-1 candidate b (indices into
    /// `offerIDs`), b's slot-1 raw score is its slot-0 raw score + `biases[b]` +
    /// `pairs[a * offerCount + b]` (float32); a catalog offer the snapshot does not list
    /// contributes no term on either side. The link and exploration are slot 0's.
    public struct Slot1Model: Sendable, Equatable {
        /// One slot-1 offset per offer (a position effect per offer).
        public let biases: [Float]
        /// offerCount × offerCount, row-major by slot-0 offer.
        public let pairs: [Float]

        public init(biases: [Float], pairs: [Float]) {
            self.biases = biases
            self.pairs = pairs
        }
    }

    /// Most offers a snapshot with a SLOT1 section may list (its pair table is offers² floats:
    /// 4 MiB at this bound).
    public static let maxSlot1Offers = 1024

    /// Largest magnitude a weight or bias may have (documented in docs/snapshots.md). Features
    /// are float32, so with weights bounded a score can still overflow for extreme feature
    /// values; the engine then falls back to the uniform policy for that decision (counted).
    /// No trained model comes near this bound: it exists so that a snapshot whose weights alone
    /// overflow float32 sums (±3e38) is refused at push instead of answering NaN.
    public static let maxWeightMagnitude: Float = 1e6

    /// Builds and validates a snapshot. Throws `.invalidSnapshot` naming the first problem
    /// (shape mismatch, NaN/Inf weight or one beyond ±`maxWeightMagnitude`, bad exploration parameter, bad schema, duplicate offer).
    public init(
        version: String, createdAtMillis: Int64, schema: FeatureSchema, offerIDs: [String], sharedWeights: [Float],
        offerWeights: [Float], offerBiases: [Float], link: Link, objective: Objective, exploration: Exploration,
        rulesJSON: String? = nil, opeReportJSON: String? = nil, slot1: Slot1Model? = nil
    ) throws(ModelError) {
        func fail(_ message: String) -> ModelError { ModelError(.invalidSnapshot, message) }
        guard !version.isEmpty, version.utf8.count <= 128 else { throw fail("model version must be 1 to 128 bytes") }
        if let problem = schema.validationError() { throw fail("feature schema: \(problem)") }
        if let problem = exploration.validationError() { throw fail("exploration: \(problem)") }
        let width = schema.width
        guard sharedWeights.count == width else {
            throw fail("shared weights: expected \(width) (features + interactions), got \(sharedWeights.count)")
        }
        guard offerWeights.count == offerIDs.count * width else {
            throw fail(
                "offer weights: expected \(offerIDs.count) x \(width) = \(offerIDs.count * width), got \(offerWeights.count)"
            )
        }
        guard offerBiases.count == offerIDs.count else {
            throw fail("offer biases: expected \(offerIDs.count), got \(offerBiases.count)")
        }
        var seen = Set<String>()
        for id in offerIDs {
            guard !id.isEmpty, id.utf8.count <= 256 else {
                throw fail("offer table: an offer id is empty or over 256 bytes")
            }
            guard seen.insert(id).inserted else { throw fail("offer table: offer \(id) is listed twice") }
        }
        let bound = ModelSnapshot.maxWeightMagnitude
        // `!(abs(w) <= bound)` also catches NaN.
        func outOfRange(_ w: Float) -> Bool { !(abs(w) <= bound) }
        func describe(_ w: Float) -> String {
            w.isFinite ? "\(w), beyond the ±1e6 weight bound" : "\(w)"
        }
        if let i = sharedWeights.firstIndex(where: outOfRange) {
            throw fail("shared weights: weight \(i) (\(schema.name(at: i))) is \(describe(sharedWeights[i]))")
        }
        if let i = offerWeights.firstIndex(where: outOfRange) {
            throw fail(
                "offer weights: offer \(offerIDs[i / width]) weight \(i % width) (\(schema.name(at: i % width))) is \(describe(offerWeights[i]))"
            )
        }
        if let i = offerBiases.firstIndex(where: outOfRange) {
            throw fail("offer biases: offer \(offerIDs[i]) bias is \(describe(offerBiases[i]))")
        }
        if let slot1 { try ModelSnapshot.validate(slot1, offerIDs: offerIDs) }
        self.version = version
        self.createdAtMillis = createdAtMillis
        self.schema = schema
        self.offerIDs = offerIDs
        self.sharedWeights = sharedWeights
        self.offerWeights = offerWeights
        self.offerBiases = offerBiases
        self.link = link
        self.objective = objective
        self.exploration = exploration
        self.rulesJSON = rulesJSON
        self.opeReportJSON = opeReportJSON
        self.slot1 = slot1
    }
}

extension ModelSnapshot {
    /// The slot-1 model's checks (shape, the offer bound, finite terms within ±1e6), out of line
    /// so that building a snapshot without one compiles as before.
    @inline(never)
    static func validate(_ slot1: Slot1Model, offerIDs: [String]) throws(ModelError) {
        func fail(_ message: String) -> ModelError { ModelError(.invalidSnapshot, message) }
        let k = offerIDs.count
        guard k <= ModelSnapshot.maxSlot1Offers else {
            throw fail(
                "slot-1 model: \(k) offers, over the \(ModelSnapshot.maxSlot1Offers) a snapshot with a slot-1 model may list"
            )
        }
        guard slot1.biases.count == k else {
            throw fail("slot-1 model: expected \(k) slot-1 biases, got \(slot1.biases.count)")
        }
        guard slot1.pairs.count == k * k else {
            throw fail("slot-1 model: expected \(k) x \(k) = \(k * k) pair terms, got \(slot1.pairs.count)")
        }
        let bound = ModelSnapshot.maxWeightMagnitude
        func outOfRange(_ w: Float) -> Bool { !(abs(w) <= bound) }
        func describe(_ w: Float) -> String { w.isFinite ? "\(w), beyond the ±1e6 weight bound" : "\(w)" }
        if let i = slot1.biases.firstIndex(where: outOfRange) {
            throw fail("slot-1 model: offer \(offerIDs[i]) slot-1 bias is \(describe(slot1.biases[i]))")
        }
        if let i = slot1.pairs.firstIndex(where: outOfRange) {
            throw fail(
                "slot-1 model: pair term (slot 0 \(offerIDs[i / k]), slot 1 \(offerIDs[i % k])) is \(describe(slot1.pairs[i]))"
            )
        }
    }
}

extension FeatureSchema {
    /// Name of entry `i` of the scored vector ("a*b" for interactions).
    public func name(at i: Int) -> String {
        if i < features.count { return features[i] }
        let k = i - features.count
        guard interactions.indices.contains(k) else { return "#\(i)" }
        return "\(features[interactions[k].first])*\(features[interactions[k].second])"
    }
}
