import BenchSupport
// SnapshotFile.read (EncoreModel) of a 50-offer x 64-feature snapshot's bytes, unsigned:
// parse, validate and build the ModelSnapshot. One measured iteration is one read.
import Benchmark
import EncoreModel

let benchmarks: @Sendable () -> Void = {
    let bytes: [UInt8]
    do {
        bytes = try SnapshotFile.write(Fixtures.snapshot())
        _ = try SnapshotFile.read(bytes)
    } catch {
        fatalError("SnapshotLoad fixture: \(error)")
    }
    print("SnapshotLoad: the 50x64 snapshot file is \(bytes.count) bytes")

    Benchmark("SnapshotFile.read-50x64", configuration: BenchSupport.configuration(scalingFactor: .one)) { benchmark in
        for _ in benchmark.scaledIterations {
            do {
                blackHole(try SnapshotFile.read(bytes))
            } catch {
                benchmark.error("read failed: \(error)")
                return
            }
        }
    }
}
