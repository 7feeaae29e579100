import EncoreModel
import EncoreStore
import Testing

@testable import EncoreEngine

/// Decide with a `request_id` is idempotent: the decision id and the draw are derived from
/// (request id, customer), and the decision is logged once within the window.
@Suite struct IdempotencyTests {
    func engine(logging: Bool) throws -> DecisionEngine {
        let model = try ActiveModel(
            snapshot: try testSnapshot(exploration: .softmax(temperature: 2)),
            catalog: try OfferCatalog(jsonl: testCatalogJSONL), customers: try testCustomers())
        return DecisionEngine(
            configuration: EngineConfiguration(), model: model,
            log: logging ? DecisionLog(threads: 2, ringBytes: 4 << 20) : nil)
    }

    @Test func aRetryGetsTheSameDecisionIDAndPlacements() throws {
        let engine = try engine(logging: false)
        let a = engine.makeWorkspace(threadIndex: 0)
        let b = engine.makeWorkspace(threadIndex: 1)  // a retry may land on another reactor
        let fixture = RequestFixture()
        var first = DecisionOutput()
        var again = DecisionOutput()
        var ids = Set<String>()
        var slates = Set<String>()
        for i in 0..<300 {
            var input = fixture.input(surface: "cart", customer: "u\(i % 40)", slots: 2)
            input.requestID = fixture.bytes("order-\(i)")
            try a.decide(input, into: &first)
            for _ in 0..<3 {
                try b.decide(input, into: &again)
                #expect(again.decisionIDString == first.decisionIDString)
                #expect(again.first == first.first && again.second == first.second)
            }
            #expect(first.decisionIDString.split(separator: "-")[1] == "ff")
            ids.insert(first.decisionIDString)
            slates.insert("\(first.first.offerIndex),\(first.second.offerIndex)")
        }
        // Different request ids get different ids and independent draws (softmax at temperature
        // 2 over four offers: 12 ordered pairs, so 300 decisions repeating one slate would be a bug).
        #expect(ids.count == 300)
        #expect(slates.count >= 6)
    }

    @Test func theSameRequestIDForAnotherCustomerIsAnotherDecision() throws {
        let workspace = try engine(logging: false).makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var x = DecisionOutput()
        var y = DecisionOutput()
        var one = fixture.input(surface: "cart", customer: "u1", slots: 1)
        one.requestID = fixture.bytes("same-request")
        var two = fixture.input(surface: "cart", customer: "u2", slots: 1)
        two.requestID = fixture.bytes("same-request")
        try workspace.decide(one, into: &x)
        try workspace.decide(two, into: &y)
        #expect(x.decisionIDString != y.decisionIDString)
        // Without a request id, every call is its own decision.
        let plain = fixture.input(surface: "cart", customer: "u1", slots: 1)
        try workspace.decide(plain, into: &x)
        try workspace.decide(plain, into: &y)
        #expect(x.decisionIDString != y.decisionIDString)
        #expect(x.decisionIDString.split(separator: "-")[1] == "00")
    }

    @Test func aRetryIsLoggedOnceWithinTheWindow() throws {
        let engine = try engine(logging: true)
        let workspaces = [engine.makeWorkspace(threadIndex: 0), engine.makeWorkspace(threadIndex: 1)]
        let fixture = RequestFixture()
        var output = DecisionOutput()
        let start: Int64 = 1_764_000_000_000
        for i in 0..<200 {
            var input = fixture.input(surface: "cart", customer: "u\(i % 40)", slots: 2)
            input.requestID = fixture.bytes("order-\(i)")
            for retry in 0..<3 {
                input.nowMillis = start + Int64(retry) * 60_000  // retried up to 2 minutes later
                try workspaces[(i + retry) % 2].decide(input, into: &output)
            }
        }
        // Plain requests are all logged.
        for _ in 0..<50 { try workspaces[0].decide(fixture.input(surface: "cart", slots: 1), into: &output) }
        #expect(engine.log!.writtenRecords == 250)
        #expect(engine.requestIDs!.repeats.load(ordering: .relaxed) == 400)
        // After the window (10 minutes by default) the same key is logged again.
        var late = fixture.input(surface: "cart", customer: "u0", slots: 2)
        late.requestID = fixture.bytes("order-0")
        late.nowMillis = start + 11 * 60_000
        try workspaces[0].decide(late, into: &output)
        #expect(engine.log!.writtenRecords == 251)
    }
}

@Suite struct RequestIDTableTests {
    @Test func claimsOnceWithinTheWindowAndAgainAfterIt() {
        let table = RequestIDTable(entries: 1024, windowSeconds: 600)
        let t0: Int64 = 1_764_000_000_000
        #expect(table.claim(0xDEAD_BEEF_0000_1234, nowMillis: t0))
        #expect(!table.claim(0xDEAD_BEEF_0000_1234, nowMillis: t0 + 9 * 60_000))
        #expect(table.claim(0xDEAD_BEEF_0000_1234, nowMillis: t0 + 10 * 60_000))
        // Another key in the same probe window (same low bits, other top bits) is not a repeat.
        #expect(table.claim(0x1234_5678_0000_1234, nowMillis: t0))
        #expect(table.evictions.load(ordering: .relaxed) == 0)
    }

    @Test func forgetsTheOldestWhenAProbeWindowIsFull() {
        let table = RequestIDTable(entries: 1024, windowSeconds: 600)
        let t0: Int64 = 1_764_000_000_000
        // Five keys that all start probing at the same word: the fifth evicts the oldest.
        let keys: [UInt64] = (1...5).map { UInt64($0) << 48 | 7 }
        for (i, key) in keys.enumerated() { #expect(table.claim(key, nowMillis: t0 + Int64(i) * 60_000)) }
        #expect(table.evictions.load(ordering: .relaxed) == 1)
        #expect(table.claim(keys[0], nowMillis: t0 + 5 * 60_000))  // forgotten: logged again
        #expect(!table.claim(keys[4], nowMillis: t0 + 5 * 60_000))
    }
}
