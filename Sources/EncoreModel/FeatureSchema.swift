import EncoreSupport

/// The named layout of a model's context vector. A snapshot lists its features by name; the
/// running server compiles the names against its feature store into a `FeatureProgram`, and
/// refuses the snapshot if a name cannot be resolved.
///
/// Feature names (documented in docs/snapshots.md):
/// - `bias` (always 1)
/// - `order.total_log` = ln(1 + total_cents / 100); `order.items_log` = ln(1 + Σ quantity);
///   `order.is_gift` (0/1)
/// - `order.category=<c>` (1 if any line item has category c), `order.shipping=<v>`,
///   `order.channel=<v>`, `order.device=<v>`, `order.country=<v>`, `surface=<s>` (0/1)
/// - `customer.known` (1 if the customer is in the store, 0 for cold start),
///   `customer.<name>` (a stored numeric feature), `segment=<name>` (0/1)
/// - `request.<key>` (the request's `features[key]`, 0 when absent)
///
/// Interactions name pairs of features whose product is appended to the vector.
public struct FeatureSchema: Sendable, Equatable {
    public var features: [String]
    /// Pairs of indices into `features`.
    public var interactions: [Interaction]

    public struct Interaction: Sendable, Equatable, Hashable {
        public var first: Int
        public var second: Int
        public init(_ first: Int, _ second: Int) {
            self.first = first
            self.second = second
        }
    }

    public init(features: [String], interactions: [Interaction] = []) {
        self.features = features
        self.interactions = interactions
    }

    /// Width of the scored vector: features plus one per interaction.
    public var width: Int { features.count + interactions.count }

    /// Checks names and interaction indices; returns the first problem, or nil.
    public func validationError() -> String? {
        if features.isEmpty { return "feature schema is empty" }
        var seen = Set<String>()
        for (i, name) in features.enumerated() {
            if name.isEmpty || name.utf8.count > 256 { return "feature \(i) has an empty or over-long name" }
            if !seen.insert(name).inserted { return "feature \(name) is listed twice" }
            if case .failure(let message) = FeatureOp.parse(name) { return message }
        }
        for (k, pair) in interactions.enumerated() {
            guard features.indices.contains(pair.first), features.indices.contains(pair.second) else {
                return
                    "interaction \(k) refers to feature \(pair.first) x \(pair.second), outside 0..<\(features.count)"
            }
        }
        return nil
    }

    /// Resolves every name against the running store's customer feature columns and segments.
    /// Throws a `ModelError` (.schemaMismatch) naming the first feature that cannot be served.
    public func compile(customerFeatures: [String], segments: [String]) throws(ModelError) -> FeatureProgram {
        if let problem = validationError() { throw ModelError(.invalidSnapshot, problem) }
        var columns: [String: Int] = [:]
        for (i, n) in customerFeatures.enumerated() { columns[n] = i }
        var segmentBits: [String: Int] = [:]
        for (i, n) in segments.enumerated() { segmentBits[n] = i }
        var ops: [FeatureOp] = []
        for name in features {
            guard case .success(var op) = FeatureOp.parse(name) else { continue }
            switch op {
            case .customerColumn(let pending):
                guard let column = columns[pending.name] else {
                    throw ModelError(
                        .schemaMismatch,
                        "feature \(name): the feature store has no customer feature '\(pending.name)' (it has \(customerFeatures.count): \(customerFeatures.prefix(8).joined(separator: ", "))\(customerFeatures.count > 8 ? ", ..." : ""))"
                    )
                }
                op = .customer(column)
            case .segmentNamed(let pending):
                // A segment nobody has yet is legal: the feature is 0 until one appears.
                op = segmentBits[pending.name].map { .segment($0) } ?? .constant(0)
            default: break
            }
            ops.append(op)
        }
        return FeatureProgram(ops: ops, interactions: interactions)
    }
}

/// A name resolved at parse time but needing the store (carried as a small box).
public struct PendingName: Sendable, Equatable {
    public var name: String
}

/// One feature's computation, with every string pre-hashed (`StableHash`) so the per-decision
/// evaluation compares integers and builds no strings.
public enum FeatureOp: Sendable, Equatable {
    case bias
    case constant(Float)
    case totalLog
    case itemsLog
    case isGift
    case category(UInt64)
    case shipping(UInt64)
    case channel(UInt64)
    case device(UInt64)
    case country(UInt64)
    case surface(UInt64)
    case customerKnown
    case customer(Int)
    case segment(Int)
    case request(UInt64)
    /// Parse-time placeholders, replaced by `compile`.
    case customerColumn(PendingName)
    case segmentNamed(PendingName)

    public enum ParseResult: Sendable { case success(FeatureOp), failure(String) }

    /// Parses a feature name (see `FeatureSchema`).
    public static func parse(_ name: String) -> ParseResult {
        switch name {
        case "bias": return .success(.bias)
        case "order.total_log": return .success(.totalLog)
        case "order.items_log": return .success(.itemsLog)
        case "order.is_gift": return .success(.isGift)
        case "customer.known": return .success(.customerKnown)
        default: break
        }
        func value(after prefix: String) -> String? {
            guard name.hasPrefix(prefix) else { return nil }
            let rest = String(name.dropFirst(prefix.count))
            return rest.isEmpty ? nil : rest
        }
        if let v = value(after: "order.category=") { return .success(.category(StableHash.hash(v))) }
        if let v = value(after: "order.shipping=") { return .success(.shipping(StableHash.hash(v))) }
        if let v = value(after: "order.channel=") { return .success(.channel(StableHash.hash(v))) }
        if let v = value(after: "order.device=") { return .success(.device(StableHash.hash(v))) }
        if let v = value(after: "order.country=") { return .success(.country(StableHash.hash(v))) }
        if let v = value(after: "surface=") { return .success(.surface(StableHash.hash(v))) }
        if let v = value(after: "segment=") { return .success(.segmentNamed(PendingName(name: v))) }
        if let v = value(after: "customer.") { return .success(.customerColumn(PendingName(name: v))) }
        if let v = value(after: "request.") { return .success(.request(StableHash.hash(v))) }
        return .failure("unknown feature name '\(name)' (see docs/snapshots.md for the feature names)")
    }
}

/// A compiled schema: evaluated once per decision into a reused Float vector.
public struct FeatureProgram: Sendable {
    public let ops: [FeatureOp]
    public let interactions: [FeatureSchema.Interaction]

    public init(ops: [FeatureOp], interactions: [FeatureSchema.Interaction]) {
        self.ops = ops
        self.interactions = interactions
    }

    public var width: Int { ops.count + interactions.count }
}
