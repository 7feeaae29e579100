import EncoreModel
import EncoreStore
import EncoreSupport

/// A model snapshot bound to the running catalog and feature store: everything a decision
/// reads, immutable and published as one unit (`Published<ActiveModel>`), so a decision sees
/// one consistent model, catalog and store from start to end.
///
/// Binding resolves the snapshot's feature names against the store (refusing the snapshot if
/// one cannot be served), maps its offer table onto catalog indices, and folds the shared
/// weights into each offer's row so scoring is one dot product per candidate.
public final class ActiveModel: @unchecked Sendable {
    /// nil: no snapshot, the policy is uniform over eligible candidates.
    public let snapshot: ModelSnapshot?
    public let catalog: OfferCatalog
    /// The customer generation (loaded base plus upserted overlay) decisions read.
    public let customers: CustomerGeneration
    /// The model version named in every decision ("uniform" without a snapshot).
    public let version: String
    let versionHash: UInt64
    let program: FeatureProgram
    /// Width of the scored vector (features + interactions).
    let width: Int
    /// `catalog.count × paddedWidth` floats: shared + per-offer weights (zero padded).
    let rows: [Float]
    let paddedWidth: Int
    let biases: [Float]
    /// Model version and offer ids as bytes in one allocation owned by this model, so their
    /// addresses stay valid for as long as the model lives (responses point into it).
    private let arena: UnsafeMutableRawBufferPointer
    private let idRanges: [Range<Int>]
    private let versionRange: Range<Int>
    let valueCents: [Double]
    /// Eligible catalog indices per surface (bit order of `Surface.bit`).
    let bySurface: [[Int32]]
    public let exploration: Exploration
    let link: ModelSnapshot.Link
    let objective: ModelSnapshot.Objective
    /// Catalog offers that have their own weights in the snapshot.
    public let offersWithWeights: Int
    /// Id of this model's names in `LogNameTable` (log records refer to it).
    public let logNamesID: UInt32
    /// The rule defaults this model was bound with, and the catalog's rules compiled.
    public let ruleSettings: RuleSettings
    let rules: RuleTable
    /// The snapshot's slot-1 model bound to catalog indices (nil: none; slot 1 is scored like slot 0).
    let slot1: Slot1Table?

    /// `ModelSnapshot.Slot1Model` by catalog index: a catalog offer's slot-1 bias (0 for offers
    /// the snapshot does not list) and its row in the snapshot's pair table (-1: none).
    struct Slot1Table {
        let biases: [Float]
        let rowOf: [Int32]
        /// offers × offers, row-major by slot-0 offer (snapshot offer order).
        let pairs: [Float]
        let offers: Int
    }

    /// Binds `snapshot` (or none) to `catalog` and `customers`. Throws `.schemaMismatch` when
    /// the snapshot needs a customer feature the store does not have.
    public convenience init(
        snapshot: ModelSnapshot?, catalog: OfferCatalog, customers: CustomerStore, rules: RuleSettings = RuleSettings()
    ) throws(ModelError) {
        try self.init(
            snapshot: snapshot, catalog: catalog, customers: CustomerGeneration(base: customers), rules: rules)
    }

    public init(
        snapshot: ModelSnapshot?, catalog: OfferCatalog, customers: CustomerGeneration,
        rules settings: RuleSettings = RuleSettings()
    ) throws(ModelError) {
        ruleSettings = settings
        rules = RuleTable(catalog: catalog, segmentNames: customers.segmentNames, settings: settings)
        self.snapshot = snapshot
        self.catalog = catalog
        self.customers = customers
        version = snapshot?.version ?? "uniform"
        versionHash = StableHash.hash(version)
        let idBytes = catalog.offers.map { Array($0.id.utf8) }
        let versionUTF8 = Array(version.utf8)
        let total = versionUTF8.count + idBytes.reduce(0) { $0 + $1.count }
        let arena = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 8)
        var cursor = 0
        func put(_ bytes: [UInt8]) -> Range<Int> {
            let start = cursor
            for b in bytes {
                arena[cursor] = b
                cursor += 1
            }
            return start..<cursor
        }
        versionRange = put(versionUTF8)
        idRanges = idBytes.map(put)
        self.arena = arena
        valueCents = catalog.offers.map { Double($0.valueCents) }
        bySurface = Surface.allCases.sorted { $0.bit < $1.bit }.map { catalog.indices(on: $0) }
        guard let snapshot else {
            program = FeatureProgram(ops: [], interactions: [])
            width = 0
            paddedWidth = 0
            rows = []
            biases = [Float](repeating: 0, count: catalog.count)
            exploration = .uniform
            link = .identity
            objective = .conversion
            offersWithWeights = 0
            slot1 = nil
            logNamesID = LogNameTable.register(
                LogNames(
                    modelVersion: version, exploration: "uniform", offerIDs: catalog.offers.map(\.id),
                    customerFeatureNames: customers.featureNames, segmentNames: customers.segmentNames, contextNames: []
                ))
            return
        }
        program = try snapshot.schema.compile(
            customerFeatures: customers.featureNames, segments: customers.segmentNames)
        width = snapshot.schema.width
        paddedWidth = (width + 7) / 8 * 8
        var rows = [Float](repeating: 0, count: catalog.count * paddedWidth)
        var biases = [Float](repeating: 0, count: catalog.count)
        var rowOf: [String: Int] = [:]
        for (i, id) in snapshot.offerIDs.enumerated() { rowOf[id] = i }
        var matched = 0
        for (c, offer) in catalog.offers.enumerated() {
            let base = c * paddedWidth
            for j in 0..<width { rows[base + j] = snapshot.sharedWeights[j] }
            if let r = rowOf[offer.id] {
                matched += 1
                biases[c] = snapshot.offerBiases[r]
                for j in 0..<width { rows[base + j] += snapshot.offerWeights[r * width + j] }
            }
        }
        self.rows = rows
        self.biases = biases
        if let model = snapshot.slot1 {
            var slot1Biases = [Float](repeating: 0, count: catalog.count)
            var rowIndex = [Int32](repeating: -1, count: catalog.count)
            for (c, offer) in catalog.offers.enumerated() {
                if let r = rowOf[offer.id] {
                    slot1Biases[c] = model.biases[r]
                    rowIndex[c] = Int32(r)
                }
            }
            slot1 = Slot1Table(
                biases: slot1Biases, rowOf: rowIndex, pairs: model.pairs, offers: snapshot.offerIDs.count)
        } else {
            slot1 = nil
        }
        offersWithWeights = matched
        exploration = snapshot.exploration
        link = snapshot.link
        objective = snapshot.objective
        let schema = snapshot.schema
        logNamesID = LogNameTable.register(
            LogNames(
                modelVersion: version, exploration: ActiveModel.describe(snapshot.exploration),
                offerIDs: catalog.offers.map(\.id), customerFeatureNames: customers.featureNames,
                segmentNames: customers.segmentNames, contextNames: (0..<schema.width).map { schema.name(at: $0) }))
    }

    /// "squarecb(gamma=100.0)", "epsilon_greedy(epsilon=0.05)", ...
    public static func describe(_ e: Exploration) -> String {
        switch e {
        case .uniform: "uniform"
        case .epsilonGreedy(let v): "epsilon_greedy(epsilon=\(v))"
        case .softmax(let v): "softmax(temperature=\(v))"
        case .squareCB(let v): "squarecb(gamma=\(v))"
        }
    }

    deinit {
        arena.deallocate()
    }

    /// The same snapshot bound to a new catalog or store generation.
    public func rebinding(catalog: OfferCatalog? = nil, customers: CustomerGeneration? = nil) throws(ModelError)
        -> ActiveModel
    {
        try ActiveModel(
            snapshot: snapshot, catalog: catalog ?? self.catalog, customers: customers ?? self.customers,
            rules: ruleSettings)
    }

    /// The model version's UTF-8 bytes (valid while this model is alive).
    public var versionBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(arena)[versionRange])
    }

    /// The UTF-8 id of the offer at catalog index `index` (valid while this model is alive).
    public func offerIDBytes(_ index: Int32) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(arena)[idRanges[Int(index)]])
    }
}
