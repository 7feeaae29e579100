import EncoreModel
import EncoreStore
import Foundation

@testable import EncoreEngine

let testCatalogJSONL = """
    {"offer_id": "a", "surfaces": ["cart", "payment"], "value_cents": 100}
    {"offer_id": "b", "surfaces": ["cart"], "value_cents": 200}
    {"offer_id": "c", "surfaces": ["cart", "thank_you"], "value_cents": 300}
    {"offer_id": "d", "value_cents": 400}
    {"offer_id": "e", "surfaces": ["email"]}
    """

/// A small customer store written to a temporary CSV and loaded with the production loader.
func testCustomers() throws -> CustomerStore {
    let path = NSTemporaryDirectory() + "encore-engine-test-\(UUID().uuidString).csv"
    var csv = "customer_id,segments,f0,f1\n"
    for i in 0..<200 { csv += "u\(i),\(i % 2 == 0 ? "vip" : ""),\(Double(i) / 100),\(i % 3)\n" }
    try csv.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try CustomerStore.load(contentsOf: path, progress: nil)
}

func testSnapshot(exploration: Exploration = .squareCB(gamma: 20)) throws -> ModelSnapshot {
    let features = ["bias", "order.is_gift", "customer.f0", "segment=vip", "surface=cart", "request.x"]
    let schema = FeatureSchema(features: features, interactions: [.init(1, 3)])
    let offers = ["a", "b", "c", "d"]
    let width = schema.width
    var weights: [Float] = []
    for o in 0..<offers.count { for j in 0..<width { weights.append(Float((o + 1) * (j + 1) % 5) * 0.3 - 0.5) } }
    return try ModelSnapshot(
        version: "engine-test-1", createdAtMillis: 0, schema: schema, offerIDs: offers,
        sharedWeights: [Float](repeating: 0.1, count: width), offerWeights: weights, offerBiases: [0.2, -0.1, 0.4, 0],
        link: .logistic, objective: .conversion, exploration: exploration)
}

func makeEngine(snapshot: ModelSnapshot?, holdoutShare: Double = 0) throws -> DecisionEngine {
    var configuration = EngineConfiguration()
    configuration.holdoutShare = holdoutShare
    let model = try ActiveModel(
        snapshot: snapshot, catalog: try OfferCatalog(jsonl: testCatalogJSONL), customers: try testCustomers())
    return DecisionEngine(configuration: configuration, model: model)
}

/// Owns the bytes a DecisionInput points into.
final class RequestFixture {
    var strings: [[UInt8]] = []
    var views: [UnsafeRawBufferPointer] = []
    var pointers: [UnsafeMutableRawBufferPointer] = []
    var viewArrays: [UnsafeMutableBufferPointer<UnsafeRawBufferPointer>] = []
    var doubles: [UnsafeMutableBufferPointer<Double>] = []

    func bytes(_ s: String) -> UnsafeRawBufferPointer {
        let b = Array(s.utf8)
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(b.count, 1), alignment: 1)
        b.withUnsafeBytes { p.copyMemory(from: $0) }
        pointers.append(p)
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(p)[0..<b.count])
    }

    func list(_ items: [String]) -> UnsafeBufferPointer<UnsafeRawBufferPointer> {
        let p = UnsafeMutableBufferPointer<UnsafeRawBufferPointer>.allocate(capacity: max(items.count, 1))
        for (i, s) in items.enumerated() { p[i] = bytes(s) }
        viewArrays.append(p)
        return UnsafeBufferPointer(rebasing: p[0..<items.count])
    }

    func values(_ items: [Double]) -> UnsafeBufferPointer<Double> {
        let p = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(items.count, 1))
        for (i, v) in items.enumerated() { p[i] = v }
        doubles.append(p)
        return UnsafeBufferPointer(rebasing: p[0..<items.count])
    }

    func input(
        surface: String = "cart", customer: String = "u4", slots: UInt32 = 1, candidates: [String] = [],
        features: [String: Double] = [:], gift: Bool = false
    ) -> DecisionInput {
        var input = DecisionInput()
        input.surface = bytes(surface)
        input.customerID = bytes(customer)
        input.slots = slots
        input.candidates = list(candidates)
        input.candidateCount = candidates.count
        input.featureKeys = list(Array(features.keys))
        input.featureValues = values(Array(features.values))
        input.isGift = gift
        input.totalCents = 5000
        input.categories = list(["toys"])
        input.itemQuantity = 1
        return input
    }

    deinit {
        pointers.forEach { $0.deallocate() }
        viewArrays.forEach { $0.deallocate() }
        doubles.forEach { $0.deallocate() }
    }
}

func offerID(_ output: DecisionOutput, _ i: Int) -> String {
    String(decoding: output.model!.offerIDBytes(output.placement(i).offerIndex), as: UTF8.self)
}

/// Half-width `t` with P(|frequency - p| >= t) <= `alpha` / `comparisons` for the frequency of an
/// outcome of probability `p` in `n` independent draws: Bernstein's inequality,
/// P(|X/n - p| >= t) <= 2 exp(-n t² / (2 p (1 - p) + 2 t / 3)), solved for t. A bound for every
/// p and n (no normal approximation): about sqrt(2 ln(2 C / alpha)) standard errors plus a 1/n
/// term. The engine's draws are seeded from decision ids, which begin with a random per-process
/// instance id, so frequency checks differ per run and use this with the test's whole count of
/// comparisons (Bonferroni) and `alpha` = 1e-4: a false failure in at most 1 run in 10,000.
func frequencyTolerance(p: Double, n: Int, comparisons: Int, alpha: Double = 1e-4) -> Double {
    let l = Foundation.log(2 * Double(comparisons) / alpha)
    let n = Double(n)
    return (l / 3 + (l * l / 9 + 2 * n * p * (1 - p) * l).squareRoot()) / n
}

/// The binomial standard error of a frequency of probability `p` over `n` draws.
func frequencyStandardError(p: Double, n: Int) -> Double { (p * (1 - p) / Double(n)).squareRoot() }
