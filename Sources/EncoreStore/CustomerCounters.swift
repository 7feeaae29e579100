import EncoreSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Per-customer outcome counters for decline suppression and frequency caps: a fixed-size,
/// open-addressed table of 256-byte entries, one per customer. An entry holds, per offer the
/// customer has seen, the minute of its last DECLINED and the minutes of its most recent SHOWN
/// outcomes (as many as the offer's cap), packed into 116 half-words: an offer with a cap of 3
/// and no decline takes 5, so about 23 offers per customer fit.
///
/// Memory is bounded: `capacity × 256` bytes, allocated once. When the 8 entries a customer's
/// key may live in are all taken, the least recently touched one is evicted (counted in
/// `evictions`). When one customer's records outgrow the entry, the oldest SHOWN minutes go
/// first, then the oldest declines (an operator sees this in `overflows`).
///
/// Times are minutes since 2020-01-01T00:00:00Z. A decline keeps 32 bits of minutes; a show keeps
/// 16 (minutes modulo 65,536, about 45 days), which is exact because shows older than a day are
/// dropped at every write and ignored at every read once the entry is a day old.
///
/// Concurrency: writers (`record`, `restore`) are ReportOutcome calls on any reactor thread and
/// serialize on a mutex; readers (`read`) are Decide calls and take no lock: each entry is a
/// seqlock (an odd sequence word means a write is in progress; a reader retries when the
/// sequence moved under it).
public final class CustomerCounters: @unchecked Sendable {
    /// Outcome kinds counted.
    public enum Kind: Sendable {
        case shown
        case declined
    }

    /// One offer's history for one customer (absolute minutes since the epoch).
    public struct History: Sendable, Equatable {
        public var offer: Int32
        /// -1: never declined (or the decline has expired).
        public var declinedAtMinute: Int64
        /// Most recent last.
        public var showMinutes: [Int64]

        public init(offer: Int32, declinedAtMinute: Int64 = -1, showMinutes: [Int64] = []) {
            self.offer = offer
            self.declinedAtMinute = declinedAtMinute
            self.showMinutes = showMinutes
        }
    }

    /// Words per entry: key, sequence, last touch (seconds since the epoch), then the payload.
    static let entryWords = 32
    /// Payload words copied by a reader.
    public static let payloadWords = 29
    static let payloadHalves = payloadWords * 4
    static let window = 8
    /// Offers past this catalog index are not counted (16-bit offer field).
    public static let maxOfferIndex: Int32 = 65534
    /// The most shows an entry keeps per offer (the count has four bits in the encoding).
    static let maxShowsKept = 15
    /// Counter times are relative to this instant (2020-01-01T00:00:00Z), in Unix seconds.
    public static let epochSeconds: Int64 = 1_577_836_800

    /// Entries in the table (a power of two).
    public let capacity: Int
    private let mask: Int
    /// Written only under `writer`; read by any thread.
    private let words: UnsafeMutablePointer<Atomic<UInt64>>
    private let writer = Mutex<Int>(0)
    /// Customers evicted to make room so far.
    public let evictions = Atomic<Int>(0)
    /// Times a customer's records did not fit their entry and old ones were dropped.
    public let overflows = Atomic<Int>(0)

    /// A table for about `maxCustomers` customers (rounded up to a power of two, at least 1024).
    public init(maxCustomers: Int) {
        var n = 1024
        while n < maxCustomers { n <<= 1 }
        capacity = n
        mask = n - 1
        // Zeroed pages from calloc (an all-zero Atomic<UInt64> is a valid 0): the table costs
        // resident memory only where customers land, and nothing at start-up.
        let count = n * CustomerCounters.entryWords
        guard let raw = calloc(count, MemoryLayout<Atomic<UInt64>>.stride) else {
            fatalError("cannot allocate \(count * 8) bytes of rule counters")
        }
        words = raw.bindMemory(to: Atomic<UInt64>.self, capacity: count)
    }

    deinit {
        free(words)
    }

    /// Bytes held by the table.
    public var memoryBytes: Int { capacity * CustomerCounters.entryWords * 8 }

    /// The counter key of a customer id (never 0: 0 marks an empty entry).
    @inline(__always)
    public static func key(_ customerID: UnsafeRawBufferPointer) -> UInt64 {
        let h = StableHash.hash(customerID, seed: 0x656E_636F_7265_6374)
        return h == 0 ? 1 : h
    }

    public static func key(_ customerID: String) -> UInt64 {
        var id = customerID
        return id.withUTF8 { key(UnsafeRawBufferPointer($0)) }
    }

    /// Minutes since the counters' epoch of a Unix time in seconds (never negative).
    @inline(__always)
    public static func minute(_ unixSeconds: Int64) -> Int64 { max(0, unixSeconds - epochSeconds) / 60 }

    // MARK: - Decide path

    /// Copies the customer's payload (`payloadWords` words) into `out` and returns the entry's
    /// last-touch time in Unix seconds, or nil when the customer has no entry. Lock-free and
    /// allocation-free.
    public func read(customer key: UInt64, into out: UnsafeMutablePointer<UInt64>) -> Int64? {
        let start = Int(truncatingIfNeeded: key) & mask
        for probe in 0..<CustomerCounters.window {
            let base = ((start + probe) & mask) * CustomerCounters.entryWords
            let k = words[base].load(ordering: .acquiring)
            if k == 0 { return nil }
            guard k == key else { continue }
            // Seqlock read; a writer holds an entry for well under a microsecond.
            for _ in 0..<10_000 {
                let s1 = words[base + 1].load(ordering: .acquiring)
                if s1 & 1 != 0 { continue }
                for i in 0..<CustomerCounters.payloadWords {
                    out[i] = words[base + 3 + i].load(ordering: .relaxed)
                }
                let touch = words[base + 2].load(ordering: .relaxed)
                let stillKey = words[base].load(ordering: .relaxed) == key
                atomicMemoryFence(ordering: .acquiring)
                if words[base + 1].load(ordering: .relaxed) == s1 {
                    return stillKey ? Int64(touch) + CustomerCounters.epochSeconds : nil
                }
            }
            return nil
        }
        return nil
    }

    /// Summarizes a payload read by `read` at `nowSeconds`, without allocating: for each offer
    /// with a record, its index, the minute of its decline (-1: none) and how many of its shows
    /// fall in the last 24 hours. Returns the number of offers written (at most
    /// `payloadHalves / 2`).
    public static func summarize(
        payload: UnsafePointer<UInt64>, touchSeconds: Int64, nowSeconds: Int64, offers: UnsafeMutablePointer<Int32>,
        declinedAtMinute: UnsafeMutablePointer<Int64>, recentShows: UnsafeMutablePointer<Int32>
    ) -> Int {
        let nowMinute = minute(nowSeconds)
        let touchMinute = minute(touchSeconds)
        let sinceTouch = nowMinute - touchMinute
        var n = 0
        UnsafeRawPointer(payload).withMemoryRebound(to: UInt16.self, capacity: payloadHalves) { h in
            var p = 0
            while p + 1 < payloadHalves, h[p] != 0 {
                let offer = Int32(h[p]) - 1
                let meta = h[p + 1]
                let showCount = Int(meta & 0xF)
                p += 2
                var declined: Int64 = -1
                if meta & 0x8000 != 0 {
                    guard p + 1 < payloadHalves else { break }
                    declined = Int64(h[p]) | Int64(h[p + 1]) << 16
                    p += 2
                }
                var recent: Int32 = 0
                for s in 0..<showCount where p + s < payloadHalves {
                    let age = Int64((UInt16(truncatingIfNeeded: touchMinute) &- h[p + s])) + sinceTouch
                    if age < 1440 { recent += 1 }
                }
                p += showCount
                offers[n] = offer
                declinedAtMinute[n] = declined
                recentShows[n] = recent
                n += 1
            }
        }
        return n
    }

    // MARK: - Outcome path

    /// Records one outcome for a customer at `now` (Unix seconds). `suppressionMinutes(offer)`
    /// says how long a decline of that offer matters and `cap(offer)` how many recent shows of
    /// it are kept; expired records are dropped on the way.
    public func record(
        customer key: UInt64, offer: Int32, kind: Kind, atSeconds now: Int64,
        suppressionMinutes: (Int32) -> Int64, cap: (Int32) -> Int
    ) {
        guard offer >= 0, offer <= CustomerCounters.maxOfferIndex else { return }
        let nowMinute = CustomerCounters.minute(now)
        writer.withLock { _ in
            let (base, existing) = slot(for: key)
            var histories: [History] = []
            var touch = now
            if existing {
                let previous = Int64(words[base + 2].load(ordering: .relaxed)) + CustomerCounters.epochSeconds
                histories = decode(base: base, touchSeconds: previous)
                // Outcomes may arrive out of order: the touch time never moves back, so every
                // stored show minute stays at or before it.
                touch = max(now, previous)
            }
            // Expire.
            for i in histories.indices {
                histories[i].showMinutes.removeAll { nowMinute - $0 >= 1440 }
                let d = histories[i].declinedAtMinute
                if d >= 0 && nowMinute - d >= suppressionMinutes(histories[i].offer) {
                    histories[i].declinedAtMinute = -1
                }
            }
            // Apply.
            var i = histories.firstIndex { $0.offer == offer } ?? -1
            if i < 0 {
                histories.append(History(offer: offer))
                i = histories.count - 1
            }
            switch kind {
            case .declined: histories[i].declinedAtMinute = nowMinute
            case .shown:
                histories[i].showMinutes.append(nowMinute)
                let keep = min(max(cap(offer), 1), CustomerCounters.maxShowsKept)
                if histories[i].showMinutes.count > keep {
                    histories[i].showMinutes.removeFirst(histories[i].showMinutes.count - keep)
                }
            }
            histories.removeAll { $0.declinedAtMinute < 0 && $0.showMinutes.isEmpty }
            write(base: base, key: key, touchSeconds: touch, histories: &histories)
        }
    }

    /// Puts back a customer's histories (state load at start).
    public func restore(key: UInt64, touchSeconds: Int64, histories: [History]) {
        writer.withLock { _ in
            let (base, _) = slot(for: key)
            // A state file holds what `entries()` gave, but a damaged one (with a valid checksum)
            // can hold anything: offers out of range are dropped, and only the most recent
            // shows an entry can encode are kept.
            var histories = histories.filter { $0.offer >= 0 && $0.offer <= CustomerCounters.maxOfferIndex }
            for i in histories.indices where histories[i].showMinutes.count > CustomerCounters.maxShowsKept {
                histories[i].showMinutes.sort()
                histories[i].showMinutes.removeFirst(histories[i].showMinutes.count - CustomerCounters.maxShowsKept)
            }
            write(base: base, key: key, touchSeconds: touchSeconds, histories: &histories)
        }
    }

    /// Every non-empty entry with its histories. Takes the writer lock, so it is a consistent
    /// copy (used to save state).
    public func entries() -> [(key: UInt64, touchSeconds: Int64, histories: [History])] {
        writer.withLock { _ in
            var out: [(key: UInt64, touchSeconds: Int64, histories: [History])] = []
            for slot in 0..<capacity {
                let base = slot * CustomerCounters.entryWords
                let k = words[base].load(ordering: .relaxed)
                guard k != 0 else { continue }
                let touch = Int64(words[base + 2].load(ordering: .relaxed)) + CustomerCounters.epochSeconds
                out.append((k, touch, decode(base: base, touchSeconds: touch)))
            }
            return out
        }
    }

    /// Customers with an entry (walks the table; for tools and tests).
    public var count: Int {
        var n = 0
        for slot in 0..<capacity where words[slot * CustomerCounters.entryWords].load(ordering: .relaxed) != 0 {
            n += 1
        }
        return n
    }

    // MARK: - Entries

    /// The entry for `key` (found: `existing`; else an empty or evicted one); called under
    /// `writer`. An evicted entry is overwritten whole by the next `write`.
    private func slot(for key: UInt64) -> (base: Int, existing: Bool) {
        let start = Int(truncatingIfNeeded: key) & mask
        var oldest = -1
        var oldestTouch = UInt64.max
        for probe in 0..<CustomerCounters.window {
            let base = ((start + probe) & mask) * CustomerCounters.entryWords
            let k = words[base].load(ordering: .relaxed)
            if k == key || k == 0 { return (base, k == key) }
            let touch = words[base + 2].load(ordering: .relaxed)
            if touch < oldestTouch {
                oldestTouch = touch
                oldest = base
            }
        }
        evictions.add(1, ordering: .relaxed)
        return (oldest, false)
    }

    /// The histories stored at `base` (absolute minutes); called under `writer`.
    private func decode(base: Int, touchSeconds: Int64) -> [History] {
        var payload = [UInt64](repeating: 0, count: CustomerCounters.payloadWords)
        for i in 0..<CustomerCounters.payloadWords { payload[i] = words[base + 3 + i].load(ordering: .relaxed) }
        return CustomerCounters.decode(payload: payload, touchSeconds: touchSeconds)
    }

    /// Decodes a payload into histories with absolute minutes.
    static func decode(payload: [UInt64], touchSeconds: Int64) -> [History] {
        let touchMinute = minute(touchSeconds)
        var halves: [UInt16] = []
        for w in payload { for k in 0..<4 { halves.append(UInt16(truncatingIfNeeded: w >> (16 * UInt64(k)))) } }
        var out: [History] = []
        var p = 0
        while p + 1 < halves.count, halves[p] != 0 {
            var h = History(offer: Int32(halves[p]) - 1)
            let meta = halves[p + 1]
            p += 2
            if meta & 0x8000 != 0, p + 1 < halves.count {
                h.declinedAtMinute = Int64(halves[p]) | Int64(halves[p + 1]) << 16
                p += 2
            }
            for _ in 0..<Int(meta & 0xF) where p < halves.count {
                h.showMinutes.append(touchMinute - Int64(UInt16(truncatingIfNeeded: touchMinute) &- halves[p]))
                p += 1
            }
            out.append(h)
        }
        return out
    }

    /// Encodes histories into half-words, dropping the oldest shows and then the oldest
    /// declines until they fit.
    private func encode(_ histories: inout [History]) -> [UInt16] {
        func size(_ h: History) -> Int { 2 + (h.declinedAtMinute >= 0 ? 2 : 0) + h.showMinutes.count }
        var total = histories.reduce(0) { $0 + size($1) }
        if total > CustomerCounters.payloadHalves { overflows.add(1, ordering: .relaxed) }
        while total > CustomerCounters.payloadHalves {
            if let i = histories.indices.filter({ !histories[$0].showMinutes.isEmpty })
                .min(by: { histories[$0].showMinutes[0] < histories[$1].showMinutes[0] })
            {
                histories[i].showMinutes.removeFirst()
                total -= 1
            } else if let i = histories.indices.filter({ histories[$0].declinedAtMinute >= 0 })
                .min(by: { histories[$0].declinedAtMinute < histories[$1].declinedAtMinute })
            {
                histories[i].declinedAtMinute = -1
                total -= 2
            }
            let before = histories.count
            histories.removeAll { $0.declinedAtMinute < 0 && $0.showMinutes.isEmpty }
            total -= 2 * (before - histories.count)
        }
        var halves: [UInt16] = []
        for h in histories {
            halves.append(UInt16(h.offer + 1))
            halves.append(UInt16(h.showMinutes.count) | (h.declinedAtMinute >= 0 ? 0x8000 : 0))
            if h.declinedAtMinute >= 0 {
                halves.append(UInt16(truncatingIfNeeded: h.declinedAtMinute))
                halves.append(UInt16(truncatingIfNeeded: h.declinedAtMinute >> 16))
            }
            for m in h.showMinutes { halves.append(UInt16(truncatingIfNeeded: m)) }
        }
        return halves
    }

    /// Writes an entry as one seqlock section; called under `writer`.
    private func write(base: Int, key: UInt64, touchSeconds: Int64, histories: inout [History]) {
        let halves = encode(&histories)
        var payload = [UInt64](repeating: 0, count: CustomerCounters.payloadWords)
        for (i, h) in halves.enumerated() { payload[i / 4] |= UInt64(h) << (16 * UInt64(i % 4)) }
        let seq = words[base + 1].load(ordering: .relaxed)
        words[base + 1].store(seq &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
        words[base].store(key, ordering: .relaxed)
        words[base + 2].store(
            UInt64(max(touchSeconds, CustomerCounters.epochSeconds) - CustomerCounters.epochSeconds), ordering: .relaxed
        )
        for i in 0..<CustomerCounters.payloadWords { words[base + 3 + i].store(payload[i], ordering: .relaxed) }
        words[base + 1].store(seq &+ 2, ordering: .releasing)
    }
}
