import EncoreModel
import EncoreStore
import Foundation
import Testing

@testable import EncoreEngine

/// Slot 1 scored with the snapshot's slot-1 model, given slot 0's offer (docs/snapshots.md).
@Suite struct Slot1ModelTests {
    /// Offers a, b, c, d (the cart's four) with biases 3, 1, 0.5, 0 and nothing else.
    static func snapshot(
        exploration: Exploration = .epsilonGreedy(epsilon: 0), slot1: ModelSnapshot.Slot1Model?,
        offers: [String] = ["a", "b", "c", "d"], biases: [Float] = [3, 1, 0.5, 0]
    ) throws -> ModelSnapshot {
        try ModelSnapshot(
            version: "slot1-test", createdAtMillis: 0, schema: FeatureSchema(features: ["bias"]), offerIDs: offers,
            sharedWeights: [0], offerWeights: [Float](repeating: 0, count: offers.count), offerBiases: biases,
            link: .logistic, objective: .conversion, exploration: exploration, slot1: slot1)
    }

    /// pairs[a][b] for the four offers, all others 0.
    static func pairs(_ terms: [(Int, Int, Float)], offers: Int = 4) -> [Float] {
        var out = [Float](repeating: 0, count: offers * offers)
        for (a, b, v) in terms { out[a * offers + b] = v }
        return out
    }

    static func decide(_ snapshot: ModelSnapshot, times: Int = 1) throws -> [DecisionOutput] {
        let workspace = try makeEngine(snapshot: snapshot).makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var outputs: [DecisionOutput] = []
        for i in 0..<times {
            var output = DecisionOutput()
            try workspace.decide(fixture.input(surface: "cart", customer: "u\(i % 50)", slots: 2), into: &output)
            outputs.append(output)
        }
        return outputs
    }

    @Test func withoutTheSectionSlot1IsTheRunnerUp() throws {
        let output = try #require(try Self.decide(try Self.snapshot(slot1: nil)).first)
        #expect(output.placementCount == 2)
        #expect(offerID(output, 0) == "a" && offerID(output, 1) == "b")
        #expect(output.second.score == 1)
    }

    @Test func slot1ChoiceFollowsThePairTermsOfSlot0sOffer() throws {
        // Beside a: c gets +2 (2.5 > b's 1), b gets -1.
        let slot1 = ModelSnapshot.Slot1Model(biases: [0, 0, 0, 0], pairs: Self.pairs([(0, 2, 2), (0, 1, -1)]))
        let output = try #require(try Self.decide(try Self.snapshot(slot1: slot1)).first)
        #expect(offerID(output, 0) == "a" && offerID(output, 1) == "c")
        #expect(output.second.score == Double(Float(0.5) + 0 + 2))
        #expect(abs(output.second.expectedValue - 1 / (1 + exp(-2.5))) < 1e-12)
        #expect(output.second.propensity == 1 && output.jointPropensity == 1)
        // Slot 0 is untouched by the section: its score is a's own.
        #expect(output.first.score == 3)
        // A term on a pair whose slot-0 offer is not a changes nothing.
        let other = ModelSnapshot.Slot1Model(biases: [0, 0, 0, 0], pairs: Self.pairs([(1, 2, 5), (3, 3, 9)]))
        let unchanged = try #require(try Self.decide(try Self.snapshot(slot1: other)).first)
        #expect(offerID(unchanged, 1) == "b" && unchanged.second.score == 1)
    }

    @Test func slot1BiasesShiftEveryOfferBelowSlot0() throws {
        // d's slot-1 bias (+1.5) lifts it over b (1 - 1) and c (0.5 + 0).
        let slot1 = ModelSnapshot.Slot1Model(biases: [0, -1, 0, 1.5], pairs: Self.pairs([]))
        let output = try #require(try Self.decide(try Self.snapshot(slot1: slot1)).first)
        #expect(offerID(output, 0) == "a" && offerID(output, 1) == "d")
        #expect(output.second.score == 1.5)
    }

    @Test func catalogOffersTheSnapshotDoesNotListTakeNoTerms() throws {
        // The snapshot lists a and c only: b and d are scored with the shared weights (0) and get
        // no slot-1 bias or pair term. Beside a, c (-0.25) gets +1 and wins slot 1; with -1 it
        // stays below b and d, which tie at 0 and split slot 1 (epsilon 0: the best share it).
        let up = ModelSnapshot.Slot1Model(biases: [0, 0], pairs: Self.pairs([(0, 1, 1)], offers: 2))
        let win = try #require(
            try Self.decide(try Self.snapshot(slot1: up, offers: ["a", "c"], biases: [3, -0.25])).first)
        #expect(offerID(win, 0) == "a" && offerID(win, 1) == "c" && win.second.propensity == 1)
        let down = ModelSnapshot.Slot1Model(biases: [0, 0], pairs: Self.pairs([(0, 1, -1)], offers: 2))
        for output in try Self.decide(
            try Self.snapshot(slot1: down, offers: ["a", "c"], biases: [3, -0.25]), times: 20)
        {
            #expect(offerID(output, 0) == "a")
            #expect(["b", "d"].contains(offerID(output, 1)) && output.second.propensity == 0.5)
            #expect(output.second.score == 0)
        }
    }

    @Test func slot1PropensitiesAreTheExplorationOfTheConditionedScores() throws {
        let slot1 = ModelSnapshot.Slot1Model(
            biases: [-0.8, -0.5, -0.3, 0.2],
            pairs: Self.pairs([(0, 2, 1.2), (0, 1, -1.5), (1, 0, 0.6), (2, 3, -2), (3, 0, 0.4)]))
        let snapshot = try Self.snapshot(
            exploration: .squareCB(gamma: 5), slot1: slot1, biases: [0.4, 0.3, 0.2, 0.1])
        let biases: [Float] = [0.4, 0.3, 0.2, 0.1]
        var seenFirst = Set<Int32>()
        for output in try Self.decide(snapshot, times: 400) {
            let a = Int(output.first.offerIndex)
            seenFirst.insert(output.first.offerIndex)
            // The server's slot-1 order: the cart's candidates a, b, c, d with slot 0's moved
            // last's place (the last candidate takes slot 0's position).
            var rest = [0, 1, 2, 3]
            rest[a] = 3
            rest.removeLast()
            let rewards = rest.map { b -> Double in
                let raw = Double((biases[b] + slot1.biases[b]) + slot1.pairs[a * 4 + b])
                return 1 / (1 + exp(-raw))
            }
            let probabilities = UnsafeMutableBufferPointer<Double>.allocate(capacity: 3)
            defer { probabilities.deallocate() }
            rewards.withUnsafeBufferPointer {
                snapshot.exploration.distribution(rewards: $0, count: 3, into: probabilities)
            }
            let position = try #require(rest.firstIndex(of: Int(output.second.offerIndex)))
            #expect(abs(output.second.propensity - probabilities[position]) < 1e-12)
            #expect(abs(output.second.expectedValue - rewards[position]) < 1e-12)
        }
        #expect(seenFirst.count == 4, "every slot-0 offer was drawn")
    }
}
