import EncoreFuzzTargets
import EncoreProtocol
import SwiftProtobuf
import Testing

/// Targeted cases for ``DecideRequestDecoder``: defaults, merge rules, limits and the corners of
/// SwiftProtobuf's wire rules, each checked against SwiftProtobuf as well as by value.
@Suite struct DecideRequestDecoderTests {
    /// Decodes `bytes`, returning the decoder or the error.
    func decode(_ bytes: [UInt8]) -> Result<DecideRequestDecoder, DecodeError> {
        var decoder = DecideRequestDecoder()
        return bytes.withUnsafeBytes { buffer in
            do throws(DecodeError) {
                try decoder.decode(buffer)
                return .success(decoder)
            } catch {
                return .failure(error)
            }
        }
    }

    /// Asserts that the decoder and SwiftProtobuf agree on `bytes` (verdict and values) and
    /// returns SwiftProtobuf's verdict.
    @discardableResult
    func expectParity(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        var decoder = DecideRequestDecoder()
        let result = differentialDecide(bytes, &decoder)
        #expect(result.swiftProtobufAccepted == result.decoderAccepted, "\(bytes)", sourceLocation: sourceLocation)
        #expect(result.mismatch == nil, "\(result.mismatch ?? "")", sourceLocation: sourceLocation)
        return result.swiftProtobufAccepted
    }

    /// The `features` entry body for one key and value.
    func entry(_ key: String, _ value: Double) -> [UInt8] {
        var rng = SplitMix64(seed: 0)
        var builder = WireBuilder()
        builder.lengthDelimited(1, Array(key.utf8), &rng)
        builder.fixed64Field(2, value.bitPattern, &rng)
        return builder.bytes
    }

    @Test func emptyInputDecodesToDefaults() throws {
        var decoder = DecideRequestDecoder()
        try decoder.decode(UnsafeRawBufferPointer(start: nil, count: 0))
        #expect(decoder.surface == .empty && decoder.slots == 0 && !decoder.hasOrder && !decoder.isGift)
        #expect(decoder.candidates.isEmpty && decoder.items.isEmpty && decoder.features.isEmpty)
        #expect(decoder.candidateCount == 0 && decoder.itemCount == 0 && decoder.featureCount == 0)
        expectParity([])
    }

    @Test func decodesSwiftProtobufSerialization() throws {
        var message = Encore_V1_DecideRequest()
        message.surface = "cart"
        message.customerID = "c-42 ✓"
        message.slots = 2
        message.candidateOfferIds = ["gift_box", "rush_shipping"]
        message.features = ["basket_size": 3, "tenure_days": -0.0, "nan": .nan]
        message.requestID = "r-1"
        message.order.orderID = "o-1"
        message.order.totalCents = Int64.min
        message.order.currency = "EUR"
        message.order.items = [
            .with {
                $0.sku = "sku-1"; $0.category = "shoes"; $0.priceCents = 4999; $0.quantity = .max
            }
        ]
        message.order.isGift = true
        let bytes: [UInt8] = try message.serializedBytes()
        let decoder = try decode(bytes).get()
        #expect(decoder.slots == 2 && decoder.totalCents == Int64.min && decoder.isGift && decoder.hasOrder)
        #expect(decoder.items.first?.quantity == UInt32.max && decoder.items.first?.priceCents == 4999)
        #expect(decoder.candidateCount == 2 && decoder.featureCount == 3)
        bytes.withUnsafeBytes { buffer in
            #expect(Array(decoder.surface.bytes(in: buffer)) == Array("cart".utf8))
            #expect(decideRequestMismatch(decoder, message, buffer) == nil)
        }
    }

    @Test func lastValueWinsRepeatedFieldsAppendAndOrdersMerge() throws {
        var rng = SplitMix64(seed: 1)
        var first = WireBuilder()
        first.varintField(2, 100, &rng)
        first.lengthDelimited(3, Array("USD".utf8), &rng)
        first.lengthDelimited(4, [0x0A, 0x01, 0x61], &rng)
        var second = WireBuilder()
        second.varintField(2, 200, &rng)
        second.lengthDelimited(4, [0x0A, 0x01, 0x62], &rng)
        var message = WireBuilder()
        message.lengthDelimited(1, Array("cart".utf8), &rng)
        message.lengthDelimited(3, first.bytes, &rng)
        message.lengthDelimited(6, entry("k", 1), &rng)
        message.lengthDelimited(1, Array("email".utf8), &rng)
        message.lengthDelimited(6, entry("j", 3), &rng)
        message.lengthDelimited(3, second.bytes, &rng)
        message.lengthDelimited(6, entry("k", 2), &rng)
        let decoder = try decode(message.bytes).get()
        #expect(decoder.totalCents == 200 && decoder.itemCount == 2 && decoder.featureCount == 2)
        #expect(decoder.features.map(\.value) == [2, 3])
        message.bytes.withUnsafeBytes { buffer in
            #expect(Array(decoder.surface.bytes(in: buffer)) == Array("email".utf8))
            #expect(Array(decoder.currency.bytes(in: buffer)) == Array("USD".utf8))
        }
        expectParity(message.bytes)
    }

    @Test func truncatesOversizedUInt32AndKeepsNegativeInt64() throws {
        var rng = SplitMix64(seed: 2)
        var message = WireBuilder()
        message.varintField(4, 1 << 32 | 5, &rng)
        message.lengthDelimited(3, [0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], &rng)
        let decoder = try decode(message.bytes).get()
        #expect(decoder.slots == 5 && decoder.totalCents == -1)
        expectParity(message.bytes)
    }

    @Test func varintLengthRulesMatchSwiftProtobuf() {
        // Tenth byte with high bits set but no continuation: accepted (bits past 64 dropped).
        #expect(expectParity([0x20] + Array(repeating: 0xFF, count: 9) + [0x7F]))
        // Eleven bytes: rejected.
        #expect(!expectParity([0x20] + Array(repeating: 0x80, count: 10) + [0x00]))
        // Five-byte over-long key accepted at message level, six-byte one rejected...
        #expect(expectParity([0xA0, 0x80, 0x80, 0x80, 0x00, 0x02]))
        #expect(!expectParity([0xA0, 0x80, 0x80, 0x80, 0x80, 0x00, 0x02]))
        // ...but inside a map entry keys are plain varints, so six bytes are fine there.
        #expect(expectParity([0x32, 0x0E, 0x91, 0x80, 0x80, 0x80, 0x80, 0x00] + [0, 0, 0, 0, 0, 0, 0xF0, 0x3F]))
        // Field number 0, wire types 6 and 7, a stray end-group: rejected.
        for bytes: [UInt8] in [[0x00, 0x01], [0x0E], [0x0F], [0x0C], [0x32, 0x01, 0x0C]] {
            #expect(!expectParity(bytes))
        }
    }

    @Test func keyOrValueWithWrongWireTypeInMapEntryMatchesSwiftProtobuf() throws {
        // SwiftProtobuf ignores a map key/value with an unexpected wire type without consuming
        // its payload, so the payload is read as the next key. 0x08 (key as varint) followed by
        // 0x11 (value, fixed64) therefore decodes to key "" and the 8-byte value.
        let accepted: [[UInt8]] = [
            [0x32, 0x0A, 0x08, 0x11, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F],
            [0x32, 0x06, 0x15, 0x0A, 0x02, 0x68, 0x69, 0x10],  // value as fixed32, then key "hi", then 0x10
            [0x32, 0x02, 0x0B, 0x08],  // key as start-group: not a group here
        ]
        for bytes in accepted { #expect(expectParity(bytes)) }
        let decoder = try decode(accepted[0]).get()
        #expect(decoder.features == [DecodedFeature(key: .empty, value: 1)])
        for bytes: [UInt8] in [[0x32, 0x02, 0x08, 0x05], [0x32, 0x02, 0x10, 0x00], [0x32, 0x01, 0x0C]] {
            #expect(!expectParity(bytes))
        }
    }

    /// `depth` nested unknown groups (field 100).
    func nestedGroups(_ depth: Int) -> [UInt8] {
        Array(repeating: [0xA3, 0x06], count: depth).flatMap { $0 }
            + Array(repeating: [0xA4, 0x06], count: depth).flatMap { $0 }
    }

    @Test(arguments: [97, 98, 99, 100, 101])
    func groupNestingLimitMatchesSwiftProtobuf(depth: Int) {
        var rng = SplitMix64(seed: 3)
        let groups = nestedGroups(depth)
        var order = WireBuilder()
        order.lengthDelimited(3, groups, &rng)
        var item = WireBuilder()
        item.lengthDelimited(4, groups, &rng)
        var inItem = WireBuilder()
        inItem.lengthDelimited(3, item.bytes, &rng)
        var inEntry = WireBuilder()
        inEntry.lengthDelimited(6, groups, &rng)
        let top = expectParity(groups)
        let inOrder = expectParity(order.bytes)
        let inLineItem = expectParity(inItem.bytes)
        let inMapEntry = expectParity(inEntry.bytes)
        // SwiftProtobuf allows 100 levels; the top message, order and item each take one.
        #expect(top == (depth <= 99) && inMapEntry == (depth <= 99))
        #expect(inOrder == (depth <= 98) && inLineItem == (depth <= 97))
    }

    @Test func mismatchedOrUnterminatedGroupsAreRejected() {
        #expect(!expectParity([0xA3, 0x06, 0xAC, 0x06]))  // ends group 101 inside group 100
        #expect(!expectParity([0xA3, 0x06, 0x08, 0x01]))  // never ends
        #expect(expectParity([0xA3, 0x06, 0x08, 0x01, 0x0A, 0x00, 0xA4, 0x06]))
    }

    @Test func invalidUTF8IsRejectedNamingTheField() throws {
        var rng = SplitMix64(seed: 4)
        var item = WireBuilder()
        item.lengthDelimited(1, [0x61, 0xC0, 0x80], &rng)
        var order = WireBuilder()
        order.lengthDelimited(4, item.bytes, &rng)
        var message = WireBuilder()
        message.lengthDelimited(3, order.bytes, &rng)
        #expect(!expectParity(message.bytes))
        guard case .failure(let error) = decode(message.bytes) else {
            Issue.record("accepted invalid UTF-8")
            return
        }
        #expect(error == DecodeError("DecideRequest.order.items.sku", .invalidUTF8))
        #expect(error.message == "DecideRequest.order.items.sku: invalid UTF-8")
        for surrogate: [UInt8] in [[0x0A, 0x03, 0xED, 0xA0, 0x80], [0x0A, 0x02, 0xC1, 0xBF], [0x0A, 0x01, 0xFF]] {
            #expect(!expectParity(surrogate))
        }
    }

    @Test func truncationNamesTheMessage() {
        guard case .failure(let error) = decode([0x1A, 0x02, 0x22, 0x05]) else {
            Issue.record("accepted a truncated item")
            return
        }
        #expect(error.message == "DecideRequest.order.items: truncated")
    }

    @Test func countsButDoesNotStoreBeyondCapacity() throws {
        var rng = SplitMix64(seed: 5)
        var message = WireBuilder()
        for index in 0..<70 { message.lengthDelimited(5, Array("o\(index)".utf8), &rng) }
        var order = WireBuilder()
        for _ in 0..<130 { order.lengthDelimited(4, [0x20, 0x01], &rng) }
        message.lengthDelimited(3, order.bytes, &rng)
        for index in 0..<140 { message.lengthDelimited(6, entry("f\(index)", Double(index)), &rng) }
        message.lengthDelimited(6, entry("f0", -1), &rng)
        var decoder = try decode(message.bytes).get()
        #expect(decoder.candidateCount == 70 && decoder.candidates.count == DecideRequestDecoder.maxStoredCandidates)
        #expect(decoder.itemCount == 130 && decoder.items.count == DecideRequestDecoder.maxStoredItems)
        #expect(decoder.featureCount > DecideRequestDecoder.maxStoredFeatures)
        #expect(decoder.features.count == DecideRequestDecoder.maxStoredFeatures && decoder.features[0].value == -1)
        expectParity(message.bytes)

        // Reuse: a second decode resets everything and keeps the reserved capacity.
        let capacities = (decoder.candidates.capacity, decoder.items.capacity, decoder.features.capacity)
        try ([0x20, 0x01] as [UInt8]).withUnsafeBytes { try decoder.decode($0) }
        #expect(
            decoder.slots == 1 && decoder.candidateCount == 0 && decoder.itemCount == 0 && decoder.featureCount == 0)
        #expect(decoder.candidates.isEmpty && decoder.items.isEmpty && decoder.features.isEmpty && !decoder.hasOrder)
        #expect(capacities == (decoder.candidates.capacity, decoder.items.capacity, decoder.features.capacity))
    }

    @Test func reservesCapacityAtInit() {
        let decoder = DecideRequestDecoder()
        #expect(decoder.candidates.capacity >= DecideRequestDecoder.maxStoredCandidates)
        #expect(decoder.items.capacity >= DecideRequestDecoder.maxStoredItems)
        #expect(decoder.features.capacity >= DecideRequestDecoder.maxStoredFeatures)
    }
}
