import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Remembers the idempotency keys (request id and customer) of recent decisions, so that a Decide
/// retried with the same `request_id` within the window is logged once. Its answer needs no
/// memory at all: the decision id and the random draw are derived from the key
/// (`DecisionWorkspace.decide`).
///
/// A fixed table of 64-bit words, each the key's top 40 bits and the minute it was first logged
/// (mod 2^24). A key probes `probe` consecutive words: one holding its bits within the window is a
/// repeat; otherwise it claims an empty, expired or else the oldest word of the window with one
/// compare-and-swap, so of several threads logging the same key at once exactly one wins. Memory is
/// fixed (`entries` x 8 bytes, calloc'd: resident only where keys land); when more keys arrive
/// within a window than the table holds, the oldest are forgotten and a retry of one of those is
/// logged again (still with the same decision id and placements). Any thread; lock-free.
public final class RequestIDTable: @unchecked Sendable {
    /// Words in the table (a power of two).
    public let entries: Int
    /// How long a key counts as a repeat, in minutes.
    public let windowMinutes: UInt64
    /// Keys forgotten to make room before their window ended (most likely, a busy table).
    public let evictions = Atomic<Int>(0)
    /// Repeats recognised (decisions not logged again).
    public let repeats = Atomic<Int>(0)
    private let mask: Int
    private let words: UnsafeMutablePointer<Atomic<UInt64>>
    static let probe = 4
    static let minuteBits: UInt64 = 24
    static let minuteMask: UInt64 = (1 << minuteBits) - 1

    /// A table of at least `entries` words (rounded up to a power of two, at least 1024), for a
    /// window of `windowSeconds` (rounded up to whole minutes, at least 1).
    public init(entries: Int, windowSeconds: Double) {
        var n = 1024
        while n < entries { n <<= 1 }
        self.entries = n
        mask = n - 1
        windowMinutes = UInt64(max(1, (windowSeconds / 60).rounded(.up)))
        // An all-zero Atomic<UInt64> is a valid 0 (an empty word).
        guard let raw = calloc(n, MemoryLayout<Atomic<UInt64>>.stride) else {
            fatalError("cannot allocate \(n * 8) bytes for the request-id table")
        }
        words = raw.bindMemory(to: Atomic<UInt64>.self, capacity: n)
    }

    deinit {
        free(words)
    }

    /// Records `key` as logged at `nowMillis` (Unix ms) unless it was already, within the window.
    /// Returns true when the caller should log the decision (first time, or the key was forgotten).
    @inline(__always)
    public func claim(_ key: UInt64, nowMillis: Int64) -> Bool {
        let minute = UInt64(truncatingIfNeeded: max(0, nowMillis) / 60_000) & Self.minuteMask
        let tag = (key | 1 << 63) & ~Self.minuteMask  // never 0, the empty word
        let mine = tag | minute
        let start = Int(truncatingIfNeeded: key) & mask
        while true {
            var victim = -1
            var victimAge: UInt64 = 0
            var victimWord: UInt64 = 0
            for i in 0..<Self.probe {
                let slot = (start + i) & mask
                let word = words[slot].load(ordering: .acquiring)
                let age = word == 0 ? UInt64.max : (minute &- (word & Self.minuteMask)) & Self.minuteMask
                if word != 0 && word & ~Self.minuteMask == tag && age < windowMinutes {
                    repeats.add(1, ordering: .relaxed)
                    return false
                }
                if victim < 0 || age > victimAge {
                    victim = slot
                    victimAge = age
                    victimWord = word
                }
            }
            if words[victim].compareExchange(expected: victimWord, desired: mine, ordering: .acquiringAndReleasing)
                .exchanged
            {
                if victimWord != 0 && victimAge < windowMinutes { evictions.add(1, ordering: .relaxed) }
                return true
            }
            // Another thread changed the word: look again (it may have claimed this very key).
        }
    }
}
