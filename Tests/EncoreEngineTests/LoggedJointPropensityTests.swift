import EncoreModel
import EncoreStore
import Foundation
import Testing

@testable import EncoreEngine
@testable import EncoreServer

/// The two-slot joint propensity through the whole log path: the workspace decides with logging
/// on, the binary record leaves the ring, the log writer's formatter turns it into the JSON line
/// of docs/logs.md, and the line parses back. The joint must be the product of the two logged
/// per-slot propensities (slot 1's conditional on slot 0), exactly as the engine computed it.
@Suite struct LoggedJointPropensityTests {
    @Test func loggedJointIsTheProductOfTheSlotPropensities() throws {
        let snapshot = try testSnapshot(exploration: .squareCB(gamma: 20))
        let model = try ActiveModel(
            snapshot: snapshot, catalog: try OfferCatalog(jsonl: testCatalogJSONL), customers: try testCustomers())
        let log = DecisionLog(threads: 1, ringBytes: 4 << 20)
        let engine = DecisionEngine(configuration: EngineConfiguration(), model: model, log: log)
        let workspace = engine.makeWorkspace(threadIndex: 0)
        let fixture = RequestFixture()
        var output = DecisionOutput()
        var served: [(first: Double, second: Double, joint: Double)] = []
        for i in 0..<300 {
            let input = fixture.input(surface: "cart", customer: "u\(i % 50)", slots: 2, gift: i % 3 == 0)
            try workspace.decide(input, into: &output)
            #expect(output.placementCount == 2)
            served.append((output.first.propensity, output.second.propensity, output.jointPropensity))
        }

        var formatter = DecisionRecordFormatter()
        var text = JSONLineBuffer(capacity: 1 << 20)
        defer { text.deallocate() }
        var scratch = [UInt8](repeating: 0, count: DecisionLog.maxRecordBytes)
        _ = log.rings[0].drain(into: &scratch) { record in formatter.appendDecision(record, to: &text) }
        let lines = String(decoding: text.bytes, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == served.count)

        struct Placement: Decodable {
            var slot: Int
            var propensity: Double
        }
        struct Line: Decodable {
            var placements: [Placement]
            var joint_propensity: Double
        }
        var jointBelowFirst = 0
        for (line, want) in zip(lines, served) {
            // JSONDecoder, not JSONSerialization: the latter does not parse every double back to
            // the nearest value.
            let object = try JSONDecoder().decode(Line.self, from: Data(line.utf8))
            #expect(object.placements.count == 2)
            let p0 = try #require(object.placements.first { $0.slot == 0 }?.propensity)
            let p1 = try #require(object.placements.first { $0.slot == 1 }?.propensity)
            let joint = object.joint_propensity
            // Exact: the log writes shortest round-trip decimals, so every double parses back bit
            // for bit.
            #expect(p0 == want.first && p1 == want.second && joint == want.joint)
            #expect(joint == p0 * p1, "joint \(joint) vs \(p0) x \(p1)")
            #expect(p1 < 1 && joint < p0)
            if joint < p0 { jointBelowFirst += 1 }
        }
        // Three or more offers are eligible on cart, so slot 1's conditional propensity is below 1
        // and a joint logged as slot 0's propensity (or slot 1's) would fail above.
        #expect(jointBelowFirst == served.count)
    }
}
