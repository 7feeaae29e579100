import ArgumentParser
import EncoreStore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `encore store ...`: feature-store tools.
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Feature-store tools.",
        subcommands: [BenchLoad.self, Inspect.self])

    /// `encore store bench-load PATH [--json]`: load a customer file, report time and memory.
    struct BenchLoad: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench-load",
            abstract: "Load a customer file (CSV or JSONL) and print its size, load time and RSS.")

        @Argument(help: "Customer file (.csv or .jsonl; otherwise sniffed from the first byte).")
        var path: String

        @Flag(help: "Print one JSON line: customers, features, load_seconds, rss_bytes, peak_rss_bytes.")
        var json = false

        @Option(help: "Loader threads (default: one per core, at most 4).")
        var threads: Int?

        func run() throws {
            let start = monotonicSeconds()
            let store = try CustomerStore.load(contentsOf: path, threads: threads)
            let seconds = monotonicSeconds() - start
            let memory = ProcessMemory.read()
            if json {
                print(
                    "{\"customers\":\(store.count),\"features\":\(store.featureCount),"
                        + "\"segments\":\(store.segmentNames.count),\"load_seconds\":\(rounded(seconds)),"
                        + "\"rss_bytes\":\(memory.rssBytes),\"peak_rss_bytes\":\(memory.peakRSSBytes)}")
            } else {
                print("customers:      \(store.count)")
                print("features:       \(store.featureCount)")
                print("segments:       \(store.segmentNames.count)")
                print("load seconds:   \(rounded(seconds))")
                print("rss:            \(mebibytes(memory.rssBytes))")
                print("peak rss:       \(mebibytes(memory.peakRSSBytes))")
                print("store bytes:    \(mebibytes(store.memoryBytes))")
            }
            withExtendedLifetime(store) {}
        }
    }

    /// `encore store inspect PATH --customer ID`: print one customer's record.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a customer file and print one customer's segments and features.")

        @Argument(help: "Customer file (.csv or .jsonl).")
        var path: String

        @Option(help: "The customer id to print.")
        var customer: String

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() throws {
            let store = try CustomerStore.load(contentsOf: path)
            let index = store.lookup(customer)
            let known = index >= 0
            let features = known ? store.features(at: index) : store.defaultFeatures
            let segments = known ? store.segmentNames(in: store.segments(at: index)) : []
            if json {
                let fields = zip(store.featureNames, features).map { "\(quoted($0)):\($1)" }.joined(separator: ",")
                print(
                    "{\"customer_id\":\(quoted(customer)),\"known\":\(known),\"segments\":["
                        + segments.map(quoted).joined(separator: ",") + "],\"features\":{\(fields)}}")
                return
            }
            if known {
                print("customer \(customer): index \(index) of \(store.count)")
            } else {
                print("customer \(customer): not found (cold start: per-feature means of \(store.count) customers)")
            }
            print("segments: \(segments.isEmpty ? "(none)" : segments.joined(separator: ", "))")
            let width = store.featureNames.map(\.count).max() ?? 0
            for (name, value) in zip(store.featureNames, features) {
                print("  \(name)\(String(repeating: " ", count: width - name.count))  \(value)")
            }
        }
    }
}

/// Resident and peak resident memory of this process, from /proc/self/status.
private struct ProcessMemory {
    var rssBytes = 0
    var peakRSSBytes = 0

    static func read() -> ProcessMemory {
        var memory = ProcessMemory()
        guard let f = fopen("/proc/self/status", "r") else { return memory }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 256)
        while fgets(&buffer, Int32(buffer.count), f) != nil {
            let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
            if line.hasPrefix("VmRSS:") { memory.rssBytes = kib * 1024 }
            if line.hasPrefix("VmHWM:") { memory.peakRSSBytes = kib * 1024 }
        }
        return memory
    }
}

private func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

private func rounded(_ seconds: Double) -> Double { (seconds * 1000).rounded() / 1000 }

private func mebibytes(_ bytes: Int) -> String { "\(bytes / (1 << 20)) MiB (\(bytes) bytes)" }

private func quoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where u.value < 0x20: out += "\\u00" + (u.value < 16 ? "0" : "") + String(u.value, radix: 16)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}
