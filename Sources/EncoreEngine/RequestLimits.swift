/// Byte and count limits of a decision request's fields, defined once here and documented in
/// Protocol/PROTOCOL.md ("Request field limits"). A request over any of them is refused with
/// INVALID_ARGUMENT naming the field and the limit. Together with the id limits of
/// `EngineConfiguration` they bound the request's share of a decision log record (about 46 KiB
/// at every limit at once, under `DecisionLog.maxRecordBytes`), so a decision that is answered
/// is also logged instead of being dropped as too large.
public enum RequestLimits {
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
