import EncoreCrypto
import EncoreSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The rule counters saved across restarts (docs/rules.md): every customer's recent SHOWN and
/// DECLINED outcomes and every offer's budget spend today. Offers are named by id in the file,
/// so a catalog that changed order between runs maps back correctly; the history of an offer no
/// longer in the catalog is dropped on load.
///
/// It also keeps the decision-id MAC key the server generated (docs/security.md), so ids issued
/// before a restart still verify; the file is therefore created readable by its owner only.
///
/// Layout (little-endian): "ENCSTATE", u32 version 2, u8 1 when a decision key follows (0: none)
/// and the key's 16 bytes (zero without one), u32 offer count, then each offer id (u16
/// length + UTF-8) with its two budget words (u64 shows, u64 acceptances); u64 customer count,
/// then per customer u64 key, i64 last touch (Unix seconds), u8 history count, and per history
/// u32 offer (an index into the file's offer table), i64 declined-at minute (-1: none), u8 show
/// count, i64 show minutes; finally a u64 `StableHash` of everything before it.
/// Version 3 adds, right after the key, a u64: the last `--durable-outcomes` write-ahead
/// sequence number whose outcome the counters include (0: none), so a restart replays only the
/// later ones. Versions 1 (no key fields) and 2 (no sequence) still load.
/// Written to a temporary file, synced and renamed, so a crash never leaves half a file.
public enum RuleStateFile {
    static let magic = Array("ENCSTATE".utf8)

    /// What a load restored.
    public struct Summary: Sendable, Equatable {
        public var customers: Int
        /// Per-offer histories restored / dropped (their offer left the catalog).
        public var histories: Int
        public var droppedHistories: Int
        /// The write-ahead sequence number the counters include (0: none, or an older version).
        public var journalSequence: UInt64 = 0
    }

    /// Saves `counters` and `budgets` with the catalog's offer ids, and `decisionKey` if given.
    /// - Throws: `StoreError(.io)` naming the file.
    public static func save(
        counters: CustomerCounters, budgets: OfferBudgets, offerIDs: [String], decisionKey: SipHash24.Key? = nil,
        journalSequence: UInt64 = 0, to path: String
    ) throws {
        try write(
            encode(
                counters: counters, budgets: budgets, offerIDs: offerIDs, decisionKey: decisionKey,
                journalSequence: journalSequence), to: path)
    }

    /// The file's bytes for the counters and budgets as they are now (a copy: the caller may
    /// hold writers off only this long, and write the bytes afterwards with `write`).
    public static func encode(
        counters: CustomerCounters, budgets: OfferBudgets, offerIDs: [String], decisionKey: SipHash24.Key? = nil,
        journalSequence: UInt64 = 0
    ) -> [UInt8] {
        var out: [UInt8] = []
        out += magic
        put32(&out, 3)
        out.append(decisionKey == nil ? 0 : 1)
        out += decisionKey?.bytes ?? [UInt8](repeating: 0, count: 16)
        put64(&out, journalSequence)
        put32(&out, UInt32(offerIDs.count))
        for (i, id) in offerIDs.enumerated() {
            let bytes = Array(id.utf8)
            put16(&out, UInt16(bytes.count))
            out += bytes
            let words = budgets.rawWords(offer: Int32(i))
            put64(&out, words.shows)
            put64(&out, words.acceptances)
        }
        let entries = counters.entries()
        put64(&out, UInt64(entries.count))
        for entry in entries {
            put64(&out, entry.key)
            put64(&out, UInt64(bitPattern: entry.touchSeconds))
            out.append(UInt8(entry.histories.count))
            for h in entry.histories {
                put32(&out, UInt32(bitPattern: h.offer))
                put64(&out, UInt64(bitPattern: h.declinedAtMinute))
                out.append(UInt8(h.showMinutes.count))
                for m in h.showMinutes { put64(&out, UInt64(bitPattern: m)) }
            }
        }
        let hash = out.withUnsafeBytes { StableHash.hash($0) }
        put64(&out, hash)
        return out
    }

    /// Writes `out` (from `encode`) to a temporary file, syncs it and renames it over `path`.
    /// - Throws: `StoreError(.io)` naming the file.
    public static func write(_ out: [UInt8], to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(.io, "cannot create: \(reason())", file: temporary) }
        // A temporary file left by an older version may have been created group-readable.
        guard fchmod(fd, 0o600) == 0 else {
            let failure = reason()
            close(fd)
            throw StoreError(.io, "cannot restrict permissions: \(failure)", file: temporary)
        }
        var written = 0
        let ok = out.withUnsafeBytes { raw -> Bool in
            while written < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += n
            }
            return fsync(fd) == 0
        }
        let failure = ok ? nil : reason()
        close(fd)
        guard ok else {
            unlink(temporary)
            throw StoreError(.io, "cannot write: \(failure ?? "")", file: temporary)
        }
        guard rename(temporary, path) == 0 else {
            throw StoreError(.io, "cannot rename \(temporary) into place: \(reason())", file: path)
        }
    }

    /// The decision key a saved state keeps (nil: none, or a version 1 file).
    /// - Throws: `StoreError` naming the file, as `load` does.
    public static func decisionKey(at path: String) throws -> SipHash24.Key? {
        let file = try MappedFile(path: path)
        defer { withExtendedLifetime(file) {} }
        var r = try reader(file.bytes, path: path)
        return try header(&r, path: path).key
    }

    /// Loads a saved state into `counters` and `budgets`, mapping offer ids through
    /// `indexOf` (-1: the offer is gone; its events and budget are dropped).
    /// - Throws: `StoreError` naming the file: `.io` if it cannot be read, `.malformed` if it is
    ///   truncated, has a bad magic or version, or its checksum does not match.
    public static func load(
        from path: String, counters: CustomerCounters, budgets: OfferBudgets, indexOf: (String) -> Int32
    ) throws -> Summary {
        let file = try MappedFile(path: path)
        defer { withExtendedLifetime(file) {} }
        var r = try reader(file.bytes, path: path)
        let body = r.bytes
        func malformed(_ why: String) -> StoreError { RuleStateFile.malformed(why, path: path) }
        let head = try header(&r, path: path)
        guard let offerCount = r.u32() else { throw malformed("truncated") }
        var map: [Int32] = []
        for _ in 0..<offerCount {
            guard let length = r.u16(), let id = r.string(Int(length)), let shows = r.u64(), let accepts = r.u64()
            else { throw malformed("truncated offer table") }
            let index = indexOf(id)
            map.append(index)
            if index >= 0 { budgets.restore(offer: index, shows: shows, acceptances: accepts) }
        }
        guard let customerCount = r.u64() else { throw malformed("truncated") }
        var summary = Summary(customers: 0, histories: 0, droppedHistories: 0, journalSequence: head.sequence)
        for _ in 0..<customerCount {
            guard let key = r.u64(), let touch = r.u64(), let n = r.u8() else { throw malformed("truncated entry") }
            var histories: [CustomerCounters.History] = []
            for _ in 0..<n {
                guard let fileOffer = r.u32(), let declined = r.u64(), let shows = r.u8() else {
                    throw malformed("truncated entry")
                }
                var minutes: [Int64] = []
                for _ in 0..<shows {
                    guard let m = r.u64() else { throw malformed("truncated entry") }
                    minutes.append(Int64(bitPattern: m))
                }
                guard Int(fileOffer) < map.count, map[Int(fileOffer)] >= 0 else {
                    summary.droppedHistories += 1
                    continue
                }
                histories.append(
                    .init(
                        offer: map[Int(fileOffer)], declinedAtMinute: Int64(bitPattern: declined), showMinutes: minutes)
                )
            }
            guard !histories.isEmpty else { continue }
            counters.restore(key: key, touchSeconds: Int64(bitPattern: touch), histories: histories)
            summary.customers += 1
            summary.histories += histories.count
        }
        guard r.position == body.count else { throw malformed("trailing bytes") }
        return summary
    }

    static func malformed(_ why: String, path: String) -> StoreError {
        StoreError(
            .malformed, "\(why) (not an Encore rule-state file, or damaged; move it aside to start empty)", file: path)
    }

    /// A reader over the checksummed body of `bytes`, after the magic.
    private static func reader(_ bytes: UnsafeRawBufferPointer, path: String) throws -> Reader {
        guard bytes.count >= 24, Array(bytes[0..<8]) == magic else { throw malformed("bad magic", path: path) }
        let body = UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 8)])
        let stored = bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self).littleEndian
        guard StableHash.hash(body) == stored else { throw malformed("checksum mismatch", path: path) }
        return Reader(bytes: body, position: 8)
    }

    /// Reads the version, (version 2 and later) the decision key fields and (version 3) the
    /// write-ahead sequence.
    private static func header(_ r: inout Reader, path: String) throws -> (key: SipHash24.Key?, sequence: UInt64) {
        guard let version = r.u32(), (1...3).contains(version) else {
            throw malformed("unsupported version", path: path)
        }
        guard version >= 2 else { return (nil, 0) }
        guard let present = r.u8(), present <= 1, let bytes = r.take(16) else {
            throw malformed("truncated header", path: path)
        }
        let key = present == 1 ? SipHash24.Key(bytes: Array(bytes)) : nil
        guard version >= 3 else { return (key, 0) }
        guard let sequence = r.u64() else { throw malformed("truncated header", path: path) }
        return (key, sequence)
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position: Int
        mutating func take(_ n: Int) -> UnsafeRawBufferPointer? {
            guard n >= 0, position + n <= bytes.count else { return nil }
            defer { position += n }
            return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
        }
        mutating func u8() -> UInt8? { take(1).map { $0[0] } }
        mutating func u16() -> UInt16? { take(2).map { UInt16($0[0]) | UInt16($0[1]) << 8 } }
        mutating func u32() -> UInt32? { take(4).map { $0.loadUnaligned(as: UInt32.self).littleEndian } }
        mutating func u64() -> UInt64? { take(8).map { $0.loadUnaligned(as: UInt64.self).littleEndian } }
        mutating func string(_ n: Int) -> String? { take(n).map { String(decoding: $0, as: UTF8.self) } }
    }

    private static func put16(_ out: inout [UInt8], _ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    private static func put32(_ out: inout [UInt8], _ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    private static func put64(_ out: inout [UInt8], _ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }

    private static func reason() -> String { String(cString: strerror(errno)) }
}
