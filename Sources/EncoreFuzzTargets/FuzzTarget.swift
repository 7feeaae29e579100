/// The fuzz targets of Encore (Fuzz/README.md, docs/fuzzing.md): each runs one of the server's
/// parsers on arbitrary bytes and checks what it did. The libFuzzer driver (`encore-fuzz`, built
/// by scripts/fuzz.sh) traps when a check returns a problem; the corpus replay test
/// (EncoreFuzzTargetsTests) runs the very same checks on Fuzz/Corpus and Fuzz/Regressions and
/// fails on a problem. A crash inside a parser (a trap, an out-of-bounds access under ASan) is a
/// failure in both.
public struct FuzzTarget: Sendable {
    /// The name scripts/fuzz.sh and the corpus directories use, e.g. `decide-request`.
    public let name: String
    /// One line on what the target feeds and checks.
    public let summary: String
    private let make: @Sendable () -> Check

    /// A target's state (reused decoders, scratch files) and its check: nil when every property
    /// held, else a description of the one that did not.
    public typealias Check = (UnsafeRawBufferPointer) -> String?

    init(_ name: String, _ summary: String, _ make: @escaping @Sendable () -> Check) {
        self.name = name
        self.summary = summary
        self.make = make
    }

    /// A fresh instance of the check, with its own state (so checks may run on several threads,
    /// one instance each).
    public func makeCheck() -> Check { make() }

    /// Every target, in the order scripts/fuzz.sh lists them.
    public static let all: [FuzzTarget] = [
        FuzzTarget(
            "decide-request",
            "DecideRequestDecoder (reused) vs SwiftProtobuf: same verdict, same values",
            ProtocolTargets.decideRequest),
        FuzzTarget(
            "outcome-request", "OutcomeRequestDecoder vs SwiftProtobuf: same verdict, same values",
            ProtocolTargets.outcomeRequest),
        FuzzTarget(
            "grpc-frames",
            "GRPCFrameDecoder fed in chunks vs a one-shot reference parse: same messages, same failure",
            TransportTargets.grpcFrames),
        FuzzTarget(
            "http2-stream",
            "client bytes into HTTP2Session + GRPCRequestHead + GRPCStreamStateMachine: callbacks consistent, output well-framed",
            TransportTargets.http2Stream),
        FuzzTarget(
            "snapshot", "SnapshotFile.read on the raw bytes and on them with a valid trailer; accepted ones round-trip",
            FileTargets.snapshot),
        FuzzTarget(
            "catalog-jsonl",
            "OfferCatalog(contentsOf:) and upserting(jsonl:): no trap, accepted catalogs index every offer",
            FileTargets.catalog),
        FuzzTarget(
            "customers-csv", "CustomerStore.load of a .csv file: no trap, every loaded id looks up to its row",
            FileTargets.customersCSV),
        FuzzTarget(
            "customers-jsonl", "CustomerStore.load of a .jsonl file: no trap, every loaded id looks up to its row",
            FileTargets.customersJSONL),
        FuzzTarget(
            "config", "ServeSettings.Layer.file(json:source:) and resolve: no trap, only SettingError thrown",
            FileTargets.config),
        FuzzTarget(
            "rule-state", "RuleStateFile.load and decisionKey(at:) on the bytes with a valid checksum: no trap",
            FileTargets.ruleState),
    ]

    /// The target called `name`, if any.
    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}
