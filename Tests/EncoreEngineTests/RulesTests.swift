import EncoreModel
import EncoreStore
import Foundation
import Testing

@testable import EncoreEngine

/// 2026-12-01T12:00:00Z in Unix milliseconds.
private let noon: Int64 = 1_796_126_400_000
private let day: Int64 = 86_400_000

private let rulesCatalog = """
    {"offer_id": "any"}
    {"offer_id": "big", "min_total_cents": 10000}
    {"offer_id": "small", "max_total_cents": 2000}
    {"offer_id": "toys", "required_categories": ["toys", "games"]}
    {"offer_id": "notoys", "excluded_categories": ["toys"]}
    {"offer_id": "us", "countries": ["US", "CA"]}
    {"offer_id": "app", "channels": ["app"]}
    {"offer_id": "mobile", "devices": ["mobile"]}
    {"offer_id": "gift", "gift_only": true}
    {"offer_id": "vip", "segments": ["vip", "no_such_segment"]}
    {"offer_id": "window", "start_time": "2026-12-01T00:00:00Z", "end_time": 1796169600}
    {"offer_id": "nobody", "segments": ["no_such_segment"]}
    """

private func engine(
    _ catalog: String, snapshot: ModelSnapshot? = nil, rules: RuleSettings = RuleSettings(), holdout: Double = 0
) throws -> DecisionEngine {
    var configuration = EngineConfiguration()
    configuration.holdoutShare = holdout
    configuration.rules = rules
    configuration.counterCustomers = 4096
    let model = try ActiveModel(
        snapshot: snapshot, catalog: try OfferCatalog(jsonl: catalog), customers: try testCustomers(), rules: rules)
    return DecisionEngine(configuration: configuration, model: model)
}

/// The offers a decision may choose from for `input` (each probed alone through the
/// candidate restriction, so the answer does not depend on the random draw).
private func eligible(_ engine: DecisionEngine, _ fixture: RequestFixture, _ input: DecisionInput) throws -> Set<String>
{
    let workspace = engine.makeWorkspace(threadIndex: 0)
    var out = DecisionOutput()
    var result: Set<String> = []
    for offer in engine.active.value.catalog.offers {
        var probe = input
        probe.candidates = fixture.list([offer.id])
        probe.candidateCount = 1
        try workspace.decide(probe, into: &out)
        if out.eligibleCount == 1 { result.insert(offer.id) }
    }
    return result
}

@Suite struct RulesTests {
    @Test func eachEligibilityFieldFiltersBeforeScoring() throws {
        let engine = try engine(rulesCatalog)
        let f = RequestFixture()
        var input = f.input(surface: "cart", customer: "u3")  // u3: not vip
        input.nowMillis = noon
        input.totalCents = 5000
        input.categories = f.list(["books"])
        #expect(try eligible(engine, f, input) == ["any", "notoys", "window"])

        input.totalCents = 12000
        input.categories = f.list(["toys", "books"])
        input.country = f.bytes("CA")
        input.channel = f.bytes("app")
        input.device = f.bytes("mobile")
        input.isGift = true
        input.customerID = f.bytes("u4")  // vip
        #expect(
            try eligible(engine, f, input) == ["any", "big", "toys", "us", "app", "mobile", "gift", "vip", "window"])

        input.totalCents = 1500
        input.categories = f.list(["games"])
        input.country = f.bytes("FR")
        input.channel = f.bytes("web")
        input.device = f.bytes("")
        input.isGift = false
        input.nowMillis = noon + day  // the window has closed
        #expect(try eligible(engine, f, input) == ["any", "small", "toys", "notoys", "vip"])

        // Before the window opens.
        input.nowMillis = noon - day
        #expect(try !eligible(engine, f, input).contains("window"))
    }

    @Test func propensitiesAfterFilteringSumToOneAndMatchFrequencies() throws {
        // Four scored offers; rules remove b (order too small) and d (wrong country).
        let catalog = """
            {"offer_id": "a", "surfaces": ["cart"]}
            {"offer_id": "b", "surfaces": ["cart"], "min_total_cents": 100000}
            {"offer_id": "c", "surfaces": ["cart"]}
            {"offer_id": "d", "countries": ["DE"]}
            """
        let engine = try engine(catalog, snapshot: try testSnapshot(exploration: .squareCB(gamma: 5)))
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let f = RequestFixture()
        var input = f.input(surface: "cart", customer: "u4", slots: 1)
        input.country = f.bytes("US")
        var out = DecisionOutput()
        var counts: [String: Int] = [:]
        var propensity: [String: Double] = [:]
        let n = 20000
        for _ in 0..<n {
            try workspace.decide(input, into: &out)
            #expect(out.eligibleCount == 2)
            let id = offerID(out, 0)
            counts[id, default: 0] += 1
            if let p = propensity[id] { #expect(p == out.first.propensity) }
            propensity[id] = out.first.propensity
        }
        #expect(Set(counts.keys) == ["a", "c"])
        let sum = propensity.values.reduce(0, +)
        #expect(abs(sum - 1) < 1e-12)
        // The draws differ per run (decision ids start with a random instance id): a tolerance
        // derived from the sample, for 2 comparisons at a false-failure rate of 1e-4 (about 4.7
        // standard errors). With two offers both frequencies move together; at n = 20,000 a
        // propensity reported 10% off is caught with power >= 95% (checked: a smaller n fails).
        for (id, p) in propensity {
            let frequency = Double(counts[id]!) / Double(n)
            let tolerance = frequencyTolerance(p: p, n: n, comparisons: 2)
            #expect(abs(frequency - p) < tolerance, "offer \(id): frequency \(frequency) vs propensity \(p)")
            let power = 0.1 * p >= tolerance + 1.645 * frequencyStandardError(p: p, n: n)
            #expect(power, "offer \(id): \(n) draws cannot catch a 10% error of propensity \(p)")
        }
    }

    @Test func aDeclinedOfferIsHiddenOnEverySurfaceForItsWindow() throws {
        var settings = RuleSettings()
        settings.declineSuppressionDays = 30
        let engine = try engine(testCatalogJSONL, rules: settings)
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let f = RequestFixture()
        var input = f.input(surface: "cart", customer: "u7", candidates: ["d"])
        input.nowMillis = noon
        var out = DecisionOutput()
        try workspace.decide(input, into: &out)
        #expect(out.placementCount == 1)
        let model = engine.active.value
        out.withDecisionID { id in
            engine.recordOutcome(
                decisionID: id, offerID: f.bytes("d"), outcome: .declined, nowMillis: noon, model: model)
        }
        for surface in ["cart", "payment", "thank_you", "confirmation", "email"] {
            var later = f.input(surface: surface, customer: "u7")
            later.nowMillis = noon + 29 * day
            #expect(try !eligible(engine, f, later).contains("d"), "surface \(surface)")
            var other = later
            other.customerID = f.bytes("u8")
            #expect(try eligible(engine, f, other).contains("d"), "another customer, surface \(surface)")
        }
        var after = f.input(surface: "cart", customer: "u7")
        after.nowMillis = noon + 30 * day + 1000
        #expect(try eligible(engine, f, after).contains("d"))
    }

    @Test func frequencyCapCountsShownOutcomesOverARollingDay() throws {
        let catalog = """
            {"offer_id": "a"}
            {"offer_id": "b", "frequency_cap_per_day": 1}
            """
        var settings = RuleSettings()
        settings.frequencyCapPerDay = 3
        let engine = try engine(catalog, rules: settings)
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let f = RequestFixture()
        var input = f.input(surface: "cart", customer: "u9", candidates: ["a"])
        input.nowMillis = noon
        var out = DecisionOutput()
        // Decisions never reported as SHOWN do not count.
        for _ in 0..<10 { try workspace.decide(input, into: &out) }
        #expect(out.eligibleCount == 1)
        let model = engine.active.value
        func show(_ offer: String, at millis: Int64) throws {
            input.nowMillis = millis
            try workspace.decide(input, into: &out)
            out.withDecisionID { id in
                engine.recordOutcome(
                    decisionID: id, offerID: f.bytes(offer), outcome: .shown, nowMillis: millis, model: model)
            }
        }
        let minute: Int64 = 60_000
        try show("a", at: noon)
        try show("a", at: noon + minute)
        var probe = f.input(surface: "cart", customer: "u9")
        probe.nowMillis = noon + 2 * minute
        #expect(try eligible(engine, f, probe) == ["a", "b"])
        try show("a", at: noon + 3 * minute)
        try show("b", at: noon + 3 * minute)
        probe.nowMillis = noon + 4 * minute
        #expect(try eligible(engine, f, probe).isEmpty)
        // The first show leaves the rolling day (minute resolution).
        probe.nowMillis = noon + day + 30_000
        #expect(try eligible(engine, f, probe) == ["a"])
        probe.nowMillis = noon + day + 3 * minute + 30_000
        #expect(try eligible(engine, f, probe) == ["a", "b"])
    }

    @Test func budgetsArePacedOverTheDayAndExhaust() throws {
        let catalog = """
            {"offer_id": "a"}
            {"offer_id": "partner", "budget": {"daily_shows": 48}}
            {"offer_id": "accepts", "budget": {"daily_acceptances": 2}}
            """
        let engine = try engine(catalog)
        let f = RequestFixture()
        let midnight = noon - day / 2
        let model = engine.active.value
        func outcome(_ offer: String, _ kind: OutcomeKind, at millis: Int64, times: Int) {
            for _ in 0..<times {
                engine.recordOutcome(
                    decisionID: f.bytes("x"), offerID: f.bytes(offer), outcome: kind, nowMillis: millis, model: model)
            }
        }
        var probe = f.input(surface: "cart", customer: "u1")
        // 00:30: 1/48 of the day elapsed plus a burst of one -> 2 allowed so far.
        let early = midnight + day / 48
        #expect(OfferBudgets.pacedAllowance(limit: 48, atSeconds: early / 1000) == 2)
        outcome("partner", .shown, at: early, times: 2)
        probe.nowMillis = early
        #expect(try eligible(engine, f, probe) == ["a", "accepts"])
        // By noon half the budget (plus the burst) is available again.
        probe.nowMillis = noon
        #expect(try eligible(engine, f, probe).contains("partner"))
        outcome("partner", .shown, at: noon, times: 23)
        #expect(try !eligible(engine, f, probe).contains("partner"))
        // Spent in full: nothing more today, everything again tomorrow.
        outcome("partner", .shown, at: midnight + day - 1000, times: 23)
        probe.nowMillis = midnight + day - 1
        #expect(try !eligible(engine, f, probe).contains("partner"))
        probe.nowMillis = midnight + day + day / 4
        #expect(try eligible(engine, f, probe).contains("partner"))
        // Acceptance budgets count ACCEPTED, not SHOWN.
        outcome("accepts", .shown, at: noon, times: 10)
        probe.nowMillis = noon
        #expect(try eligible(engine, f, probe).contains("accepts"))
        outcome("accepts", .accepted, at: noon, times: 2)
        #expect(try !eligible(engine, f, probe).contains("accepts"))
    }

    @Test func relevanceThresholdLeavesTheSecondSlotEmpty() throws {
        let snapshot = try testSnapshot(exploration: .squareCB(gamma: 20))
        let plain = try engine(testCatalogJSONL, snapshot: snapshot)
        let f = RequestFixture()
        let input = f.input(surface: "cart", customer: "u4", slots: 2, candidates: ["a", "b", "c"])
        var out = DecisionOutput()
        try plain.makeWorkspace(threadIndex: 0).decide(input, into: &out)
        #expect(out.placementCount == 2)
        // The expected value of each candidate, from one decision per candidate.
        var value: [String: Double] = [:]
        for id in ["a", "b", "c"] {
            var one = input
            one.candidates = f.list([id])
            one.candidateCount = 1
            try plain.makeWorkspace(threadIndex: 0).decide(one, into: &out)
            value[id] = out.first.expectedValue
        }
        let sorted = value.sorted { $0.value > $1.value }
        #expect(sorted[0].value > sorted[1].value)
        var settings = RuleSettings()
        settings.minExpectedValue = (sorted[0].value + sorted[1].value) / 2
        let strict = try engine(testCatalogJSONL, snapshot: snapshot, rules: settings)
        let workspace = strict.makeWorkspace(threadIndex: 0)
        for _ in 0..<50 {
            try workspace.decide(input, into: &out)
            #expect(out.placementCount == 1)
            #expect(offerID(out, 0) == sorted[0].key)
            #expect(out.first.propensity == 1)
            #expect(out.eligibleCount == 1)
        }
        // Above every offer: nothing is shown.
        settings.minExpectedValue = sorted[0].value + 1e-6
        let none = try engine(testCatalogJSONL, snapshot: snapshot, rules: settings)
        try none.makeWorkspace(threadIndex: 0).decide(input, into: &out)
        #expect(out.placementCount == 0)
        // A per-offer field overrides the default.
        let catalog = testCatalogJSONL.replacingOccurrences(
            of: "{\"offer_id\": \"a\",", with: "{\"offer_id\": \"a\", \"min_expected_value\": -1,")
        let mixed = try engine(catalog, snapshot: snapshot, rules: settings)
        try mixed.makeWorkspace(threadIndex: 0).decide(input, into: &out)
        #expect(out.placementCount == 1)
        #expect(offerID(out, 0) == "a")
    }

    @Test func onlyTheHighestPriorityPresentIsOffered() throws {
        let catalog = """
            {"offer_id": "a"}
            {"offer_id": "b", "priority": 5, "countries": ["US"]}
            {"offer_id": "c", "priority": 5}
            {"offer_id": "d", "priority": -1}
            """
        let engine = try engine(catalog)
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let f = RequestFixture()
        var input = f.input(surface: "cart", customer: "u2", slots: 2)
        input.country = f.bytes("US")
        var out = DecisionOutput()
        try workspace.decide(input, into: &out)
        #expect(out.eligibleCount == 2)
        #expect(Set([offerID(out, 0), offerID(out, 1)]) == ["b", "c"])
        input.candidates = f.list(["a", "d"])
        input.candidateCount = 2
        try workspace.decide(input, into: &out)
        #expect(out.eligibleCount == 1)
        #expect(offerID(out, 0) == "a")
    }

    @Test func decisionIDsCarryTheCustomerKey() throws {
        let engine = try engine(testCatalogJSONL)
        let f = RequestFixture()
        var out = DecisionOutput()
        try engine.makeWorkspace(threadIndex: 3).decide(f.input(customer: "u12"), into: &out)
        let id = out.decisionIDString
        #expect(id.utf8.count == 60)
        let key = out.withDecisionID { DecisionEngine.customerKey(fromDecisionID: $0) }
        #expect(key == CustomerCounters.key("u12"))
        for value: UInt64 in [0, 0x0123_4567_89AB_CDEF, .max, 0xF0E1_D2C3_B4A5_9687] {
            let words = DecisionWorkspace.hex16(value)
            let text = withUnsafeBytes(of: words) { String(decoding: $0, as: UTF8.self) }
            let expected = String(value, radix: 16)
            #expect(text == String(repeating: "0", count: 16 - expected.count) + expected)
        }
        let counter = id.split(separator: "-")
        #expect(counter.count == 5 && counter[1] == "03" && counter[2] == "0000000001")
        let foreign = Array("5f0c1a2b3c4d-01-0000000001".utf8)
        #expect(foreign.withUnsafeBytes { DecisionEngine.customerKey(fromDecisionID: $0) } == nil)
    }
}

private func summary(_ counters: CustomerCounters, _ key: UInt64, at now: Int64) -> [Int32: (
    declined: Int64, recent: Int32
)] {
    let payload = UnsafeMutablePointer<UInt64>.allocate(capacity: CustomerCounters.payloadWords)
    let offers = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
    let declined = UnsafeMutablePointer<Int64>.allocate(capacity: 64)
    let recent = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
    defer {
        payload.deallocate()
        offers.deallocate()
        declined.deallocate()
        recent.deallocate()
    }
    guard let touch = counters.read(customer: key, into: payload) else { return [:] }
    let n = CustomerCounters.summarize(
        payload: payload, touchSeconds: touch, nowSeconds: now, offers: offers, declinedAtMinute: declined,
        recentShows: recent)
    var out: [Int32: (declined: Int64, recent: Int32)] = [:]
    for i in 0..<n { out[offers[i]] = (declined[i], recent[i]) }
    return out
}

@Suite struct CustomerCountersTests {
    let t0: Int64 = 1_796_126_400

    @Test func keepsDeclinesAndTheMostRecentShowsUpToTheCap() {
        let counters = CustomerCounters(maxCustomers: 1024)
        let key = CustomerCounters.key("c1")
        counters.record(customer: key, offer: 7, kind: .declined, atSeconds: t0, suppressionMinutes: { _ in 43200 }) {
            _ in 3
        }
        // 16 offers shown 5 times each within the day: 3 recent shows each are kept.
        for round in 0..<5 {
            for offer in 0..<16 {
                counters.record(
                    customer: key, offer: Int32(offer), kind: .shown, atSeconds: t0 + Int64(round * 60),
                    suppressionMinutes: { _ in 43200 }
                ) { _ in 3 }
            }
        }
        let s = summary(counters, key, at: t0 + 600)
        #expect(s.count == 16)  // offer 7 was declined and shown
        #expect(s[7]?.declined == CustomerCounters.minute(t0))
        for offer in Int32(0)..<16 { #expect(s[offer]?.recent == 3, "offer \(offer)") }
        #expect(counters.overflows.load(ordering: .relaxed) == 0)
        // A day later every show has expired; the decline has not.
        let later = summary(counters, key, at: t0 + 4 * 60 + 86400)
        #expect(later[7]?.declined == CustomerCounters.minute(t0))
        #expect(later.values.allSatisfy { $0.recent == 0 })
        #expect(summary(counters, CustomerCounters.key("c2"), at: t0).isEmpty)
    }

    @Test func anOverfullEntryDropsTheOldestShowsFirst() {
        let counters = CustomerCounters(maxCustomers: 1024)
        let key = CustomerCounters.key("c1")
        counters.record(customer: key, offer: 500, kind: .declined, atSeconds: t0, suppressionMinutes: { _ in 43200 }) {
            _ in 10
        }
        for i in 0..<200 {
            counters.record(
                customer: key, offer: Int32(i % 40), kind: .shown, atSeconds: t0 + Int64(i * 60),
                suppressionMinutes: { _ in 43200 }
            ) { _ in 10 }
        }
        #expect(counters.overflows.load(ordering: .relaxed) > 0)
        let s = summary(counters, key, at: t0 + 200 * 60)
        #expect(s[500]?.declined == CustomerCounters.minute(t0))
        // The newest show (offer 199 % 40 = 39) is kept.
        #expect((s[39]?.recent ?? 0) >= 1)
    }

    @Test func expiredDeclinesAndShowsAreDroppedAtTheNextWrite() {
        let counters = CustomerCounters(maxCustomers: 1024)
        let key = CustomerCounters.key("c1")
        counters.record(customer: key, offer: 1, kind: .declined, atSeconds: t0, suppressionMinutes: { _ in 60 }) { _ in
            3
        }
        counters.record(customer: key, offer: 2, kind: .shown, atSeconds: t0, suppressionMinutes: { _ in 60 }) { _ in 3
        }
        counters.record(customer: key, offer: 3, kind: .shown, atSeconds: t0 + 90000, suppressionMinutes: { _ in 60 }) {
            _ in 3
        }
        let s = summary(counters, key, at: t0 + 90000)
        #expect(Set(s.keys) == [3])
    }

    /// A damaged state file (valid checksum) can hold any touch time and any number of shows:
    /// restoring it neither traps nor garbles the entry (found by the rule-state fuzz target).
    @Test func restoringAnImpossibleEntryKeepsWhatFits() {
        let counters = CustomerCounters(maxCustomers: 1024)
        let minute = CustomerCounters.minute(t0)
        counters.restore(
            key: CustomerCounters.key("before-epoch"), touchSeconds: Int64.min,
            histories: [.init(offer: 1, declinedAtMinute: -1, showMinutes: [0])])
        let shows = (0..<40).map { minute - 39 + Int64($0) }
        counters.restore(
            key: CustomerCounters.key("many-shows"), touchSeconds: t0,
            histories: [.init(offer: 2, declinedAtMinute: minute, showMinutes: shows.reversed())])
        let s = summary(counters, CustomerCounters.key("many-shows"), at: t0)
        #expect(s[2]?.declined == minute)
        #expect(s[2]?.recent == 15)
    }

    @Test func memoryIsBoundedAndTheLeastRecentlyTouchedIsEvicted() {
        let counters = CustomerCounters(maxCustomers: 1024)
        #expect(counters.memoryBytes == 1024 * 256)
        for i in 0..<5000 {
            counters.record(
                customer: CustomerCounters.key("c\(i)"), offer: 1, kind: .declined, atSeconds: t0 + Int64(i),
                suppressionMinutes: { _ in 43200 }
            ) { _ in 3 }
        }
        #expect(counters.count <= 1024)
        #expect(counters.evictions.load(ordering: .relaxed) >= 5000 - 1024)
        var recentFound = 0
        for i in 4900..<5000 where summary(counters, CustomerCounters.key("c\(i)"), at: t0 + 5000)[1] != nil {
            recentFound += 1
        }
        #expect(recentFound >= 95)
    }

    @Test func readersNeverSeeATornEntry() async {
        let counters = CustomerCounters(maxCustomers: 1024)
        let key = CustomerCounters.key("hot")
        let t0 = self.t0
        let writer = Task.detached {
            // Offers 0...9 are declined together at the same minute, round after round.
            for round in 1...3000 {
                for offer in 0..<10 {
                    counters.record(
                        customer: key, offer: Int32(offer), kind: .declined, atSeconds: t0 + Int64(round * 60),
                        suppressionMinutes: { _ in 1_000_000 }
                    ) { _ in 3 }
                }
            }
        }
        var torn = 0
        var reads = 0
        while reads < 100_000 {
            let s = summary(counters, key, at: t0)
            reads += 1
            let minutes = Set(s.values.map(\.declined))
            // A consistent copy holds either all ten declines at one minute, or the last round's
            // prefix (offers 0..<k at the new minute, k..<10 at the previous one).
            if minutes.count > 2 { torn += 1 }
        }
        await writer.value
        #expect(torn == 0)
    }
}

@Suite struct RuleStateFileTests {
    @Test func savesAndLoadsAcrossACatalogReorder() throws {
        let counters = CustomerCounters(maxCustomers: 1024)
        let budgets = OfferBudgets(capacity: 16)
        let key = CustomerCounters.key("c1")
        let t0: Int64 = 1_796_126_400
        counters.record(customer: key, offer: 1, kind: .declined, atSeconds: t0, suppressionMinutes: { _ in 43200 }) {
            _ in 3
        }
        counters.record(customer: key, offer: 2, kind: .shown, atSeconds: t0 + 60, suppressionMinutes: { _ in 43200 }) {
            _ in 3
        }
        budgets.add(offer: 2, unit: .shows, atSeconds: t0, amount: 7)
        let path = NSTemporaryDirectory() + "encore-rule-state-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try RuleStateFile.save(counters: counters, budgets: budgets, offerIDs: ["x", "y", "z"], to: path)

        // The next run's catalog: "z" moved to index 0, "y" is gone.
        let counters2 = CustomerCounters(maxCustomers: 1024)
        let budgets2 = OfferBudgets(capacity: 16)
        let index = ["z": Int32(0), "x": Int32(1)]
        let loaded = try RuleStateFile.load(from: path, counters: counters2, budgets: budgets2) { index[$0] ?? -1 }
        #expect(loaded.customers == 1 && loaded.histories == 1 && loaded.droppedHistories == 1)
        let s = summary(counters2, key, at: t0 + 120)
        #expect(s.count == 1)
        #expect(s[0]?.recent == 1)
        #expect(s[0]?.declined == -1)
        #expect(budgets2.spent(offer: 0, unit: .shows, atSeconds: t0) == 7)
    }

    @Test func refusesADamagedFileNamingIt() throws {
        let counters = CustomerCounters(maxCustomers: 1024)
        let budgets = OfferBudgets(capacity: 16)
        counters.record(
            customer: 42, offer: 0, kind: .declined, atSeconds: 1_796_126_400, suppressionMinutes: { _ in 60 }
        ) {
            _ in 3
        }
        let path = NSTemporaryDirectory() + "encore-rule-state-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try RuleStateFile.save(counters: counters, budgets: budgets, offerIDs: ["x"], to: path)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: StoreError.self) {
            _ = try RuleStateFile.load(from: path, counters: counters, budgets: budgets) { _ in 0 }
        }
        #expect(error?.message.contains(path) == true)
        #expect(error?.message.contains("checksum") == true)
        try Data("not a state file".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: StoreError.self) {
            _ = try RuleStateFile.load(from: path, counters: counters, budgets: budgets) { _ in 0 }
        }
    }
}

@Suite struct OfferRulesParsingTests {
    @Test func badRuleFieldsAreErrorsNamingTheFieldAndLine() {
        let cases: [(String, String)] = [
            (#"{"offer_id": "a", "min_total_cents": "ten"}"#, "min_total_cents"),
            (#"{"offer_id": "a", "countries": "US"}"#, "countries"),
            (#"{"offer_id": "a", "gift_only": 1}"#, "gift_only"),
            (#"{"offer_id": "a", "start_time": "yesterday"}"#, "start_time"),
            (#"{"offer_id": "a", "frequency_cap_per_day": 50}"#, "frequency_cap_per_day"),
            (#"{"offer_id": "a", "decline_suppression_days": -1}"#, "decline_suppression_days"),
            (#"{"offer_id": "a", "budget": {"daily_views": 3}}"#, "budget"),
            (#"{"offer_id": "a", "min_expected_value": "high"}"#, "min_expected_value"),
            (#"{"offer_id": "a", "min_total_cents": 500, "max_total_cents": 100}"#, "min_total_cents"),
        ]
        for (line, field) in cases {
            let error = #expect(throws: StoreError.self) {
                _ = try OfferCatalog(jsonl: "{\"offer_id\": \"ok\"}\n" + line, source: "c.jsonl")
            }
            #expect(error?.message.hasPrefix("c.jsonl:2:") == true, "\(line)")
            #expect(error?.message.contains(field) == true, "\(error?.message ?? "")")
        }
    }

    @Test func parsesRFC3339Times() {
        #expect(RFC3339.seconds("2026-12-01T00:00:00Z") == 1_796_083_200)
        #expect(RFC3339.seconds("2026-12-01T01:00:00+01:00") == 1_796_083_200)
        #expect(RFC3339.seconds("2026-12-01T00:00:00.250Z") == 1_796_083_200)
        #expect(RFC3339.seconds("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339.seconds("2026-13-01T00:00:00Z") == nil)
        #expect(RFC3339.seconds("2026-12-01") == nil)
    }
}
