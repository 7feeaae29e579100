import EncoreCrypto
import EncoreModel
import EncoreStore
import Foundation
import Testing

@testable import EncoreEngine

/// Decision ids carry a MAC (SipHash-2-4 of their first 43 bytes under the engine's key): only
/// ids this engine, or one holding a key it lists, issued verify.
@Suite struct DecisionIDTests {
    static let keyA = SipHash24.Key(hex: "00112233445566778899aabbccddeeff")!
    static let keyB = SipHash24.Key(hex: "f0e1d2c3b4a5968778695a4b3c2d1e0f")!

    func engine(key: SipHash24.Key?, previous: [SipHash24.Key] = [], instance: UInt64? = 0x5eed_0000_0001) throws
        -> DecisionEngine
    {
        var configuration = EngineConfiguration()
        configuration.decisionKey = key
        configuration.previousDecisionKeys = previous
        configuration.instanceID = instance
        let model = try ActiveModel(
            snapshot: try testSnapshot(), catalog: try OfferCatalog(jsonl: testCatalogJSONL),
            customers: try testCustomers())
        return DecisionEngine(configuration: configuration, model: model)
    }

    func decide(_ engine: DecisionEngine, customer: String = "u12", requestID: String? = nil, thread: Int = 2) throws
        -> DecisionOutput
    {
        let f = RequestFixture()
        var input = f.input(customer: customer, slots: 2)
        if let requestID { input.requestID = f.bytes(requestID) }
        var out = DecisionOutput()
        try engine.makeWorkspace(threadIndex: thread).decide(input, into: &out)
        return out
    }

    func verifies(_ engine: DecisionEngine, _ id: String) -> Bool {
        Array(id.utf8).withUnsafeBytes { engine.verifyDecisionID($0) }
    }

    @Test func anIssuedIDHasTheMACOfItsBodyAndVerifies() throws {
        let engine = try engine(key: DecisionIDTests.keyA)
        let id = try decide(engine).decisionIDString
        #expect(id.utf8.count == DecisionID.length)
        let fields = id.split(separator: "-")
        #expect(fields.map(\.count) == [12, 2, 10, 16, 16])
        let body = Array(id.utf8.prefix(DecisionID.bodyLength))
        let mac = body.withUnsafeBytes { SipHash24.hash($0, key: DecisionIDTests.keyA) }
        let hex = String(mac, radix: 16)
        #expect(String(fields[4]) == String(repeating: "0", count: 16 - hex.count) + hex)
        #expect(verifies(engine, id))
        #expect(
            Array(id.utf8).withUnsafeBytes { DecisionEngine.customerKey(fromDecisionID: $0) }
                == CustomerCounters.key("u12"))
    }

    @Test func aForgedIDIsRefused() throws {
        let engine = try engine(key: DecisionIDTests.keyA)
        let id = try decide(engine).decisionIDString
        let body = String(id.prefix(DecisionID.bodyLength))
        // A made-up MAC, every single-digit change of the real one, the legacy 43-byte form,
        // truncations and other formats.
        #expect(!verifies(engine, body + "-0123456789abcdef"))
        let mac = Array(id.utf8.suffix(16))
        for i in 0..<16 {
            var changed = mac
            changed[i] = changed[i] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
            #expect(!verifies(engine, body + "-" + String(decoding: changed, as: UTF8.self)), "digit \(i)")
        }
        #expect(!verifies(engine, id.uppercased()))
        for other in [body, String(id.dropLast()), id + "0", "d", "", String(repeating: "0", count: 60)] {
            #expect(!verifies(engine, other), "\(other)")
        }
    }

    @Test func anIDWhoseCustomerPartWasEditedIsRefused() throws {
        let engine = try engine(key: DecisionIDTests.keyA)
        let mine = try decide(engine, customer: "u12").decisionIDString
        let theirs = try decide(engine, customer: "u13").decisionIDString
        #expect(verifies(engine, mine) && verifies(engine, theirs))
        // Splice u13's customer key into u12's id (keeping u12's MAC): refused.
        var fields = mine.split(separator: "-").map(String.init)
        fields[3] = String(theirs.split(separator: "-")[3])
        let forged = fields.joined(separator: "-")
        #expect(
            Array(forged.utf8).withUnsafeBytes { DecisionEngine.customerKey(fromDecisionID: $0) }
                == CustomerCounters.key("u13"))
        #expect(!verifies(engine, forged))
    }

    @Test func rotationKeepsIDsUnderThePreviousKeyVerifying() throws {
        let before = try engine(key: DecisionIDTests.keyA)
        let old = try decide(before).decisionIDString
        let rotated = try engine(key: DecisionIDTests.keyB, previous: [DecisionIDTests.keyA])
        let new = try decide(rotated, customer: "u40").decisionIDString
        #expect(verifies(rotated, old), "an id issued under the previous key still verifies")
        #expect(verifies(rotated, new))
        #expect(!verifies(before, new), "the old key does not verify ids of the new one")
        // Once the previous key is dropped (or under an unrelated key), the old id is refused.
        let after = try engine(key: DecisionIDTests.keyB)
        #expect(!verifies(after, old))
        #expect(verifies(after, new))
        let unrelated = try engine(key: SipHash24.Key(k0: 1, k1: 2), previous: [SipHash24.Key(k0: 3, k1: 4)])
        #expect(!verifies(unrelated, old) && !verifies(unrelated, new))
        // Without a configured key each engine draws its own.
        let random1 = try engine(key: nil)
        let random2 = try engine(key: nil)
        #expect(random1.decisionKey != random2.decisionKey)
        #expect(!verifies(random2, try decide(random1).decisionIDString))
    }

    @Test func idempotentIDsVerifyAndRepeatUnderTheSameKey() throws {
        let first = try engine(key: DecisionIDTests.keyA)
        let second = try engine(key: DecisionIDTests.keyA)
        let a = try decide(first, requestID: "req-1", thread: 0).decisionIDString
        let b = try decide(second, requestID: "req-1", thread: 1).decisionIDString
        #expect(a == b, "derived from (request id, customer): the same id on any thread and engine sharing the key")
        #expect(a.split(separator: "-")[1] == "ff")
        #expect(verifies(first, a) && verifies(second, a))
    }

    @Test func theKeyDoesNotChangeTheDraws() throws {
        // The draw is seeded from the id's body, so two keys give the same placements (and a
        // replay of a logged id reproduces them).
        for customer in ["u1", "u2", "u3", "u77", "cold-start"] {
            let x = try decide(try engine(key: DecisionIDTests.keyA), customer: customer)
            let y = try decide(try engine(key: DecisionIDTests.keyB), customer: customer)
            #expect(x.decisionIDString.prefix(43) == y.decisionIDString.prefix(43))
            #expect(x.decisionIDString != y.decisionIDString)
            #expect(x.placementCount == y.placementCount && x.first == y.first && x.second == y.second)
        }
    }
}
