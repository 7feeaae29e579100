import EncoreProtocol
import SwiftProtobuf

/// The Decide hot codec (EncoreProtocol): DecideRequestDecoder.decode of a realistic request
/// (3 line items, 4 request features, 2 candidate ids) and DecideResponseEncoder.encode of a
/// 2-placement response into a reused [UInt8].
public final class CodecWorkload: @unchecked Sendable {
    /// The serialized DecideRequest.
    public let request: UnsafeRawBufferPointer
    /// The decoder, holding the last decoded request.
    public private(set) var decoder = DecideRequestDecoder()
    let decisionID: UnsafeRawBufferPointer
    let modelVersion: UnsafeRawBufferPointer
    let placements: UnsafeBufferPointer<PlacementFields>
    /// The last encoded DecideResponse.
    public private(set) var out: [UInt8] = []

    /// Serializes the request with SwiftProtobuf, decodes and encodes once (buffers reach their
    /// working size). Throws when serialization or decoding fails.
    public init() throws {
        let arena = ByteArena()
        request = arena.bytes(try Self.requestBytes())
        decisionID = arena.utf8("3f9a1c2b7d4e-0-000000000001")
        modelVersion = arena.utf8("bench-50x64-1")
        placements = arena.array([
            PlacementFields(
                offerID: arena.utf8("offer_07"), slot: 0, propensity: 0.8125, score: -1.75, expectedValue: 142.5),
            PlacementFields(
                offerID: arena.utf8("offer_12"), slot: 1, propensity: 0.0625, score: -2.5, expectedValue: 61.25),
        ])
        try decoder.decode(request)
        precondition(decoder.itemCount == 3 && decoder.featureCount == 4 && decoder.candidateCount == 2)
        encode()
        out.reserveCapacity(out.count * 2)
    }

    /// A realistic DecideRequest, serialized with SwiftProtobuf.
    public static func requestBytes() throws -> [UInt8] {
        var order = Encore_V1_Order()
        order.orderID = "order-20261120-000123"
        order.totalCents = 12_999
        order.currency = "USD"
        order.shippingMethod = "express"
        order.channel = "web"
        order.device = "mobile"
        order.country = "US"
        order.items = [
            ("sku-1001", "electronics", 8_999, 1), ("sku-2002", "home", 2_000, 1),
            ("sku-1003", "electronics", 1_000, 2),
        ]
        .map { sku, category, price, quantity in
            var item = Encore_V1_LineItem()
            item.sku = sku
            item.category = category
            item.priceCents = Int64(price)
            item.quantity = UInt32(quantity)
            return item
        }
        var request = Encore_V1_DecideRequest()
        request.surface = "thank_you"
        request.customerID = "cust_100071"
        request.requestID = "req-7f3a9c2e-0001"
        request.order = order
        request.slots = 2
        request.candidateOfferIds = ["offer_07", "offer_12"]
        request.features = ["session_pages": 7, "cart_age_s": 312, "promo_seen": 1, "loyalty_points": 1_250]
        return try request.serializedBytes()
    }

    /// Decodes the request once.
    @inline(__always)
    public func decode() throws(DecodeError) {
        try decoder.decode(request)
    }

    /// Encodes the response once into the reused buffer.
    @inline(__always)
    public func encode() {
        out.removeAll(keepingCapacity: true)
        DecideResponseEncoder.encode(
            decisionID: decisionID, placements: placements, modelVersion: modelVersion, holdout: false, into: &out)
    }
}
