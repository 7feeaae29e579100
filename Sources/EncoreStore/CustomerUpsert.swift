/// One record of an `UpsertCustomers` batch.
///
/// For a customer already in the store (base or overlay), named features replace the current
/// values and unnamed ones keep theirs; `segments` replaces the segment set when non-nil. For a
/// new customer, unnamed features are 0 (as a missing value in a file) and nil `segments` is
/// the empty set.
public struct CustomerUpsert: Sendable, Hashable {
    /// The longest accepted customer id, in UTF-8 bytes.
    public static let maxIDBytes = 1024

    /// The customer id (non-empty, at most `maxIDBytes` UTF-8 bytes).
    public var customerID: String
    /// The new segment names, or nil to keep the current ones.
    public var segments: [String]?
    /// Feature values by name; every name must be one of the store's `featureNames`, every
    /// value finite.
    public var features: [String: Float]

    /// Creates an upsert record.
    public init(customerID: String, segments: [String]? = nil, features: [String: Float] = [:]) {
        self.customerID = customerID
        self.segments = segments
        self.features = features
    }
}

/// What `CustomerTable.upsert` did.
public struct CustomerUpsertResult: Sendable, Hashable {
    /// Records applied (the batch size).
    public var applied: Int
    /// Customers that were in neither the base nor the overlay before this batch.
    public var inserted: Int
    /// Customers in the overlay after this batch (bounded by `CustomerTable.maxOverlayCount`).
    public var overlayCount: Int
    /// The generation number published by this batch.
    public var generation: UInt64
}

/// What a reader sees for one customer id; `features` is valid until the same reader's next
/// call (the reader keeps the generation it came from alive until then).
public struct CustomerView {
    /// Where the record came from.
    public enum Source: Sendable, Hashable {
        /// The loaded file (`CustomerStore`).
        case base
        /// An upsert (`CustomerTable.upsert`).
        case overlay
        /// Unknown id: cold start, `defaultFeatures` and no segments.
        case unknown
    }

    /// Where the record came from.
    public let source: Source
    /// The feature vector in `featureNames` order (the defaults for an unknown customer).
    public let features: UnsafeBufferPointer<Float>
    /// The segment bitmask (bit `i` is the generation's `segmentNames[i]`); 0 when unknown.
    public let segments: UInt64

    /// Whether the id was found (in the overlay or the base).
    public var isKnown: Bool { source != .unknown }
}
