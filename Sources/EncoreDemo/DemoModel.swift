import EncoreModel
import EncoreSupport

/// The embedded demo's policy. Its weights are those of the demo's synthetic conversion model
/// (the "ground truth" the shopper simulator also uses) plus seeded noise: `snapshot(seed:)`
/// gives a valid snapshot whose weights and version differ per seed. It is derived from the
/// known model, not trained from logs (training from logs is `encore-learn train`).
public enum DemoModel {
    public static let features: [String] =
        [
            "bias", "order.total_log", "order.items_log", "order.is_gift", "surface=cart", "surface=payment",
            "surface=thank_you", "surface=confirmation", "order.category=electronics", "order.category=apparel",
            "order.category=home", "order.category=beauty", "order.category=toys", "order.shipping=express",
            "order.channel=app", "order.device=mobile", "customer.known",
        ] + DemoCustomers.featureNames.map { "customer.\($0)" } + DemoCustomers.segmentNames.map { "segment=\($0)" }

    /// (order.is_gift x segment=gift_giver), (order.total_log x customer.known)
    public static let interactions = [
        FeatureSchema.Interaction(
            features.firstIndex(of: "order.is_gift")!, features.firstIndex(of: "segment=gift_giver")!),
        FeatureSchema.Interaction(
            features.firstIndex(of: "order.total_log")!, features.firstIndex(of: "customer.known")!),
    ]

    /// Per-offer true log-odds terms beyond the shared intercept (-3.0, about 5% conversion).
    public static let trueWeights: [String: [String: Float]] = [
        "gift_box": [
            "order.is_gift": 2.5, "segment=gift_giver": 1.0, "surface=cart": 0.3,
            "order.is_gift*segment=gift_giver": 0.5,
        ],
        "gift_message": ["order.is_gift": 2.0, "segment=gift_giver": 0.4],
        "rush_shipping": [
            "order.shipping=express": -1.0, "order.is_gift": 0.8, "surface=payment": 0.4, "order.total_log": 0.2,
        ],
        "express_upgrade": [
            "order.shipping=express": -1.5, "order.is_gift": 0.5, "customer.days_since_last_log": -0.1,
        ],
        "shipping_protection": ["order.total_log": 0.6, "order.category=electronics": 0.8, "surface=payment": 0.3],
        "complementary_socks": ["order.category=apparel": 1.5, "surface=thank_you": 0.3],
        "complementary_case": ["order.category=electronics": 1.6, "surface=thank_you": 0.2],
        "referral_give20_get20": ["segment=vip": 1.2, "customer.referrals": 0.4, "customer.email_engagement": 0.8],
        "review_precommit": ["customer.reviews_log": 0.9, "segment=repeat": 0.4],
        "loyalty_enroll": ["segment=repeat": 1.0, "segment=loyalty_member": -2.0, "customer.orders_log": 0.4],
        "loyalty_double_points": ["segment=loyalty_member": 1.5, "order.total_log": 0.2],
        "partner_streaming_trial": ["customer.app_user": 0.8, "order.device=mobile": 0.4, "order.category=toys": 0.3],
        "partner_card": ["customer.aov_log": 0.5, "segment=vip": 0.6, "segment=deal_seeker": -0.5],
        "extended_warranty": ["order.category=electronics": 1.2, "order.category=home": 0.6, "order.total_log": 0.3],
        "donation_roundup": ["surface=thank_you": 0.2, "customer.email_engagement": 0.3],
        "next_order_discount": ["segment=deal_seeker": 1.2, "segment=new": 0.6],
    ]

    public static let offerIDs = trueWeights.keys.sorted()
    public static let intercept: Float = -3.0

    /// A demo snapshot: true weights plus N(0, 0.05) noise drawn from `seed`; SquareCB with
    /// gamma 100; logistic link; conversion objective. Version "demo-<seed>-<8 hex>".
    /// The demo snapshots' creation time (fixed, so their files are reproducible).
    public static let defaultCreatedAtMillis: Int64 = 1_764_000_000_000

    public static func snapshot(seed: UInt64, createdAtMillis: Int64 = defaultCreatedAtMillis) throws -> ModelSnapshot {
        let schema = FeatureSchema(features: features, interactions: interactions)
        let width = schema.width
        let names = (0..<width).map { schema.name(at: $0) }
        var random = SplitMix64(seed: StableHash.hash("demo-snapshot", seed: seed))
        func noise() -> Float {
            // Box-Muller, sigma 0.05.
            let u1 = max(random.nextUnit(), 1e-12)
            let u2 = random.nextUnit()
            return Float(sqrt(-2 * log(u1)) * cos(2 * Double.pi * u2) * 0.05)
        }
        var shared = [Float](repeating: 0, count: width)
        shared[0] = intercept
        for j in 1..<width { shared[j] = noise() }
        var weights: [Float] = []
        var biases: [Float] = []
        var fingerprint = seed
        for id in offerIDs {
            biases.append(noise())
            let terms = trueWeights[id]!
            for j in 0..<width {
                let w = (terms[names[j]] ?? 0) + noise()
                weights.append(w)
                fingerprint = StableHash.finalize(fingerprint ^ UInt64(w.bitPattern))
            }
        }
        let hex = String(fingerprint & 0xFFFF_FFFF, radix: 16)
        let version = "demo-\(seed)-" + String(repeating: "0", count: 8 - hex.count) + hex
        return try ModelSnapshot(
            version: version, createdAtMillis: createdAtMillis, schema: schema, offerIDs: offerIDs,
            sharedWeights: shared,
            offerWeights: weights, offerBiases: biases, link: .logistic, objective: .conversion,
            exploration: .squareCB(gamma: 100))
    }

    /// The snapshot `encore serve` uses for the embedded demo.
    public static let defaultSeed: UInt64 = 7
}

#if canImport(Glibc)
    import Glibc
#endif
