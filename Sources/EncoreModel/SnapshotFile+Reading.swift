import EncoreCrypto
import Foundation

extension SnapshotFile {
    /// Reads and completely validates a snapshot. With `trustedKeys` non-empty, an unsigned
    /// snapshot or one not signed by a trusted key is refused (`.untrusted`).
    public static func read(_ bytes: [UInt8], trustedKeys: [Ed25519.PublicKey] = []) throws(ModelError) -> (
        ModelSnapshot, Metadata
    ) {
        func bad(_ message: String) -> ModelError { ModelError(.invalidSnapshot, message) }
        guard bytes.count <= maxFileBytes else {
            throw bad("snapshot is \(bytes.count) bytes, over the \(maxFileBytes)-byte limit")
        }
        guard bytes.count >= fixedHeaderBytes + trailerBytes else {
            throw bad("truncated snapshot: \(bytes.count) bytes is shorter than a header and trailer")
        }
        guard Array(bytes[0..<8]) == magic else { throw bad("wrong magic: not an Encore snapshot") }
        let version: UInt32 = load(bytes, 8)
        guard version == formatVersion else {
            throw bad("unsupported snapshot format version \(version) (this server reads version \(formatVersion))")
        }
        let bodyEnd = bytes.count - trailerBytes
        guard Array(bytes[bodyEnd..<(bodyEnd + 8)]) == trailerMagic else {
            throw bad("truncated snapshot: trailer magic missing at the end of the file")
        }
        let digest = SHA256.digest(Array(bytes[0..<bodyEnd]))
        guard Array(bytes[(bodyEnd + 8)..<(bodyEnd + 40)]) == digest else {
            throw bad("checksum mismatch: the snapshot is corrupt (SHA-256 of the body differs from the trailer)")
        }
        let flags = bytes[bodyEnd + 40]
        guard flags <= 1, bytes[(bodyEnd + 41)..<(bodyEnd + 48)].allSatisfy({ $0 == 0 }) else {
            throw bad("trailer flags or reserved bytes are not valid (flags \(flags))")
        }
        let signed = flags == 1
        var signer: [UInt8]? = nil
        if signed {
            signer = Array(bytes[(bodyEnd + 48)..<(bodyEnd + 80)])
            let signature = Array(bytes[(bodyEnd + 80)..<(bodyEnd + 144)])
            // A signature is always checked against the key it names; trusted keys decide
            // whether that key is acceptable.
            guard let embedded = try? Ed25519.PublicKey(raw: signer!),
                embedded.verify(signature: signature, message: digest)
            else {
                throw ModelError(
                    trustedKeys.isEmpty ? .invalidSnapshot : .untrusted, "snapshot signature does not verify")
            }
            if !trustedKeys.isEmpty && !trustedKeys.contains(where: { $0.raw == signer! }) {
                throw ModelError(.untrusted, "snapshot is signed by a key that is not trusted (--trusted-key)")
            }
        } else {
            guard bytes[(bodyEnd + 48)..<(bodyEnd + 144)].allSatisfy({ $0 == 0 }) else {
                throw bad("unsigned snapshot carries key or signature bytes in its trailer")
            }
            if !trustedKeys.isEmpty {
                throw ModelError(
                    .untrusted, "snapshot is unsigned but trusted keys are configured: unsigned snapshots are refused")
            }
        }

        let sectionCount = Int(load(bytes, 12) as UInt32)
        let createdAt = Int64(bitPattern: load(bytes, 16) as UInt64)
        let schemaHash = Array(bytes[24..<56])
        let versionLength = Int(load(bytes, 56) as UInt16)
        guard versionLength >= 1, versionLength <= 128, 58 + versionLength <= bodyEnd else {
            throw bad("model version length \(versionLength) is out of range")
        }
        guard let modelVersion = String(validating: bytes[58..<(58 + versionLength)], as: UTF8.self) else {
            throw bad("model version is not valid UTF-8")
        }
        var tableStart = 58 + versionLength
        while tableStart % 8 != 0 { tableStart += 1 }
        guard sectionCount >= 1, sectionCount <= 16, tableStart + sectionCount * tableEntryBytes <= bodyEnd else {
            throw bad("section count \(sectionCount) is out of range or the section table is truncated")
        }
        var payloads: [Section: ArraySlice<UInt8>] = [:]
        var ranges: [Range<Int>] = []
        let dataStart = tableStart + sectionCount * tableEntryBytes
        for i in 0..<sectionCount {
            let entry = tableStart + i * tableEntryBytes
            let rawType: UInt32 = load(bytes, entry)
            let offset: UInt64 = load(bytes, entry + 8)
            let length: UInt64 = load(bytes, entry + 16)
            guard let type = Section(rawValue: rawType) else { throw bad("section \(i) has unknown type \(rawType)") }
            guard payloads[type] == nil else { throw bad("section \(type.name) appears twice") }
            guard offset >= UInt64(dataStart), length <= UInt64(bodyEnd), offset <= UInt64(bodyEnd) - length else {
                throw bad("section \(type.name) (offset \(offset), length \(length)) lies outside the snapshot body")
            }
            let range = Int(offset)..<Int(offset + length)
            if let other = ranges.first(where: { $0.overlaps(range) }) {
                throw bad("section \(type.name) overlaps another section at \(other)")
            }
            ranges.append(range)
            payloads[type] = bytes[range]
        }
        // The sections fill the body exactly, back to back in table order from the end of the
        // table (as every writer lays them out): a gap, padding or trailing bytes would be junk
        // that the checksum covers but nothing reads.
        var expectedOffset = dataStart
        for i in 0..<sectionCount {
            let entry = tableStart + i * tableEntryBytes
            let type = Section(rawValue: load(bytes, entry))!
            let range = ranges[i]
            guard range.lowerBound == expectedOffset else {
                throw bad(
                    "section \(type.name) starts at byte \(range.lowerBound), expected \(expectedOffset): sections must follow the table back to back, with no gaps or padding"
                )
            }
            expectedOffset = range.upperBound
        }
        guard expectedOffset == bodyEnd else {
            throw bad(
                "\(bodyEnd - expectedOffset) bytes between the last section and the trailer belong to no section (padding is refused)"
            )
        }
        for type in Section.allCases where type.required && payloads[type] == nil {
            throw bad("required section \(type.name) is missing")
        }
        for (type, payload) in payloads {
            if let limit = type.maxBytes, payload.count > limit {
                throw bad("section \(type.name) is \(payload.count) bytes, over its \(limit)-byte limit")
            }
            if type.isJSON, let problem = jsonPaddingProblem(payload, allowedKeys: type.jsonKeys) {
                throw bad("section \(type.name) \(problem)")
            }
        }
        guard SHA256.digest(Array(payloads[.schema]!)) == schemaHash else {
            throw bad("feature schema hash in the header does not match the SCHEMA section")
        }
        let decoder = JSONDecoder()
        func json<T: Decodable>(_ type: T.Type, _ section: Section) throws(ModelError) -> T {
            do {
                return try decoder.decode(T.self, from: Data(payloads[section]!))
            } catch {
                throw bad("section \(section.name) is not valid JSON of the expected shape: \(error)")
            }
        }
        let meta = try json(MetaJSON.self, .meta)
        let schemaJSON = try json(SchemaJSON.self, .schema)
        let offers = try json([String].self, .offers)
        let exploration = try exploration(from: try json(ExplorationJSON.self, .exploration))
        var interactions: [FeatureSchema.Interaction] = []
        for (k, pair) in schemaJSON.interactions.enumerated() {
            guard pair.count == 2 else { throw bad("SCHEMA: interaction \(k) must name exactly two features") }
            interactions.append(.init(pair[0], pair[1]))
        }
        let schema = FeatureSchema(features: schemaJSON.features, interactions: interactions)
        let width = schema.width
        let weightBytes = payloads[.weights]!
        let expected = 4 * (width + offers.count * (width + 1))
        guard weightBytes.count == expected else {
            throw bad(
                "WEIGHTS: expected \(expected) bytes for \(offers.count) offers x \(width) weights, got \(weightBytes.count)"
            )
        }
        let floats = decodeFloats(weightBytes)
        let shared = Array(floats[0..<width])
        var biases = [Float]()
        var offerWeights = [Float]()
        biases.reserveCapacity(offers.count)
        offerWeights.reserveCapacity(offers.count * width)
        for o in 0..<offers.count {
            let start = width + o * (width + 1)
            biases.append(floats[start])
            offerWeights += floats[(start + 1)..<(start + 1 + width)]
        }
        var slot1: ModelSnapshot.Slot1Model? = nil
        if let payload = payloads[.slot1] { slot1 = try slot1Model(payload, offers: offers.count) }
        func text(_ section: Section) throws(ModelError) -> String? {
            guard let payload = payloads[section] else { return nil }
            guard let s = String(validating: payload, as: UTF8.self) else {
                throw bad("section \(section.name) is not UTF-8")
            }
            return s
        }
        let snapshot = try ModelSnapshot(
            version: modelVersion, createdAtMillis: createdAt, schema: schema, offerIDs: offers, sharedWeights: shared,
            offerWeights: offerWeights, offerBiases: biases, link: meta.link, objective: meta.objective,
            exploration: exploration, rulesJSON: try text(.rules), opeReportJSON: try text(.ope), slot1: slot1)
        return (snapshot, Metadata(sha256: digest, signedBy: signer, fileBytes: bytes.count))
    }

    /// The SLOT1 section's floats: `offers` slot-1 biases, then the offers x offers pair table.
    /// Out of line, so that `read` of a snapshot without the section compiles as before.
    @inline(never)
    static func slot1Model(_ payload: ArraySlice<UInt8>, offers k: Int) throws(ModelError) -> ModelSnapshot.Slot1Model {
        guard k <= ModelSnapshot.maxSlot1Offers else {
            throw ModelError(
                .invalidSnapshot,
                "SLOT1: the snapshot lists \(k) offers, over the \(ModelSnapshot.maxSlot1Offers) a slot-1 model may have"
            )
        }
        let expected = 4 * (k + k * k)
        guard payload.count == expected else {
            throw ModelError(
                .invalidSnapshot,
                "SLOT1: expected \(expected) bytes for \(k) slot-1 biases and \(k) x \(k) pair terms, got \(payload.count)"
            )
        }
        let values = decodeFloats(payload)
        return ModelSnapshot.Slot1Model(biases: Array(values[0..<k]), pairs: Array(values[k...]))
    }

    /// Little-endian float32 values (`bytes.count` is a multiple of 4), written straight into the
    /// new array's storage.
    static func decodeFloats(_ bytes: ArraySlice<UInt8>) -> [Float] {
        let count = bytes.count / 4
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { raw in
                for i in 0..<count {
                    buffer[i] = Float(
                        bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
            }
            initialized = count
        }
    }

    /// Reads a snapshot file from disk (see `read(_:trustedKeys:)`).
    public static func read(path: String, trustedKeys: [Ed25519.PublicKey] = []) throws(ModelError) -> (
        ModelSnapshot, Metadata
    ) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(.io, "cannot read snapshot file \(path)")
        }
        return try read(Array(data), trustedKeys: trustedKeys)
    }

    /// Most whitespace (outside strings) a JSON section may hold: writers emit compact JSON, so
    /// more is padding.
    static let maxJSONWhitespaceBytes = 1024

    /// Whether a JSON section carries more than its contents: whitespace outside strings beyond
    /// `maxJSONWhitespaceBytes`, or (for sections with a fixed shape) a top-level key the format
    /// does not define. Returns the problem, or nil. One pass over the bytes, allocating only to
    /// describe a problem; the JSON itself is checked by the decoder afterwards.
    static func jsonPaddingProblem(_ payload: ArraySlice<UInt8>, allowedKeys: [[UInt8]]?) -> String? {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        return payload.withUnsafeBufferPointer { bytes -> String? in
            var whitespace = 0
            var depth = 0
            var inString = false
            var escaped = false
            // At depth 1 of an object, after `{` or `,`: the next string is a key.
            var expectKey = false
            var keyStart = -1
            for i in 0..<bytes.count {
                let b = bytes[i]
                if inString {
                    if escaped {
                        escaped = false
                    } else if b == backslash {
                        escaped = true
                    } else if b == quote {
                        inString = false
                        if keyStart >= 0, let allowedKeys {
                            let key = UnsafeBufferPointer(rebasing: bytes[keyStart..<i])
                            if !allowedKeys.contains(where: { $0.elementsEqual(key) }) {
                                return "has unknown key '\(String(decoding: key, as: UTF8.self))' (padding is refused)"
                            }
                        }
                        keyStart = -1
                    }
                    continue
                }
                switch b {
                case quote:
                    inString = true
                    if expectKey { keyStart = i + 1 }
                    expectKey = false
                case UInt8(ascii: "{"):
                    depth += 1
                    expectKey = depth == 1
                case UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                case UInt8(ascii: ","):
                    expectKey = depth == 1
                case 0x20, 0x09, 0x0A, 0x0D:
                    whitespace += 1
                default:
                    break
                }
            }
            if whitespace > maxJSONWhitespaceBytes {
                return
                    "holds \(whitespace) bytes of whitespace, over the \(maxJSONWhitespaceBytes)-byte limit (padding is refused)"
            }
            return nil
        }
    }

    static func load<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + i]) << (8 * i) }
        return value
    }
}
