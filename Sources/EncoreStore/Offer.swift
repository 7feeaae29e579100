/// One offer of the catalog, as loaded from a JSONL line or upserted over RPC.
public struct Offer: Sendable, Hashable {
    /// The longest accepted `offer_id`, in UTF-8 bytes.
    public static let maxIDBytes = 256

    /// The `offer_id` (non-empty, at most 256 UTF-8 bytes, unique in a catalog).
    public var id: String
    /// The dense index the catalog interned this offer to (file order); -1 until interned.
    public internal(set) var index: Int32 = -1
    /// The `kind` field (e.g. `gift_box`), if given.
    public var kind: String?
    /// Where the offer may be shown; `.all` when the `surfaces` field is omitted.
    public var surfaces: SurfaceSet
    /// The `value_cents` field (0 when omitted), in the order's currency minor unit.
    public var valueCents: Int64
    /// The `title` field, if given.
    public var title: String?
    /// The business-rule fields (eligibility, caps, suppression, budget, threshold).
    public var rules = OfferRules()
    /// Every other key of the line with its raw JSON value (kept, never rejected).
    public var extra: [String: JSONValue]

    /// Creates an offer (not yet interned: `index` is -1).
    public init(
        id: String, kind: String? = nil, surfaces: SurfaceSet = .all, valueCents: Int64 = 0,
        title: String? = nil, extra: [String: JSONValue] = [:]
    ) {
        self.id = id
        self.kind = kind
        self.surfaces = surfaces
        self.valueCents = valueCents
        self.title = title
        self.extra = extra
    }

    /// Parses one catalog line (a JSON object).
    /// - Throws: `StoreError` naming the field: `.malformed` (not JSON, not an object),
    ///   `.missingField` (no or empty `offer_id`), `.limitExceeded` (`offer_id` over 256 bytes),
    ///   `.invalidField` (wrong type, unknown surface, non-integer `value_cents`, a rule field of
    ///   the wrong type or range).
    public init(jsonLine: String) throws {
        let value = try JSONValue(parsing: jsonLine)
        guard case .object(let fields) = value else {
            throw StoreError(.malformed, "expected a JSON object")
        }
        try self.init(fields: fields)
    }

    /// Builds an offer from a parsed JSON object (see `init(jsonLine:)` for the errors).
    public init(fields: [String: JSONValue]) throws {
        guard let idValue = fields["offer_id"] else {
            throw StoreError(.missingField, "field 'offer_id' is missing")
        }
        guard case .string(let id) = idValue else {
            throw StoreError(.invalidField, "field 'offer_id' must be a string")
        }
        guard !id.isEmpty else { throw StoreError(.missingField, "field 'offer_id' is empty") }
        guard id.utf8.count <= Offer.maxIDBytes else {
            throw StoreError(
                .limitExceeded, "field 'offer_id' is \(id.utf8.count) bytes (at most \(Offer.maxIDBytes))")
        }
        self.init(id: id)
        var extra = fields
        extra["offer_id"] = nil
        if let v = extra.removeValue(forKey: "kind"), v != .null {
            guard case .string(let s) = v else { throw StoreError(.invalidField, "field 'kind' must be a string") }
            kind = s
        }
        if let v = extra.removeValue(forKey: "title"), v != .null {
            guard case .string(let s) = v else { throw StoreError(.invalidField, "field 'title' must be a string") }
            title = s
        }
        if let v = extra.removeValue(forKey: "value_cents"), v != .null {
            guard let cents = v.exactInteger else {
                throw StoreError(.invalidField, "field 'value_cents' must be an integer, got \(v)")
            }
            valueCents = cents
        }
        if let v = extra.removeValue(forKey: "surfaces"), v != .null {
            guard case .array(let items) = v else {
                throw StoreError(.invalidField, "field 'surfaces' must be an array of strings")
            }
            var set: SurfaceSet = []
            for item in items {
                guard case .string(let name) = item else {
                    throw StoreError(.invalidField, "field 'surfaces' must be an array of strings")
                }
                guard let surface = Surface(rawValue: name) else {
                    throw StoreError(
                        .invalidField, "field 'surfaces': unknown surface \"\(name)\" (expected \(Surface.spellings))")
                }
                set.insert(SurfaceSet(surface))
            }
            surfaces = set
        }
        rules = try OfferRules(taking: &extra)
        self.extra = extra
    }
}
