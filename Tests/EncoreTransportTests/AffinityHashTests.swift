import Testing

@testable import EncoreTransport

/// `GRPCCallContext.affinityHash`: FNV-1a 64 (the routing-key comparison of Decide).
@Suite struct AffinityHashTests {
    func hash(_ text: String) -> UInt64 {
        Array(text.utf8).withUnsafeBytes { GRPCCallContext.affinityHash($0) }
    }

    @Test func matchesTheFNV1a64ReferenceValues() {
        // Reference values of the FNV-1a 64-bit hash (offset basis for "", then "a" and "foobar").
        #expect(hash("") == 0xcbf2_9ce4_8422_2325)
        #expect(hash("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(hash("foobar") == 0x8594_4171_f739_67e8)
    }

    @Test func distinguishesNeighbouringCustomerIDs() {
        let ids = (1...10_000).map { "c" + String(repeating: "0", count: 6 - String($0).count) + String($0) }
        #expect(Set(ids.map(hash)).count == ids.count)
    }
}
