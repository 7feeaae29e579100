import BenchSupport
// GRPCFrameDecoder (EncoreTransport): a 300-byte gRPC message with its 5-byte prefix, arriving
// in 3 pieces (as DATA frames would deliver it): reset, append x3, nextMessage; the workload is
// EncoreBenchWorkloads.FramingWorkload. One measured iteration is 1,000 messages.
import Benchmark

let benchmarks: @Sendable () -> Void = {
    let workload: FramingWorkload
    do {
        workload = try FramingWorkload()
    } catch {
        fatalError("Framing fixture: \(error)")
    }

    Benchmark("GRPCFrameDecoder-300B-in-3-pieces", configuration: BenchSupport.configuration()) { benchmark in
        var total = 0
        for _ in benchmark.scaledIterations {
            do {
                total &+= try workload.feed()
            } catch {
                benchmark.error("framing failed: \(error)")
                return
            }
        }
        blackHole(total)
    }

    // An empty iteration: package-benchmark's own allocations per measured iteration, which
    // every other benchmark's malloc count includes.
    Benchmark("empty-iteration", configuration: BenchSupport.configuration(scalingFactor: .one)) { benchmark in
        for i in benchmark.scaledIterations { blackHole(i) }
    }
}
