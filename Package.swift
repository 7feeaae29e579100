// swift-tools-version:6.1
// Encore: a next-best-offer decisioning engine served over gRPC (libnghttp2 + OpenSSL).
// The package-benchmark suite lives in its own package under Benchmarks/ so a plain `swift build`
// never pulls package-benchmark in. Its workloads (EncoreBenchWorkloads) and the small
// `encore-microbench` runner that CI's quick gate uses (scripts/bench-quick.sh) live here: they
// add no dependency and reuse the modules a normal build compiles anyway.
//
// Fuzzing (Fuzz/README.md): the fuzz target bodies live in the library EncoreFuzzTargets, which
// `swift test` uses to replay Fuzz/Corpus and Fuzz/Regressions. The libFuzzer executable
// `encore-fuzz` (a thin `@_cdecl("LLVMFuzzerTestOneInput")` wrapper; libFuzzer supplies `main`) is
// declared only when ENCORE_FUZZ_BUILD is set, as scripts/fuzz.sh does with its own build path
// and `--sanitize=fuzzer --sanitize=address`, so a plain `swift build` never builds it.
import Foundation
import PackageDescription

// The reactor-thread modules skip Swift's dynamic exclusivity checks in release builds: their
// classes (connections, sessions, the per-reactor decide context) are touched only from their own
// reactor thread, and the checks (swift_beginAccess, AccessSet::insert and the thread-local
// lookup behind them) were ~15% of the whole server's instructions per Health/Check call and ~14%
// per Decide (scripts/bench-quick.sh --server; docs/benchmarking.md). Debug builds, and so every
// test, keep them on.
let reactorThreadSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let package = Package(
    name: "Encore",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "encore", targets: ["encore"]),
        .library(name: "EncoreTransport", targets: ["EncoreTransport"]),
        .library(name: "EncoreClient", targets: ["EncoreClient"]),
        .library(name: "EncoreServer", targets: ["EncoreServer"]),
        .library(name: "EncoreEngine", targets: ["EncoreEngine"]),
        .library(name: "EncoreModel", targets: ["EncoreModel"]),
        .library(name: "EncoreStore", targets: ["EncoreStore"]),
        .library(name: "EncoreProtocol", targets: ["EncoreProtocol"]),
        .library(name: "EncoreBenchWorkloads", targets: ["EncoreBenchWorkloads"]),
        .executable(name: "encore-microbench", targets: ["encore-microbench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", exact: "0.2.0"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        // The admin plane's HTTP/1.1 server (`/metrics` for Prometheus, `/status`): cold path only.
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
    ],
    targets: [
        // C libraries, each fenced behind one header of static inline shims.
        .systemLibrary(
            name: "CNghttp2",
            path: "Sources/CNghttp2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            path: "Sources/COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // Linux syscalls Glibc's module lacks (epoll, eventfd, accept4, the thread's nice value).
        .target(name: "CEncoreLinux"),
        // Definitions every module may use without odd dependencies: the request limits the
        // decoder, the engine and their error messages share; `Published`, `StableHash`,
        // `SplitMix64`, `ByteHash`, `MonotonicClock` and `ThreadPriority`. No third-party
        // dependency (CEncoreLinux is imported `internal`, for the thread priority only).
        .target(name: "EncoreSupport", dependencies: ["CEncoreLinux"]),
        // The operational log (`Log`, `EncoreLogHandler`) over swift-log: its own small target so
        // the modules that never log (protocol, model, store, engine, demo) do not link swift-log
        // through EncoreSupport.
        .target(
            name: "EncoreLogging",
            dependencies: ["EncoreSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "EncoreProtocol",
            dependencies: ["EncoreSupport", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .target(name: "EncoreCrypto", dependencies: ["COpenSSL"]),
        // Per-thread counters and histograms of the hot path, and the exposition writer.
        .target(name: "EncoreMetrics"),
        .target(name: "EncoreModel", dependencies: ["EncoreSupport", "EncoreCrypto"]),
        .target(name: "EncoreStore", dependencies: ["EncoreSupport", "EncoreCrypto"]),
        .target(
            name: "EncoreEngine",
            dependencies: ["EncoreSupport", "EncoreModel", "EncoreStore", "EncoreCrypto", "EncoreMetrics"]),
        // The embedded demo's catalog, customers, snapshot and settings: served by `encore serve`,
        // asked for by `encore bench` (so the load generator does not depend on the server).
        .target(name: "EncoreDemo", dependencies: ["EncoreSupport", "EncoreModel", "EncoreStore"]),
        .target(
            name: "EncoreTransport",
            dependencies: [
                "CNghttp2", "COpenSSL", "CEncoreLinux", "EncoreSupport", "EncoreLogging", "EncoreMetrics",
            ],
            swiftSettings: reactorThreadSettings
        ),
        .target(
            name: "EncoreServer",
            dependencies: [
                "EncoreTransport", "EncoreProtocol", "EncoreEngine", "EncoreModel", "EncoreStore", "EncoreMetrics",
                "EncoreSupport", "EncoreLogging", "EncoreDemo", "EncoreCrypto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: reactorThreadSettings
        ),
        // The one gRPC client core (h2c and TLS, on one nghttp2 client session type): the tools'
        // blocking calls and `encore bench`'s non-blocking connections. It uses the transport's
        // socket, TLS and block allocator; the server never imports it.
        .target(
            name: "EncoreClient",
            dependencies: ["EncoreTransport", "EncoreSupport", "CNghttp2", "CEncoreLinux"]
        ),
        // `encore bench`: the load generator (open and closed loop, HDR histograms, sweep plot).
        .target(
            name: "EncoreBench",
            dependencies: [
                "EncoreClient", "EncoreTransport", "EncoreProtocol", "EncoreDemo", "EncoreModel", "EncoreSupport",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "encore",
            dependencies: [
                "EncoreServer",
                "EncoreTransport",
                "EncoreClient",
                "EncoreBench",
                "EncoreDemo",
                "EncoreCrypto",
                "EncoreModel",
                "EncoreProtocol",
                "EncoreStore",
                "EncoreLogging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // The micro-benchmark workloads, shared by Benchmarks/ (package-benchmark) and
        // encore-microbench (instructions under callgrind, mallocs with scripts/malloc-count).
        .target(
            name: "EncoreBenchWorkloads",
            dependencies: [
                "EncoreEngine", "EncoreModel", "EncoreStore", "EncoreProtocol", "EncoreTransport", "EncoreSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(name: "encore-microbench", dependencies: ["EncoreBenchWorkloads", "EncoreStore"]),
        // What each fuzz target checks (Fuzz/README.md): one function per target, shared by the
        // libFuzzer wrapper and the corpus replay test.
        .target(
            name: "EncoreFuzzTargets",
            dependencies: [
                "EncoreProtocol", "EncoreTransport", "EncoreModel", "EncoreStore", "EncoreServer", "EncoreCrypto",
                "EncoreDemo", "EncoreSupport", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .testTarget(
            name: "EncoreFuzzTargetsTests",
            dependencies: ["EncoreFuzzTargets", "EncoreProtocol", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .testTarget(
            name: "EncoreTransportTests",
            dependencies: ["EncoreTransport", "EncoreSupport"]
        ),
        .testTarget(
            name: "EncoreLoggingTests",
            dependencies: ["EncoreLogging", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "EncoreClientTests",
            dependencies: ["EncoreClient", "EncoreTransport"]
        ),
        .testTarget(
            name: "EncoreBenchTests",
            dependencies: [
                "EncoreBench", "EncoreClient", "EncoreTransport", "EncoreServer", "EncoreProtocol",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .testTarget(
            name: "EncoreProtocolTests",
            dependencies: [
                "EncoreProtocol", "EncoreFuzzTargets", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .testTarget(name: "EncoreCryptoTests", dependencies: ["EncoreCrypto"]),
        .testTarget(name: "EncoreMetricsTests", dependencies: ["EncoreMetrics"]),
        .testTarget(name: "EncoreModelTests", dependencies: ["EncoreModel", "EncoreCrypto", "EncoreSupport"]),
        .testTarget(name: "EncoreStoreTests", dependencies: ["EncoreStore"]),
        // EncoreServer only for the log formatter, so a test can follow a decision into its JSON line.
        .testTarget(
            name: "EncoreEngineTests",
            dependencies: ["EncoreEngine", "EncoreModel", "EncoreStore", "EncoreServer", "EncoreSupport", "EncoreCrypto"]),
        .testTarget(
            name: "EncoreServerTests",
            dependencies: [
                "EncoreServer", "EncoreTransport", "EncoreProtocol", "EncoreEngine", "EncoreCrypto", "EncoreDemo",
                "EncoreModel", "EncoreStore", "EncoreSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

if ProcessInfo.processInfo.environment["ENCORE_FUZZ_BUILD"] != nil {
    package.targets.append(
        .executableTarget(name: "encore-fuzz", dependencies: ["EncoreFuzzTargets"], path: "Fuzz/Driver")
    )
}
