import BenchSupport
// The decision core alone (EncoreEngine): eligibility, features, scoring, SquareCB exploration
// and a 2-slot slate for a 50-offer catalog and a 64-feature snapshot, over a pool of customers
// (14 known, 2 cold-start); the workload is EncoreBenchWorkloads.DecisionWorkload. One measured
// iteration is 1,000 decisions (scaling factor kilo).
// Issue goal: <= 2 us and 0 allocations per decision.
import Benchmark

let benchmarks: @Sendable () -> Void = {
    let workload: DecisionWorkload
    let ruled: DecisionWorkload
    do {
        workload = try DecisionWorkload()
        ruled = try DecisionWorkload(rules: true)
    } catch {
        fatalError("DecisionCore fixture: \(error)")
    }
    Benchmark("decide-50offers-64features-2slots", configuration: BenchSupport.configuration()) { benchmark in
        for i in benchmark.scaledIterations {
            do {
                try workload.decide(i)
            } catch {
                benchmark.error("decide failed: \(error)")
                return
            }
        }
        blackHole(workload.output.first.offerIndex)
    }
    // The same decisions with every business rule evaluated (issue goal: at most +10%, no
    // allocation).
    Benchmark("decide-50offers-64features-2slots-rules", configuration: BenchSupport.configuration()) { benchmark in
        for i in benchmark.scaledIterations {
            do {
                try ruled.decide(i)
            } catch {
                benchmark.error("decide failed: \(error)")
                return
            }
        }
        blackHole(ruled.output.first.offerIndex)
    }
}
