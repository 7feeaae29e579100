import EncoreModel
import EncoreStore

/// The decision fixture shared by the benchmarks: 50 offers, 1,000 customers with 40 stored
/// features, and a 64-feature snapshot (no interactions) with weights for every offer.
public enum Fixtures {
    public static let offerCount = 50
    public static let customerCount = 1_000
    public static let storedFeatureCount = 40
    public static let categories = ["electronics", "apparel", "home", "beauty", "toys", "grocery"]
    public static let segments = ["new", "repeat", "vip", "gift_giver"]
    public static let requestKeys = ["session_pages", "cart_age_s", "promo_seen", "loyalty_points"]

    public static func offerID(_ i: Int) -> String { "offer_\(i < 10 ? "0" : "")\(i)" }
    public static func customerID(_ i: Int) -> String { "cust_\(100_000 + i)" }

    /// JSONL catalog: every offer is eligible on thank_you and confirmation, half on cart.
    public static var catalogJSONL: String {
        var lines: [String] = []
        let kinds = ["gift_box", "rush_shipping", "referral", "warranty", "subscription"]
        for i in 0..<offerCount {
            let surfaces = i % 2 == 0 ? #"["cart", "thank_you", "confirmation"]"# : #"["thank_you", "confirmation"]"#
            lines.append(
                #"{"offer_id": "\#(offerID(i))", "kind": "\#(kinds[i % kinds.count])", "surfaces": \#(surfaces), "value_cents": \#(500 + 37 * i), "title": "Offer \#(i)"}"#
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// CSV customers: `customer_id,segments,f00..f39`.
    public static var customersCSV: String {
        var random = FixtureRandom(seed: 42)
        var text =
            "customer_id,segments,"
            + (0..<storedFeatureCount).map { "f\($0 < 10 ? "0" : "")\($0)" }.joined(separator: ",") + "\n"
        for c in 0..<customerCount {
            var memberships: [String] = []
            for (s, name) in segments.enumerated() where (c >> s) & 1 == 1 { memberships.append(name) }
            text += customerID(c) + "," + memberships.joined(separator: "|")
            for _ in 0..<storedFeatureCount {
                text += "," + String(Double(random.below(100_000)) / 100)
            }
            text += "\n"
        }
        return text
    }

    /// The 64 feature names of the snapshot.
    public static var featureNames: [String] {
        var names = ["bias", "order.total_log", "order.items_log", "order.is_gift"]
        names += categories.map { "order.category=\($0)" }
        names += ["standard", "express", "pickup"].map { "order.shipping=\($0)" }
        names += ["web", "app"].map { "order.channel=\($0)" }
        names += ["desktop", "mobile", "tablet"].map { "order.device=\($0)" }
        names += ["US", "CA", "GB", "DE"].map { "order.country=\($0)" }
        names += ["cart", "thank_you", "confirmation"].map { "surface=\($0)" }
        names.append("customer.known")
        names += segments.map { "segment=\($0)" }
        let customerFeatures = 64 - names.count - requestKeys.count
        names += (0..<customerFeatures).map { "customer.f\($0 < 10 ? "0" : "")\($0)" }
        names += requestKeys.map { "request.\($0)" }
        precondition(names.count == 64)
        return names
    }

    /// A 50-offer x 64-feature snapshot with small deterministic weights.
    public static func snapshot() throws -> ModelSnapshot {
        let features = featureNames
        var random = FixtureRandom(seed: 7)
        let width = features.count
        let offerIDs = (0..<offerCount).map(offerID)
        return try ModelSnapshot(
            version: "bench-50x64-1",
            createdAtMillis: 1_764_000_000_000,
            schema: FeatureSchema(features: features),
            offerIDs: offerIDs,
            sharedWeights: (0..<width).map { _ in random.weight(0.05) },
            offerWeights: (0..<(offerCount * width)).map { _ in random.weight(0.02) },
            offerBiases: (0..<offerCount).map { _ in random.weight(1) - 3 },
            link: .logistic,
            objective: .revenue,
            exploration: .squareCB(gamma: 50)
        )
    }
}
