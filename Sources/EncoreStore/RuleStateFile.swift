import EncoreModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The rule counters saved across restarts (docs/rules.md): every customer's recent SHOWN and
/// DECLINED events and every offer's budget spend today. Offers are named by id in the file, so
/// a catalog that changed order between runs maps back correctly; events of offers no longer in
/// the catalog are dropped on load.
///
/// Layout (little-endian): "ENCSTATE", u32 version 1, u32 offer count, then each offer id (u16
/// length + UTF-8) with its two budget words (u64 shows, u64 acceptances); u64 customer count,
/// then per customer u64 key, u64 last touch, u8 event count, events as u64 whose offer field
/// is an index into the file's offer table; finally a u64 `StableHash` of everything before it.
/// Written to a temporary file, synced and renamed, so a crash never leaves half a file.
public enum RuleStateFile {
    static let magic = Array("ENCSTATE".utf8)

    /// What a load restored.
    public struct Summary: Sendable, Equatable {
        public var customers: Int
        public var events: Int
        public var droppedEvents: Int
    }

    /// Saves `counters` and `budgets` with the catalog's offer ids.
    /// - Throws: `StoreError(.io)` naming the file.
    public static func save(counters: CustomerCounters, budgets: OfferBudgets, offerIDs: [String], to path: String)
        throws
    {
        var out: [UInt8] = []
        out += magic
        put32(&out, 1)
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
            put64(&out, entry.touch)
            out.append(UInt8(entry.events.count))
            for e in entry.events { put64(&out, e) }
        }
        let hash = out.withUnsafeBytes { StableHash.hash($0) }
        put64(&out, hash)

        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError(.io, "cannot create: \(reason())", file: temporary) }
        var written = 0
        let ok = out.withUnsafeBytes { raw -> Bool in
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
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

    /// Loads a saved state into `counters` and `budgets`, mapping offer ids through
    /// `indexOf` (-1: the offer is gone; its events and budget are dropped).
    /// - Throws: `StoreError` naming the file: `.io` if it cannot be read, `.malformed` if it is
    ///   truncated, has a bad magic or version, or its checksum does not match.
    public static func load(
        from path: String, counters: CustomerCounters, budgets: OfferBudgets, indexOf: (String) -> Int32
    ) throws -> Summary {
        let file = try MappedFile(path: path)
        let bytes = file.bytes
        func malformed(_ why: String) -> StoreError {
            StoreError(
                .malformed, "\(why) (not an Encore rule-state file, or damaged; move it aside to start empty)",
                file: path)
        }
        guard bytes.count >= 24, Array(bytes[0..<8]) == magic else { throw malformed("bad magic") }
        let body = UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 8)])
        let stored = bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self).littleEndian
        guard StableHash.hash(body) == stored else { throw malformed("checksum mismatch") }
        var r = Reader(bytes: body, position: 8)
        guard let version = r.u32(), version == 1 else { throw malformed("unsupported version") }
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
        var summary = Summary(customers: 0, events: 0, droppedEvents: 0)
        for _ in 0..<customerCount {
            guard let key = r.u64(), let touch = r.u64(), let n = r.u8() else { throw malformed("truncated entry") }
            var events: [UInt64] = []
            for _ in 0..<n {
                guard let e = r.u64() else { throw malformed("truncated entry") }
                let fileOffer = Int(CustomerCounters.offer(of: e))
                guard fileOffer >= 0, fileOffer < map.count, map[fileOffer] >= 0 else {
                    summary.droppedEvents += 1
                    continue
                }
                // Re-point the event at the current catalog index.
                events.append((UInt64(UInt32(bitPattern: map[fileOffer]) &+ 1) << 40) | (e & 0xFF_FFFF_FFFF))
            }
            guard !events.isEmpty else { continue }
            counters.restore(key: key, touch: touch, events: events)
            summary.customers += 1
            summary.events += events.count
        }
        guard r.position == body.count else { throw malformed("trailing bytes") }
        return summary
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
