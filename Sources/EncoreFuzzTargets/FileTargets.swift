import EncoreCrypto
import EncoreModel
import EncoreServer
import EncoreStore
import EncoreSupport
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The file readers: snapshots, the offer catalog, customer files, the config file and the
/// rule-state file. Checksummed formats get a valid checksum added by the target, or almost
/// every input would stop at the checksum check; each also reads the raw bytes unchanged.
enum FileTargets {
    /// `snapshot`: the input is the snapshot body (header, section table, sections); the target
    /// appends a valid unsigned trailer (magic, SHA-256 of the body, zero flags, key and
    /// signature) and reads it, and reads the raw input too. Every error must be a
    /// `ModelError` (typed throws guarantee it); a snapshot that is accepted must be written
    /// back by `SnapshotFile.write` to bytes that read again, and rewriting those gives the
    /// same bytes.
    static let snapshot: @Sendable () -> FuzzTarget.Check = {
        { input in
            let body = Array(input)
            _ = try? SnapshotFile.read(body)
            var file = body
            file += SnapshotFile.trailerMagic
            file += SHA256.digest(body)
            file += [UInt8](repeating: 0, count: SnapshotFile.trailerBytes - 8 - 32)
            guard let (snapshot, _) = try? SnapshotFile.read(file) else { return nil }
            let written: [UInt8]
            do { written = try SnapshotFile.write(snapshot) } catch {
                return "an accepted snapshot cannot be written back: \(error)"
            }
            let again: ModelSnapshot
            do { (again, _) = try SnapshotFile.read(written) } catch {
                return "an accepted snapshot, written back, is refused: \(error)"
            }
            guard let rewritten = try? SnapshotFile.write(again), rewritten == written else {
                return "an accepted snapshot does not round-trip: writing it twice gives different bytes"
            }
            return nil
        }
    }

    /// `catalog-jsonl`: the input as a catalog file (`OfferCatalog(contentsOf:)`, the bytes as
    /// they are) and as an upsert stream's text onto a one-offer catalog. An accepted catalog
    /// must give every offer its position as index and find every offer by its id.
    static let catalog: @Sendable () -> FuzzTarget.Check = {
        let scratch = ScratchFile(suffix: ".jsonl")
        let base = try! OfferCatalog(jsonl: #"{"offer_id":"base"}"#)
        return { input in
            scratch.write(input)
            if let catalog = try? OfferCatalog(contentsOf: scratch.path), let problem = indexProblem(catalog) {
                return "catalog file: \(problem)"
            }
            let text = String(decoding: input, as: UTF8.self)
            if let upserted = try? base.upserting(jsonl: text) {
                if let problem = indexProblem(upserted) { return "upsert: \(problem)" }
                guard upserted.index(of: "base") == 0 else { return "upsert moved the existing offer" }
            }
            return nil
        }
    }

    private static func indexProblem(_ catalog: OfferCatalog) -> String? {
        for (i, offer) in catalog.offers.enumerated() {
            if offer.index != Int32(i) { return "offer \(i) has index \(offer.index)" }
            if catalog.index(of: offer.id) != Int32(i) { return "offer \(i) (\(offer.id)) is not found by its id" }
        }
        for surface in Surface.allCases {
            for index in catalog.indices(on: surface) where !catalog.offers[Int(index)].surfaces.contains(surface) {
                return "offer \(index) is indexed on a surface it is not on"
            }
        }
        _ = catalog.perSurfaceLimitProblem(maxOffersPerSurface: 2)
        return nil
    }

    static let customersCSV: @Sendable () -> FuzzTarget.Check = { customers(suffix: ".csv") }
    static let customersJSONL: @Sendable () -> FuzzTarget.Check = { customers(suffix: ".jsonl") }

    /// `customers-csv` / `customers-jsonl`: the input as a customer file (`CustomerStore.load`,
    /// one thread). A loaded store must find every customer id at its own row and hold no more
    /// rows than the file has lines, with finite defaults.
    private static func customers(suffix: String) -> FuzzTarget.Check {
        let scratch = ScratchFile(suffix: suffix)
        return { input in
            scratch.write(input)
            guard let store = try? CustomerStore.load(contentsOf: scratch.path, threads: 1, progress: nil) else {
                return nil
            }
            let lines = input.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } + 1
            if store.count > lines { return "\(store.count) customers from \(lines) lines" }
            for row in 0..<Int32(store.count) {
                let id = store.customerID(at: row)
                if store.lookup(id) != row { return "customer \(row) (\(id)) is not found by its id" }
                if store.features(at: row).count != store.featureCount { return "row \(row) has the wrong width" }
            }
            return nil
        }
    }

    /// `config`: the input as a config file's text (`ServeSettings.Layer.file(json:source:)`; a
    /// file that is not UTF-8 is refused before parsing, as `Layer.file(_:)` does). No trap;
    /// errors are thrown as `SettingError`, and a file that parses resolves with the rules between
    /// settings (which may refuse it, also only by throwing).
    static let config: @Sendable () -> FuzzTarget.Check = {
        { input in
            guard let text = String(validating: input, as: UTF8.self) else { return nil }
            if let layer = try? ServeSettings.Layer.file(json: text, source: "fuzz.json") {
                _ = try? ServeSettings.resolve(file: layer, flags: ServeSettings.Layer.flags())
            }
            return nil
        }
    }

    /// `rule-state`: the input is a rule-state file without its magic and checksum; the target
    /// adds both (a valid checksum, or nothing would pass it) and runs `RuleStateFile.load`
    /// (offers "o0"... "o3" known, the rest dropped) and `decisionKey(at:)`; the raw input is
    /// loaded too. No trap; a load that succeeds restores no more histories than the file has.
    static let ruleState: @Sendable () -> FuzzTarget.Check = {
        let scratch = ScratchFile(suffix: ".state")
        let known = ["o0": Int32(0), "o1": 1, "o2": 2, "o3": 3]
        return { input in
            func load() -> RuleStateFile.Summary? {
                let counters = CustomerCounters(maxCustomers: 64)
                let budgets = OfferBudgets(capacity: 8)
                return try? RuleStateFile.load(from: scratch.path, counters: counters, budgets: budgets) {
                    known[$0] ?? -1
                }
            }
            scratch.write(input)
            _ = load()
            var file = Array("ENCSTATE".utf8) + Array(input)
            let hash = file.withUnsafeBytes { StableHash.hash($0) }
            withUnsafeBytes(of: hash.littleEndian) { file += $0 }
            file.withUnsafeBytes { scratch.write($0) }
            _ = try? RuleStateFile.decisionKey(at: scratch.path)
            if let summary = load(), summary.histories + summary.droppedHistories > input.count / 13 {
                return "\(summary.histories) histories from a \(input.count)-byte file"
            }
            return nil
        }
    }
}

/// A file the target rewrites with each input (in /dev/shm when there is one), removed when the
/// target's state goes away.
final class ScratchFile {
    let path: String

    init(suffix: String) {
        let directory = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
        let unique = "\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        path = (directory as NSString).appendingPathComponent("encore-fuzz-\(unique)\(suffix)")
    }

    deinit { unlink(path) }

    func write(_ bytes: UnsafeRawBufferPointer) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot create the scratch file \(path)")
        var at = 0
        while at < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + at, bytes.count - at)
            precondition(n > 0, "cannot write the scratch file \(path)")
            at += n
        }
        close(fd)
    }
}
