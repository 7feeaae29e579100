import ArgumentParser
import EncoreClient
import EncoreProtocol
import EncoreTransport
import Foundation
import SwiftProtobuf

/// `encore decide`: asks a running server for a decision and prints it.
struct DecideCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decide", abstract: "Ask a running Encore server for a decision and print it.")

    @Option(help: "Server address.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port = 50051
    @Option(help: "Transaction moment: cart, payment, thank_you, confirmation, email.") var surface: String
    @Option(name: .customLong("customer"), help: "Customer id (demo customers: c000001 ... c100000).")
    var customerID: String
    @Option(help: "Offers wanted: 1 or 2.") var slots: UInt32 = 1
    @Option(help: "Order total in cents.") var totalCents: Int64 = 5_000
    @Option(help: "Line-item category (repeatable).") var category: [String] = []
    @Option(help: "Shipping method.") var shipping = "standard"
    @Option(help: "Channel (web, app, ...).") var channel = "web"
    @Option(help: "Device.") var device = "desktop"
    @Option(help: "Country (ISO 3166-1 alpha-2).") var country = "US"
    @Flag(help: "The order is a gift.") var gift = false
    @Option(name: .customLong("candidate"), help: "Restrict to these offer ids (repeatable).") var candidates:
        [String] = []
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @OptionGroup var credentials: Credentials

    func run() throws {
        var request = Encore_V1_DecideRequest()
        request.surface = surface
        request.customerID = customerID
        request.slots = slots
        request.candidateOfferIds = candidates
        request.requestID = UUID().uuidString
        var order = Encore_V1_Order()
        order.orderID = "cli-\(UInt32.random(in: 0...UInt32.max))"
        order.totalCents = totalCents
        order.currency = "USD"
        order.shippingMethod = shipping
        order.channel = channel
        order.device = device
        order.country = country
        order.isGift = gift
        let categories = category.isEmpty ? ["general"] : category
        order.items = categories.enumerated().map { i, c in
            var item = Encore_V1_LineItem()
            item.sku = "sku-\(i + 1)"
            item.category = c
            item.priceCents = totalCents / Int64(categories.count)
            item.quantity = 1
            return item
        }
        request.order = order
        let response: Encore_V1_DecideResponse
        do {
            let client = try credentials.client(host: host, port: port)
            // The load balancer's routing key (Protocol/PROTOCOL.md, deploy/haproxy): the same
            // customer reaches the same replica, which holds that customer's rule counters.
            client.metadata += [("x-encore-customer", customerID)]
            response = try Encore_V1_DecideResponse(
                serializedBytes: try client.unary("/encore.v1.Decisions/Decide", try request.serializedBytes()))
        } catch let status as GRPCStatus {
            throw CLIError("Decide failed: \(status)")
        }
        if json {
            print(try response.jsonString())
            return
        }
        print("decision \(response.decisionID)  model \(response.modelVersion)")
        print("customer \(customerID) on \(surface), order \(Double(totalCents) / 100) USD\(gift ? ", gift" : "")")
        if response.holdout {
            print("  holdout: this customer is in the control group and gets no offer")
        } else if response.placements.isEmpty {
            print("  no eligible offer")
        }
        for p in response.placements {
            let name = p.offerID.padding(toLength: 26, withPad: " ", startingAt: 0)
            print(
                "  slot \(p.slot): \(name) propensity \(fmt(p.propensity))  expected value \(fmt(p.expectedValue))  score \(fmt(p.score))"
            )
        }
    }

    private func fmt(_ v: Double) -> String { String(format: "%.4f", v) }
}

/// An error printed as one line, exit code 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
