// The libFuzzer entry point of every Encore fuzz target, built by scripts/fuzz.sh with
// `--sanitize=fuzzer --sanitize=address` (SwiftPM then compiles it as a library and links
// libFuzzer's `main`). The target is chosen by the ENCORE_FUZZ_TARGET environment variable; its
// check lives in EncoreFuzzTargets, which the corpus replay test runs too. A check that reports a
// problem traps, so libFuzzer saves the input.
import EncoreFuzzTargets

#if canImport(Glibc)
    import Glibc
#endif

private func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

nonisolated(unsafe) private var check: FuzzTarget.Check? = nil

private func makeCheck() -> FuzzTarget.Check {
    let names = FuzzTarget.all.map(\.name).joined(separator: ", ")
    guard let raw = getenv("ENCORE_FUZZ_TARGET") else {
        printError("encore-fuzz: set ENCORE_FUZZ_TARGET to one of: \(names)")
        exit(2)
    }
    let name = String(cString: raw)
    guard let target = FuzzTarget.named(name) else {
        printError("encore-fuzz: unknown target '\(name)' (targets: \(names))")
        exit(2)
    }
    return target.makeCheck()
}

/// With ENCORE_FUZZ_WRITE_SEEDS=DIR, writes every target's seeds (`FuzzSeeds`) to DIR/<target>/
/// and exits (`scripts/fuzz.sh --make-seeds`).
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    guard let raw = getenv("ENCORE_FUZZ_WRITE_SEEDS") else { return 0 }
    let root = String(cString: raw)
    for target in FuzzTarget.all {
        let directory = "\(root)/\(target.name)"
        mkdir(directory, 0o755)
        for seed in FuzzSeeds.seeds(for: target.name) {
            let path = "\(directory)/\(seed.name)"
            guard let file = fopen(path, "wb") else {
                printError("encore-fuzz: cannot write \(path)")
                exit(1)
            }
            _ = seed.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
    }
    exit(0)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    if check == nil { check = makeCheck() }
    if let problem = check!(UnsafeRawBufferPointer(start: count == 0 ? nil : start, count: count)) {
        fatalError("fuzz check failed: \(problem)")
    }
    return 0
}
