import EncoreProtocol
import SwiftProtobuf
import Testing

@testable import EncoreBench

@Suite struct RequestPoolTests {
    func decode(_ body: UnsafeRawBufferPointer) throws -> Encore_V1_DecideRequest {
        let length = Int(body[1]) << 24 | Int(body[2]) << 16 | Int(body[3]) << 8 | Int(body[4])
        #expect(body[0] == 0)
        #expect(length == body.count - 5)
        return try Encore_V1_DecideRequest(serializedBytes: Array(body[5...]))
    }

    @Test func variedRequestsAreFramedAndCoverSurfacesSlotsAndCustomers() throws {
        let pool = try RequestPool(decideRequests: 1024, seed: 1)
        #expect(pool.count == 1024)
        var surfaces = Set<String>()
        var slots = Set<UInt32>()
        var customers = Set<String>()
        var categories = Set<String>()
        var itemCounts = Set<Int>()
        var requestIDs = Set<String>()
        var orderIDs = Set<String>()
        for i in 0..<pool.count {
            let r = try decode(pool.body(i))
            surfaces.insert(r.surface)
            slots.insert(r.slots)
            customers.insert(r.customerID)
            requestIDs.insert(r.requestID)
            orderIDs.insert(r.order.orderID)
            itemCounts.insert(r.order.items.count)
            for item in r.order.items { categories.insert(item.category) }
            #expect(r.order.totalCents == r.order.items.reduce(0) { $0 + $1.priceCents * Int64($1.quantity) })
            #expect(r.order.currency == "USD")
        }
        #expect(surfaces == Set(RequestPool.surfaces))
        #expect(slots == [1, 2])
        #expect(customers.count > 1000)
        #expect(customers.contains { $0.hasPrefix("bench-new-") })
        #expect(requestIDs == [""])  // every call a new decision (a repeated request_id is a retry)
        #expect(orderIDs.count == 1024)
        #expect(itemCounts == [1, 2, 3, 4])
        #expect(categories.count == RequestPool.categories.count)
    }

    @Test func sameSeedSameBytesOtherSeedOtherBytes() throws {
        let a = try RequestPool(decideRequests: 64, seed: 7)
        let b = try RequestPool(decideRequests: 64, seed: 7)
        let c = try RequestPool(decideRequests: 64, seed: 8)
        #expect((0..<64).allSatisfy { Array(a.body($0)) == Array(b.body($0)) })
        #expect(!(0..<64).allSatisfy { Array(a.body($0)) == Array(c.body($0)) })
    }

    @Test func framedBodiesAreKeptVerbatimAndCycled() {
        let pool = RequestPool(framedBodies: [[0, 0, 0, 0, 1, 9], [0, 0, 0, 0, 0]])
        #expect(pool.count == 2)
        #expect(Array(pool.body(0)) == [0, 0, 0, 0, 1, 9])
        #expect(Array(pool.body(1)) == [0, 0, 0, 0, 0])
        #expect(Array(pool.body(4)) == [0, 0, 0, 0, 1, 9])
        #expect(RequestPool.frame([1, 2, 3]) == [0, 0, 0, 0, 3, 1, 2, 3])
    }
}
