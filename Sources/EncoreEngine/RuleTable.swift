import EncoreModel
import EncoreStore
import EncoreSupport

/// The catalog's business rules compiled for the decision path: one `OfferRule` per catalog
/// index with strings replaced by 64-bit hashes and segment names by a bit mask, defaults from
/// `RuleSettings` folded in. Built with each `ActiveModel` (off the reactor threads); the
/// decision path reads it through raw pointers (no copy, no bounds check, no reference count).
final class RuleTable: @unchecked Sendable {
    /// The order, customer and clock restrictions of an offer. Offers with the same ones share a
    /// group, so a decision evaluates each distinct group once, not each offer.
    struct StaticRule: Sendable, Hashable {
        var minTotalCents = Int64.min
        var maxTotalCents = Int64.max
        /// Hash lists (sorted) of each field.
        var required: [UInt64] = []
        var excluded: [UInt64] = []
        var countries: [UInt64] = []
        var channels: [UInt64] = []
        var devices: [UInt64] = []
        var giftOnly = false
        /// Segment bits the customer needs one of (`requiresSegment`); 0 with the flag set means
        /// no segment known to the store matches, so the offer is never eligible.
        var requiresSegment = false
        var segmentMask: UInt64 = 0
        var startSeconds = Int64.min
        var endSeconds = Int64.max
    }

    /// A static group flattened for the decision path: ranges into `hashes`.
    struct Group: Sendable {
        var minTotalCents: Int64
        var maxTotalCents: Int64
        var required: Range<Int>
        var excluded: Range<Int>
        var countries: Range<Int>
        var channels: Range<Int>
        var devices: Range<Int>
        var giftOnly: Bool
        var requiresSegment: Bool
        var segmentMask: UInt64
        var startSeconds: Int64
        var endSeconds: Int64
    }

    struct OfferRule: Sendable {
        /// Index into `groups`, -1: no static restriction.
        var group: Int32 = -1
        var priority: Int32 = 0
        /// SHOWN per rolling day (0: no cap).
        var cap: Int32 = 0
        /// Seconds hidden after DECLINED (0: none).
        var suppressionSeconds: Int64 = 0
        /// -1: no budget.
        var budgetLimit: Int64 = -1
        var budgetOnAcceptances = false
        /// -infinity: no threshold.
        var minExpectedValue = -Double.infinity
    }

    /// One rule per catalog index (immutable after init).
    let offers: UnsafeMutableBufferPointer<OfferRule>
    let groups: UnsafeMutableBufferPointer<Group>
    let groupCount: Int
    let hashes: UnsafeMutableBufferPointer<UInt64>
    /// Catalog offers (`offers` may hold one more, unused, slot for an empty catalog).
    let count: Int
    /// Summary flags so a decision skips what no offer uses.
    let anyStatic: Bool
    let anyCounters: Bool
    let anyBudget: Bool
    let anyPriority: Bool
    let anyThreshold: Bool
    /// Which request fields some group compares (so only those are hashed).
    let usesCategories: Bool
    let usesCountry: Bool
    let usesChannel: Bool
    let usesDevice: Bool

    init(catalog: OfferCatalog, segmentNames: [String], settings: RuleSettings) {
        var segmentBit: [String: Int] = [:]
        for (i, name) in segmentNames.enumerated() where i < 64 { segmentBit[name] = i }
        var groupOf: [StaticRule: Int32] = [:]
        var statics: [StaticRule] = []
        let compiled = catalog.offers.map { offer in
            let r = offer.rules
            var o = OfferRule()
            if r.hasStaticRestrictions {
                var g = StaticRule()
                g.minTotalCents = r.minTotalCents ?? .min
                g.maxTotalCents = r.maxTotalCents ?? .max
                g.required = r.requiredCategories.map(RuleTable.hash).sorted()
                g.excluded = r.excludedCategories.map(RuleTable.hash).sorted()
                g.countries = r.countries.map(RuleTable.hash).sorted()
                g.channels = r.channels.map(RuleTable.hash).sorted()
                g.devices = r.devices.map(RuleTable.hash).sorted()
                g.giftOnly = r.giftOnly
                g.requiresSegment = !r.segments.isEmpty
                for name in r.segments { if let bit = segmentBit[name] { g.segmentMask |= 1 << UInt64(bit) } }
                g.startSeconds = r.startSeconds ?? .min
                g.endSeconds = r.endSeconds ?? .max
                if let existing = groupOf[g] {
                    o.group = existing
                } else {
                    o.group = Int32(statics.count)
                    groupOf[g] = o.group
                    statics.append(g)
                }
            }
            o.priority = r.priority
            o.cap = Int32(r.frequencyCapPerDay ?? settings.frequencyCapPerDay)
            o.suppressionSeconds = Int64((r.declineSuppressionDays ?? settings.declineSuppressionDays) * 86400)
            if let budget = settings.budgets[offer.id] ?? r.budget {
                o.budgetOnAcceptances = budget.unit == .acceptances
                o.budgetLimit = budget.dailyLimit
            }
            o.minExpectedValue = r.minExpectedValue ?? settings.minExpectedValue ?? -.infinity
            return o
        }
        var pool: [UInt64] = []
        func put(_ values: [UInt64]) -> Range<Int> {
            let start = pool.count
            pool += values
            return start..<pool.count
        }
        let flat = statics.map { g in
            Group(
                minTotalCents: g.minTotalCents, maxTotalCents: g.maxTotalCents, required: put(g.required),
                excluded: put(g.excluded), countries: put(g.countries), channels: put(g.channels),
                devices: put(g.devices), giftOnly: g.giftOnly, requiresSegment: g.requiresSegment,
                segmentMask: g.segmentMask, startSeconds: g.startSeconds, endSeconds: g.endSeconds)
        }
        offers = .allocate(capacity: max(compiled.count, 1))
        _ = offers.initialize(from: compiled)
        groups = .allocate(capacity: max(flat.count, 1))
        _ = groups.initialize(from: flat)
        groupCount = flat.count
        hashes = .allocate(capacity: max(pool.count, 1))
        _ = hashes.initialize(from: pool)
        count = compiled.count
        anyStatic = !statics.isEmpty
        anyCounters = compiled.contains { $0.cap > 0 || $0.suppressionSeconds > 0 }
        anyBudget = compiled.contains { $0.budgetLimit >= 0 }
        anyPriority = Set(compiled.map(\.priority)).count > 1
        anyThreshold = compiled.contains { $0.minExpectedValue > -.infinity }
        usesCategories = statics.contains { !$0.required.isEmpty || !$0.excluded.isEmpty }
        usesCountry = statics.contains { !$0.countries.isEmpty }
        usesChannel = statics.contains { !$0.channels.isEmpty }
        usesDevice = statics.contains { !$0.devices.isEmpty }
    }

    deinit {
        offers.deallocate()
        groups.deallocate()
        hashes.deallocate()
    }

    /// The comparison key of a field value: up to 7 bytes are packed with their length (exact,
    /// no hashing: country codes, channels, devices), longer values are a 63-bit in-process hash
    /// with the top bit set (keys are rebuilt with every model, never persisted).
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let n = bytes.count
        if n <= 7 {
            var packed = UInt64(n) << 56
            for i in 0..<n { packed |= UInt64(bytes[i]) << (8 * UInt64(i)) }
            return packed
        }
        return ByteHash.hash(bytes) | (1 << 63)
    }

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
        offer >= 0 && Int(offer) < count ? (offers[Int(offer)].suppressionSeconds + 59) / 60 : 0
    }

    /// The frequency cap of `offer` (0: none).
    func cap(_ offer: Int32) -> Int { offer >= 0 && Int(offer) < count ? Int(offers[Int(offer)].cap) : 0 }
}

/// The request's field hashes for static rules, computed once per decision when needed.
struct RequestHashes {
    var country: UInt64 = 0
    var channel: UInt64 = 0
    var device: UInt64 = 0
    var categories: UnsafeMutableBufferPointer<UInt64>
    var categoryCount = 0
}
