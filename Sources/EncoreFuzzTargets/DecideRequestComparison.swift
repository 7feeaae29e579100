import EncoreProtocol
import SwiftProtobuf

/// Compares what ``DecideRequestDecoder`` decoded from `bytes` with SwiftProtobuf's message for
/// the same bytes; returns a description of the first difference, or nil when they agree.
public func decideRequestMismatch(
    _ decoder: DecideRequestDecoder,
    _ message: Encore_V1_DecideRequest,
    _ bytes: UnsafeRawBufferPointer
) -> String? {
    func resolve(_ span: ByteSpan) -> [UInt8] { Array(span.bytes(in: bytes)) }
    func same(_ span: ByteSpan, _ string: String) -> Bool { resolve(span) == Array(string.utf8) }

    let order = message.order
    let strings: [(String, ByteSpan, String)] = [
        ("surface", decoder.surface, message.surface),
        ("customer_id", decoder.customerID, message.customerID),
        ("request_id", decoder.requestID, message.requestID),
        ("order.order_id", decoder.orderID, order.orderID),
        ("order.currency", decoder.currency, order.currency),
        ("order.shipping_method", decoder.shippingMethod, order.shippingMethod),
        ("order.channel", decoder.channel, order.channel),
        ("order.device", decoder.device, order.device),
        ("order.country", decoder.country, order.country),
    ]
    for (name, span, expected) in strings where !same(span, expected) {
        return "\(name): \(resolve(span)) != \(Array(expected.utf8))"
    }
    if decoder.slots != message.slots { return "slots: \(decoder.slots) != \(message.slots)" }
    if decoder.hasOrder != message.hasOrder { return "hasOrder: \(decoder.hasOrder) != \(message.hasOrder)" }
    if decoder.totalCents != order.totalCents { return "total_cents: \(decoder.totalCents) != \(order.totalCents)" }
    if decoder.isGift != order.isGift { return "is_gift: \(decoder.isGift) != \(order.isGift)" }

    let candidates = message.candidateOfferIds
    if decoder.candidateCount != candidates.count {
        return "candidate count \(decoder.candidateCount) != \(candidates.count)"
    }
    if decoder.candidates.count != min(candidates.count, DecideRequestDecoder.maxStoredCandidates) {
        return "stored candidates \(decoder.candidates.count)"
    }
    for (index, span) in decoder.candidates.enumerated() where !same(span, candidates[index]) {
        return "candidate \(index): \(resolve(span)) != \(Array(candidates[index].utf8))"
    }

    let items = order.items
    if decoder.itemCount != items.count { return "item count \(decoder.itemCount) != \(items.count)" }
    if decoder.items.count != min(items.count, DecideRequestDecoder.maxStoredItems) {
        return "stored items \(decoder.items.count)"
    }
    for (index, item) in decoder.items.enumerated() {
        let expected = items[index]
        guard same(item.sku, expected.sku), same(item.category, expected.category),
            item.priceCents == expected.priceCents, item.quantity == expected.quantity
        else { return "item \(index): \(item) != \(expected)" }
    }

    var decoded: [[UInt8]: UInt64] = [:]
    for feature in decoder.features {
        let key = resolve(feature.key)
        if decoded[key] != nil { return "feature key stored twice: \(key)" }
        decoded[key] = feature.value.bitPattern
    }
    var expected: [[UInt8]: UInt64] = [:]
    for (key, value) in message.features { expected[Array(key.utf8)] = value.bitPattern }
    if expected.count <= DecideRequestDecoder.maxStoredFeatures {
        if decoder.featureCount != expected.count {
            return "feature count \(decoder.featureCount) != \(expected.count)"
        }
        if decoded != expected { return "features \(decoded) != \(expected)" }
    } else {
        if decoder.featureCount <= DecideRequestDecoder.maxStoredFeatures { return "feature overflow not reported" }
        if decoded.count != DecideRequestDecoder.maxStoredFeatures { return "stored features \(decoded.count)" }
        for (key, value) in decoded where expected[key] != value { return "feature \(key) differs" }
    }
    return nil
}

/// Decodes `bytes` with SwiftProtobuf and with `decoder`; returns whether each accepted them and
/// the first value difference when both did. Shared by the differential unit tests
/// (EncoreProtocolTests) and the `decide-request` fuzz target.
public func differentialDecide(
    _ bytes: [UInt8],
    _ decoder: inout DecideRequestDecoder
) -> (swiftProtobufAccepted: Bool, decoderAccepted: Bool, mismatch: String?) {
    let message = try? Encore_V1_DecideRequest(serializedBytes: bytes)
    return bytes.withUnsafeBytes { buffer in
        var accepted = true
        do { try decoder.decode(buffer) } catch { accepted = false }
        guard let message, accepted else { return (message != nil, accepted, nil) }
        return (true, true, decideRequestMismatch(decoder, message, buffer))
    }
}
