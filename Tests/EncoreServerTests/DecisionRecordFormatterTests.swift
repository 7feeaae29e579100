import Foundation
import Testing

@testable import EncoreEngine
@testable import EncoreServer

/// Builds a binary decision record in the layout `DecisionWorkspace.logDecision` writes.
struct RecordBuilder {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    mutating func string(_ s: String) {
        u16(UInt16(s.utf8.count))
        bytes += s.utf8
    }
}

struct DecisionFixture {
    var namesID: UInt32
    var propensities: [Double] = [1.0 / 3, .leastNonzeroMagnitude]
    var scores: [Double] = [0.1, -.infinity]
    var customerFeatures: [Float] = [1.3863, 0, 3]
    var context: [Float] = [1, 4.8675346, 0, 1e-30]
    /// Bit 0 known customer, 1 holdout, 2 gift, 3 uniform fallback.
    var flags: UInt8 = 1 | 4

    var record: [UInt8] {
        var b = RecordBuilder()
        b.u8(DecisionLog.decisionRecord)
        b.u64(UInt64(1_764_030_000_123))
        b.u32(namesID)
        b.string("d-1")
        b.string("r \"quoted\"")
        b.string("cart")
        b.string("c000042")
        b.u8(flags)
        b.string("o-1")
        b.u64(UInt64(bitPattern: 12900))
        b.string("USD")
        b.string("standard")
        b.string("web")
        b.string("mobile")
        b.string("US")
        b.u16(1)
        b.string("sku\n1")
        b.string("electronics")
        b.u64(UInt64(bitPattern: -5))
        b.u32(2)
        b.u16(1)
        b.string("session_minutes")
        b.f64(4.25)
        b.u64(0b101)  // segments 0 and 2
        b.u16(UInt16(customerFeatures.count))
        customerFeatures.forEach { b.f32($0) }
        b.u16(UInt16(context.count))
        context.forEach { b.f32($0) }
        b.u16(3)
        [2, 0, 7].forEach { b.u32(UInt32($0)) }  // 7 is out of range: "#7"
        b.u8(UInt8(propensities.count))
        for (i, p) in propensities.enumerated() {
            b.u32(UInt32([2, 0][i]))
            b.u32(UInt32(i))
            b.f64(p)
            b.f64(scores[i])
            b.f64(0.5)
        }
        b.f64(propensities.reduce(1, *))
        return b.bytes
    }
}

func formatDecision(_ record: [UInt8]) -> String {
    var formatter = DecisionRecordFormatter()
    var out = JSONLineBuffer(capacity: 64)
    defer { out.deallocate() }
    record.withUnsafeBytes { formatter.appendDecision($0, to: &out) }
    return String(decoding: out.bytes, as: UTF8.self)
}

func parseLine(_ line: String) throws -> [String: Any] {
    try #require(line.hasSuffix("\n") && line.dropLast().firstIndex(of: "\n") == nil, "one line: \(line)")
    return try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
}

/// The exact text of a number field (so the check does not depend on a JSON parser's rounding).
func numberText(_ line: String, after key: String, occurrence: Int = 0) -> String? {
    var rest = Substring(line)
    for _ in 0...occurrence {
        guard let r = rest.range(of: "\"\(key)\": ") else { return nil }
        rest = rest[r.upperBound...]
    }
    return String(rest.prefix { $0 != "," && $0 != "}" })
}

@Suite struct DecisionRecordFormatterTests {
    static let names = LogNames(
        modelVersion: "m-1", exploration: "squarecb(gamma=100.0)", offerIDs: ["gift_box", "socks", "rush"],
        customerFeatureNames: ["orders_log", "app_user", "referrals"], segmentNames: ["new", "repeat", "gift_giver"],
        contextNames: ["bias", "order.total_log", "surface=\"x\""])

    @Test func formatsEveryFieldOfADecision() throws {
        let fixture = DecisionFixture(namesID: LogNameTable.register(Self.names))
        let line = formatDecision(fixture.record)
        let d = try parseLine(line)
        #expect(d["v"] as? Int == 1 && d["type"] as? String == "decision")
        #expect(d["decision_id"] as? String == "d-1" && d["request_id"] as? String == "r \"quoted\"")
        #expect(d["time_ms"] as? Int64 == 1_764_030_000_123)
        #expect(d["known_customer"] as? Bool == true && d["holdout"] as? Bool == false)
        #expect(d["model_version"] as? String == "m-1" && d["exploration"] as? String == "squarecb(gamma=100.0)")
        let order = try #require(d["order"] as? [String: Any])
        #expect(order["is_gift"] as? Bool == true && order["total_cents"] as? Int == 12900)
        let item = try #require((order["items"] as? [[String: Any]])?.first)
        #expect(
            item["sku"] as? String == "sku\n1" && item["price_cents"] as? Int == -5 && item["quantity"] as? Int == 2)
        #expect((d["request_features"] as? [String: Double]) == ["session_minutes": 4.25])
        let customer = try #require(d["customer"] as? [String: Any])
        #expect(customer["segments"] as? [String] == ["new", "gift_giver"])
        #expect(
            Set((customer["features"] as? [String: Any])?.keys ?? [:].keys) == ["orders_log", "app_user", "referrals"])
        let context = try #require(d["context"] as? [String: Any])
        #expect(Set(context.keys) == ["bias", "order.total_log", "surface=\"x\"", "#3"])
        #expect(d["candidates"] as? [String] == ["rush", "gift_box", "#7"])
        let placements = try #require(d["placements"] as? [[String: Any]])
        #expect(placements.map { $0["offer_id"] as? String } == ["rush", "gift_box"])
        #expect(placements.map { $0["slot"] as? Int } == [0, 1])
        // -infinity cannot be JSON: null.
        #expect(placements[1]["score"] is NSNull)
        #expect(d["uniform_fallback"] == nil)
    }

    @Test func marksADecisionThatFellBackToUniform() throws {
        var fixture = DecisionFixture(namesID: LogNameTable.register(Self.names))
        fixture.flags = 1 | 4 | 8
        let d = try parseLine(formatDecision(fixture.record))
        #expect(d["uniform_fallback"] as? Bool == true)
        #expect(d["known_customer"] as? Bool == true && d["holdout"] as? Bool == false)
    }

    @Test func propensitiesAndFeaturesParseBackToTheExactValues() throws {
        let odd: [Double] = [
            1e-300, 0.1, 1.0 / 3, .leastNonzeroMagnitude, .leastNormalMagnitude / 3, 0.8793844706912358,
            1 - .ulpOfOne / 2,
        ]
        for p in odd {
            var fixture = DecisionFixture(namesID: LogNameTable.register(Self.names))
            fixture.propensities = [p, 0.5]
            fixture.customerFeatures = [Float(p), 1.3863, .leastNonzeroMagnitude]
            let line = formatDecision(fixture.record)
            _ = try parseLine(line)
            let propensity = try #require(numberText(line, after: "propensity"))
            #expect(Double(propensity)?.bitPattern == p.bitPattern, "\(propensity) for \(p)")
            let joint = try #require(numberText(line, after: "joint_propensity"))
            #expect(Double(joint) == p * 0.5)
            let orders = try #require(numberText(line, after: "orders_log"))
            #expect(Float(orders) == Float(p), "\(orders) for \(Float(p))")
            #expect(Float(try #require(numberText(line, after: "referrals"))) == .leastNonzeroMagnitude)
        }
    }

    /// The context repeats customer feature values; their text is copied from earlier in the
    /// line and must still be each value's own.
    @Test func contextValuesThatRepeatCustomerFeaturesKeepTheirExactText() throws {
        var fixture = DecisionFixture(namesID: LogNameTable.register(Self.names))
        fixture.customerFeatures = [1.3863, 0.2423, -7.5e-12]
        fixture.context = [0.2423, 1.3863, 1.3864, -7.5e-12]
        let line = formatDecision(fixture.record)
        _ = try parseLine(line)
        let context = try #require(line.range(of: "\"context\": {")).upperBound
        let texts = line[context...].prefix { $0 != "}" }.split(separator: ",").map {
            String($0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces))
        }
        #expect(texts.map { Float($0) } == fixture.context)
        #expect(texts == fixture.context.map(\.description))
    }

    @Test func nonFiniteValuesNeverReachTheFile() throws {
        var fixture = DecisionFixture(namesID: LogNameTable.register(Self.names))
        fixture.propensities = [.nan, .infinity]
        fixture.scores = [-.nan, .signalingNaN]
        fixture.context = [.nan, -.infinity, 1, 2]
        let line = formatDecision(fixture.record)
        _ = try parseLine(line)
        #expect(!line.lowercased().contains("nan") && !line.lowercased().contains("inf"))
    }

    @Test func unknownNamesFallBackToIndices() throws {
        let line = formatDecision(DecisionFixture(namesID: 0).record)
        let d = try parseLine(line)
        #expect(d["model_version"] as? String == "unknown")
        #expect(d["candidates"] as? [String] == ["#2", "#0", "#7"])
        #expect((d["customer"] as? [String: Any])?["segments"] as? [String] == [])
    }

    @Test func malformedRecordBecomesOneErrorLineAndNothingElse() throws {
        let record = DecisionFixture(namesID: LogNameTable.register(Self.names)).record
        for cut in [1, 20, record.count / 2, record.count - 1] {
            let line = formatDecision(Array(record.prefix(cut)))
            let d = try parseLine(line)
            #expect(d["type"] as? String == "error", "cut at \(cut): \(line)")
        }
    }

    @Test func formatsOutcomes() throws {
        var b = RecordBuilder()
        b.u8(DecisionLog.outcomeRecord)
        b.u64(7)
        b.string("d-1")
        b.string("gift_box")
        b.u32(2)
        b.u64(UInt64(bitPattern: -250))
        let formatter = DecisionRecordFormatter()
        var out = JSONLineBuffer(capacity: 8)
        defer { out.deallocate() }
        b.bytes.withUnsafeBytes { formatter.appendOutcome($0, to: &out) }
        let line = String(decoding: out.bytes, as: UTF8.self)
        #expect(
            line
                == "{\"v\": 1, \"type\": \"outcome\", \"decision_id\": \"d-1\", \"offer_id\": \"gift_box\", \"outcome\": \"accepted\", \"revenue_cents\": -250, \"time_ms\": 7}\n"
        )
    }

    @Test func replicaIsTheLastFieldOfEveryRecordAndTheRestIsUnchanged() throws {
        var b = RecordBuilder()
        b.u8(DecisionLog.outcomeRecord)
        b.u64(7)
        b.string("d-1")
        b.string("gift_box")
        b.u32(1)
        b.u64(0)
        let plain = DecisionRecordFormatter()
        let named = DecisionRecordFormatter(replica: "eu \"1\"")
        var out = JSONLineBuffer(capacity: 8)
        defer { out.deallocate() }
        b.bytes.withUnsafeBytes { plain.appendOutcome($0, to: &out) }
        let without = String(decoding: out.bytes, as: UTF8.self)
        out.truncate(to: 0)
        b.bytes.withUnsafeBytes { named.appendOutcome($0, to: &out) }
        let with = String(decoding: out.bytes, as: UTF8.self)
        #expect(with == String(without.dropLast(2)) + ", \"replica\": \"eu \\\"1\\\"\"}\n")

        let fixture = DecisionFixture(namesID: LogNameTable.register(Self.names))
        var decisionFormatter = DecisionRecordFormatter(replica: "r2")
        out.truncate(to: 0)
        fixture.record.withUnsafeBytes { decisionFormatter.appendDecision($0, to: &out) }
        let decision = String(decoding: out.bytes, as: UTF8.self)
        #expect(decision == String(formatDecision(fixture.record).dropLast(2)) + ", \"replica\": \"r2\"}\n")
        #expect(try parseLine(decision)["replica"] as? String == "r2")
    }
}
