import EncoreModel
import EncoreStore
import EncoreSupport
import Foundation

/// The embedded demo's 100,000 synthetic customers (ids `c000001` ... `c100000`), generated
/// deterministically: the same id always has the same features and segments.
public enum DemoCustomers {
    public static let count = 100_000
    public static let featureNames = [
        "orders_log", "aov_log", "days_since_last_log", "return_rate", "email_engagement", "app_user", "reviews_log",
        "referrals",
    ]
    public static let segmentNames = ["new", "repeat", "vip", "gift_giver", "deal_seeker", "loyalty_member"]

    /// The customer id of demo customer `n` (1-based).
    public static func id(_ n: Int) -> String {
        let digits = String(n)
        return "c" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// One customer's features and segments.
    public static func customer(_ n: Int) -> (features: [Float], segments: [String]) {
        var random = SplitMix64(seed: StableHash.hash("demo-customer-\(n)"))
        let orders = Int(-log(1 - random.nextUnit() * 0.999) * 3)  // geometric-ish, mean ~3
        let aov = 20 + random.nextUnit() * random.nextUnit() * 300
        let days = orders == 0 ? 365.0 : random.nextUnit() * 200
        let returns = random.nextUnit() * 0.3
        let email = random.nextUnit()
        let app: Float = random.nextUnit() < 0.35 ? 1 : 0
        let reviews = orders > 0 ? Int(random.nextUnit() * Double(orders)) : 0
        let referrals = random.nextUnit() < 0.1 ? Int(random.nextUnit() * 5) : 0
        var segments: [String] = []
        if orders == 0 { segments.append("new") }
        if orders >= 2 { segments.append("repeat") }
        if orders >= 8 && aov > 120 { segments.append("vip") }
        if random.nextUnit() < 0.15 { segments.append("gift_giver") }
        if random.nextUnit() < 0.25 { segments.append("deal_seeker") }
        if orders >= 1 && random.nextUnit() < 0.25 { segments.append("loyalty_member") }
        let features: [Float] = [
            Float(log1p(Double(orders))), Float(log1p(aov)), Float(log1p(days)), Float(returns), Float(email), app,
            Float(log1p(Double(reviews))), Float(referrals),
        ]
        return (features, segments)
    }

    /// All demo customers as CSV (`customer_id,segments,<features>`), the `--customers` format.
    public static func csv(count: Int = DemoCustomers.count) -> String {
        var out = "customer_id,segments," + featureNames.joined(separator: ",") + "\n"
        out.reserveCapacity(count * 64)
        for n in 1...count {
            let (features, segments) = customer(n)
            out += id(n)
            out += ","
            out += segments.joined(separator: "|")
            for f in features {
                out += ","
                out += String(Float(Int((f * 10_000).rounded())) / 10_000)
            }
            out += "\n"
        }
        return out
    }
}

#if canImport(Glibc)
    import Glibc
#endif

extension DemoCustomers {
    /// The demo customers as a feature store (written to a temporary CSV and loaded with the
    /// same loader as `--customers`).
    public static func store(count: Int = DemoCustomers.count) throws -> CustomerStore {
        let path = NSTemporaryDirectory() + "encore-demo-customers-\(getpid()).csv"
        try csv(count: count).write(toFile: path, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try CustomerStore.load(contentsOf: path, progress: nil)
    }
}
