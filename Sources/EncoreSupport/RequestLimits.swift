/// Byte and count limits of a decision request's fields, defined once here for the wire decoder
/// (how much it stores), the engine (what it refuses) and their messages, and documented in
/// Protocol/PROTOCOL.md ("Request field limits"). A request over any of them is refused with
/// INVALID_ARGUMENT naming the field and the limit. Together they bound the request's share of a
/// decision log record (about 46 KiB at every limit at once, under `DecisionLog.maxRecordBytes`),
/// so a decision that is answered is also logged instead of being dropped as too large.
///
/// The messages are static strings (building one allocates nothing); `RequestLimitsTests` holds
/// each message's number to its constant.
public enum RequestLimits {
    /// `candidate_offer_ids` entries.
    public static let candidates = 64
    public static let candidatesMessage: StaticString = "candidate_offer_ids: more than 64 candidates"
    /// `features` entries (distinct keys).
    public static let features = 128
    public static let featuresMessage: StaticString = "features: more than 128 entries"
    /// `customer_id`, `request_id`, `order.order_id` and each candidate offer id, in bytes.
    public static let idBytes = 256
    public static let customerIDMessage: StaticString = "customer_id: longer than 256 bytes"
    public static let requestIDMessage: StaticString = "request_id: longer than 256 bytes"
    public static let orderIDMessage: StaticString = "order.order_id: longer than 256 bytes"
    public static let candidateIDMessage: StaticString = "candidate_offer_ids: an id is longer than 256 bytes"
    /// `order.currency` (ISO 4217 codes are 3 bytes).
    public static let currencyBytes = 16
    /// `order.country` (ISO 3166-1 alpha-2 codes are 2 bytes).
    public static let countryBytes = 16
    /// `order.channel`.
    public static let channelBytes = 64
    /// `order.device`.
    public static let deviceBytes = 64
    /// `order.shipping_method`.
    public static let shippingMethodBytes = 64
    /// `order.items[].sku`.
    public static let skuBytes = 64
    /// `order.items[].category`.
    public static let categoryBytes = 128
    /// A `features` map key.
    public static let featureKeyBytes = 128
    /// `order.items` entries (more are refused, never silently truncated).
    public static let lineItems = 128
    /// `OutcomeRequest.revenue_cents`: revenue in minor currency units, 0 to 10^11 (a billion
    /// dollars, euros or ten billion yen); negative revenue (refunds) is not an outcome.
    public static let revenueCents: ClosedRange<Int64> = 0...100_000_000_000
}
