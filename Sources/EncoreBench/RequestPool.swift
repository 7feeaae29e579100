import EncoreDemo
import EncoreModel
import EncoreProtocol
import EncoreSupport
import EncoreTransport
import SwiftProtobuf

/// Pre-encoded gRPC request bodies (5-byte prefix + message) that the load generator cycles
/// through, so the send loop never encodes or allocates. The bytes live in one buffer for the
/// pool's lifetime; `body(_:)` returns a view of entry `i % count`.
public final class RequestPool: @unchecked Sendable {
    // Immutable after init; read by every load thread.
    private let storage: UnsafeMutableRawBufferPointer
    private let offsets: [Int]
    /// Number of distinct bodies.
    public var count: Int { offsets.count - 1 }

    /// Surfaces (transaction moments) the demo catalog serves.
    public static let surfaces = ["cart", "payment", "thank_you", "confirmation", "email"]
    static let categories = ["electronics", "apparel", "home", "beauty", "toys", "books", "grocery"]
    static let shippingMethods = ["standard", "express", "pickup"]
    static let channels = ["web", "app"]
    static let devices = ["desktop", "mobile", "tablet"]
    static let countries = ["US", "GB", "DE", "FR", "CA"]

    /// A pool of `count` varied `DecideRequest`s over the embedded demo data: demo customers
    /// (`c000001` ... `c100000`, with some unknown ids), every surface, 1 or 2 slots, orders of 1
    /// to 4 line items across categories, shipping methods, channels, devices, countries and
    /// gift flags. Deterministic for a given `seed`.
    public convenience init(decideRequests count: Int, seed: UInt64 = 1) throws {
        precondition(count > 0, "a request pool needs at least one request")
        var random = SplitMix64(seed: seed)
        var bodies: [[UInt8]] = []
        bodies.reserveCapacity(count)
        for n in 0..<count {
            bodies.append(RequestPool.frame(try RequestPool.decideRequest(n, &random).serializedBytes()))
        }
        self.init(framedBodies: bodies)
    }

    /// A pool of the given bodies, each already gRPC-framed (as `h2load -d` sends them).
    public init(framedBodies: [[UInt8]]) {
        precondition(!framedBodies.isEmpty, "a request pool needs at least one request")
        var offsets = [0]
        for b in framedBodies { offsets.append(offsets.last! + b.count) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, offsets.last!), alignment: 16)
        for (i, b) in framedBodies.enumerated() {
            b.withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: buffer[offsets[i]..<offsets[i + 1]]).copyMemory(from: $0)
            }
        }
        storage = buffer
        self.offsets = offsets
    }

    deinit { storage.deallocate() }

    /// Body `i % count` (valid while the pool lives).
    @inline(__always)
    public func body(_ i: Int) -> UnsafeRawBufferPointer {
        let k = i % count
        return UnsafeRawBufferPointer(rebasing: storage[offsets[k]..<offsets[k + 1]])
    }

    /// Prefixes `message` with the gRPC frame header (uncompressed, 4-byte big-endian length).
    public static func frame(_ message: [UInt8]) -> [UInt8] { GRPCFraming.framed(message) }

    static func decideRequest(_ n: Int, _ random: inout SplitMix64) -> Encore_V1_DecideRequest {
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        var request = Encore_V1_DecideRequest()
        request.surface = pick(surfaces)
        // 2% unknown customers: the engine must handle them too.
        let customer = Int(random.next() % UInt64(DemoCustomers.count)) + 1
        request.customerID = random.next() % 50 == 0 ? "bench-new-\(customer)" : DemoCustomers.id(customer)
        request.slots = random.next() % 3 == 0 ? 2 : 1
        // No request_id: the pool's bodies repeat every `count` calls, and a repeated request_id
        // is a retry of one decision (idempotent, logged once), not a new decision.
        var order = Encore_V1_Order()
        order.orderID = "bench-order-\(n)"
        order.currency = "USD"
        order.shippingMethod = pick(shippingMethods)
        order.channel = pick(channels)
        order.device = pick(devices)
        order.country = pick(countries)
        order.isGift = random.next() % 8 == 0
        let itemCount = Int(random.next() % 4) + 1
        var total: Int64 = 0
        for _ in 0..<itemCount {
            var item = Encore_V1_LineItem()
            item.category = pick(categories)
            item.sku = "\(item.category)-\(random.next() % 500)"
            item.priceCents = Int64(random.next() % 20_000) + 199
            item.quantity = UInt32(random.next() % 3) + 1
            total += item.priceCents * Int64(item.quantity)
            order.items.append(item)
        }
        order.totalCents = total
        request.order = order
        return request
    }
}
