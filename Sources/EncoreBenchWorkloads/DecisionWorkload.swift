import EncoreEngine
import EncoreModel
import EncoreStore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The decision core alone (EncoreEngine): eligibility, features, scoring, SquareCB exploration
/// and a 2-slot slate for a 50-offer catalog and a 64-feature snapshot, over a pool of 16
/// customers (14 known, 2 cold-start). Everything a decision borrows stays alive for the run.
public final class DecisionWorkload: @unchecked Sendable {
    let engine: DecisionEngine
    let workspace: DecisionWorkspace
    var input = DecisionInput()
    /// The last decision's result.
    public private(set) var output = DecisionOutput()
    let customerPool: [UnsafeRawBufferPointer]

    /// Builds the catalog, a 1,000-customer store and the snapshot, and makes one decision so
    /// scratch buffers reach their working size. Throws when the fixture does not load.
    ///
    /// `rules`: the business rules on, as a deployment would run them: cap 3 per day, 30-day
    /// decline suppression, a relevance threshold every offer passes, daily budgets on every
    /// fifth offer, every offer restricted by order total, country, channel and an excluded
    /// category (all passing), and each known customer with counter history (3 declined and 3
    /// shown offers), so every rule is evaluated on every decision.
    ///
    /// `demoRules`: the embedded demo's rule set instead (cap, suppression, threshold, budgets
    /// on 3 offers, no order restrictions), with the same customer histories.
    ///
    /// `extraOffers`: that many more offers (no weights of their own: the shared ones score
    /// them) on `extraSurfaces`, and the decision is made on `surface`: a large catalog whose
    /// offers are elsewhere must cost what the fixture costs (candidates come from the
    /// per-surface index), one whose offers are all eligible costs per eligible offer.
    public init(
        rules: Bool = false, demoRules: Bool = false, surface: String = "thank_you", extraOffers: Int = 0,
        extraSurfaces: SurfaceSet = .all
    ) throws {
        let arena = ByteArena()
        var catalogText = Fixtures.catalogJSONL
        var settings = RuleSettings()
        if demoRules {
            settings.frequencyCapPerDay = 3
            settings.declineSuppressionDays = 30
            settings.minExpectedValue = -1_000_000
            for i in [11, 12, 14] {
                settings.budgets[Fixtures.offerID(i)] = .init(unit: .shows, dailyLimit: 1_000_000_000)
            }
        }
        if rules {
            catalogText = catalogText.replacingOccurrences(
                of: #""title":"#,
                with:
                    #""min_total_cents": 1000, "countries": ["US", "CA", "GB"], "channels": ["web", "app"], "excluded_categories": ["gift_cards"], "title":"#
            )
            settings.frequencyCapPerDay = 3
            settings.declineSuppressionDays = 30
            settings.minExpectedValue = -1_000_000
            for i in stride(from: 0, to: Fixtures.offerCount, by: 5) {
                settings.budgets[Fixtures.offerID(i)] = .init(unit: .shows, dailyLimit: 1_000_000_000)
            }
        }
        var catalog = try OfferCatalog(jsonl: catalogText, source: "bench-catalog.jsonl")
        if extraOffers > 0 {
            let extra = (0..<extraOffers).map { i in
                Offer(id: "bulk_\(i)", surfaces: extraSurfaces, valueCents: 100 + Int64(i % 900))
            }
            catalog = try OfferCatalog(offers: catalog.offers + extra)
        }
        let directory = String(cString: mkdtemp(strdup("/tmp/encore-bench-XXXXXX"))!)
        let path = directory + "/customers.csv"
        let file = fopen(path, "w")!
        let csv = Fixtures.customersCSV
        fputs(csv, file)
        fclose(file)
        let customers = try CustomerStore.load(contentsOf: path, progress: nil)
        unlink(path)
        rmdir(directory)
        let model = try ActiveModel(
            snapshot: Fixtures.snapshot(), catalog: catalog, customers: customers, rules: settings)
        var configuration = EngineConfiguration()
        configuration.rules = settings
        engine = DecisionEngine(configuration: configuration, model: model)
        workspace = engine.makeWorkspace(threadIndex: 0)
        if rules || demoRules {
            let now = Int64(time(nil))
            for c in 0..<14 {
                let key = CustomerCounters.key(Fixtures.customerID(c * 71))
                for k in 0..<3 {
                    engine.counters.record(
                        customer: key, offer: Int32(40 + k), kind: .declined, atSeconds: now,
                        suppressionMinutes: { _ in 43200 }, cap: { _ in 3 })
                    engine.counters.record(
                        customer: key, offer: Int32(43 + k), kind: .shown, atSeconds: now,
                        suppressionMinutes: { _ in 43200 }, cap: { _ in 3 })
                }
            }
        }

        customerPool =
            (0..<14).map { arena.utf8(Fixtures.customerID($0 * 71)) }
            + ["cust_unknown_1", "cust_unknown_2"].map(arena.utf8)
        input.surface = arena.utf8(surface)
        input.customerID = customerPool[0]
        input.requestID = arena.utf8("req-7f3a9c2e-0001")
        input.orderID = arena.utf8("order-20261120-000123")
        input.totalCents = 12_999
        input.itemQuantity = 3
        input.categories = arena.array([arena.utf8("electronics"), arena.utf8("home"), arena.utf8("electronics")])
        input.shippingMethod = arena.utf8("express")
        input.channel = arena.utf8("web")
        input.device = arena.utf8("mobile")
        input.country = arena.utf8("US")
        input.isGift = false
        input.featureKeys = arena.array(Fixtures.requestKeys.map(arena.utf8))
        input.featureValues = arena.array([7, 312, 1, 1_250])
        input.slots = 2
        try workspace.decide(input, into: &output)
        precondition(output.placementCount == 2, "expected a 2-offer slate, got \(output.placementCount)")
    }

    /// One decision for customer `i % 16` of the pool.
    @inline(__always)
    public func decide(_ i: Int) throws(EngineError) {
        input.customerID = customerPool[i & 15]
        try workspace.decide(input, into: &output)
    }
}
