import EncoreModel
import Synchronization

/// Per-customer outcome counters for decline suppression and frequency caps: a fixed-size,
/// open-addressed table of 128-byte entries, one per customer, each holding that customer's
/// most recent SHOWN and DECLINED events (offer index, kind, time).
///
/// Memory is bounded: `capacity × 128` bytes, allocated once. When the 8 entries a customer's
/// key may live in are all taken, the least recently touched one is evicted (counted in
/// `evictions`). Within an entry, at most `eventSlots` live events are kept; when more arrive,
/// expired events go first, then the oldest SHOWN, then the oldest DECLINED.
///
/// Concurrency: writers (`record`, `load`) are ReportOutcome calls on any reactor thread and
/// serialize on a mutex; readers (`events`) are Decide calls and take no lock: each entry is a
/// seqlock (an odd sequence word means a write is in progress; a reader retries when the
/// sequence moved under it).
public final class CustomerCounters: @unchecked Sendable {
    /// Event kinds kept.
    public enum Kind: UInt64, Sendable {
        case shown = 1
        case declined = 2
    }

    /// Words per entry: key, sequence, last touch, then events.
    static let entryWords = 16
    /// Events kept per customer.
    public static let eventSlots = 13
    static let window = 8
    /// Event and touch times are seconds since this instant (2020-01-01T00:00:00Z), in 32 bits.
    public static let epochSeconds: Int64 = 1_577_836_800

    /// Entries in the table (a power of two).
    public let capacity: Int
    private let mask: Int
    /// Written only under `writer`; read by any thread.
    private let words: UnsafeMutablePointer<Atomic<UInt64>>
    private let writer = Mutex<Int>(0)
    /// Customers evicted to make room so far.
    public let evictions = Atomic<Int>(0)

    /// A table for about `maxCustomers` customers (rounded up to a power of two, at least 1024).
    public init(maxCustomers: Int) {
        var n = 1024
        while n < maxCustomers { n <<= 1 }
        capacity = n
        mask = n - 1
        let count = n * CustomerCounters.entryWords
        words = .allocate(capacity: count)
        for i in 0..<count { (words + i).initialize(to: Atomic(0)) }
    }

    deinit {
        words.deinitialize(count: capacity * CustomerCounters.entryWords)
        words.deallocate()
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

    /// Packs an event: offer index + 1 in bits 40..63, kind in 32..39, seconds since the epoch.
    @inline(__always)
    public static func event(offer: Int32, kind: Kind, atSeconds seconds: Int64) -> UInt64 {
        let t = UInt64(clamping: max(0, seconds - epochSeconds)) & 0xFFFF_FFFF
        return (UInt64(UInt32(bitPattern: offer) &+ 1) << 40) | (kind.rawValue << 32) | t
    }

    /// The offer index of a packed event.
    @inline(__always)
    public static func offer(of event: UInt64) -> Int32 { Int32(truncatingIfNeeded: (event >> 40) &- 1) }
    @inline(__always)
    public static func isDecline(_ event: UInt64) -> Bool { (event >> 32) & 0xFF == Kind.declined.rawValue }
    /// Unix seconds of a packed event.
    @inline(__always)
    public static func seconds(of event: UInt64) -> Int64 { Int64(event & 0xFFFF_FFFF) + epochSeconds }

    /// Copies the customer's events into `out` (room for `eventSlots`) and returns how many.
    /// Lock-free and allocation-free (the Decide path).
    public func events(customer key: UInt64, into out: UnsafeMutablePointer<UInt64>) -> Int {
        let start = Int(truncatingIfNeeded: key) & mask
        for probe in 0..<CustomerCounters.window {
            let base = ((start + probe) & mask) * CustomerCounters.entryWords
            let k = words[base].load(ordering: .acquiring)
            if k == 0 { return 0 }
            guard k == key else { continue }
            // Seqlock read; a writer holds an entry for a few dozen nanoseconds.
            for _ in 0..<1000 {
                let s1 = words[base + 1].load(ordering: .acquiring)
                if s1 & 1 != 0 { continue }
                var n = 0
                for i in 0..<CustomerCounters.eventSlots {
                    let e = words[base + 3 + i].load(ordering: .relaxed)
                    if e != 0 {
                        out[n] = e
                        n += 1
                    }
                }
                let stillKey = words[base].load(ordering: .relaxed) == key
                atomicMemoryFence(ordering: .acquiring)
                if words[base + 1].load(ordering: .relaxed) == s1 { return stillKey ? n : 0 }
            }
            return 0
        }
        return 0
    }

    /// Records one event for a customer. `isLive(event, nowSeconds)` says whether an older event
    /// still matters (a SHOWN within a day, a DECLINED within the offer's suppression window);
    /// dead events are dropped first when the entry is full.
    public func record(
        customer key: UInt64, offer: Int32, kind: Kind, atSeconds now: Int64,
        isLive: (UInt64, Int64) -> Bool
    ) {
        let new = CustomerCounters.event(offer: offer, kind: kind, atSeconds: now)
        writer.withLock { _ in
            let (base, existing) = slot(for: key)
            var kept: [UInt64] = []
            kept.reserveCapacity(CustomerCounters.eventSlots + 1)
            for i in 0..<CustomerCounters.eventSlots where existing {
                let e = words[base + 3 + i].load(ordering: .relaxed)
                if e != 0 && isLive(e, now) { kept.append(e) }
            }
            kept.append(new)
            while kept.count > CustomerCounters.eventSlots {
                // Oldest SHOWN first, else the oldest DECLINED.
                let victim =
                    kept.indices.filter { !CustomerCounters.isDecline(kept[$0]) }
                    .min { kept[$0] & 0xFFFF_FFFF < kept[$1] & 0xFFFF_FFFF }
                    ?? kept.indices.min { kept[$0] & 0xFFFF_FFFF < kept[$1] & 0xFFFF_FFFF }!
                kept.remove(at: victim)
            }
            write(base: base, key: key, touch: now, events: kept)
        }
    }

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

    /// Writes an entry as one seqlock section; called under `writer`.
    private func write(base: Int, key: UInt64, touch now: Int64, events: [UInt64]) {
        let seq = words[base + 1].load(ordering: .relaxed)
        words[base + 1].store(seq &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
        words[base].store(key, ordering: .relaxed)
        words[base + 2].store(UInt64(clamping: max(0, now - CustomerCounters.epochSeconds)), ordering: .relaxed)
        for i in 0..<CustomerCounters.eventSlots {
            words[base + 3 + i].store(i < events.count ? events[i] : 0, ordering: .relaxed)
        }
        words[base + 1].store(seq &+ 2, ordering: .releasing)
    }

    /// Every non-empty entry: (key, last touch seconds since the epoch, events). Takes the
    /// writer lock, so it is a consistent copy (used to save state).
    public func entries() -> [(key: UInt64, touch: UInt64, events: [UInt64])] {
        writer.withLock { _ in
            var out: [(key: UInt64, touch: UInt64, events: [UInt64])] = []
            for slot in 0..<capacity {
                let base = slot * CustomerCounters.entryWords
                let k = words[base].load(ordering: .relaxed)
                guard k != 0 else { continue }
                var events: [UInt64] = []
                for i in 0..<CustomerCounters.eventSlots {
                    let e = words[base + 3 + i].load(ordering: .relaxed)
                    if e != 0 { events.append(e) }
                }
                out.append((k, words[base + 2].load(ordering: .relaxed), events))
            }
            return out
        }
    }

    /// Puts back an entry saved by `entries()` (state load at start).
    public func restore(key: UInt64, touch: UInt64, events: [UInt64]) {
        writer.withLock { _ in
            let touchSeconds = Int64(touch) + CustomerCounters.epochSeconds
            let (base, _) = slot(for: key)
            write(base: base, key: key, touch: touchSeconds, events: Array(events.prefix(CustomerCounters.eventSlots)))
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
}
