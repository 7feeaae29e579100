import EncoreModel
import EncoreStore
import Testing

@testable import EncoreEngine

@Suite struct DecisionWorkspaceTests {
    @Test func uniformWithoutSnapshotGivesExactlyOneOverN() throws {
        let engine = try makeEngine(snapshot: nil)
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        // cart: a, b, c, d are eligible (e is email only).
        try workspace.decide(fixture.input(surface: "cart", slots: 2), into: &output)
        #expect(output.eligibleCount == 4)
        #expect(output.first.propensity == 1.0 / 4)
        #expect(output.second.propensity == 1.0 / 3)
        #expect(output.jointPropensity == 1.0 / 12)
        #expect(output.model?.version == "uniform")
    }

    @Test func propensitiesAreComputedAfterFiltering() throws {
        let engine = try makeEngine(snapshot: nil)
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        // b is not eligible on payment; unknown "zz" is ignored; duplicate "a" counted once.
        try workspace.decide(fixture.input(surface: "payment", candidates: ["a", "b", "zz", "a", "d"]), into: &output)
        #expect(output.eligibleCount == 2)
        #expect(output.first.propensity == 0.5)
        #expect(["a", "d"].contains(offerID(output, 0)))
        #expect(output.unknownCandidates == 1)
        #expect(engine.unknownCandidatesIgnored.load(ordering: .relaxed) == 1)
    }

    @Test func noEligibleOfferGivesEmptyPlacements() throws {
        let workspace = try makeEngine(snapshot: try testSnapshot()).makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        try workspace.decide(fixture.input(surface: "payment", candidates: ["b", "e"]), into: &output)
        #expect(output.placementCount == 0)
        #expect(output.eligibleCount == 0)
        #expect(!output.holdout)
    }

    @Test func oneCandidateHasPropensityOneAndNoSecondSlot() throws {
        let workspace = try makeEngine(snapshot: try testSnapshot()).makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        try workspace.decide(fixture.input(surface: "email", slots: 2), into: &output)  // d (all surfaces) and e
        #expect(output.placementCount == 2)
        try workspace.decide(fixture.input(surface: "thank_you", slots: 2, candidates: ["c"]), into: &output)
        #expect(output.placementCount == 1)
        #expect(output.first.propensity == 1)
        #expect(offerID(output, 0) == "c")
    }

    @Test func propensitiesMatchTheSquareCBDistributionAndSlotOneIsConditional() throws {
        let snapshot = try testSnapshot(exploration: .squareCB(gamma: 20))
        let workspace = try makeEngine(snapshot: snapshot).makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        let input = fixture.input(surface: "cart", customer: "u10", slots: 2, features: ["x": 2.5], gift: true)
        var output = DecisionOutput()
        var firstCounts: [String: Int] = [:]
        var firstPropensity: [String: Double] = [:]
        var secondGivenFirst: [String: [String: Int]] = [:]
        var secondPropensity: [String: [String: Double]] = [:]
        let n = 40_000
        for _ in 0..<n {
            try workspace.decide(input, into: &output)
            let a = offerID(output, 0)
            let b = offerID(output, 1)
            #expect(a != b)
            firstCounts[a, default: 0] += 1
            if let p = firstPropensity[a] { #expect(p == output.first.propensity) }  // same context → same p
            firstPropensity[a] = output.first.propensity
            secondGivenFirst[a, default: [:]][b, default: 0] += 1
            secondPropensity[a, default: [:]][b] = output.second.propensity
            #expect(abs(output.jointPropensity - output.first.propensity * output.second.propensity) < 1e-15)
        }
        #expect(abs(firstPropensity.values.reduce(0, +) - 1) < 1e-9, "first-slot propensities over all offers sum to 1")
        for (offer, count) in firstCounts {
            let p = firstPropensity[offer]!
            let frequency = Double(count) / Double(n)
            let tolerance = 4 * (p * (1 - p) / Double(n)).squareRoot() + 0.002
            #expect(abs(frequency - p) < tolerance, "\(offer): frequency \(frequency) vs propensity \(p)")
        }
        for (first, seconds) in secondGivenFirst where firstCounts[first]! > 2_000 {
            let total = Double(seconds.values.reduce(0, +))
            #expect(abs(secondPropensity[first]!.values.reduce(0, +) - 1) < 1e-9 || secondPropensity[first]!.count < 3)
            for (second, count) in seconds {
                let p = secondPropensity[first]![second]!
                let tolerance = 4 * (p * (1 - p) / total).squareRoot() + 0.004
                #expect(abs(Double(count) / total - p) < tolerance, "\(second) | \(first)")
            }
        }
    }

    @Test func replayGivesTheSameChoices() throws {
        let engine = try makeEngine(snapshot: try testSnapshot(exploration: .softmax(temperature: 0.2)))
        let live = engine.makeWorkspace(threadIndex: 0)
        let replayer = engine.makeWorkspace(threadIndex: 1)
        let fixture = RequestFixture()
        let input = fixture.input(surface: "cart", customer: "u7", slots: 2)
        var output = DecisionOutput()
        var again = DecisionOutput()
        for _ in 0..<500 {
            try live.decide(input, into: &output)
            try replayer.replay(input, decisionID: output.decisionIDString, into: &again)
            #expect(again.first == output.first)
            #expect(again.second == output.second)
        }
    }

    @Test func decisionIDsAreUnique() throws {
        let engine = try makeEngine(snapshot: nil)
        let fixture = RequestFixture()
        var seen = Set<String>()
        var output = DecisionOutput()
        for thread in 0..<2 {
            let workspace = engine.makeWorkspace(threadIndex: thread)
            for _ in 0..<5_000 {
                try workspace.decide(fixture.input(), into: &output)
                #expect(seen.insert(output.decisionIDString).inserted)
            }
        }
    }

    @Test func holdoutIsStickyAndNearItsShare() throws {
        let engine = try makeEngine(snapshot: try testSnapshot(), holdoutShare: 0.2)
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        var held = 0
        for i in 0..<5_000 {
            try workspace.decide(fixture.input(surface: "cart", customer: "h\(i)"), into: &output)
            let first = output.holdout
            if first {
                held += 1
                #expect(output.placementCount == 0)
            }
            try workspace.decide(fixture.input(surface: "thank_you", customer: "h\(i)"), into: &output)
            #expect(output.holdout == first, "holdout must not depend on the surface or the call")
        }
        #expect(abs(Double(held) / 5_000 - 0.2) < 0.025)
    }

    @Test func refusesInvalidInputNamingTheField() throws {
        let workspace = try makeEngine(snapshot: try testSnapshot()).makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        func message(_ input: DecisionInput) -> String? {
            do {
                try workspace.decide(input, into: &output)
                return nil
            } catch {
                #expect(error.code == .invalidArgument)
                return error.message.description
            }
        }
        #expect(message(fixture.input(surface: "checkout"))?.hasPrefix("surface") == true)
        #expect(message(fixture.input(slots: 3))?.hasPrefix("slots") == true)
        #expect(message(fixture.input(features: ["x": .nan]))?.hasPrefix("features") == true)
        #expect(message(fixture.input(features: ["x": .infinity]))?.hasPrefix("features") == true)
        #expect(message(fixture.input(customer: String(repeating: "x", count: 257)))?.hasPrefix("customer_id") == true)
        #expect(message(fixture.input(customer: String(repeating: "x", count: 256))) == nil)
        #expect(message(fixture.input(candidates: (0..<65).map { "o\($0)" }))?.hasPrefix("candidate_offer_ids") == true)
        #expect(
            message(fixture.input(candidates: [String(repeating: "y", count: 300)]))?.hasPrefix("candidate_offer_ids")
                == true)
        #expect(message(fixture.input(slots: 0)) == nil)
    }

    @Test func coldStartCustomersAreServed() throws {
        let workspace = try makeEngine(snapshot: try testSnapshot()).makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        try workspace.decide(fixture.input(customer: "never-seen"), into: &output)
        #expect(!output.knownCustomer)
        #expect(output.placementCount == 1)
        try workspace.decide(fixture.input(customer: "u3"), into: &output)
        #expect(output.knownCustomer)
    }

    @Test func publishedModelSwapIsSeenByTheNextDecision() throws {
        let engine = try makeEngine(snapshot: nil)
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        try workspace.decide(fixture.input(), into: &output)
        let old = try #require(output.model)
        #expect(old.version == "uniform")
        engine.active.publish(
            try ActiveModel(snapshot: try testSnapshot(), catalog: old.catalog, customers: old.customers))
        // The decision that started on the old model still holds it.
        #expect(old.version == "uniform")
        try workspace.decide(fixture.input(), into: &output)
        #expect(output.model?.version == "engine-test-1")
    }

    @Test func bindingRefusesASnapshotTheStoreCannotServe() throws {
        let schema = FeatureSchema(features: ["bias", "customer.not_in_store"])
        let snapshot = try ModelSnapshot(
            version: "bad", createdAtMillis: 0, schema: schema, offerIDs: ["a"], sharedWeights: [0, 0],
            offerWeights: [0, 0],
            offerBiases: [0], link: .logistic, objective: .conversion, exploration: .uniform)
        #expect(throws: ModelError.self) {
            _ = try ActiveModel(
                snapshot: snapshot, catalog: try OfferCatalog(jsonl: testCatalogJSONL), customers: try testCustomers())
        }
    }
}
