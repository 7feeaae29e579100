import BenchSupport
// The Decide hot codec (EncoreProtocol): DecideRequestDecoder.decode of a realistic request
// (3 line items, 4 request features, 2 candidate ids) and DecideResponseEncoder.encode of a
// 2-placement response into a reused [UInt8]; the workload is EncoreBenchWorkloads.CodecWorkload.
// One measured iteration is 1,000 operations.
import Benchmark

let benchmarks: @Sendable () -> Void = {
    let workload: CodecWorkload
    do {
        workload = try CodecWorkload()
    } catch {
        fatalError("Codec fixture: \(error)")
    }
    print("Codec: DecideRequest is \(workload.request.count) bytes, DecideResponse \(workload.out.count) bytes")

    Benchmark("DecideRequestDecoder.decode", configuration: BenchSupport.configuration()) { benchmark in
        for _ in benchmark.scaledIterations {
            do {
                try workload.decode()
            } catch {
                benchmark.error("decode failed: \(error)")
                return
            }
        }
        blackHole(workload.decoder.featureCount)
    }

    Benchmark("DecideResponseEncoder.encode", configuration: BenchSupport.configuration()) { benchmark in
        for _ in benchmark.scaledIterations {
            workload.encode()
        }
        blackHole(workload.out.count)
    }
}
