// swift-tools-version:6.1
// Encore's micro-benchmarks (package-benchmark), kept in their own package so a plain
// `swift build` of the root package never pulls package-benchmark in.
//
//   cd Benchmarks && swift package benchmark                      # run everything
//   ../scripts/bench-micro.sh [--update|--check]                   # thresholds (mallocs, instructions)
import PackageDescription

let benchmarkNames = ["DecisionCore", "Codec", "SnapshotLoad", "Framing"]

let package = Package(
    name: "EncoreBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Encore", path: ".."),
        // Only the MallocInterposer trait: it counts allocations without jemalloc, and leaves the
        // Swift 6.3 runtime interposer (and its package) out of the graph.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Shared configuration (quick and thresholds modes); re-exports the workloads, which live
        // in the root package (EncoreBenchWorkloads) so scripts/bench-quick.sh measures the same code.
        .target(
            name: "BenchSupport",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "EncoreBenchWorkloads", package: "Encore"),
            ],
            path: "BenchSupport"
        )
    ]
        + benchmarkNames.map { name in
            .executableTarget(
                name: name,
                dependencies: [
                    "BenchSupport",
                    .product(name: "Benchmark", package: "benchmark"),
                    .product(name: "EncoreBenchWorkloads", package: "Encore"),
                ],
                path: name,
                plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
            )
        },
    swiftLanguageModes: [.v6]
)
