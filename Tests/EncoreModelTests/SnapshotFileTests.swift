import EncoreCrypto
import Testing

@testable import EncoreModel

func sampleSnapshot(
    version: String = "test-1", exploration: Exploration = .squareCB(gamma: 50), weight: Float = 0.25,
    rules: String? = #"{"cap":3}"#
) throws -> ModelSnapshot {
    let schema = FeatureSchema(
        features: ["bias", "order.total_log", "order.is_gift", "customer.f0", "segment=vip", "request.x"],
        interactions: [.init(1, 2)])
    let offers = ["a", "b", "c"]
    let width = schema.width
    return try ModelSnapshot(
        version: version, createdAtMillis: 1_700_000_000_000, schema: schema, offerIDs: offers,
        sharedWeights: (0..<width).map { Float($0) * 0.1 },
        offerWeights: (0..<(offers.count * width)).map { _ in weight },
        offerBiases: [0.1, -0.2, 0.3], link: .logistic, objective: .conversion, exploration: exploration,
        rulesJSON: rules)
}

func refusal(_ bytes: [UInt8], trusted: [Ed25519.PublicKey] = []) -> ModelError? {
    do {
        _ = try SnapshotFile.read(bytes, trustedKeys: trusted)
        return nil
    } catch {
        return error
    }
}

@Suite struct SnapshotFileTests {
    @Test func roundTripsEveryField() throws {
        let original = try sampleSnapshot()
        let (read, meta) = try SnapshotFile.read(try SnapshotFile.write(original))
        #expect(read.version == original.version)
        #expect(read.createdAtMillis == original.createdAtMillis)
        #expect(read.schema == original.schema)
        #expect(read.offerIDs == original.offerIDs)
        #expect(read.sharedWeights == original.sharedWeights)
        #expect(read.offerWeights == original.offerWeights)
        #expect(read.offerBiases == original.offerBiases)
        #expect(read.link == original.link && read.objective == original.objective)
        #expect(read.exploration == original.exploration)
        #expect(read.rulesJSON == original.rulesJSON)
        #expect(meta.signedBy == nil)
    }

    @Test func writingIsDeterministic() throws {
        #expect(try SnapshotFile.write(try sampleSnapshot()) == SnapshotFile.write(try sampleSnapshot()))
    }

    @Test func refusesAByteFlipAnywhere() throws {
        let bytes = try SnapshotFile.write(try sampleSnapshot())
        // Every byte of the file: header, table, every section and the whole trailer.
        for i in 0..<bytes.count {
            var corrupt = bytes
            corrupt[i] ^= 0x40
            let error = refusal(corrupt)
            #expect(error != nil, "flip at \(i) accepted")
            #expect(error?.code == .invalidSnapshot)
        }
        let signed = try SnapshotFile.write(try sampleSnapshot(), signingKey: try Ed25519.PrivateKey())
        for i in 0..<signed.count {
            var corrupt = signed
            corrupt[i] ^= 0x01
            #expect(refusal(corrupt) != nil, "flip at \(i) of a signed snapshot accepted")
        }
    }

    @Test func refusesTruncation() throws {
        let bytes = try SnapshotFile.write(try sampleSnapshot())
        for length in [0, 1, 8, 60, 200, bytes.count / 2, bytes.count - 1] {
            #expect(refusal(Array(bytes.prefix(length))) != nil, "length \(length) accepted")
        }
    }

    @Test func namesHeaderProblems() throws {
        let bytes = try SnapshotFile.write(try sampleSnapshot())
        var wrongMagic = bytes
        wrongMagic[0] = UInt8(ascii: "X")
        #expect(refusal(wrongMagic)?.message.contains("magic") == true)
        var wrongVersion = bytes
        wrongVersion[8] = 9
        #expect(refusal(wrongVersion)?.message.contains("format version 9") == true)
        var badBody = bytes
        badBody[bytes.count - SnapshotFile.trailerBytes - 3] ^= 1
        #expect(refusal(badBody)?.message.contains("checksum") == true)
    }

    @Test func refusesNaNAndInfiniteWeights() throws {
        for bad in [Float.nan, .infinity, -.infinity] {
            #expect(throws: ModelError.self) { _ = try sampleSnapshot(weight: bad) }
        }
        do {
            _ = try sampleSnapshot(weight: .nan)
        } catch let error as ModelError {
            #expect(error.message.contains("offer weights"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func refusesWeightsBeyondTheMagnitudeBound() throws {
        for bad: Float in [3.0e38, -3.0e38, 1.0000001e6, -2e6] {
            do {
                _ = try sampleSnapshot(weight: bad)
                Issue.record("weight \(bad) was accepted")
            } catch let error as ModelError {
                #expect(error.code == .invalidSnapshot)
                #expect(error.message.contains("offer weights") && error.message.contains("1e6"), "\(error.message)")
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
        // The bound itself and everything below it are accepted.
        for good: Float in [1e6, -1e6, 999_999, 0] { _ = try sampleSnapshot(weight: good) }
        #expect(throws: ModelError.self) {
            _ = try ModelSnapshot(
                version: "b", createdAtMillis: 0, schema: FeatureSchema(features: ["bias"]), offerIDs: ["a"],
                sharedWeights: [0], offerWeights: [0], offerBiases: [-3e38], link: .identity, objective: .conversion,
                exploration: .uniform)
        }
    }

    @Test func refusesStructurallyBadSnapshotsEvenWithValidChecksum() throws {
        // Rebuild with a NaN weight patched into WEIGHTS and a recomputed checksum.
        let bytes = try SnapshotFile.write(try sampleSnapshot(rules: nil))
        let body = bytes.count - SnapshotFile.trailerBytes
        var patched = Array(bytes[0..<body])
        // Without RULES/OPE, EXPLORATION (JSON) is last; WEIGHTS ends where it starts. Find the
        // last weight by locating the exploration JSON.
        let exploration = Array(#"{"gamma":50,"kind":"squarecb"}"#.utf8)
        let start = try #require(
            (0..<body).last { Array(patched[$0..<min(body, $0 + exploration.count)]) == exploration })
        let lastWeight = start - 4
        let nan = Float.nan.bitPattern
        for k in 0..<4 { patched[lastWeight + k] = UInt8(truncatingIfNeeded: nan >> (8 * UInt32(k))) }
        let digest = SHA256.digest(patched)
        var rebuilt = patched + SnapshotFile.trailerMagic + digest
        rebuilt += [UInt8](repeating: 0, count: SnapshotFile.trailerBytes - 8 - 32)
        let error = refusal(rebuilt)
        #expect(error?.code == .invalidSnapshot)
        #expect(error?.message.contains("nan") == true || error?.message.contains("NaN") == true)
    }

    @Test func signatureIsCheckedAgainstTrustedKeys() throws {
        let key = try Ed25519.PrivateKey()
        let other = try Ed25519.PrivateKey()
        let signed = try SnapshotFile.write(try sampleSnapshot(), signingKey: key)
        let unsigned = try SnapshotFile.write(try sampleSnapshot())
        #expect(refusal(signed, trusted: [key.publicKey]) == nil)
        #expect(try SnapshotFile.read(signed).1.signedBy == key.publicKey.raw)
        #expect(refusal(signed, trusted: [other.publicKey])?.code == .untrusted)
        #expect(refusal(unsigned, trusted: [key.publicKey])?.code == .untrusted)
        #expect(refusal(unsigned) == nil)
        // A forged signature (flip a signature byte) fails with the right key.
        var forged = signed
        forged[forged.count - 1] ^= 1
        #expect(refusal(forged, trusted: [key.publicKey])?.code == .untrusted)
    }

    @Test func ed25519KeysRoundTripThroughPEM() throws {
        let key = try Ed25519.PrivateKey()
        let again = try Ed25519.PrivateKey(pem: key.pem)
        #expect(again.publicKey == key.publicKey)
        let message: [UInt8] = Array("hello".utf8)
        #expect(key.publicKey.verify(signature: try again.sign(message), message: message))
        #expect(!key.publicKey.verify(signature: try again.sign(message), message: Array("hellO".utf8)))
        #expect(throws: (any Error).self) { _ = try Ed25519.PrivateKey(pem: "not a key") }
    }

    @Test func validatesShapesAndParameters() throws {
        let schema = FeatureSchema(features: ["bias"], interactions: [])
        #expect(throws: ModelError.self) {
            _ = try ModelSnapshot(
                version: "v", createdAtMillis: 0, schema: schema, offerIDs: ["a"], sharedWeights: [0, 0],
                offerWeights: [0],
                offerBiases: [0], link: .logistic, objective: .conversion, exploration: .uniform)
        }
        #expect(throws: ModelError.self) {
            _ = try ModelSnapshot(
                version: "v", createdAtMillis: 0, schema: schema, offerIDs: ["a", "a"], sharedWeights: [0],
                offerWeights: [0, 0], offerBiases: [0, 0], link: .logistic, objective: .conversion,
                exploration: .uniform)
        }
        #expect(throws: ModelError.self) {
            _ = try ModelSnapshot(
                version: "v", createdAtMillis: 0, schema: schema, offerIDs: ["a"], sharedWeights: [0],
                offerWeights: [0],
                offerBiases: [0], link: .logistic, objective: .conversion, exploration: .softmax(temperature: -1))
        }
        #expect(FeatureSchema(features: ["bogus.feature"]).validationError() != nil)
        #expect(FeatureSchema(features: ["bias", "bias"]).validationError() != nil)
        #expect(FeatureSchema(features: ["bias"], interactions: [.init(0, 3)]).validationError() != nil)
    }

    @Test func schemaCompilesAgainstTheStoreOrNamesTheMissingFeature() throws {
        let schema = FeatureSchema(features: ["bias", "customer.f0", "segment=vip", "segment=unseen"])
        let program = try schema.compile(customerFeatures: ["f0"], segments: ["vip"])
        #expect(program.ops == [.bias, .customer(0), .segment(0), .constant(0)])
        do {
            _ = try FeatureSchema(features: ["customer.missing"]).compile(customerFeatures: ["f0"], segments: [])
            Issue.record("missing feature accepted")
        } catch {
            #expect(error.code == .schemaMismatch)
            #expect(error.message.contains("missing"))
        }
    }
}

/// Snapshots padded with junk inside an otherwise valid file (checksum recomputed) are refused.
@Suite struct SnapshotPaddingTests {
    /// The sections of a valid snapshot, as (type, payload), in file order.
    static func sections(of bytes: [UInt8]) -> (version: [UInt8], sections: [(UInt32, [UInt8])]) {
        let count = Int(SnapshotFile.load(bytes, 12) as UInt32)
        let versionLength = Int(SnapshotFile.load(bytes, 56) as UInt16)
        var table = 58 + versionLength
        while table % 8 != 0 { table += 1 }
        var out: [(UInt32, [UInt8])] = []
        for i in 0..<count {
            let entry = table + i * 24
            let offset = Int(SnapshotFile.load(bytes, entry + 8) as UInt64)
            let length = Int(SnapshotFile.load(bytes, entry + 16) as UInt64)
            out.append((SnapshotFile.load(bytes, entry), Array(bytes[offset..<(offset + length)])))
        }
        return (Array(bytes[58..<(58 + versionLength)]), out)
    }

    /// Lays the sections out like the writer, with `gap` after the table (offsets skip it) and
    /// `tail` after the last section, and a correct checksum.
    static func assemble(
        version: [UInt8], _ sections: [(UInt32, [UInt8])], gap: [UInt8] = [], tail: [UInt8] = []
    ) -> [UInt8] {
        var out = SnapshotFile.magic
        SnapshotFile.appendLE(&out, UInt32(1))
        SnapshotFile.appendLE(&out, UInt32(sections.count))
        SnapshotFile.appendLE(&out, UInt64(1_700_000_000_000))
        out += SHA256.digest(sections.first { $0.0 == 2 }!.1)
        SnapshotFile.appendLE(&out, UInt16(version.count))
        out += version
        while out.count % 8 != 0 { out.append(0) }
        var offset = out.count + sections.count * 24 + gap.count
        for (type, payload) in sections {
            SnapshotFile.appendLE(&out, type)
            SnapshotFile.appendLE(&out, UInt32(0))
            SnapshotFile.appendLE(&out, UInt64(offset))
            SnapshotFile.appendLE(&out, UInt64(payload.count))
            offset += payload.count
        }
        out += gap
        for (_, payload) in sections { out += payload }
        out += tail
        let digest = SHA256.digest(out)
        return out + SnapshotFile.trailerMagic + digest + [UInt8](repeating: 0, count: 8 + 32 + 64)
    }

    @Test func theUnpaddedLayoutIsAccepted() throws {
        let (version, sections) = Self.sections(of: try SnapshotFile.write(try sampleSnapshot()))
        #expect(refusal(Self.assemble(version: version, sections)) == nil)
    }

    @Test func refusesBytesBetweenOrAfterSections() throws {
        let (version, sections) = Self.sections(of: try SnapshotFile.write(try sampleSnapshot()))
        let junk = [UInt8](repeating: 0x41, count: 1 << 20)
        let gap = refusal(Self.assemble(version: version, sections, gap: junk))
        #expect(gap?.message.contains("no gaps or padding") == true, "\(String(describing: gap))")
        let tail = refusal(Self.assemble(version: version, sections, tail: junk))
        #expect(tail?.message.contains("belong to no section") == true, "\(String(describing: tail))")
        // A gap between two sections (META padded, then its length set back) is refused too.
        var padded = sections
        padded[0].1 += [UInt8](repeating: 0x20, count: 16)
        var bytes = Self.assemble(version: version, padded)
        let body = bytes.count - SnapshotFile.trailerBytes
        var table = 58 + version.count
        while table % 8 != 0 { table += 1 }
        var length = UInt64(sections[0].1.count)
        for k in 0..<8 {
            bytes[table + 16 + k] = UInt8(truncatingIfNeeded: length)
            length >>= 8
        }
        bytes =
            Array(bytes[0..<body]) + SnapshotFile.trailerMagic + SHA256.digest(Array(bytes[0..<body]))
            + [UInt8](repeating: 0, count: 104)
        let between = refusal(bytes)
        #expect(between?.message.contains("no gaps or padding") == true, "\(String(describing: between))")
    }

    @Test func refusesJSONSectionsPaddedWithWhitespaceUnknownKeysOrOverTheirLimit() throws {
        let (version, sections) = Self.sections(of: try SnapshotFile.write(try sampleSnapshot()))
        func replacing(_ type: UInt32, with payload: [UInt8]) -> [UInt8] {
            Self.assemble(version: version, sections.map { $0.0 == type ? ($0.0, payload) : $0 })
        }
        // OFFERS padded with 200 KiB of spaces: still valid JSON, but padding.
        let offers = sections.first { $0.0 == 3 }!.1
        let spaced = refusal(
            replacing(3, with: Array(offers.dropLast()) + [UInt8](repeating: 0x20, count: 200 << 10) + [0x5D]))
        #expect(spaced?.message.contains("whitespace") == true, "\(String(describing: spaced))")
        // Spaces inside strings are contents, not padding (the schema's feature names are not
        // touched; a long offer id would be refused by the offer table itself).
        let fewSpaces = Array(offers.dropLast()) + [UInt8](repeating: 0x20, count: 100) + [0x5D]
        #expect(refusal(replacing(3, with: fewSpaces)) == nil)
        // META with an unknown key holding junk.
        let meta = Array(
            #"{"junk":"\#(String(repeating: "z", count: 3000))","link":"logistic","objective":"conversion"}"#.utf8)
        let unknown = refusal(replacing(1, with: meta))
        #expect(unknown?.message.contains("unknown key 'junk'") == true, "\(String(describing: unknown))")
        // META over 4 KiB, OPE over 1 MiB.
        let bigMeta = Array(#"{"link":"logistic","objective":"conversion"}"#.utf8)
        let huge = Array(#"{"link":"\#(String(repeating: "l", count: 5000))","objective":"conversion"}"#.utf8)
        #expect(refusal(replacing(1, with: bigMeta)) == nil)
        #expect(refusal(replacing(1, with: huge))?.message.contains("4096-byte limit") == true)
        let ope = Array(#"{"note":"\#(String(repeating: "o", count: 1 << 20))"}"#.utf8)
        let withOPE = Self.assemble(version: version, sections + [(7, ope)])
        #expect(refusal(withOPE)?.message.contains("OPE is \(ope.count) bytes, over its 1048576-byte limit") == true)
    }
}
