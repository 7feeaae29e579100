import EncoreModel
import EncoreStore
import EncoreSupport
import Foundation
import Testing

@testable import EncoreEngine

/// Only finite numbers in answers: random snapshots (weights up to the ±1e6 bound) and random
/// requests (features up to float32's largest value, customers with extreme stored features).
/// Seeded, so every run checks the same cases.
@Suite struct FiniteDecisionTests {
    static let featurePool = [
        "bias", "order.is_gift", "order.total_log", "customer.f0", "customer.f1", "segment=vip", "surface=cart",
        "request.x", "request.y", "customer.known",
    ]
    static let extremes: [Double] = [
        0, 1, -1, 0.5, 1e30, -1e30, Double(Float.greatestFiniteMagnitude), -Double(Float.greatestFiniteMagnitude),
        3e38, -3e38,
    ]

    /// Customers u0..u49 whose stored features range from 0 to ±3.4e38.
    static func extremeCustomers() throws -> CustomerStore {
        let path = NSTemporaryDirectory() + "encore-finite-test-\(UUID().uuidString).csv"
        var csv = "customer_id,segments,f0,f1\n"
        let values = ["0", "1", "-2.5", "3.4028234e38", "-3.4028234e38", "1e20", "-1e20", "7"]
        for i in 0..<50 {
            csv += "u\(i),\(i % 2 == 0 ? "vip" : ""),\(values[i % values.count]),\(values[(i / 3) % values.count])\n"
        }
        try csv.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try CustomerStore.load(contentsOf: path, progress: nil)
    }

    static func weight(_ random: inout SplitMix64) -> Float {
        switch random.next() % 6 {
        case 0: return 0
        case 1: return ModelSnapshot.maxWeightMagnitude
        case 2: return -ModelSnapshot.maxWeightMagnitude
        case 3: return Float(random.nextUnit() * 2e6 - 1e6)
        default: return Float(random.nextUnit() * 4 - 2)
        }
    }

    static func randomSnapshot(_ random: inout SplitMix64, index: Int) throws -> ModelSnapshot {
        var features = featurePool.filter { _ in random.next() % 2 == 0 }
        if features.isEmpty { features = ["request.x"] }
        var interactions: [FeatureSchema.Interaction] = []
        for _ in 0..<Int(random.next() % 4) {
            interactions.append(
                .init(Int(random.next() % UInt64(features.count)), Int(random.next() % UInt64(features.count))))
        }
        let schema = FeatureSchema(features: features, interactions: interactions)
        let offers = ["a", "b", "c", "d"].filter { _ in random.next() % 4 != 0 }
        let width = schema.width
        let explorations: [Exploration] = [
            .uniform, .epsilonGreedy(epsilon: 0), .epsilonGreedy(epsilon: random.nextUnit()),
            .softmax(temperature: 1e-3), .softmax(temperature: 1), .softmax(temperature: 1e6), .squareCB(gamma: 0),
            .squareCB(gamma: 20), .squareCB(gamma: 1e30),
        ]
        return try ModelSnapshot(
            version: "finite-\(index)", createdAtMillis: 0, schema: schema, offerIDs: offers,
            sharedWeights: (0..<width).map { _ in weight(&random) },
            offerWeights: (0..<(offers.count * width)).map { _ in weight(&random) },
            offerBiases: offers.map { _ in weight(&random) },
            link: random.next() % 2 == 0 ? .logistic : .identity,
            objective: random.next() % 2 == 0 ? .conversion : .revenue,
            exploration: explorations[Int(random.next() % UInt64(explorations.count))])
    }

    /// The distribution `choose` last drew from (`count` entries) is a probability distribution.
    static func expectDistribution(_ workspace: DecisionWorkspace, count: Int, chosen: PlacementResult) {
        var total = 0.0
        for i in 0..<count {
            let p = workspace.probabilities[i]
            #expect(p.isFinite && p >= 0 && p <= 1, "probability \(i) of \(count) is \(p)")
            total += p
        }
        #expect(abs(total - 1) < 1e-9, "probabilities over \(count) candidates sum to \(total)")
        #expect(chosen.propensity.isFinite && chosen.propensity > 0 && chosen.propensity <= 1)
        #expect(chosen.score.isFinite && chosen.expectedValue.isFinite, "\(chosen)")
    }

    @Test func everyPropensityIsFiniteInUnitIntervalAndSumsToOnePerSlot() throws {
        var random = SplitMix64(seed: 0x5EED_F1A1)
        let customers = CustomerGeneration(base: try Self.extremeCustomers())
        let catalog = try OfferCatalog(jsonl: testCatalogJSONL)
        let surfaces = ["cart", "payment", "thank_you", "confirmation", "email"]
        var decisions = 0
        var fallbacks = 0
        for index in 0..<150 {
            let snapshot = try Self.randomSnapshot(&random, index: index)
            var rules = RuleSettings()
            if random.next() % 3 == 0 { rules.minExpectedValue = random.nextUnit() - 0.5 }
            let model = try ActiveModel(snapshot: snapshot, catalog: catalog, customers: customers, rules: rules)
            let engine = DecisionEngine(configuration: EngineConfiguration(), model: model)
            let workspace = engine.makeWorkspace(threadIndex: 0)
            let fixture = RequestFixture()
            var output = DecisionOutput()
            for _ in 0..<20 {
                var features: [String: Double] = [:]
                for key in ["x", "y"] where random.next() % 3 != 0 {
                    features[key] = Self.extremes[Int(random.next() % UInt64(Self.extremes.count))]
                }
                let candidates = ["a", "b", "c", "d", "e"].filter { _ in random.next() % 3 != 0 }
                let input = fixture.input(
                    surface: surfaces[Int(random.next() % 5)], customer: "u\(random.next() % 60)",
                    slots: UInt32(1 + random.next() % 2), candidates: random.next() % 2 == 0 ? [] : candidates,
                    features: features, gift: random.next() % 2 == 0)
                // Slot 0's full distribution is in `probabilities` after a one-slot decision.
                var one = input
                one.slots = 1
                try workspace.decide(one, into: &output)
                decisions += 1
                if output.uniformFallback { fallbacks += 1 }
                guard output.placementCount > 0 else { continue }
                let n = output.eligibleCount
                Self.expectDistribution(workspace, count: n, chosen: output.first)
                if output.uniformFallback {
                    #expect(output.first.propensity == 1.0 / Double(n))
                }
                guard input.slots == 2, n >= 2 else { continue }
                // After a two-slot decision it holds slot 1's distribution, conditional on slot 0.
                try workspace.decide(input, into: &output)
                #expect(output.placementCount == 2)
                Self.expectDistribution(workspace, count: output.eligibleCount - 1, chosen: output.second)
                #expect(output.first.offerIndex != output.second.offerIndex)
                #expect(output.jointPropensity.isFinite && output.jointPropensity > 0)
                if output.uniformFallback {
                    #expect(output.first.propensity == 1.0 / Double(output.eligibleCount))
                    #expect(output.second.propensity == 1.0 / Double(output.eligibleCount - 1))
                }
            }
            #expect(engine.nonFiniteScoreFallbacks.load(ordering: .relaxed) <= 40)
        }
        // The cases must reach both paths, or the property says nothing about the fallback.
        #expect(fallbacks > 50, "only \(fallbacks) of \(decisions) decisions fell back")
        #expect(decisions - fallbacks > 500, "only \(decisions - fallbacks) decisions scored normally")
    }

    @Test func overflowingScoresFallBackToUniformAndAreCounted() throws {
        let schema = FeatureSchema(features: ["bias", "request.x"])
        let snapshot = try ModelSnapshot(
            version: "overflow", createdAtMillis: 0, schema: schema, offerIDs: ["a", "b"], sharedWeights: [0, 1e6],
            offerWeights: [0, 1e6, 0, -1e6], offerBiases: [0, 0], link: .logistic, objective: .conversion,
            exploration: .squareCB(gamma: 100))
        let engine = try makeEngine(snapshot: snapshot)
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        // a: 2e6 * 3e38 = +inf; b: 0 * x = 0 (finite), but one non-finite score is enough.
        try workspace.decide(fixture.input(surface: "cart", slots: 2, features: ["x": 3e38]), into: &output)
        #expect(output.uniformFallback)
        #expect(output.eligibleCount == 4)
        #expect(output.first.propensity == 1.0 / 4)
        #expect(output.second.propensity == 1.0 / 3)
        #expect(output.first.score == 0 && output.first.expectedValue == 0)
        #expect(engine.nonFiniteScoreFallbacks.load(ordering: .relaxed) == 1)
        // An ordinary value scores normally and is not counted.
        try workspace.decide(fixture.input(surface: "cart", slots: 2, features: ["x": 2]), into: &output)
        #expect(!output.uniformFallback)
        // Its scores are finite (the drawn offer is random, and may be one the model scores 0, so
        // the score's value says nothing: `score != 0` failed one run in six).
        #expect(output.first.score.isFinite && output.first.expectedValue.isFinite)
        #expect(output.first.propensity > 0 && output.first.propensity <= 1)
        #expect(engine.nonFiniteScoreFallbacks.load(ordering: .relaxed) == 1)
    }

    @Test func refusesRequestFeaturesBeyondFloat32() throws {
        let workspace = try makeEngine(snapshot: try testSnapshot()).makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        for bad in [1e308, -1e308, 3.5e38, Double.infinity, -Double.infinity, Double.nan] {
            do {
                try workspace.decide(fixture.input(features: ["x": bad]), into: &output)
                Issue.record("feature value \(bad) was accepted")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.message.description.hasPrefix("features:"))
            }
        }
        for good in [Double(Float.greatestFiniteMagnitude), -3.4e38, 1e-45, 0] {
            try workspace.decide(fixture.input(features: ["x": good]), into: &output)
        }
    }
}
