import EncoreTransport

/// Bounds of one `Catalog/UpsertOffers` or `Customers/UpsertCustomers` stream (records are held
/// in memory until the stream ends and the batch is applied). A stream that passes either bound
/// is ended at once with RESOURCE_EXHAUSTED naming the limit and its flag, and nothing of it is
/// applied. Documented in Protocol/PROTOCOL.md ("Limits").
public struct UpsertLimits: Sendable, Equatable {
    /// Most records one stream may carry (`--max-upsert-records`).
    public var maxRecords = 100_000
    /// Most message bytes (the records' protobuf encodings, summed) one stream may carry
    /// (`--max-upsert-bytes`).
    public var maxBytes = 64 << 20

    public init() {}

    /// Counts one message of `bytes` bytes against the limits of a stream that has received
    /// `records` records and `total` bytes so far; returns the refusal, or nil.
    func admit(_ bytes: Int, records: Int, total: inout Int, what: String) -> GRPCStatus? {
        guard records < maxRecords else {
            return GRPCStatus(
                .resourceExhausted,
                "more than \(maxRecords) \(what) records in one call (--max-upsert-records); split the upload")
        }
        total += bytes
        guard total <= maxBytes else {
            return GRPCStatus(
                .resourceExhausted,
                "more than \(maxBytes) bytes of \(what) records in one call (--max-upsert-bytes); split the upload")
        }
        return nil
    }
}
