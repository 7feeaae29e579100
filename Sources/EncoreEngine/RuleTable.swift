import EncoreModel
import EncoreStore

/// The catalog's business rules compiled for the decision path: one `OfferRule` per catalog
/// index with strings replaced by 64-bit hashes and segment names by a bit mask, defaults from
/// `RuleSettings` folded in. Built with each `ActiveModel` (off the reactor threads).
struct RuleTable: Sendable {
    struct OfferRule: Sendable {
        /// Any static (order, customer, time) restriction.
        var hasStatic = false
        var minTotalCents = Int64.min
        var maxTotalCents = Int64.max
        /// Ranges into `hashes`.
        var required = 0..<0
        var excluded = 0..<0
        var countries = 0..<0
        var channels = 0..<0
        var devices = 0..<0
        var giftOnly = false
        /// Segment bits the customer needs one of (`requiresSegment`); 0 with the flag set means
        /// no segment known to the store matches, so the offer is never eligible.
        var requiresSegment = false
        var segmentMask: UInt64 = 0
        var startSeconds = Int64.min
        var endSeconds = Int64.max
        var priority: Int32 = 0
        /// SHOWN per rolling day (0: no cap).
        var cap: Int32 = 0
        /// Seconds hidden after DECLINED (0: none).
        var suppressionSeconds: Int64 = 0
        var budgetUnit: OfferRules.Budget.Unit? = nil
        var budgetLimit: Int64 = 0
        /// -infinity: no threshold.
        var minExpectedValue = -Double.infinity
    }

    let offers: [OfferRule]
    let hashes: [UInt64]
    /// Summary flags so a decision skips what no offer uses.
    let anyStatic: Bool
    let anyCounters: Bool
    let anyBudget: Bool
    let anyPriority: Bool
    let anyThreshold: Bool
    /// The longest suppression window (seconds) of any offer.
    let longestSuppressionSeconds: Int64

    init(catalog: OfferCatalog, segmentNames: [String], settings: RuleSettings) {
        var hashes: [UInt64] = []
        func pool(_ values: [String]) -> Range<Int> {
            let start = hashes.count
            hashes += values.map { RuleTable.hash($0) }
            return start..<hashes.count
        }
        var segmentBit: [String: Int] = [:]
        for (i, name) in segmentNames.enumerated() where i < 64 { segmentBit[name] = i }
        offers = catalog.offers.map { offer in
            let r = offer.rules
            var o = OfferRule()
            o.hasStatic = r.hasStaticRestrictions
            o.minTotalCents = r.minTotalCents ?? .min
            o.maxTotalCents = r.maxTotalCents ?? .max
            o.required = pool(r.requiredCategories)
            o.excluded = pool(r.excludedCategories)
            o.countries = pool(r.countries)
            o.channels = pool(r.channels)
            o.devices = pool(r.devices)
            o.giftOnly = r.giftOnly
            o.requiresSegment = !r.segments.isEmpty
            for name in r.segments { if let bit = segmentBit[name] { o.segmentMask |= 1 << UInt64(bit) } }
            o.startSeconds = r.startSeconds ?? .min
            o.endSeconds = r.endSeconds ?? .max
            o.priority = r.priority
            o.cap = Int32(r.frequencyCapPerDay ?? settings.frequencyCapPerDay)
            o.suppressionSeconds = Int64((r.declineSuppressionDays ?? settings.declineSuppressionDays) * 86400)
            if let budget = settings.budgets[offer.id] ?? r.budget {
                o.budgetUnit = budget.unit
                o.budgetLimit = budget.dailyLimit
            }
            o.minExpectedValue = r.minExpectedValue ?? settings.minExpectedValue ?? -.infinity
            return o
        }
        self.hashes = hashes
        anyStatic = offers.contains { $0.hasStatic }
        anyCounters = offers.contains { $0.cap > 0 || $0.suppressionSeconds > 0 }
        anyBudget = offers.contains { $0.budgetUnit != nil }
        anyPriority = Set(offers.map(\.priority)).count > 1
        anyThreshold = offers.contains { $0.minExpectedValue > -.infinity }
        longestSuppressionSeconds = offers.map(\.suppressionSeconds).max() ?? 0
    }

    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 { StableHash.hash(bytes, seed: 0x72_756C_6573) }

    static func hash(_ text: String) -> UInt64 {
        var text = text
        return text.withUTF8 { hash(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    func contains(_ range: Range<Int>, _ value: UInt64) -> Bool {
        for i in range where hashes[i] == value { return true }
        return false
    }

    /// Minutes a decline of `offer` keeps it hidden (0 for an unknown offer).
    func suppressionMinutes(_ offer: Int32) -> Int64 {
        offer >= 0 && Int(offer) < offers.count ? (offers[Int(offer)].suppressionSeconds + 59) / 60 : 0
    }

    /// The frequency cap of `offer` (0: none).
    func cap(_ offer: Int32) -> Int { offer >= 0 && Int(offer) < offers.count ? Int(offers[Int(offer)].cap) : 0 }
}

/// The request's field hashes for static rules, computed once per decision when needed.
struct RequestHashes {
    var country: UInt64 = 0
    var channel: UInt64 = 0
    var device: UInt64 = 0
    var categories: UnsafeMutableBufferPointer<UInt64>
    var categoryCount = 0
}
