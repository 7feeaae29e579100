import Foundation

/// The JSON export a trainer writes and `encore snapshot build --from` turns into a snapshot
/// (documented in docs/snapshots.md). Interactions name features either by index or by name.
public struct SnapshotExport: Codable, Sendable {
    public var modelVersion: String
    public var createdAtMillis: Int64?
    public var features: [String]
    public var interactions: [[InteractionRef]]?
    public var offers: [String]
    public var sharedWeights: [Double]
    public var offerWeights: [[Double]]
    public var offerBiases: [Double]?
    public var link: ModelSnapshot.Link?
    public var objective: ModelSnapshot.Objective?
    public var exploration: Exploration?
    /// Optional JSON objects carried verbatim in the RULES and OPE sections.
    public var rules: JSONText?
    public var ope: JSONText?
    /// Optional slot-1 model (the SLOT1 section): one bias per offer and a pair table whose row
    /// is the slot-0 offer and column the slot-1 offer (both in `offers` order).
    public var slot1: Slot1?

    public struct Slot1: Codable, Sendable {
        public var offerBiases: [Double]
        public var pairs: [[Double]]
        enum CodingKeys: String, CodingKey { case offerBiases = "offer_biases", pairs }
    }

    public struct Exploration: Codable, Sendable {
        public var kind: String
        public var epsilon: Double?
        public var temperature: Double?
        public var gamma: Double?
    }

    /// An interaction member: a feature index or name.
    public enum InteractionRef: Codable, Sendable {
        case index(Int)
        case name(String)

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let i = try? c.decode(Int.self) { self = .index(i) } else { self = .name(try c.decode(String.self)) }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .index(let i): try c.encode(i)
            case .name(let n): try c.encode(n)
            }
        }
    }

    /// Any JSON value, kept as compact text.
    public struct JSONText: Codable, Sendable {
        public var text: String
        public init(from decoder: Decoder) throws {
            let value = try decoder.singleValueContainer().decode(AnyJSON.self)
            let data = try JSONSerialization.data(
                withJSONObject: value.value, options: [.sortedKeys, .fragmentsAllowed])
            text = String(decoding: data, as: UTF8.self)
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            try c.encode(AnyJSON(object))
        }
    }

    enum CodingKeys: String, CodingKey {
        case modelVersion = "model_version", createdAtMillis = "created_at_millis", features, interactions, offers
        case sharedWeights = "shared_weights", offerWeights = "offer_weights", offerBiases = "offer_biases", link
        case objective, exploration, rules, ope, slot1
    }

    /// Reads an export; throws `.invalidExport` naming the JSON problem.
    public static func decode(_ data: Data) throws(ModelError) -> SnapshotExport {
        do {
            return try JSONDecoder().decode(SnapshotExport.self, from: data)
        } catch {
            throw ModelError(.invalidExport, "export is not valid: \(error)")
        }
    }

    /// Builds the validated snapshot (see `ModelSnapshot.init`).
    public func snapshot() throws(ModelError) -> ModelSnapshot {
        func bad(_ m: String) -> ModelError { ModelError(.invalidExport, m) }
        var pairs: [FeatureSchema.Interaction] = []
        for (k, refs) in (interactions ?? []).enumerated() {
            guard refs.count == 2 else { throw bad("interactions[\(k)] must name two features") }
            var idx: [Int] = []
            for r in refs {
                switch r {
                case .index(let i): idx.append(i)
                case .name(let n):
                    guard let i = features.firstIndex(of: n) else {
                        throw bad("interactions[\(k)]: unknown feature \(n)")
                    }
                    idx.append(i)
                }
            }
            pairs.append(.init(idx[0], idx[1]))
        }
        guard offerWeights.count == offers.count else {
            throw bad("offer_weights has \(offerWeights.count) rows for \(offers.count) offers")
        }
        let width = features.count + pairs.count
        for (i, row) in offerWeights.enumerated() where row.count != width {
            throw bad("offer_weights[\(i)] (\(offers[i])) has \(row.count) weights, expected \(width)")
        }
        let e: EncoreModel.Exploration
        switch exploration?.kind ?? "squarecb" {
        case "uniform": e = .uniform
        case "epsilon_greedy": e = .epsilonGreedy(epsilon: exploration?.epsilon ?? 0.05)
        case "softmax": e = .softmax(temperature: exploration?.temperature ?? 1)
        case "squarecb": e = .squareCB(gamma: exploration?.gamma ?? 100)
        case let other: throw bad("exploration.kind '\(other)' is not uniform, epsilon_greedy, softmax or squarecb")
        }
        var slot1Model: ModelSnapshot.Slot1Model? = nil
        if let slot1 {
            guard slot1.pairs.count == offers.count else {
                throw bad("slot1.pairs has \(slot1.pairs.count) rows for \(offers.count) offers")
            }
            for (i, row) in slot1.pairs.enumerated() where row.count != offers.count {
                throw bad("slot1.pairs[\(i)] (\(offers[i])) has \(row.count) terms, expected \(offers.count)")
            }
            slot1Model = ModelSnapshot.Slot1Model(
                biases: slot1.offerBiases.map(Float.init), pairs: slot1.pairs.flatMap { $0.map(Float.init) })
        }
        return try ModelSnapshot(
            version: modelVersion, createdAtMillis: createdAtMillis ?? Int64(Date().timeIntervalSince1970 * 1000),
            schema: FeatureSchema(features: features, interactions: pairs), offerIDs: offers,
            sharedWeights: sharedWeights.map(Float.init), offerWeights: offerWeights.flatMap { $0.map(Float.init) },
            offerBiases: (offerBiases ?? [Double](repeating: 0, count: offers.count)).map(Float.init),
            link: link ?? .logistic, objective: objective ?? .conversion, exploration: e, rulesJSON: rules?.text,
            opeReportJSON: ope?.text, slot1: slot1Model)
    }
}

/// A Codable wrapper for arbitrary JSON (used to carry RULES/OPE objects verbatim).
struct AnyJSON: Codable {
    var value: Any

    init(_ value: Any) { self.value = value }

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            value = NSNull()
        } else if let b = try? c.decode(Bool.self) {
            value = b
        } else if let d = try? c.decode(Double.self) {
            value = d
        } else if let s = try? c.decode(String.self) {
            value = s
        } else if let a = try? c.decode([AnyJSON].self) {
            value = a.map(\.value)
        } else {
            value = try c.decode([String: AnyJSON].self).mapValues(\.value)
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch value {
        case is NSNull: try c.encodeNil()
        case let b as Bool: try c.encode(b)
        case let d as Double: try c.encode(d)
        case let i as Int: try c.encode(i)
        case let s as String: try c.encode(s)
        case let a as [Any]: try c.encode(a.map(AnyJSON.init))
        case let o as [String: Any]: try c.encode(o.mapValues(AnyJSON.init))
        default: try c.encodeNil()
        }
    }
}
