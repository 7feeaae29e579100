// encore-microbench: the workloads of the package-benchmark suite (Benchmarks/, the same code,
// from EncoreBenchWorkloads) without package-benchmark, for the quick CI gate
// (scripts/bench-quick.sh). It builds with the root package, so CI pays no extra dependency.
//
//   encore-microbench [--list] [--only NAME] [--iterations N]
//
// For each benchmark it builds the fixture, then runs N operations inside one call of
// `encore_microbench_measure` (a fixed symbol: callgrind's --toggle-collect counts instructions
// of that call only) and prints one JSON line:
//   {"name": "...", "iterations": N, "mallocs": M or null, "ns_per_op": T}
// `mallocs` is the number of allocations during those N operations, read from the LD_PRELOAD
// counter of scripts/malloc-count/ when it is loaded (null otherwise). `ns_per_op` is wall clock,
// informational only (never gated).
import EncoreBenchWorkloads
import EncoreStore

#if canImport(Glibc)
    import Glibc
#endif

/// One micro-benchmark: its package-benchmark name (`Target.benchmark`), its default operation
/// count for the quick gate, and the operation (given the operation index).
struct MicroBenchmark {
    let name: String
    let defaultIterations: Int
    let makeOperation: () throws -> (Int) -> Int
}

/// The allocation counter of scripts/malloc-count/malloc_count.c, when it is preloaded.
private let mallocCounter: (@convention(c) () -> UInt)? = {
    guard let symbol = dlsym(nil, "malloc_count_allocs") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) () -> UInt).self)
}()

/// Runs `operation` for indices 0..<iterations and returns a checksum of its results. Never
/// inlined, and named by a fixed symbol, so callgrind can count exactly this call.
@inline(never)
@_silgen_name("encore_microbench_measure")
func measure(_ operation: (Int) -> Int, iterations: Int) -> Int {
    var checksum = 0
    for i in 0..<iterations {
        checksum &+= operation(i)
    }
    return checksum
}

func fail(_ message: String) -> Never {
    let line = "encore-microbench: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    exit(1)
}

/// A decision-core benchmark over the workload `make` builds.
func decideBenchmark(
    _ name: String, iterations: Int = 2_000, _ make: @escaping () throws -> DecisionWorkload
) -> MicroBenchmark {
    MicroBenchmark(name: name, defaultIterations: iterations) {
        let workload = try make()
        return { i in
            do {
                try workload.decide(i)
            } catch {
                fail("decide failed: \(error)")
            }
            return Int(workload.output.placementCount)
        }
    }
}

let benchmarks: [MicroBenchmark] = [
    decideBenchmark("DecisionCore.decide-50offers-64features-2slots") { try DecisionWorkload() },
    decideBenchmark("DecisionCore.decide-50offers-64features-2slots-rules") { try DecisionWorkload(rules: true) },
    decideBenchmark("DecisionCore.decide-50offers-64features-2slots-demo-rules") {
        try DecisionWorkload(demoRules: true)
    },
    // A 100,000-offer catalog (issue 15): the cart decision of the fixture, then the same with
    // 100,000 more offers on the email surface only (candidates come from the per-surface index:
    // it must cost what the fixture costs), then with 975 more on every surface (1,000 cart offers,
    // the default per-surface limit: cost grows with the eligible offers, which all need a score).
    decideBenchmark("DecisionCore.decide-cart-50offers") { try DecisionWorkload(surface: "cart") },
    decideBenchmark("DecisionCore.decide-cart-50offers-plus-100k-elsewhere") {
        try DecisionWorkload(surface: "cart", extraOffers: 100_000, extraSurfaces: SurfaceSet(.email))
    },
    decideBenchmark("DecisionCore.decide-cart-1000-eligible", iterations: 200) {
        try DecisionWorkload(surface: "cart", extraOffers: 975, extraSurfaces: .all)
    },
    MicroBenchmark(name: "Codec.DecideRequestDecoder.decode", defaultIterations: 5_000) {
        let workload = try CodecWorkload()
        return { _ in
            do {
                try workload.decode()
            } catch {
                fail("decode failed: \(error)")
            }
            return workload.decoder.featureCount
        }
    },
    MicroBenchmark(name: "Codec.DecideResponseEncoder.encode", defaultIterations: 5_000) {
        let workload = try CodecWorkload()
        return { _ in
            workload.encode()
            return workload.out.count
        }
    },
    MicroBenchmark(name: "Framing.GRPCFrameDecoder-300B-in-3-pieces", defaultIterations: 5_000) {
        let workload = try FramingWorkload()
        return { _ in
            do {
                return try workload.feed()
            } catch {
                fail("framing failed: \(error)")
            }
        }
    },
    MicroBenchmark(name: "SnapshotLoad.SnapshotFile.read-50x64", defaultIterations: 50) {
        let workload = try SnapshotLoadWorkload()
        return { _ in
            do {
                return try workload.read().0.offerIDs.count
            } catch {
                fail("snapshot read failed: \(error)")
            }
        }
    },
]

var only: String?
var iterationsOverride: Int?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--list":
        for benchmark in benchmarks { print(benchmark.name) }
        exit(0)
    case "--only":
        guard let name = arguments.popFirst() else { fail("--only needs a benchmark name (see --list)") }
        only = name
    case "--iterations":
        guard let text = arguments.popFirst(), let n = Int(text), n > 0 else {
            fail("--iterations needs a positive integer")
        }
        iterationsOverride = n
    default:
        fail("unknown argument \(argument); usage: encore-microbench [--list] [--only NAME] [--iterations N]")
    }
}

let selected = benchmarks.filter { only == nil || $0.name == only }
if selected.isEmpty { fail("no benchmark named \(only ?? "")") }

func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

for benchmark in selected {
    let operation: (Int) -> Int
    do {
        operation = try benchmark.makeOperation()
    } catch {
        fail("\(benchmark.name): fixture failed: \(error)")
    }
    let iterations = iterationsOverride ?? benchmark.defaultIterations
    let mallocsBefore = mallocCounter?()
    let start = nowNanos()
    let checksum = measure(operation, iterations: iterations)
    let elapsed = nowNanos() - start
    let mallocsAfter = mallocCounter?()
    var mallocs = "null"
    if let before = mallocsBefore, let after = mallocsAfter { mallocs = String(after - before) }
    let nsPerOp = Double(elapsed) / Double(iterations)
    print(
        #"{"name": "\#(benchmark.name)", "iterations": \#(iterations), "mallocs": \#(mallocs), "#
            + #""ns_per_op": \#((nsPerOp * 10).rounded() / 10), "checksum": \#(checksum)}"#
    )
}
