/// Byte and count limits of a decision request's fields, defined once here for the wire decoder
/// (how much it stores), the engine (what it refuses) and their messages, and documented in
/// Protocol/PROTOCOL.md ("Request field limits"). A request over any of them is refused with
/// INVALID_ARGUMENT naming the field and the limit. Together they bound the request's share of a
/// decision log record (about 46 KiB at every limit at once, under `DecisionLog.maxRecordBytes`),
/// so a decision that is answered is also logged instead of being dropped as too large.
///
/// The messages are static strings (building one allocates nothing); `RequestLimitsTests` holds
/// each message's number to its constant. Everything is `@inlinable` so other modules fold the
/// numbers into their code (a stored `static let` would be a lazy global behind an accessor call
/// on every use, measurable in the decision's instruction count).
public enum RequestLimits {
    /// `candidate_offer_ids` entries.
    @inlinable public static var candidates: Int { 64 }
    @inlinable public static var candidatesMessage: StaticString { "candidate_offer_ids: more than 64 candidates" }
    /// `features` entries (distinct keys).
    @inlinable public static var features: Int { 128 }
    @inlinable public static var featuresMessage: StaticString { "features: more than 128 entries" }
    /// `customer_id`, `request_id`, `order.order_id` and each candidate offer id, in bytes.
    @inlinable public static var idBytes: Int { 256 }
    @inlinable public static var customerIDMessage: StaticString { "customer_id: longer than 256 bytes" }
    @inlinable public static var requestIDMessage: StaticString { "request_id: longer than 256 bytes" }
    @inlinable public static var orderIDMessage: StaticString { "order.order_id: longer than 256 bytes" }
    @inlinable public static var candidateIDMessage: StaticString {
        "candidate_offer_ids: an id is longer than 256 bytes"
    }
    /// `order.currency` (ISO 4217 codes are 3 bytes).
    @inlinable public static var currencyBytes: Int { 16 }
    /// `order.country` (ISO 3166-1 alpha-2 codes are 2 bytes).
    @inlinable public static var countryBytes: Int { 16 }
    /// `order.channel`.
    @inlinable public static var channelBytes: Int { 64 }
    /// `order.device`.
    @inlinable public static var deviceBytes: Int { 64 }
    /// `order.shipping_method`.
    @inlinable public static var shippingMethodBytes: Int { 64 }
    /// `order.items[].sku`.
    @inlinable public static var skuBytes: Int { 64 }
    /// `order.items[].category`.
    @inlinable public static var categoryBytes: Int { 128 }
    /// A `features` map key.
    @inlinable public static var featureKeyBytes: Int { 128 }
    /// `order.items` entries (more are refused, never silently truncated).
    @inlinable public static var lineItems: Int { 128 }
    /// `OutcomeRequest.revenue_cents`: revenue in minor currency units, 0 to 10^11 (a billion
    /// dollars, euros or ten billion yen); negative revenue (refunds) is not an outcome.
    @inlinable public static var revenueCents: ClosedRange<Int64> { 0...100_000_000_000 }
}
