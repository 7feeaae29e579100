import Synchronization

/// What each offer has spent of its daily budget today (UTC days): SHOWN and ACCEPTED outcomes
/// counted per offer index. Lock-free: ReportOutcome threads add with compare-and-swap, Decide
/// threads read. Each word packs the UTC day number (high 24 bits) and the count (low 40), so a
/// new day starts from zero without anyone resetting it.
public final class OfferBudgets: @unchecked Sendable {
    /// Offers tracked (catalog indices at or past it are never limited by a budget).
    public let capacity: Int
    /// Two words per offer: shows, acceptances.
    private let words: UnsafeMutablePointer<Atomic<UInt64>>

    public init(capacity: Int = 1 << 16) {
        self.capacity = capacity
        words = .allocate(capacity: capacity * 2)
        for i in 0..<(capacity * 2) { (words + i).initialize(to: Atomic(0)) }
    }

    deinit {
        words.deinitialize(count: capacity * 2)
        words.deallocate()
    }

    /// The UTC day number of a Unix time (24 bits).
    @inline(__always)
    public static func day(_ seconds: Int64) -> UInt64 { UInt64(max(0, seconds / 86400)) & 0xFF_FFFF }

    @inline(__always)
    private func index(_ offer: Int32, _ unit: OfferRules.Budget.Unit) -> Int {
        Int(offer) * 2 + (unit == .shows ? 0 : 1)
    }

    /// The number spent on `offer` today (0 for an untracked offer).
    @inline(__always)
    public func spent(offer: Int32, unit: OfferRules.Budget.Unit, atSeconds now: Int64) -> Int64 {
        spent(offer: offer, unit: unit, day: OfferBudgets.day(now))
    }

    /// The number spent on `offer` on UTC day `day` (`day(_:)` of a time; the decision path
    /// computes it once).
    @inline(__always)
    public func spent(offer: Int32, unit: OfferRules.Budget.Unit, day: UInt64) -> Int64 {
        guard offer >= 0, Int(offer) < capacity else { return 0 }
        let w = words[index(offer, unit)].load(ordering: .relaxed)
        return w >> 40 == day ? Int64(w & 0xFF_FFFF_FFFF) : 0
    }

    /// Adds `amount` to today's count of `offer`.
    public func add(offer: Int32, unit: OfferRules.Budget.Unit, atSeconds now: Int64, amount: Int64 = 1) {
        guard offer >= 0, Int(offer) < capacity, amount > 0 else { return }
        let today = OfferBudgets.day(now)
        let i = index(offer, unit)
        var old = words[i].load(ordering: .relaxed)
        while true {
            let count = old >> 40 == today ? old & 0xFF_FFFF_FFFF : 0
            let new = (today << 40) | min(count + UInt64(amount), 0xFF_FFFF_FFFF)
            let (exchanged, current) = words[i].compareExchange(
                expected: old, desired: new, ordering: .relaxed)
            if exchanged { return }
            old = current
        }
    }

    /// The packed (day, count) words of an offer, for saving state.
    public func rawWords(offer: Int32) -> (shows: UInt64, acceptances: UInt64) {
        guard offer >= 0, Int(offer) < capacity else { return (0, 0) }
        return (
            words[index(offer, .shows)].load(ordering: .relaxed),
            words[index(offer, .acceptances)].load(ordering: .relaxed)
        )
    }

    /// Puts back words saved by `rawWords` (state load at start).
    public func restore(offer: Int32, shows: UInt64, acceptances: UInt64) {
        guard offer >= 0, Int(offer) < capacity else { return }
        words[index(offer, .shows)].store(shows, ordering: .relaxed)
        words[index(offer, .acceptances)].store(acceptances, ordering: .relaxed)
    }

    /// How many may be spent by `now` under even pacing: the day's `limit` spread over the UTC
    /// day, plus a burst of 1/48 of it (half an hour's share, at least 1), never above `limit`.
    @inline(__always)
    public static func pacedAllowance(limit: Int64, atSeconds now: Int64) -> Int64 {
        pacedAllowance(limit: limit, secondsIntoDay: ((now % 86400) + 86400) % 86400)
    }

    @inline(__always)
    public static func pacedAllowance(limit: Int64, secondsIntoDay: Int64) -> Int64 {
        guard limit > 0 else { return 0 }
        let burst = max(1, limit / 48)
        let paced = limit.multipliedReportingOverflow(by: secondsIntoDay)
        return min(
            limit,
            (paced.overflow ? Int64(Double(limit) * Double(secondsIntoDay) / 86400) : paced.partialValue / 86400)
                + burst)
    }
}
