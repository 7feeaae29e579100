import BenchSupport
// SnapshotFile.read (EncoreModel) of a 50-offer x 64-feature snapshot's bytes, unsigned:
// parse, validate and build the ModelSnapshot; the workload is
// EncoreBenchWorkloads.SnapshotLoadWorkload. One measured iteration is one read.
import Benchmark

let benchmarks: @Sendable () -> Void = {
    let workload: SnapshotLoadWorkload
    do {
        workload = try SnapshotLoadWorkload()
    } catch {
        fatalError("SnapshotLoad fixture: \(error)")
    }
    print("SnapshotLoad: the 50x64 snapshot file is \(workload.bytes.count) bytes")

    Benchmark("SnapshotFile.read-50x64", configuration: BenchSupport.configuration(scalingFactor: .one)) { benchmark in
        for _ in benchmark.scaledIterations {
            do {
                blackHole(try workload.read())
            } catch {
                benchmark.error("read failed: \(error)")
                return
            }
        }
    }
}
