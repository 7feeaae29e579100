import EncoreCrypto
import Foundation

/// The one-file snapshot format (version 1). All integers little-endian.
///
/// ```
/// header   magic "ENCSNAP\0" (8) | format version u32 | section count u32 | created-at ms i64
///          | feature-schema hash (SHA-256 of the SCHEMA section, 32) | model version length u16
///          | model version (UTF-8, ≤ 128) | zero padding to 8 | section table
/// table    per section: type u32 | reserved u32 (0) | offset u64 | length u64   (offsets from file start)
/// sections META (JSON: link, objective), SCHEMA (JSON: features, interactions), OFFERS (JSON:
///          offer ids), WEIGHTS (f32: shared[width], then per offer bias + weights[width]),
///          EXPLORATION (JSON), optional RULES (JSON), optional OPE (JSON), optional SLOT1
///          (f32: per offer a slot-1 bias, then offers x offers pair terms, row = slot-0 offer)
/// trailer  (144 bytes) magic "ENCTRLR1" (8) | SHA-256 of every byte before the trailer (32)
///          | flags u8 (bit 0: signed) | reserved (7) | Ed25519 public key (32) | signature of
///          the SHA-256 digest (64)
/// ```
/// `read` validates everything before returning a snapshot: size, magic, version, table bounds
/// and overlaps, required sections, checksum, signature against trusted keys, JSON, shapes,
/// NaN/Inf, exploration parameters and the schema hash. Each failure names the problem.
public enum SnapshotFile {
    public static let magic: [UInt8] = Array("ENCSNAP\0".utf8)
    public static let trailerMagic: [UInt8] = Array("ENCTRLR1".utf8)
    public static let formatVersion: UInt32 = 1
    public static let trailerBytes = 144
    static let fixedHeaderBytes = 8 + 4 + 4 + 8 + 32 + 2
    static let tableEntryBytes = 24
    /// Largest snapshot accepted (bytes).
    public static let maxFileBytes = 512 << 20

    public enum Section: UInt32, CaseIterable, Sendable {
        case meta = 1, schema = 2, offers = 3, weights = 4, exploration = 5, rules = 6, ope = 7, slot1 = 8
        var required: Bool { rawValue <= 5 }
        /// Every section but WEIGHTS and SLOT1 (binary, whose sizes are exact) is JSON.
        var isJSON: Bool { self != .weights && self != .slot1 }
        /// Size limit of sections whose contents are small by nature (nil: bounded by the
        /// contents themselves, i.e. the schema, the offer table and the exact weight count).
        var maxBytes: Int? {
            switch self {
            case .meta, .exploration: 4 << 10
            case .rules, .ope: 1 << 20
            case .slot1: 4 * (ModelSnapshot.maxSlot1Offers * (ModelSnapshot.maxSlot1Offers + 1))
            case .schema, .offers, .weights: nil
            }
        }
        /// Top-level keys of the sections with a fixed shape (nil: free-form or an array).
        var jsonKeys: [[UInt8]]? {
            switch self {
            case .meta: SnapshotFile.metaKeys
            case .schema: SnapshotFile.schemaKeys
            case .exploration: SnapshotFile.explorationKeys
            case .offers, .weights, .rules, .ope, .slot1: nil
            }
        }
        var name: String {
            switch self {
            case .meta: "META"
            case .schema: "SCHEMA"
            case .offers: "OFFERS"
            case .weights: "WEIGHTS"
            case .exploration: "EXPLORATION"
            case .rules: "RULES"
            case .ope: "OPE"
            case .slot1: "SLOT1"
            }
        }
    }

    static let metaKeys = ["link", "objective"].map { Array($0.utf8) }
    static let schemaKeys = ["features", "interactions"].map { Array($0.utf8) }
    static let explorationKeys = ["kind", "epsilon", "temperature", "gamma"].map { Array($0.utf8) }

    struct MetaJSON: Codable { var link: ModelSnapshot.Link; var objective: ModelSnapshot.Objective }
    struct SchemaJSON: Codable { var features: [String]; var interactions: [[Int]] }
    struct ExplorationJSON: Codable {
        var kind: String
        var epsilon: Double?
        var temperature: Double?
        var gamma: Double?
    }

    /// What `read` found besides the model.
    public struct Metadata: Sendable {
        public var sha256: [UInt8]
        public var signedBy: [UInt8]?
        public var fileBytes: Int
    }

    // MARK: Writing

    /// Serializes `snapshot`, signing the checksum with `signingKey` when given.
    public static func write(_ snapshot: ModelSnapshot, signingKey: Ed25519.PrivateKey? = nil) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var sections: [(Section, [UInt8])] = []
        sections.append(
            (.meta, Array(try encoder.encode(MetaJSON(link: snapshot.link, objective: snapshot.objective)))))
        let schemaBytes = Array(
            try encoder.encode(
                SchemaJSON(
                    features: snapshot.schema.features,
                    interactions: snapshot.schema.interactions.map { [$0.first, $0.second] })))
        sections.append((.schema, schemaBytes))
        sections.append((.offers, Array(try encoder.encode(snapshot.offerIDs))))
        var weights = [UInt8]()
        let width = snapshot.schema.width
        weights.reserveCapacity(4 * (width + snapshot.offerIDs.count * (width + 1)))
        func put(_ f: Float) { withUnsafeBytes(of: f.bitPattern.littleEndian) { weights.append(contentsOf: $0) } }
        snapshot.sharedWeights.forEach(put)
        for o in 0..<snapshot.offerIDs.count {
            put(snapshot.offerBiases[o])
            for j in 0..<width { put(snapshot.offerWeights[o * width + j]) }
        }
        sections.append((.weights, weights))
        sections.append((.exploration, Array(try encoder.encode(explorationJSON(snapshot.exploration)))))
        if let rules = snapshot.rulesJSON { sections.append((.rules, Array(rules.utf8))) }
        if let ope = snapshot.opeReportJSON { sections.append((.ope, Array(ope.utf8))) }
        if let slot1 = snapshot.slot1 {
            var bytes = [UInt8]()
            bytes.reserveCapacity(4 * (slot1.biases.count + slot1.pairs.count))
            for f in slot1.biases + slot1.pairs {
                withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            }
            sections.append((.slot1, bytes))
        }

        var out = magic
        appendLE(&out, formatVersion)
        appendLE(&out, UInt32(sections.count))
        appendLE(&out, UInt64(bitPattern: snapshot.createdAtMillis))
        out += SHA256.digest(schemaBytes)
        let version = Array(snapshot.version.utf8)
        appendLE(&out, UInt16(version.count))
        out += version
        while out.count % 8 != 0 { out.append(0) }
        var offset = out.count + sections.count * tableEntryBytes
        for (type, payload) in sections {
            appendLE(&out, type.rawValue)
            appendLE(&out, UInt32(0))
            appendLE(&out, UInt64(offset))
            appendLE(&out, UInt64(payload.count))
            offset += payload.count
        }
        for (_, payload) in sections { out += payload }
        let digest = SHA256.digest(out)
        out += trailerMagic
        out += digest
        if let signingKey {
            out.append(1)
            out += [UInt8](repeating: 0, count: 7)
            out += signingKey.publicKey.raw
            out += try signingKey.sign(digest)
        } else {
            out += [UInt8](repeating: 0, count: 8 + 32 + 64)
        }
        return out
    }

    static func explorationJSON(_ e: Exploration) -> ExplorationJSON {
        switch e {
        case .uniform: ExplorationJSON(kind: e.name)
        case .epsilonGreedy(let v): ExplorationJSON(kind: e.name, epsilon: v)
        case .softmax(let v): ExplorationJSON(kind: e.name, temperature: v)
        case .squareCB(let v): ExplorationJSON(kind: e.name, gamma: v)
        }
    }

    static func exploration(from json: ExplorationJSON) throws(ModelError) -> Exploration {
        func need(_ v: Double?, _ name: String) throws(ModelError) -> Double {
            guard let v else { throw ModelError(.invalidSnapshot, "EXPLORATION: \(json.kind) needs '\(name)'") }
            return v
        }
        switch json.kind {
        case "uniform": return .uniform
        case "epsilon_greedy": return .epsilonGreedy(epsilon: try need(json.epsilon, "epsilon"))
        case "softmax": return .softmax(temperature: try need(json.temperature, "temperature"))
        case "squarecb": return .squareCB(gamma: try need(json.gamma, "gamma"))
        default:
            throw ModelError(
                .invalidSnapshot,
                "EXPLORATION: unknown kind '\(json.kind)' (uniform, epsilon_greedy, softmax, squarecb)")
        }
    }

    static func appendLE<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}
