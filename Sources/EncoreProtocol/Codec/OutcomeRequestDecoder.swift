/// A reusable, allocation-free decoder for `encore.v1.OutcomeRequest` wire bytes, with
/// SwiftProtobuf's verdicts and values (proto3: last value wins, unknown fields and known fields
/// with another wire type skipped, strings validated as UTF-8, empty input gives defaults).
/// Strings are ``ByteSpan``s into the buffer passed to ``decode(_:)``.
public struct OutcomeRequestDecoder: Sendable {
    /// `decision_id` (field 1).
    public private(set) var decisionID = ByteSpan.empty
    /// `offer_id` (field 2).
    public private(set) var offerID = ByteSpan.empty
    /// `outcome` (field 3): the raw `encore.v1.Outcome` value (0 unspecified, 1 shown,
    /// 2 accepted, 3 declined, 4 ignored). Values outside the enum are kept as sent (proto3
    /// enums are open), truncated to 32 bits like SwiftProtobuf.
    public private(set) var outcome: Int32 = 0
    /// `revenue_cents` (field 4): revenue in minor currency units (cents); may be negative.
    public private(set) var revenueCents: Int64 = 0

    /// Creates a decoder holding defaults.
    public init() {}

    /// Decodes one serialized `OutcomeRequest`, replacing what a previous call decoded.
    ///
    /// - Throws: ``DecodeError`` naming the field, whenever SwiftProtobuf would reject the bytes,
    ///   and for inputs of 2 GiB or more. After a throw the decoded values are unspecified.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer) throws(DecodeError) {
        self = OutcomeRequestDecoder()
        guard bytes.count < Int(Int32.max) else { throw DecodeError("OutcomeRequest", .inputTooLarge) }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var cursor = WireCursor(base: base, offset: 0, end: bytes.count)
        while !cursor.isAtEnd {
            let (number, wire) = try cursor.readMessageKey("OutcomeRequest")
            switch (number, wire) {
            case (1, WireCursor.Wire.lengthDelimited):
                decisionID = try cursor.readString("OutcomeRequest.decision_id")
            case (2, WireCursor.Wire.lengthDelimited):
                offerID = try cursor.readString("OutcomeRequest.offer_id")
            case (3, WireCursor.Wire.varint):
                outcome = Int32(truncatingIfNeeded: try cursor.readVarint("OutcomeRequest.outcome"))
            case (4, WireCursor.Wire.varint):
                revenueCents = Int64(bitPattern: try cursor.readVarint("OutcomeRequest.revenue_cents"))
            default:
                try cursor.skipValue(
                    number: number,
                    wire: wire,
                    depthBudget: WireCursor.depthLimit - 1,
                    "OutcomeRequest"
                )
            }
        }
    }
}
