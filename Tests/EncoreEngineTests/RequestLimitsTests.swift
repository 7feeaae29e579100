import EncoreModel
import EncoreStore
import EncoreSupport
import Foundation
import Testing

@testable import EncoreEngine

/// Oversize fields are refused naming the field and the limit (they used to be answered and then
/// dropped from the log as too large); at every limit at once the decision is answered and logged.
@Suite struct RequestLimitsTests {
    /// A request with every field at its limit (or one byte / one entry over, for `over`).
    static func request(_ fixture: RequestFixture, over: String? = nil) -> DecisionInput {
        func text(_ field: String, _ limit: Int) -> UnsafeRawBufferPointer {
            fixture.bytes(String(repeating: "x", count: limit + (over == field ? 1 : 0)))
        }
        var input = fixture.input(surface: "cart", customer: String(repeating: "c", count: 256), slots: 2)
        input.requestID = text("request_id", 256)
        input.orderID = text("order_id", 256)
        input.currency = text("currency", RequestLimits.currencyBytes)
        input.country = text("country", RequestLimits.countryBytes)
        input.channel = text("channel", RequestLimits.channelBytes)
        input.device = text("device", RequestLimits.deviceBytes)
        input.shippingMethod = text("shipping_method", RequestLimits.shippingMethodBytes)
        let itemCount = RequestLimits.lineItems + (over == "items" ? 1 : 0)
        let items = UnsafeMutableBufferPointer<LineItemInput>.allocate(capacity: itemCount)
        let categories = UnsafeMutableBufferPointer<UnsafeRawBufferPointer>.allocate(capacity: itemCount)
        for i in 0..<itemCount {
            let category = text(i == 0 ? "category" : "", RequestLimits.categoryBytes)
            categories[i] = category
            items[i] = LineItemInput(
                sku: text(i == 0 ? "sku" : "", RequestLimits.skuBytes), category: category, priceCents: 100,
                quantity: 1)
        }
        fixture.pointers.append(UnsafeMutableRawBufferPointer(items))
        fixture.pointers.append(UnsafeMutableRawBufferPointer(categories))
        input.items = UnsafeBufferPointer(items)
        input.categories = UnsafeBufferPointer(categories)
        input.itemCount = itemCount
        let keys = (0..<128).map { i in
            String(format: "%03d", i) + String(repeating: "k", count: RequestLimits.featureKeyBytes - 3)
                + (over == "feature key" && i == 5 ? "k" : "")
        }
        input.featureKeys = fixture.list(keys)
        input.featureValues = fixture.values(keys.map { _ in 1.5 })
        return input
    }

    @Test func everyFieldAtItsLimitIsAnsweredAndLogged() throws {
        let model = try ActiveModel(
            snapshot: try testSnapshot(), catalog: try OfferCatalog(jsonl: testCatalogJSONL),
            customers: try testCustomers())
        let log = DecisionLog(threads: 1)
        let engine = DecisionEngine(configuration: EngineConfiguration(), model: model, log: log)
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        try workspace.decide(Self.request(fixture), into: &output)
        #expect(output.placementCount == 2)
        #expect(log.droppedRecords == 0, "a decision at every limit did not fit a log record")
        #expect(log.writtenRecords == 1)
    }

    @Test func eachFieldOverItsLimitIsRefusedNamingTheFieldAndTheLimit() throws {
        let workspace = try makeEngine(snapshot: try testSnapshot()).makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        let cases: [(over: String, prefix: String, limit: Int)] = [
            ("currency", "order.currency:", RequestLimits.currencyBytes),
            ("country", "order.country:", RequestLimits.countryBytes),
            ("channel", "order.channel:", RequestLimits.channelBytes),
            ("device", "order.device:", RequestLimits.deviceBytes),
            ("shipping_method", "order.shipping_method:", RequestLimits.shippingMethodBytes),
            ("sku", "order.items.sku:", RequestLimits.skuBytes),
            ("category", "order.items.category:", RequestLimits.categoryBytes),
            ("items", "order.items:", RequestLimits.lineItems),
            ("feature key", "features:", RequestLimits.featureKeyBytes),
            ("request_id", "request_id:", RequestLimits.idBytes),
            ("order_id", "order.order_id:", RequestLimits.idBytes),
        ]
        for (over, prefix, limit) in cases {
            do {
                try workspace.decide(Self.request(fixture, over: over), into: &output)
                Issue.record("\(over) over its limit was accepted")
            } catch {
                let message = error.message.description
                #expect(error.code == .invalidArgument)
                #expect(message.hasPrefix(prefix), "\(over): \(message)")
                #expect(message.contains(" \(limit) "), "\(over): the message does not name the limit: \(message)")
            }
        }
        // A request that names more line items than the decoder stored is refused too.
        var input = fixture.input()
        input.itemCount = RequestLimits.lineItems + 1
        #expect(throws: EngineError.self) { try workspace.decide(input, into: &output) }
    }

    /// Each limit is defined once (`RequestLimits`); its static message must name that number.
    @Test func theSharedMessagesNameTheirLimits() {
        let messages: [(StaticString, Int)] = [
            (RequestLimits.candidatesMessage, RequestLimits.candidates),
            (RequestLimits.featuresMessage, RequestLimits.features),
            (RequestLimits.customerIDMessage, RequestLimits.idBytes),
            (RequestLimits.requestIDMessage, RequestLimits.idBytes),
            (RequestLimits.orderIDMessage, RequestLimits.idBytes),
            (RequestLimits.candidateIDMessage, RequestLimits.idBytes),
        ]
        for (message, limit) in messages {
            #expect(message.description.contains(" \(limit) "), "\(message) does not name \(limit)")
        }
    }
}
