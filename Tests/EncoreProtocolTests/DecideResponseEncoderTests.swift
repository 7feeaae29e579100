import EncoreProtocol
import SwiftProtobuf
import Testing

/// ``DecideResponseEncoder`` must write exactly SwiftProtobuf's bytes.
@Suite struct DecideResponseEncoderTests {
    /// One placement's values (owning the offer id's bytes).
    struct Placement {
        var offerID: [UInt8]
        var slot: UInt32
        var propensity, score, expectedValue: Double
    }

    /// Encodes with ``DecideResponseEncoder`` after `prefix`.
    static func encode(
        prefix: [UInt8],
        decisionID: [UInt8],
        placements: [Placement],
        modelVersion: [UInt8],
        holdout: Bool
    ) -> [UInt8] {
        var out = prefix
        // Keep the offer-id buffers alive while the encoder reads them.
        let ids = placements.map { $0.offerID }
        let pointers = ids.map { id -> UnsafeMutableRawBufferPointer in
            let pointer = UnsafeMutableRawBufferPointer.allocate(byteCount: id.count, alignment: 1)
            pointer.copyMemory(from: UnsafeRawBufferPointer(start: id, count: id.count))
            return pointer
        }
        defer { for pointer in pointers { pointer.deallocate() } }
        let fields = placements.indices.map { index in
            PlacementFields(
                offerID: UnsafeRawBufferPointer(pointers[index]),
                slot: placements[index].slot,
                propensity: placements[index].propensity,
                score: placements[index].score,
                expectedValue: placements[index].expectedValue
            )
        }
        decisionID.withUnsafeBytes { decision in
            modelVersion.withUnsafeBytes { model in
                fields.withUnsafeBufferPointer { fieldBuffer in
                    DecideResponseEncoder.encode(
                        decisionID: decision,
                        placements: fieldBuffer,
                        modelVersion: model,
                        holdout: holdout,
                        into: &out
                    )
                }
            }
        }
        return out
    }

    @Test func matchesSwiftProtobufBytesOnRandomResponses() throws {
        var rng = SplitMix64(seed: 0xE4C0_DE00)
        var mismatches = 0
        for index in 0..<20_000 {
            let decisionID = rng.utf8String(maxLong: 300)
            let modelVersion = rng.utf8String(maxLong: 300)
            let holdout = rng.percent(20)
            let placements = (0..<(rng.percent(5) ? rng.int(0...20) : rng.int(0...2))).map { _ in
                Placement(
                    offerID: rng.utf8String(maxLong: 200),
                    slot: rng.percent(20) ? UInt32.max : UInt32(rng.below(3)),
                    propensity: Double(bitPattern: rng.percent(30) ? 0 : rng.doubleBits()),
                    score: Double(bitPattern: rng.doubleBits()),
                    expectedValue: Double(bitPattern: rng.doubleBits())
                )
            }
            var message = Encore_V1_DecideResponse()
            message.decisionID = String(decoding: decisionID, as: UTF8.self)
            message.modelVersion = String(decoding: modelVersion, as: UTF8.self)
            message.holdout = holdout
            message.placements = placements.map { placement in
                .with {
                    $0.offerID = String(decoding: placement.offerID, as: UTF8.self)
                    $0.slot = placement.slot
                    $0.propensity = placement.propensity
                    $0.score = placement.score
                    $0.expectedValue = placement.expectedValue
                }
            }
            let expected: [UInt8] = try message.serializedBytes()
            let prefix = Array(repeating: UInt8(0xEE), count: index % 3)
            let ours = Self.encode(
                prefix: prefix,
                decisionID: decisionID,
                placements: placements,
                modelVersion: modelVersion,
                holdout: holdout
            )
            let body = Array(ours[prefix.count...])
            let decoded = try Encore_V1_DecideResponse(serializedBytes: body)
            let sameValues =
                decoded.decisionID == message.decisionID && decoded.modelVersion == message.modelVersion
                && decoded.holdout == holdout && decoded.placements.count == placements.count
                && zip(decoded.placements, placements).allSatisfy { got, want in
                    Array(got.offerID.utf8) == want.offerID && got.slot == want.slot
                        && got.propensity.bitPattern == want.propensity.bitPattern
                        && got.score.bitPattern == want.score.bitPattern
                        && got.expectedValue.bitPattern == want.expectedValue.bitPattern
                }
            if body != expected || !sameValues || Array(ours[..<prefix.count]) != prefix {
                mismatches += 1
                if mismatches <= 3 { Issue.record("case \(index): \(body) != \(expected)") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test func omitsDefaultsButWritesNegativeZeroAndEmptyPlacements() throws {
        #expect(Self.encode(prefix: [], decisionID: [], placements: [], modelVersion: [], holdout: false).isEmpty)
        #expect(
            Self.encode(prefix: [], decisionID: [], placements: [], modelVersion: [], holdout: true) == [0x20, 0x01])
        let empty = Placement(offerID: [], slot: 0, propensity: 0, score: 0, expectedValue: 0)
        #expect(
            Self.encode(prefix: [], decisionID: [], placements: [empty], modelVersion: [], holdout: false) == [
                0x12, 0x00,
            ])
        var negativeZero = empty
        negativeZero.score = -0.0
        let bytes = Self.encode(
            prefix: [], decisionID: [], placements: [negativeZero], modelVersion: [], holdout: false)
        #expect(bytes == [0x12, 0x09, 0x21, 0, 0, 0, 0, 0, 0, 0, 0x80])
        var message = Encore_V1_DecideResponse()
        message.placements = [.with { $0.score = -0.0 }]
        #expect(try message.serializedBytes() == bytes)
    }

    @Test func rawBufferVariantWritesTheCountedBytes() {
        let id: [UInt8] = Array("gift_box".utf8)
        id.withUnsafeBytes { offer in
            let fields = [PlacementFields(offerID: offer, slot: 1, propensity: 0.25, score: 1.5, expectedValue: 3)]
            fields.withUnsafeBufferPointer { placements in
                Array("dec-1".utf8).withUnsafeBytes { decision in
                    Array("m7".utf8).withUnsafeBytes { model in
                        let count = DecideResponseEncoder.encodedByteCount(
                            decisionID: decision,
                            placements: placements,
                            modelVersion: model,
                            holdout: false
                        )
                        var appended: [UInt8] = []
                        DecideResponseEncoder.encode(
                            decisionID: decision,
                            placements: placements,
                            modelVersion: model,
                            holdout: false,
                            into: &appended
                        )
                        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: count + 4, alignment: 1)
                        defer { raw.deallocate() }
                        let written = DecideResponseEncoder.encode(
                            decisionID: decision,
                            placements: placements,
                            modelVersion: model,
                            holdout: false,
                            into: raw
                        )
                        #expect(written == count && appended.count == count)
                        #expect(Array(raw[..<written]) == appended)
                    }
                }
            }
        }
    }
}
