import EncoreSupport
import Foundation
import Testing

@testable import EncoreModel

func distribution(_ e: Exploration, _ rewards: [Double]) -> [Double] {
    var out = [Double](repeating: -1, count: rewards.count)
    rewards.withUnsafeBufferPointer { r in
        out.withUnsafeMutableBufferPointer { p in e.distribution(rewards: r, count: rewards.count, into: p) }
    }
    return out
}

@Suite struct ExplorationTests {
    static let policies: [Exploration] = [
        .uniform, .epsilonGreedy(epsilon: 0.1), .epsilonGreedy(epsilon: 0), .epsilonGreedy(epsilon: 1),
        .softmax(temperature: 0.05), .softmax(temperature: 10), .squareCB(gamma: 0), .squareCB(gamma: 100),
        .squareCB(gamma: 1e6),
    ]

    @Test(arguments: policies)
    func probabilitiesArePositiveAndSumToOne(_ policy: Exploration) {
        var random = SplitMix64(seed: 1)
        for n in 1...40 {
            let rewards = (0..<n).map { _ in random.nextUnit() }
            let p = distribution(policy, rewards)
            #expect(abs(p.reduce(0, +) - 1) < 1e-12, "\(policy) n=\(n)")
            #expect(p.allSatisfy { $0 >= 0 && $0 <= 1 })
        }
    }

    @Test func uniformIsExactlyOneOverN() {
        for n in 1...64 {
            #expect(distribution(.uniform, [Double](repeating: 0.3, count: n)).allSatisfy { $0 == 1.0 / Double(n) })
        }
    }

    @Test func oneCandidateGetsProbabilityOne() {
        for policy in Self.policies { #expect(distribution(policy, [0.42]) == [1]) }
    }

    @Test func epsilonGreedyFormulaWithTies() {
        let p = distribution(.epsilonGreedy(epsilon: 0.2), [0.1, 0.5, 0.5, 0.3])
        #expect(p == [0.05, 0.05 + 0.4, 0.05 + 0.4, 0.05])
    }

    @Test func softmaxFormula() {
        let rewards = [0.1, 0.4, 0.2]
        let t = 0.3
        let weights = rewards.map { exp($0 / t) }
        let expected = weights.map { $0 / weights.reduce(0, +) }
        for (a, b) in zip(distribution(.softmax(temperature: t), rewards), expected) { #expect(abs(a - b) < 1e-12) }
    }

    @Test func squareCBFormula() {
        // Foster & Rakhlin: p(a) = 1 / (n + gamma (r* - r(a))) for a != best; the rest to the best.
        let rewards = [0.2, 0.5, 0.1, 0.45]
        let gamma = 40.0
        let p = distribution(.squareCB(gamma: gamma), rewards)
        let n = 4.0
        let others = [0, 2, 3].map { 1 / (n + gamma * (0.5 - rewards[$0])) }
        #expect(abs(p[0] - others[0]) < 1e-15)
        #expect(abs(p[2] - others[1]) < 1e-15)
        #expect(abs(p[3] - others[2]) < 1e-15)
        #expect(abs(p[1] - (1 - others.reduce(0, +))) < 1e-15)
        #expect(p[1] > p[3] && p[3] > p[0] && p[0] > p[2])
    }

    @Test func squareCBWithZeroGammaIsUniform() {
        #expect(distribution(.squareCB(gamma: 0), [0.9, 0.1, 0.5]).allSatisfy { abs($0 - 1.0 / 3) < 1e-15 })
    }

    @Test func rejectsBadParameters() {
        #expect(Exploration.epsilonGreedy(epsilon: 1.5).validationError() != nil)
        #expect(Exploration.epsilonGreedy(epsilon: .nan).validationError() != nil)
        #expect(Exploration.softmax(temperature: 0).validationError() != nil)
        #expect(Exploration.squareCB(gamma: -1).validationError() != nil)
        #expect(Exploration.squareCB(gamma: .infinity).validationError() != nil)
        #expect(Exploration.squareCB(gamma: 10).validationError() == nil)
    }
}

@Suite struct StableHashTests {
    @Test func isStableAcrossRuns() {
        // Pinned values: holdout assignment and feature hashing must never change silently. The
        // literals were computed outside Swift from the definition (64-bit FNV-1a over the UTF-8
        // bytes, offset basis XOR seed, then the SplitMix64 finalizer), so a change to the
        // constants, the byte order, the seed mixing or the finalizer fails here.
        let pinned: [(String, UInt64, UInt64)] = [
            ("", 0, 0xF52A_15E9_A9B5_E89B),
            ("c000001", 0, 0x2645_ADD3_8BF0_20A2),
            ("c000002", 0, 0xA425_1CD0_82F3_4154),
            ("a", 1, 0x270A_EB36_A957_26CF),
            ("a", 2, 0x7B88_5525_0F3C_DE02),
            ("encore-holdout-v1", 0, 0xB37E_AFCE_7AD3_4BF4),
            ("cart", 7, 0xA38A_E37E_D33E_C7D9),
        ]
        for (text, seed, expected) in pinned {
            #expect(StableHash.hash(text, seed: seed) == expected, "hash(\"\(text)\", seed: \(seed))")
        }
        #expect(StableHash.hash("") == StableHash.finalize(0xCBF2_9CE4_8422_2325))
    }

    @Test func splitMixUnitIsInRangeAndReplayable() {
        var a = SplitMix64(seed: 99)
        var b = SplitMix64(seed: 99)
        for _ in 0..<10_000 {
            let u = a.nextUnit()
            #expect(u >= 0 && u < 1)
            #expect(u == b.nextUnit())
        }
    }
}
