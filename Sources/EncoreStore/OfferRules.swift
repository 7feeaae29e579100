/// The business-rule fields of one catalog offer, all optional (docs/rules.md). Parsed from the
/// catalog line by `Offer.init(fields:)`; a present field of the wrong type or range is an error
/// naming the field, so a bad catalog never loads with a rule silently ignored.
public struct OfferRules: Sendable, Hashable {
    /// A per-offer daily budget: a number of SHOWN or ACCEPTED outcomes per UTC day.
    public struct Budget: Sendable, Hashable {
        public enum Unit: Sendable, Hashable {
            case shows
            case acceptances
        }
        public var unit: Unit
        public var dailyLimit: Int64
        public init(unit: Unit, dailyLimit: Int64) {
            self.unit = unit
            self.dailyLimit = dailyLimit
        }
    }

    /// Order total bounds in minor units (inclusive).
    public var minTotalCents: Int64? = nil
    public var maxTotalCents: Int64? = nil
    /// The order must hold at least one line item of one of these categories.
    public var requiredCategories: [String] = []
    /// The order must hold no line item of any of these categories.
    public var excludedCategories: [String] = []
    /// Allowed values of `order.country`, `order.channel`, `order.device` (empty: any).
    public var countries: [String] = []
    public var channels: [String] = []
    public var devices: [String] = []
    /// Only for orders with `is_gift`.
    public var giftOnly = false
    /// The customer must be in at least one of these segments (empty: any customer).
    public var segments: [String] = []
    /// Campaign window in Unix seconds: shown from `startSeconds` (inclusive) until `endSeconds`
    /// (exclusive).
    public var startSeconds: Int64? = nil
    public var endSeconds: Int64? = nil
    /// Among eligible candidates only those of the highest priority present are offered
    /// (default 0).
    public var priority: Int32 = 0
    /// Overrides of the configured defaults.
    public var frequencyCapPerDay: Int? = nil
    public var declineSuppressionDays: Double? = nil
    public var minExpectedValue: Double? = nil
    public var budget: Budget? = nil

    public init() {}

    /// The JSON keys this type interprets (everything else stays in `Offer.extra`).
    public static let keys: Set<String> = [
        "min_total_cents", "max_total_cents", "required_categories", "excluded_categories", "countries", "channels",
        "devices", "gift_only", "segments", "start_time", "end_time", "priority", "frequency_cap_per_day",
        "decline_suppression_days", "min_expected_value", "budget",
    ]

    /// The largest per-offer frequency cap (a customer's counter entry keeps 13 recent events).
    public static let maxFrequencyCap = 10

    /// Takes the rule keys out of `fields`, validating each.
    /// - Throws: `StoreError(.invalidField)` naming the field and what was expected.
    public init(taking fields: inout [String: JSONValue]) throws {
        func take(_ key: String) -> JSONValue? {
            guard let v = fields.removeValue(forKey: key), v != .null else { return nil }
            return v
        }
        func integer(_ key: String, _ range: ClosedRange<Int64>) throws -> Int64? {
            guard let v = take(key) else { return nil }
            guard let i = v.exactInteger, range.contains(i) else {
                throw StoreError(
                    .invalidField,
                    "field '\(key)' must be an integer in \(range.lowerBound)...\(range.upperBound), got \(v)")
            }
            return i
        }
        func number(_ key: String, _ range: ClosedRange<Double>) throws -> Double? {
            guard let v = take(key) else { return nil }
            let d: Double
            switch v {
            case .integer(let i): d = Double(i)
            case .number(let n): d = n
            default: throw StoreError(.invalidField, "field '\(key)' must be a number, got \(v)")
            }
            guard d.isFinite, range.contains(d) else {
                throw StoreError(.invalidField, "field '\(key)' must be a finite number in \(range), got \(v)")
            }
            return d
        }
        func strings(_ key: String) throws -> [String] {
            guard let v = take(key) else { return [] }
            guard case .array(let items) = v else {
                throw StoreError(.invalidField, "field '\(key)' must be an array of strings")
            }
            return try items.map { item in
                guard case .string(let s) = item, !s.isEmpty else {
                    throw StoreError(.invalidField, "field '\(key)' must be an array of non-empty strings, got \(item)")
                }
                return s
            }
        }
        func time(_ key: String) throws -> Int64? {
            guard let v = take(key) else { return nil }
            if let i = v.exactInteger { return i }
            guard case .string(let s) = v, let seconds = RFC3339.seconds(s) else {
                throw StoreError(
                    .invalidField,
                    "field '\(key)' must be Unix seconds or an RFC 3339 time such as \"2026-12-01T00:00:00Z\", got \(v)"
                )
            }
            return seconds
        }
        let cents: ClosedRange<Int64> = 0...Int64.max
        minTotalCents = try integer("min_total_cents", cents)
        maxTotalCents = try integer("max_total_cents", cents)
        if let lo = minTotalCents, let hi = maxTotalCents, lo > hi {
            throw StoreError(.invalidField, "field 'min_total_cents' (\(lo)) exceeds 'max_total_cents' (\(hi))")
        }
        requiredCategories = try strings("required_categories")
        excludedCategories = try strings("excluded_categories")
        countries = try strings("countries")
        channels = try strings("channels")
        devices = try strings("devices")
        segments = try strings("segments")
        if let v = take("gift_only") {
            guard case .bool(let b) = v else {
                throw StoreError(.invalidField, "field 'gift_only' must be true or false")
            }
            giftOnly = b
        }
        startSeconds = try time("start_time")
        endSeconds = try time("end_time")
        if let s = startSeconds, let e = endSeconds, s >= e {
            throw StoreError(.invalidField, "field 'start_time' must be before 'end_time'")
        }
        if let p = try integer("priority", -1_000_000...1_000_000) { priority = Int32(p) }
        if let cap = try integer("frequency_cap_per_day", 0...Int64(OfferRules.maxFrequencyCap)) {
            frequencyCapPerDay = Int(cap)
        }
        declineSuppressionDays = try number("decline_suppression_days", 0...3650)
        minExpectedValue = try number("min_expected_value", -1e12...1e12)
        if let v = take("budget") {
            budget = try OfferRules.parseBudget(v, key: "budget")
        }
    }

    /// Parses `{"daily_shows": N}` or `{"daily_acceptances": N}` (exactly one, N >= 0).
    public static func parseBudget(_ v: JSONValue, key: String) throws -> Budget {
        guard case .object(let o) = v, o.count == 1, let (name, limit) = o.first,
            let unit: Budget.Unit = name == "daily_shows" ? .shows : name == "daily_acceptances" ? .acceptances : nil
        else {
            throw StoreError(
                .invalidField, "field '\(key)' must be {\"daily_shows\": N} or {\"daily_acceptances\": N}, got \(v)")
        }
        guard let n = limit.exactInteger, n >= 0 else {
            throw StoreError(.invalidField, "field '\(key).\(name)' must be a non-negative integer, got \(limit)")
        }
        return Budget(unit: unit, dailyLimit: n)
    }

    /// True when no order or customer field restricts the offer (the decision skips the checks).
    public var hasStaticRestrictions: Bool {
        minTotalCents != nil || maxTotalCents != nil || !requiredCategories.isEmpty || !excludedCategories.isEmpty
            || !countries.isEmpty || !channels.isEmpty || !devices.isEmpty || giftOnly || !segments.isEmpty
            || startSeconds != nil || endSeconds != nil
    }
}

/// RFC 3339 date-times ("2026-12-01T00:00:00Z", "2026-12-01T09:30:00+01:00", fractions ignored).
public enum RFC3339 {
    /// Unix seconds, or nil if `text` is not an RFC 3339 date-time.
    public static func seconds(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func digits(_ at: Int, _ n: Int) -> Int64? {
            guard at + n <= b.count else { return nil }
            var v: Int64 = 0
            for i in at..<(at + n) {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                v = v * 10 + Int64(b[i] - 0x30)
            }
            return v
        }
        guard b.count >= 20, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x54 || b[10] == 0x74 || b[10] == 0x20,
            b[13] == 0x3A, b[16] == 0x3A,
            let year = digits(0, 4), let month = digits(5, 2), let day = digits(8, 2),
            let hour = digits(11, 2), let minute = digits(14, 2), let second = digits(17, 2),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var i = 19
        if i < b.count, b[i] == 0x2E {
            i += 1
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            guard i > start else { return nil }
        }
        guard i < b.count else { return nil }
        var offset: Int64 = 0
        if b[i] == 0x5A || b[i] == 0x7A {
            i += 1
        } else if b[i] == 0x2B || b[i] == 0x2D {
            guard let oh = digits(i + 1, 2), i + 3 < b.count, b[i + 3] == 0x3A, let om = digits(i + 4, 2) else {
                return nil
            }
            offset = (oh * 3600 + om * 60) * (b[i] == 0x2D ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        return daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }
}
