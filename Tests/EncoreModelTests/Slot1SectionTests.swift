import EncoreCrypto
import Foundation
import Testing

@testable import EncoreModel

/// The optional SLOT1 section (docs/snapshots.md): per offer a slot-1 bias, then an offers x
/// offers pair table (row = slot-0 offer).
@Suite struct Slot1SectionTests {
    static let slot1 = ModelSnapshot.Slot1Model(
        biases: [-0.8, -0.5, -1.0], pairs: [0, 1.2, -1.5, 0.6, 0, 0, -0.25, 0.75, 0])

    static func withSlot1(_ slot1: ModelSnapshot.Slot1Model? = Slot1SectionTests.slot1) throws -> ModelSnapshot {
        let base = try sampleSnapshot()
        return try ModelSnapshot(
            version: base.version, createdAtMillis: base.createdAtMillis, schema: base.schema,
            offerIDs: base.offerIDs, sharedWeights: base.sharedWeights, offerWeights: base.offerWeights,
            offerBiases: base.offerBiases, link: base.link, objective: base.objective,
            exploration: base.exploration, rulesJSON: base.rulesJSON, slot1: slot1)
    }

    /// The file with SLOT1's payload replaced (checksum recomputed, so only the section's own
    /// validation can refuse it).
    static func replacingSlot1(_ payload: [UInt8]) throws -> [UInt8] {
        let (version, sections) = SnapshotPaddingTests.sections(of: try SnapshotFile.write(try withSlot1()))
        #expect(sections.contains { $0.0 == 8 })
        return SnapshotPaddingTests.assemble(version: version, sections.map { $0.0 == 8 ? (8, payload) : $0 })
    }

    static func floats(_ values: [Float]) -> [UInt8] {
        var out = [UInt8]()
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    @Test func roundTripsAndIsSignedLikeEverySection() throws {
        let bytes = try SnapshotFile.write(try Self.withSlot1())
        let (read, _) = try SnapshotFile.read(bytes)
        #expect(read.slot1 == Self.slot1)
        #expect(SnapshotPaddingTests.sections(of: bytes).sections.map(\.0) == [1, 2, 3, 4, 5, 6, 8])
        // The trailer's checksum and signature cover it: a signed file verifies against its key,
        // and a flipped SLOT1 byte is a checksum mismatch.
        let key = try Ed25519.PrivateKey()
        let signed = try SnapshotFile.write(try Self.withSlot1(), signingKey: key)
        #expect(try SnapshotFile.read(signed, trustedKeys: [key.publicKey]).0.slot1 == Self.slot1)
        var flipped = signed
        flipped[signed.count - SnapshotFile.trailerBytes - 3] ^= 0x10
        #expect(refusal(flipped, trusted: [key.publicKey])?.message.contains("checksum mismatch") == true)
    }

    @Test func snapshotsWithoutItLoadUnchanged() throws {
        let bytes = try SnapshotFile.write(try sampleSnapshot())
        #expect(!SnapshotPaddingTests.sections(of: bytes).sections.contains { $0.0 == 8 })
        let (read, _) = try SnapshotFile.read(bytes)
        #expect(read.slot1 == nil)
        // Writing a snapshot without a slot-1 model gives the same bytes as before the section
        // existed: the same sections, and the same file when written twice.
        #expect(try SnapshotFile.write(read) == bytes)
    }

    @Test func refusesAPayloadOfTheWrongSize() throws {
        let good = Self.floats(Self.slot1.biases + Self.slot1.pairs)
        #expect(refusal(try Self.replacingSlot1(good)) == nil)
        for payload in [Array(good.dropLast(4)), good + [0, 0, 0, 0], [], Array(good.dropLast(1))] {
            let error = refusal(try Self.replacingSlot1(payload))
            #expect(error?.code == .invalidSnapshot)
            #expect(
                error?.message.contains("SLOT1: expected 48 bytes for 3 slot-1 biases and 3 x 3 pair terms") == true,
                "\(String(describing: error?.message))")
        }
        // Over its size limit (the pair table of 1,024 offers): refused before it is parsed.
        let huge = [UInt8](repeating: 0, count: 4 * (1024 * 1025) + 4)
        #expect(refusal(try Self.replacingSlot1(huge))?.message.contains("over its") == true)
    }

    @Test func refusesNonFiniteAndOutOfRangeTerms() throws {
        let values = Self.slot1.biases + Self.slot1.pairs
        for (index, bad) in [(1, Float.nan), (5, .infinity), (10, -.infinity), (0, 2e6), (7, -3e38)] {
            var patched = values
            patched[index] = bad
            let error = refusal(try Self.replacingSlot1(Self.floats(patched)))
            #expect(error?.code == .invalidSnapshot)
            let message = error?.message ?? ""
            if index < 3 {
                #expect(message.contains("slot-1 model: offer \(["a", "b", "c"][index]) slot-1 bias"), "\(message)")
            } else {
                // Pair index 7 - 3 = 4: row 1 (slot 0 b), column 1 (slot 1 b); 5 - 3 = 2: a, c.
                let k = index - 3
                let names = ["a", "b", "c"]
                #expect(
                    message.contains("pair term (slot 0 \(names[k / 3]), slot 1 \(names[k % 3]))"), "\(message)")
            }
            #expect(bad.isFinite ? message.contains("1e6") : true, "\(message)")
        }
        // The model itself refuses the same values and wrong shapes, naming them.
        #expect(throws: ModelError.self) {
            _ = try Self.withSlot1(.init(biases: [0, 0], pairs: [Float](repeating: 0, count: 9)))
        }
        #expect(throws: ModelError.self) {
            _ = try Self.withSlot1(.init(biases: [0, 0, 0], pairs: [Float](repeating: 0, count: 8)))
        }
    }

    @Test func refusesASlot1ModelOverTheOfferBound() throws {
        let k = ModelSnapshot.maxSlot1Offers + 1
        let offers = (0..<k).map { "o\($0)" }
        let message = Self.failure {
            _ = try ModelSnapshot(
                version: "big", createdAtMillis: 0, schema: FeatureSchema(features: ["bias"]), offerIDs: offers,
                sharedWeights: [0], offerWeights: [Float](repeating: 0, count: k),
                offerBiases: [Float](repeating: 0, count: k), link: .logistic, objective: .conversion,
                exploration: .uniform,
                slot1: .init(biases: [Float](repeating: 0, count: k), pairs: [Float](repeating: 0, count: k * k)))
        }
        #expect(message?.contains("1025 offers, over the 1024") == true, "\(String(describing: message))")
    }

    /// The message of the `ModelError` `body` throws (nil: it did not throw).
    static func failure(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch {
            return (error as? ModelError)?.message ?? "\(error)"
        }
    }

    @Test func theExportCarriesIt() throws {
        let json = """
            {"model_version": "x1", "features": ["bias"], "offers": ["a", "b"], "shared_weights": [0],
             "offer_weights": [[0], [0]], "slot1": {"offer_biases": [-0.8, -0.2], "pairs": [[0, 1.5], [-2, 0]]}}
            """
        let snapshot = try SnapshotExport.decode(Data(json.utf8)).snapshot()
        #expect(snapshot.slot1 == .init(biases: [-0.8, -0.2], pairs: [0, 1.5, -2, 0]))
        let ragged = json.replacingOccurrences(of: "[-2, 0]", with: "[-2]")
        #expect(throws: ModelError.self) { _ = try SnapshotExport.decode(Data(ragged.utf8)).snapshot() }
    }
}
