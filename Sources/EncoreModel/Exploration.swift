/// How a policy turns predicted rewards into a probability distribution over candidates.
/// Every variant yields exact probabilities that sum to 1 over the candidates it is given
/// (after eligibility filtering), so the logged propensity is the true probability of the choice.
public enum Exploration: Sendable, Equatable {
    /// Every candidate gets exactly 1/n (a deployment with a catalog but no snapshot).
    case uniform
    /// `epsilon` spread evenly; the rest split evenly among the best-scoring candidates.
    case epsilonGreedy(epsilon: Double)
    /// p(a) ∝ exp(reward(a) / temperature).
    case softmax(temperature: Double)
    /// SquareCB (Foster & Rakhlin 2020): p(a) = 1 / (n + gamma · (r̂* − r̂(a))) for a ≠ best,
    /// the remainder to the best; `gamma` ≥ 0 (0 is uniform, larger is greedier).
    case squareCB(gamma: Double)

    /// Short name used in snapshots and logs.
    public var name: String {
        switch self {
        case .uniform: "uniform"
        case .epsilonGreedy: "epsilon_greedy"
        case .softmax: "softmax"
        case .squareCB: "squarecb"
        }
    }

    /// Checks the parameter; returns a message naming the problem, or nil when valid.
    public func validationError() -> String? {
        switch self {
        case .uniform: return nil
        case .epsilonGreedy(let e):
            return e.isFinite && e >= 0 && e <= 1 ? nil : "epsilon must be in [0, 1], got \(e)"
        case .softmax(let t):
            return t.isFinite && t > 0 ? nil : "softmax temperature must be a positive finite number, got \(t)"
        case .squareCB(let g):
            return g.isFinite && g >= 0 ? nil : "SquareCB gamma must be a non-negative finite number, got \(g)"
        }
    }

    /// Writes the probability of each of the `count` candidates into `probabilities`, given their
    /// predicted rewards. Allocation-free. `count` must be at least 1.
    public func distribution(
        rewards: UnsafeBufferPointer<Double>, count: Int, into probabilities: UnsafeMutableBufferPointer<Double>
    ) {
        precondition(count >= 1 && rewards.count >= count && probabilities.count >= count)
        let n = Double(count)
        switch self {
        case .uniform:
            for i in 0..<count { probabilities[i] = 1.0 / n }
        case .epsilonGreedy(let epsilon):
            var best = -Double.infinity
            for i in 0..<count where rewards[i] > best { best = rewards[i] }
            var ties = 0
            for i in 0..<count where rewards[i] == best { ties += 1 }
            let share = (1 - epsilon) / Double(ties)
            for i in 0..<count {
                probabilities[i] = epsilon / n + (rewards[i] == best ? share : 0)
            }
        case .softmax(let temperature):
            var best = -Double.infinity
            for i in 0..<count where rewards[i] > best { best = rewards[i] }
            var total = 0.0
            for i in 0..<count {
                let w = exp((rewards[i] - best) / temperature)
                probabilities[i] = w
                total += w
            }
            for i in 0..<count { probabilities[i] /= total }
        case .squareCB(let gamma):
            var bestIndex = 0
            for i in 1..<max(count, 1) where rewards[i] > rewards[bestIndex] { bestIndex = i }
            let best = rewards[bestIndex]
            var others = 0.0
            for i in 0..<count where i != bestIndex {
                let p = 1.0 / (n + gamma * (best - rewards[i]))
                probabilities[i] = p
                others += p
            }
            probabilities[bestIndex] = 1.0 - others
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
