import EncoreSupport

/// A reusable, allocation-free decoder for `encore.v1.DecideRequest` wire bytes, for the Decide
/// hot path. Its verdicts and values match SwiftProtobuf's `Encore_V1_DecideRequest(serializedBytes:)`
/// exactly (proto3 rules): the last occurrence of a scalar or string field wins, repeated fields
/// append, repeated `order` fields merge (later scalars override, items append), a repeated map
/// key replaces the earlier value, unknown fields (and known fields sent with another wire type)
/// are skipped, groups are skipped with SwiftProtobuf's depth limit, strings must be valid UTF-8,
/// and empty input decodes to all defaults.
///
/// Strings are not copied: each is a ``ByteSpan`` into the buffer passed to ``decode(_:)``.
///
/// Allocation: `init()` reserves every array to its maximum stored count, and `decode(_:)` only
/// empties them with `removeAll(keepingCapacity: true)` and appends below that capacity, so
/// steady-state decoding never allocates. Keep the decoder uniquely owned (do not hold copies of
/// its arrays across a `decode` call) or copy-on-write would allocate.
public struct DecideRequestDecoder {
    /// How many `candidate_offer_ids` are stored; more are counted in ``candidateCount`` only.
    /// (`RequestLimits`: the engine refuses more, so storing more would be wasted.)
    public static let maxStoredCandidates = RequestLimits.candidates
    /// How many `order.items` are stored; more are counted in ``itemCount`` only.
    public static let maxStoredItems = RequestLimits.lineItems
    /// How many distinct `features` keys are stored; see ``featureCount``.
    public static let maxStoredFeatures = RequestLimits.features

    /// `surface` (field 1).
    public private(set) var surface = ByteSpan.empty
    /// `customer_id` (field 2).
    public private(set) var customerID = ByteSpan.empty
    /// `request_id` (field 7).
    public private(set) var requestID = ByteSpan.empty
    /// `slots` (field 4), truncated to its low 32 bits like SwiftProtobuf; 0 when absent.
    public private(set) var slots: UInt32 = 0
    /// Whether an `order` field (field 3) was present, even an empty one.
    public private(set) var hasOrder = false
    /// `order.order_id`.
    public private(set) var orderID = ByteSpan.empty
    /// `order.currency` (ISO 4217 code bytes).
    public private(set) var currency = ByteSpan.empty
    /// `order.shipping_method`.
    public private(set) var shippingMethod = ByteSpan.empty
    /// `order.channel`.
    public private(set) var channel = ByteSpan.empty
    /// `order.device`.
    public private(set) var device = ByteSpan.empty
    /// `order.country` (ISO 3166-1 alpha-2 code bytes).
    public private(set) var country = ByteSpan.empty
    /// `order.total_cents`: order total in minor currency units (cents); may be negative.
    public private(set) var totalCents: Int64 = 0
    /// `order.is_gift`.
    public private(set) var isGift = false
    /// The first ``maxStoredCandidates`` `candidate_offer_ids`, in wire order.
    public private(set) var candidates: [ByteSpan] = []
    /// How many `candidate_offer_ids` the request held (stored or not).
    public private(set) var candidateCount = 0
    /// The first ``maxStoredItems`` `order.items`, in wire order (across merged `order` fields).
    public private(set) var items: [DecodedLineItem] = []
    /// How many `order.items` the request held (stored or not).
    public private(set) var itemCount = 0
    /// The `features` map: one entry per distinct key, in order of first appearance, each with
    /// the last value sent for it. At most ``maxStoredFeatures`` entries.
    public private(set) var features: [DecodedFeature] = []
    /// The number of distinct `features` keys. Exact while it is at most ``maxStoredFeatures``;
    /// past that, entries are no longer de-duplicated against keys that were not stored, so the
    /// count is an upper bound. `featureCount > maxStoredFeatures` exactly when the request has
    /// more distinct keys than are stored.
    public private(set) var featureCount = 0

    /// Creates a decoder with capacity reserved for the maximum stored counts.
    public init() {
        candidates.reserveCapacity(Self.maxStoredCandidates)
        items.reserveCapacity(Self.maxStoredItems)
        features.reserveCapacity(Self.maxStoredFeatures)
    }

    /// Decodes one serialized `DecideRequest`, replacing everything a previous call decoded.
    /// Spans refer to `bytes`. Never allocates (see the type's documentation).
    ///
    /// - Throws: ``DecodeError`` naming the field, whenever SwiftProtobuf would reject the bytes,
    ///   and for inputs of 2 GiB or more. After a throw the decoded values are unspecified.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer) throws(DecodeError) {
        reset()
        guard bytes.count < Int(Int32.max) else { throw DecodeError("DecideRequest", .inputTooLarge) }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var cursor = WireCursor(base: base, offset: 0, end: bytes.count)
        // SwiftProtobuf spends one level of its depth limit on the top-level message.
        let depthBudget = WireCursor.depthLimit - 1
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.readMessageKey("DecideRequest")
            switch (number, wire) {
            case (1, WireCursor.Wire.lengthDelimited):
                surface = try cursor.readString("DecideRequest.surface")
            case (2, WireCursor.Wire.lengthDelimited):
                customerID = try cursor.readString("DecideRequest.customer_id")
            case (3, WireCursor.Wire.lengthDelimited):
                let (start, count) = try cursor.readLengthDelimited("DecideRequest.order")
                hasOrder = true
                var order = WireCursor(base: base, offset: start, end: start + count)
                try decodeOrder(&order, depthBudget: depthBudget - 1)
            case (4, WireCursor.Wire.varint):
                slots = UInt32(truncatingIfNeeded: try cursor.readVarint("DecideRequest.slots"))
            case (5, WireCursor.Wire.lengthDelimited):
                let candidate = try cursor.readString("DecideRequest.candidate_offer_ids")
                if candidates.count < Self.maxStoredCandidates { candidates.append(candidate) }
                candidateCount += 1
            case (6, WireCursor.Wire.lengthDelimited):
                let (start, count) = try cursor.readLengthDelimited("DecideRequest.features")
                var entry = WireCursor(base: base, offset: start, end: start + count)
                try decodeFeature(&entry, depthBudget: depthBudget)
            case (7, WireCursor.Wire.lengthDelimited):
                requestID = try cursor.readString("DecideRequest.request_id")
            default:
                try cursor.skipValue(number: number, wire: wire, depthBudget: depthBudget, "DecideRequest")
            }
        }
    }

    /// Restores every field to its default, keeping array capacity.
    private mutating func reset() {
        surface = .empty
        customerID = .empty
        requestID = .empty
        slots = 0
        hasOrder = false
        orderID = .empty
        currency = .empty
        shippingMethod = .empty
        channel = .empty
        device = .empty
        country = .empty
        totalCents = 0
        isGift = false
        candidates.removeAll(keepingCapacity: true)
        candidateCount = 0
        items.removeAll(keepingCapacity: true)
        itemCount = 0
        features.removeAll(keepingCapacity: true)
        featureCount = 0
    }

    /// Merges one `Order` message body into the order fields.
    private mutating func decodeOrder(_ cursor: inout WireCursor, depthBudget: Int) throws(DecodeError) {
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.readMessageKey("DecideRequest.order")
            switch (number, wire) {
            case (1, WireCursor.Wire.lengthDelimited):
                orderID = try cursor.readString("DecideRequest.order.order_id")
            case (2, WireCursor.Wire.varint):
                totalCents = Int64(bitPattern: try cursor.readVarint("DecideRequest.order.total_cents"))
            case (3, WireCursor.Wire.lengthDelimited):
                currency = try cursor.readString("DecideRequest.order.currency")
            case (4, WireCursor.Wire.lengthDelimited):
                let (start, count) = try cursor.readLengthDelimited("DecideRequest.order.items")
                var item = WireCursor(base: cursor.base, offset: start, end: start + count)
                let decoded = try Self.decodeLineItem(&item, depthBudget: depthBudget - 1)
                if items.count < Self.maxStoredItems { items.append(decoded) }
                itemCount += 1
            case (5, WireCursor.Wire.lengthDelimited):
                shippingMethod = try cursor.readString("DecideRequest.order.shipping_method")
            case (6, WireCursor.Wire.lengthDelimited):
                channel = try cursor.readString("DecideRequest.order.channel")
            case (7, WireCursor.Wire.lengthDelimited):
                device = try cursor.readString("DecideRequest.order.device")
            case (8, WireCursor.Wire.lengthDelimited):
                country = try cursor.readString("DecideRequest.order.country")
            case (9, WireCursor.Wire.varint):
                isGift = try cursor.readVarint("DecideRequest.order.is_gift") != 0
            default:
                try cursor.skipValue(number: number, wire: wire, depthBudget: depthBudget, "DecideRequest.order")
            }
        }
    }

    /// Decodes one `LineItem` message body.
    private static func decodeLineItem(
        _ cursor: inout WireCursor,
        depthBudget: Int
    ) throws(DecodeError) -> DecodedLineItem {
        var item = DecodedLineItem()
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.readMessageKey("DecideRequest.order.items")
            switch (number, wire) {
            case (1, WireCursor.Wire.lengthDelimited):
                item.sku = try cursor.readString("DecideRequest.order.items.sku")
            case (2, WireCursor.Wire.lengthDelimited):
                item.category = try cursor.readString("DecideRequest.order.items.category")
            case (3, WireCursor.Wire.varint):
                item.priceCents = Int64(bitPattern: try cursor.readVarint("DecideRequest.order.items.price_cents"))
            case (4, WireCursor.Wire.varint):
                item.quantity = UInt32(truncatingIfNeeded: try cursor.readVarint("DecideRequest.order.items.quantity"))
            default:
                try cursor.skipValue(
                    number: number,
                    wire: wire,
                    depthBudget: depthBudget,
                    "DecideRequest.order.items"
                )
            }
        }
        return item
    }

    /// Decodes one `features` map entry and inserts it (a repeated key replaces the value).
    ///
    /// This follows SwiftProtobuf's `decodeMapField` to the letter: keys inside an entry are read
    /// as plain varints, an end-group key is an error, and a key or value field sent with another
    /// wire type is ignored *without consuming its payload* (the payload is then read as the next
    /// key), while other fields are skipped. An entry does not spend a level of the depth limit.
    private mutating func decodeFeature(_ cursor: inout WireCursor, depthBudget: Int) throws(DecodeError) {
        var key = ByteSpan.empty
        var value = 0.0
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.readLooseKey("DecideRequest.features")
            guard wire != WireCursor.Wire.endGroup else { throw DecodeError("DecideRequest.features", .malformedTag) }
            switch number {
            case 1:
                if wire == WireCursor.Wire.lengthDelimited { key = try cursor.readString("DecideRequest.features.key") }
            case 2:
                if wire == WireCursor.Wire.fixed64 {
                    value = Double(bitPattern: try cursor.readFixed64("DecideRequest.features.value"))
                }
            default:
                try cursor.skipValue(number: number, wire: wire, depthBudget: depthBudget, "DecideRequest.features")
            }
        }
        let base = cursor.base
        for index in features.indices where Self.equalBytes(base, features[index].key, key) {
            features[index].value = value
            return
        }
        if features.count < Self.maxStoredFeatures { features.append(DecodedFeature(key: key, value: value)) }
        featureCount += 1
    }

    /// Whether two spans of the buffer at `base` hold the same bytes.
    @inline(__always)
    private static func equalBytes(_ base: UnsafeRawPointer, _ a: ByteSpan, _ b: ByteSpan) -> Bool {
        guard a.count == b.count else { return false }
        if a.start == b.start { return true }
        let left = base + Int(a.start)
        let right = base + Int(b.start)
        let count = Int(a.count)
        var index = 0
        while count - index >= 8 {
            guard
                left.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    == right.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            else { return false }
            index += 8
        }
        while index < count {
            guard left.load(fromByteOffset: index, as: UInt8.self) == right.load(fromByteOffset: index, as: UInt8.self)
            else { return false }
            index += 1
        }
        return true
    }
}
