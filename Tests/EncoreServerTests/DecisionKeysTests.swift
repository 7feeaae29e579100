import EncoreCrypto
import EncoreEngine
import EncoreModel
import EncoreProtocol
import EncoreStore
import EncoreSupport
import Foundation
import SwiftProtobuf
import Testing

@testable import EncoreServer
@testable import EncoreTransport

/// ReportOutcome refuses decision ids that do not verify (before counters, budgets and logs),
/// and the server's decision keys come from a key file, the state file, or a fresh draw.
@Suite struct OutcomeVerificationTests {
    static let catalog = """
        {"offer_id": "partner", "budget": {"daily_shows": 5}, "decline_suppression_days": 30}
        {"offer_id": "plain"}
        """

    func engine() throws -> DecisionEngine {
        let model = try ActiveModel(
            snapshot: nil, catalog: try OfferCatalog(jsonl: OutcomeVerificationTests.catalog),
            customers: try CustomerStore.empty())
        return DecisionEngine(
            configuration: EngineConfiguration(), model: model, log: DecisionLog(threads: 1, ringBytes: 1 << 16))
    }

    func request(_ id: String, _ offer: String, _ outcome: Encore_V1_Outcome) throws -> [UInt8] {
        var r = Encore_V1_OutcomeRequest()
        r.decisionID = id
        r.offerID = offer
        r.outcome = outcome
        return try Array(r.serializedBytes() as [UInt8])
    }

    func report(_ recorder: OutcomeRecorder, _ id: String, _ offer: String, _ outcome: Encore_V1_Outcome) throws
        -> GRPCStatus
    {
        try request(id, offer, outcome).withUnsafeBytes { recorder.report($0, thread: 0) }
    }

    func decisionID(_ engine: DecisionEngine, customer: String) throws -> String {
        let customerBytes = Array(customer.utf8)
        return try customerBytes.withUnsafeBytes { c in
            try Array("cart".utf8).withUnsafeBytes { s in
                var input = DecisionInput()
                input.surface = s
                input.customerID = c
                var out = DecisionOutput()
                try engine.makeWorkspace(threadIndex: 0).decide(input, into: &out)
                return out.decisionIDString
            }
        }
    }

    @Test func forgedOutcomesAreRefusedCountedAndNeverSpendABudget() throws {
        let engine = try engine()
        let recorder = OutcomeRecorder(engine: engine)
        let partner = engine.active.value.catalog.index(of: "partner")
        let genuine = try decisionID(engine, customer: "c1")
        let logged = engine.log!.rings[0].pendingBytes  // the decision record
        let body = String(genuine.prefix(DecisionID.bodyLength))
        var forged = [
            "d", genuine.uppercased(), body, body + "-0000000000000000",
            "5f0c1a2b3c4d-01-0000000001-0123456789abcdef-0123456789abcdef",
        ]
        for i in 0..<200 { forged.append(String(format: "%012x-00-%010x-%016x-%016x", i, i, i * 7919, i * 104_729)) }
        for id in forged {
            let status = try report(recorder, id, "partner", .shown)
            #expect(status.code == .invalidArgument, "\(id)")
            #expect(status.message.string.hasPrefix("decision_id:"))
        }
        #expect(engine.unverifiedOutcomes.load(ordering: .relaxed) == forged.count)
        #expect(engine.budgets.spent(offer: partner, unit: .shows, atSeconds: Int64(time(nil))) == 0)
        #expect(engine.log!.rings[0].pendingBytes == logged, "a refused outcome is not logged")
        // The genuine id is accepted and spends the budget once.
        #expect(try report(recorder, genuine, "partner", .shown).isOK)
        #expect(engine.budgets.spent(offer: partner, unit: .shows, atSeconds: Int64(time(nil))) == 1)
        #expect(engine.log!.rings[0].pendingBytes > logged)
        #expect(engine.unverifiedOutcomes.load(ordering: .relaxed) == forged.count)
    }

    @Test func aDeclineWithAnotherCustomersEditedIDDoesNotSuppressTheirOffer() throws {
        let engine = try engine()
        let recorder = OutcomeRecorder(engine: engine)
        let mine = try decisionID(engine, customer: "attacker")
        let victim = try decisionID(engine, customer: "victim")
        var fields = mine.split(separator: "-").map(String.init)
        fields[3] = String(victim.split(separator: "-")[3])
        let status = try report(recorder, fields.joined(separator: "-"), "partner", .declined)
        #expect(status.code == .invalidArgument)
        #expect(engine.counters.count == 0, "no customer's counters were touched")
        #expect(try report(recorder, victim, "partner", .declined).isOK)
        #expect(engine.counters.count == 1)
    }

    @Test func fieldErrorsComeBeforeTheIDCheck() throws {
        let recorder = OutcomeRecorder(engine: try engine())
        #expect(try report(recorder, "d", "", .shown).message.string.hasPrefix("offer_id"))
        #expect(try report(recorder, "d", "a", .unspecified).message.string.hasPrefix("outcome"))
    }
}

@Suite struct DecisionKeySourceTests {
    func temporary(_ name: String) -> String {
        NSTemporaryDirectory() + "encore-keys-\(UUID().uuidString)-\(name)"
    }

    @Test func aGeneratedKeyIsKeptInTheStateFileAndReadBack() throws {
        var options = EncoreServer.Options()
        let state = temporary("state")
        defer { try? FileManager.default.removeItem(atPath: state) }
        options.stateFile = state
        let first = try DecisionKeys.resolve(options)
        #expect(first.source == .generatedIntoStateFile(state))
        try RuleStateFile.save(
            counters: CustomerCounters(maxCustomers: 16), budgets: OfferBudgets(capacity: 4), offerIDs: [],
            decisionKey: first.stateKey, to: state)
        var info = stat()
        #expect(stat(state, &info) == 0 && info.st_mode & 0o777 == 0o600, "the state file holds a secret")
        let second = try DecisionKeys.resolve(options)
        #expect(second.source == .stateFile(state))
        #expect(second.current == first.current)
        // Without a state file every start draws a new key.
        let bare = try DecisionKeys.resolve(EncoreServer.Options())
        #expect(bare.source == .generated && bare.stateKey == nil)
        #expect(bare.current != first.current)
    }

    @Test func aKeyFileWinsAndIsNeverCopiedIntoTheStateFile() throws {
        let keyFile = temporary("key")
        let state = temporary("state")
        defer {
            for p in [keyFile, state] { try? FileManager.default.removeItem(atPath: p) }
        }
        try "00112233445566778899aabbccddeeff\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        let stateKey = SipHash24.Key(k0: 7, k1: 8)
        try RuleStateFile.save(
            counters: CustomerCounters(maxCustomers: 16), budgets: OfferBudgets(capacity: 4), offerIDs: [],
            decisionKey: stateKey, to: state)
        var options = EncoreServer.Options()
        options.decisionKeyFile = keyFile
        options.stateFile = state
        options.previousDecisionKeys = [SipHash24.Key(k0: 1, k1: 2)]
        let keys = try DecisionKeys.resolve(options)
        #expect(keys.current == SipHash24.Key(hex: "00112233445566778899aabbccddeeff"))
        #expect(keys.source == .keyFile(keyFile) && keys.stateKey == nil && keys.replacedStateKey)
        #expect(keys.previous == [SipHash24.Key(k0: 1, k1: 2)])
        #expect(try RuleStateFile.decisionKey(at: state) == stateKey)
    }

    @Test func aBadKeyFileIsAnErrorNamingItWithoutItsContent() throws {
        let keyFile = temporary("key")
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        try "not-a-key-secretvalue".write(toFile: keyFile, atomically: true, encoding: .utf8)
        var options = EncoreServer.Options()
        options.decisionKeyFile = keyFile
        let error = #expect(throws: SetupError.self) { try DecisionKeys.resolve(options) }
        #expect(error?.description.contains(keyFile) == true)
        #expect(error?.description.contains("32 hex digits") == true)
        #expect(error?.description.contains("secretvalue") == false)
        options.decisionKeyFile = temporary("missing")
        #expect(throws: SetupError.self) { try DecisionKeys.resolve(options) }
    }

    @Test func theSecuritySectionParsesAndNamesBadEntriesByIndexOnly() throws {
        let config = try settings(
            """
            {"security": {"decision_key_file": "/k", "previous_decision_keys": ["000102030405060708090a0b0c0d0e0f"],
             "previous_decision_key_files": ["/old"]}}
            """)
        #expect(config.decisionKeyFile == "/k")
        #expect(config.previousDecisionKeys == [SipHash24.Key(hex: "000102030405060708090a0b0c0d0e0f")!])
        #expect(config.previousDecisionKeyFiles == ["/old"])
        let error = #expect(throws: SettingError.self) {
            _ = try settings(#"{"security": {"previous_decision_keys": ["00", "topsecretvalue"]}}"#)
        }
        #expect(error?.description.contains("previous_decision_keys[0]") == true)
        #expect(error?.description.contains("topsecretvalue") == false)
        #expect(throws: SettingError.self) {
            _ = try settings(#"{"security": {"decision_key": "x"}}"#)
        }
    }
}

@Suite struct RuleStateFileKeyTests {
    @Test func aVersionOneFileStillLoadsWithoutAKey() throws {
        // "ENCSTATE", version 1, no offers, no customers, checksum.
        var bytes = Array("ENCSTATE".utf8)
        withUnsafeBytes(of: UInt32(1).littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt32(0).littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt64(0).littleEndian) { bytes += $0 }
        let hash = bytes.withUnsafeBytes { StableHash.hash($0) }
        withUnsafeBytes(of: hash.littleEndian) { bytes += $0 }
        let path = NSTemporaryDirectory() + "encore-state-v1-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(try RuleStateFile.decisionKey(at: path) == nil)
        let summary = try RuleStateFile.load(
            from: path, counters: CustomerCounters(maxCustomers: 16), budgets: OfferBudgets(capacity: 4)
        ) { _ in 0 }
        #expect(summary.customers == 0)
    }
}
