/// The offset and length of a field's bytes inside the request buffer that was passed to a
/// decoder's `decode(_:)`. Spans borrow nothing: resolve them against that same buffer, while it
/// is still alive, with ``bytes(in:)``.
public struct ByteSpan: Sendable, Equatable, Hashable {
    /// Offset of the first byte, in bytes from the start of the decoded buffer.
    public var start: Int32
    /// Length in bytes.
    public var count: Int32

    /// Creates a span of `count` bytes starting at byte offset `start`.
    @inlinable
    public init(start: Int32, count: Int32) {
        self.start = start
        self.count = count
    }

    /// The span of an absent or empty field: zero bytes at offset 0.
    public static let empty = ByteSpan(start: 0, count: 0)

    /// Whether the span covers no bytes (an absent field or an empty string).
    @inlinable
    public var isEmpty: Bool { count == 0 }

    /// The bytes this span covers inside `buffer`, which must be the buffer that was decoded
    /// (or one at least as long holding the same bytes). The view borrows `buffer`'s memory.
    @inlinable
    public func bytes(in buffer: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        precondition(Int(start) + Int(count) <= buffer.count, "ByteSpan outside the decoded buffer")
        return UnsafeRawBufferPointer(rebasing: buffer[Int(start)..<Int(start) + Int(count)])
    }
}

/// One `encore.v1.LineItem` decoded by ``DecideRequestDecoder``.
public struct DecodedLineItem: Sendable, Equatable {
    /// `sku` (field 1): UTF-8 bytes, validated.
    public var sku: ByteSpan
    /// `category` (field 2): UTF-8 bytes, validated.
    public var category: ByteSpan
    /// `price_cents` (field 3): unit price in minor currency units (cents); may be negative.
    public var priceCents: Int64
    /// `quantity` (field 4): number of units.
    public var quantity: UInt32

    /// Creates a line item; every field defaults to its proto3 default.
    @inlinable
    public init(sku: ByteSpan = .empty, category: ByteSpan = .empty, priceCents: Int64 = 0, quantity: UInt32 = 0) {
        self.sku = sku
        self.category = category
        self.priceCents = priceCents
        self.quantity = quantity
    }
}

/// One entry of `DecideRequest.features` (`map<string, double>`) decoded by
/// ``DecideRequestDecoder``.
public struct DecodedFeature: Sendable, Equatable {
    /// The map key: UTF-8 bytes, validated; empty when the entry had no key.
    public var key: ByteSpan
    /// The map value (any bit pattern, NaN and infinities included); 0 when the entry had none.
    public var value: Double

    /// Creates a feature entry.
    @inlinable
    public init(key: ByteSpan, value: Double) {
        self.key = key
        self.value = value
    }
}
