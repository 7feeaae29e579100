import EncoreSupport

/// An immutable generation of the offer catalog: offers interned to dense `Int32` indices in
/// file order, an allocation-free id lookup, and the offers eligible on each surface.
///
/// A new generation (`upserting`) keeps every existing offer's index, so per-offer state kept
/// by index elsewhere (counters, model rows) stays valid; publish generations with
/// `Published<OfferCatalog>`.
public final class OfferCatalog: Sendable {
    /// The offers; `offers[i].index == i`.
    public let offers: [Offer]
    private let ids: IdIndex
    private let bySurface: [[Int32]]

    /// A catalog with no offers.
    public static let empty = try! OfferCatalog(offers: [])

    /// Interns `offers` in order (their `index` fields are assigned here).
    /// - Throws: `StoreError(.duplicateID)` naming the offer id and both positions (1-based).
    public init(offers: [Offer]) throws {
        var interned = offers
        for i in interned.indices { interned[i].index = Int32(i) }
        do {
            ids = try IdIndex(offers.map(\.id))
        } catch let dup as IdIndex.Duplicate {
            throw StoreError(
                .duplicateID,
                "duplicate offer_id \"\(offers[dup.duplicate].id)\" (offers \(dup.first + 1) and \(dup.duplicate + 1))")
        }
        self.offers = interned
        bySurface = Surface.allCases.map { s in interned.filter { $0.surfaces.contains(s) }.map(\.index) }
    }

    /// Loads a JSONL catalog file (see `init(jsonl:source:)`).
    /// - Throws: `StoreError(.io)` if the file cannot be read, else as `init(jsonl:source:)`.
    public convenience init(contentsOf path: String) throws {
        let file = try MappedFile(path: path)
        try self.init(offers: OfferCatalog.parse(lines: file.bytes, source: path))
    }

    /// Parses a catalog: one JSON object per line, only `offer_id` required; blank lines are
    /// skipped. `source` names the input in errors.
    /// - Throws: `StoreError` whose message is `source:line: ...` and names the field at fault
    ///   (malformed JSON with its column, missing/empty/over-long/duplicate `offer_id`, unknown
    ///   surface, non-integer `value_cents`).
    public convenience init(jsonl text: String, source: String = "<catalog>") throws {
        var text = text
        let offers = try text.withUTF8 { try OfferCatalog.parse(lines: UnsafeRawBufferPointer($0), source: source) }
        try self.init(offers: offers)
    }

    private static func parse(lines bytes: UnsafeRawBufferPointer, source: String) throws -> [Offer] {
        var offers: [Offer] = []
        var firstLine: [String: Int] = [:]
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            lineNumber += 1
            let line = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            start = end + 1
            guard line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { continue }
            let offer: Offer
            do {
                offer = try Offer(jsonLine: String(decoding: line, as: UTF8.self))
            } catch let e as StoreError {
                throw StoreError(e.code, e.message, file: source, line: lineNumber)
            }
            if let previous = firstLine[offer.id] {
                throw StoreError(
                    .duplicateID, "duplicate offer_id \"\(offer.id)\" (first on line \(previous))",
                    file: source, line: lineNumber)
            }
            firstLine[offer.id] = lineNumber
            offers.append(offer)
        }
        return offers
    }

    /// Number of offers.
    public var count: Int { offers.count }

    /// The default most offers one surface may have eligible (`encore serve
    /// --max-offers-per-surface`). A decision scores every offer eligible on its surface (each
    /// gets a propensity), so its cost grows with that count, not with the catalog: offers on
    /// other surfaces cost nothing (the per-surface index). Offers without `surfaces` are
    /// eligible everywhere and count on every surface.
    public static let defaultMaxOffersPerSurface = 1_000

    /// Why this catalog breaks the per-surface limit (naming the surface, its count and the
    /// limit), or nil.
    public func perSurfaceLimitProblem(maxOffersPerSurface limit: Int) -> String? {
        for surface in Surface.allCases where indices(on: surface).count > limit {
            return
                "\(indices(on: surface).count) offers are eligible on surface \(surface.rawValue), more than the \(limit) one surface may have (--max-offers-per-surface; an offer without \"surfaces\" counts on every surface)"
        }
        return nil
    }

    /// The offer with dense index `index` (0 <= index < count).
    public subscript(index: Int32) -> Offer { offers[Int(index)] }

    /// The index of the offer whose id is the UTF-8 `id`, or -1. No allocation, no lock.
    @inline(__always)
    public func index(of id: UnsafeRawBufferPointer) -> Int32 { ids.lookup(id) }

    /// The index of the offer with `id`, or -1 (convenience for admin paths).
    public func index(of id: String) -> Int32 {
        var id = id
        return id.withUTF8 { ids.lookup(UnsafeRawBufferPointer($0)) }
    }

    /// The indices of the offers eligible on `surface`, ascending (returning it only retains
    /// the stored array).
    public func indices(on surface: Surface) -> [Int32] {
        switch surface {
        case .cart: bySurface[0]
        case .payment: bySurface[1]
        case .thankYou: bySurface[2]
        case .confirmation: bySurface[3]
        case .email: bySurface[4]
        }
    }

    /// A new generation with `upserts` applied: an offer whose id exists replaces it at the same
    /// index; a new id is appended (in `upserts` order). Within `upserts` the last record for an
    /// id wins. `self` is unchanged.
    public func upserting(_ upserts: [Offer]) throws -> OfferCatalog {
        var next = offers
        var added: [String: Int] = [:]
        for offer in upserts {
            let existing = index(of: offer.id)
            if existing >= 0 {
                next[Int(existing)] = offer
            } else if let i = added[offer.id] {
                next[i] = offer
            } else {
                added[offer.id] = next.count
                next.append(offer)
            }
        }
        return try OfferCatalog(offers: next)
    }

    /// A new generation with the JSONL `text` upserted (see `upserting(_:)`; errors as in
    /// `init(jsonl:source:)`, except that an id repeated in `text` is allowed: the last wins).
    public func upserting(jsonl text: String, source: String = "<upsert>") throws -> OfferCatalog {
        var parsed: [Offer] = []
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            guard line.contains(where: { !$0.isWhitespace }) else { continue }
            do {
                parsed.append(try Offer(jsonLine: String(line)))
            } catch let e as StoreError {
                throw StoreError(e.code, e.message, file: source, line: lineNumber)
            }
        }
        return try upserting(parsed)
    }
}
