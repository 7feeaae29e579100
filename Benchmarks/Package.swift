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
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: [
        // Shared configuration (quick and thresholds modes) and fixture helpers.
        .target(
            name: "BenchSupport",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "EncoreServer", package: "Encore"),
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
                    // EncoreServer's product carries EncoreEngine, EncoreModel, EncoreStore and
                    // EncoreProtocol (the root package has no library product for them).
                    .product(name: "EncoreServer", package: "Encore"),
                    .product(name: "EncoreTransport", package: "Encore"),
                    .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                ],
                path: name,
                plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
            )
        },
    swiftLanguageModes: [.v6]
)
