import EncoreProtocol
import SwiftProtobuf
import Testing

/// ``OutcomeRequestDecoder`` against SwiftProtobuf on generated and mutated messages.
@Suite struct OutcomeRequestDecoderTests {
    /// A random `OutcomeRequest` with repeated fields, odd enum values and unknown fields.
    static func generate(_ rng: inout SplitMix64) -> [UInt8] {
        var fields: [[UInt8]] = []
        for number in [1, 2] {
            for _ in 0..<rng.int(0...2) {
                var builder = WireBuilder()
                builder.lengthDelimited(number, rng.utf8String(maxLong: 600), &rng)
                fields.append(builder.bytes)
            }
        }
        for number in [3, 4] {
            for _ in 0..<rng.int(0...2) {
                var builder = WireBuilder()
                let value = number == 3 && rng.percent(60) ? UInt64(rng.below(6)) : rng.varintValue()
                builder.varintField(number, value, &rng)
                fields.append(builder.bytes)
            }
        }
        if rng.percent(30) { fields.shuffle(using: &rng) }
        let unknowns = rng.percent(60) ? 0 : rng.int(1...3)
        let wrongWire: [(number: Int, wire: UInt8)] = [(1, 2), (2, 2), (3, 0), (4, 0)]
        return WireBuilder.join(fields, unknowns: unknowns, lowestUnknown: 5, wrongWire: wrongWire, &rng)
    }

    /// Verdicts of both decoders and the first value difference when both accept.
    static func compare(_ bytes: [UInt8]) -> (swiftProtobuf: Bool, decoder: Bool, mismatch: String?) {
        let message = try? Encore_V1_OutcomeRequest(serializedBytes: bytes)
        var decoder = OutcomeRequestDecoder()
        return bytes.withUnsafeBytes { buffer in
            var accepted = true
            do { try decoder.decode(buffer) } catch { accepted = false }
            guard let message, accepted else { return (message != nil, accepted, nil) }
            if Array(decoder.decisionID.bytes(in: buffer)) != Array(message.decisionID.utf8) {
                return (true, true, "decision_id")
            }
            if Array(decoder.offerID.bytes(in: buffer)) != Array(message.offerID.utf8) {
                return (true, true, "offer_id")
            }
            if Int(decoder.outcome) != message.outcome.rawValue { return (true, true, "outcome \(decoder.outcome)") }
            if decoder.revenueCents != message.revenueCents { return (true, true, "revenue_cents") }
            return (true, true, nil)
        }
    }

    @Test func matchesSwiftProtobufOnGeneratedAndMutatedMessages() {
        var rng = SplitMix64(seed: 0x0C0C_0A00)
        var accepted = 0
        var rejected = 0
        var disagreements = 0
        for index in 0..<40_000 {
            var bytes = Self.generate(&rng)
            // The second half is mutated.
            if index >= 20_000 { for _ in 0..<rng.int(1...3) { mutate(&bytes, &rng) } }
            let result = Self.compare(bytes)
            if result.swiftProtobuf != result.decoder || result.mismatch != nil {
                disagreements += 1
                if disagreements <= 3 { Issue.record("case \(index): \(result) bytes \(bytes)") }
            } else if result.decoder {
                accepted += 1
            } else {
                rejected += 1
            }
        }
        #expect(disagreements == 0)
        #expect(accepted > 20_000 && rejected > 2_000)
    }

    @Test func keepsUnknownEnumValuesAndTruncatesTo32Bits() throws {
        var rng = SplitMix64(seed: 1)
        for (wire, expected): (UInt64, Int32) in [(7, 7), (UInt64(bitPattern: -1), -1), (1 << 32 | 2, 2), (0, 0)] {
            var builder = WireBuilder()
            builder.lengthDelimited(1, Array("d-1".utf8), &rng)
            builder.varintField(3, wire, &rng)
            builder.varintField(4, UInt64(bitPattern: -250), &rng)
            var decoder = OutcomeRequestDecoder()
            try builder.bytes.withUnsafeBytes { try decoder.decode($0) }
            #expect(decoder.outcome == expected && decoder.revenueCents == -250)
            #expect(Self.compare(builder.bytes).mismatch == nil)
        }
    }

    @Test func decodesSwiftProtobufSerializationAndResets() throws {
        var message = Encore_V1_OutcomeRequest()
        message.decisionID = "dec-1"
        message.offerID = "gift_box"
        message.outcome = .accepted
        message.revenueCents = 1999
        let bytes: [UInt8] = try message.serializedBytes()
        var decoder = OutcomeRequestDecoder()
        try bytes.withUnsafeBytes { try decoder.decode($0) }
        #expect(decoder.outcome == 2 && decoder.revenueCents == 1999)
        bytes.withUnsafeBytes { #expect(Array(decoder.offerID.bytes(in: $0)) == Array("gift_box".utf8)) }
        try decoder.decode(UnsafeRawBufferPointer(start: nil, count: 0))
        #expect(decoder.outcome == 0 && decoder.revenueCents == 0 && decoder.offerID == .empty)
        let truncated: [UInt8] = [0x12, 0x05, 0x61]
        let error = truncated.withUnsafeBytes { buffer -> DecodeError? in
            do throws(DecodeError) {
                try decoder.decode(buffer)
                return nil
            } catch {
                return error
            }
        }
        #expect(error == DecodeError("OutcomeRequest.offer_id", .truncated))
    }
}
