import Testing

@testable import EncoreStore

@Suite struct OfferCatalogTests {
    private let sample = """
        {"offer_id": "gift_box", "kind": "gift_box", "surfaces": ["cart", "confirmation"], "value_cents": 500, "title": "Gift box"}

        {"offer_id": "rush_shipping"}
        {"offer_id": "referral", "value_cents": 2000, "caps": {"per_customer": 1}, "countries": ["US", "CA"], "min_total": 2500.5}
        """

    private func error(_ text: String) -> StoreError? {
        do {
            _ = try OfferCatalog(jsonl: text, source: "cat.jsonl")
            return nil
        } catch {
            return error as? StoreError
        }
    }

    private func index(_ catalog: OfferCatalog, _ id: String) -> Int32 {
        var id = id
        return id.withUTF8 { catalog.index(of: UnsafeRawBufferPointer($0)) }
    }

    @Test func parsesFieldsAndInternsInFileOrder() throws {
        let catalog = try OfferCatalog(jsonl: sample)
        #expect(catalog.count == 3)
        #expect(catalog.offers.map(\.id) == ["gift_box", "rush_shipping", "referral"])
        #expect(catalog.offers.map(\.index) == [0, 1, 2])
        let gift = catalog[0]
        #expect(gift.kind == "gift_box")
        #expect(gift.title == "Gift box")
        #expect(gift.valueCents == 500)
        #expect(gift.surfaces == SurfaceSet([.cart, .confirmation]))
        #expect(gift.extra.isEmpty)
    }

    @Test func omittedSurfacesMeansEverySurface() throws {
        let catalog = try OfferCatalog(jsonl: sample)
        #expect(catalog[1].surfaces == .all)
        #expect(catalog[1].valueCents == 0)
        #expect(catalog[1].kind == nil)
        #expect(catalog.indices(on: .cart) == [0, 1, 2])
        #expect(catalog.indices(on: .payment) == [1, 2])
        #expect(catalog.indices(on: .confirmation) == [0, 1, 2])
    }

    @Test func keepsUnknownKeysAsRawJSON() throws {
        let referral = try OfferCatalog(jsonl: sample)[2]
        #expect(referral.extra["caps"] == .object(["per_customer": .integer(1)]))
        // `countries` is a rule field: interpreted, not kept raw.
        #expect(referral.extra["countries"] == nil)
        #expect(referral.rules.countries == ["US", "CA"])
        #expect(referral.extra["min_total"] == .number(2500.5))
        #expect(referral.extra["offer_id"] == nil)
        #expect(referral.extra["value_cents"] == nil)
    }

    @Test func looksUpIdsFromBytes() throws {
        let catalog = try OfferCatalog(jsonl: sample)
        #expect(index(catalog, "gift_box") == 0)
        #expect(index(catalog, "referral") == 2)
        #expect(index(catalog, "gift_bo") == -1)
        #expect(index(catalog, "") == -1)
        #expect(catalog.index(of: "rush_shipping") == 1)
    }

    @Test func reportsMalformedJSONWithLineAndColumn() {
        let e = error("{\"offer_id\": \"a\"}\n{\"offer_id\" \"b\"}")
        #expect(e?.code == .malformed)
        #expect(e?.line == 2)
        #expect(e?.message.hasPrefix("cat.jsonl:2: malformed JSON at column 13") == true)
        #expect(error("[1,2]")?.code == .malformed)
        #expect(error("{\"offer_id\": \"a\"} x")?.code == .malformed)
    }

    @Test func reportsMissingAndEmptyOfferID() {
        let missing = error("{\"offer_id\": \"a\"}\n\n{\"kind\": \"x\"}")
        #expect(missing?.code == .missingField)
        #expect(missing?.line == 3)
        #expect(missing?.message.contains("offer_id") == true)
        let empty = error("{\"offer_id\": \"\"}")
        #expect(empty?.code == .missingField)
        #expect(empty?.line == 1)
        #expect(error("{\"offer_id\": 7}")?.code == .invalidField)
    }

    @Test func reportsDuplicateOfferIDWithBothLines() {
        let e = error("{\"offer_id\": \"a\"}\n{\"offer_id\": \"b\"}\n{\"offer_id\": \"a\"}")
        #expect(e?.code == .duplicateID)
        #expect(e?.line == 3)
        #expect(e?.message.contains("first on line 1") == true)
    }

    @Test func reportsUnknownSurface() {
        let e = error("{\"offer_id\": \"a\", \"surfaces\": [\"cart\", \"checkout\"]}")
        #expect(e?.code == .invalidField)
        #expect(e?.line == 1)
        #expect(e?.message.contains("surfaces") == true)
        #expect(e?.message.contains("checkout") == true)
    }

    @Test func rejectsOfferIDOver256Bytes() throws {
        let ok = String(repeating: "x", count: 256)
        #expect(try OfferCatalog(jsonl: "{\"offer_id\": \"\(ok)\"}").count == 1)
        let e = error("{\"offer_id\": \"\(ok)y\"}")
        #expect(e?.code == .limitExceeded)
        #expect(e?.message.contains("257 bytes") == true)
    }

    @Test func rejectsNonIntegerValueCents() throws {
        for bad in ["12.5", "\"500\"", "true", "[1]"] {
            let e = error("{\"offer_id\": \"a\"}\n{\"offer_id\": \"b\", \"value_cents\": \(bad)}")
            #expect(e?.code == .invalidField, "\(bad)")
            #expect(e?.line == 2)
            #expect(e?.message.contains("value_cents") == true)
        }
        #expect(try OfferCatalog(jsonl: "{\"offer_id\": \"a\", \"value_cents\": 500.0}")[0].valueCents == 500)
    }

    @Test func loadsFromAFileAndNamesItInErrors() throws {
        let path = TemporaryFile.write(sample, name: "catalog.jsonl")
        defer { TemporaryFile.remove(path) }
        #expect(try OfferCatalog(contentsOf: path).count == 3)
        let bad = TemporaryFile.write("{\"offer_id\": \"a\"}\n{\"offer_id\": \"a\"}\n", name: "bad.jsonl")
        defer { TemporaryFile.remove(bad) }
        #expect(throws: StoreError.self) { try OfferCatalog(contentsOf: bad) }
        do {
            _ = try OfferCatalog(contentsOf: bad)
        } catch let e as StoreError {
            #expect(e.file == bad)
            #expect(e.message.hasPrefix("\(bad):2:"))
        }
    }

    @Test func upsertKeepsIndicesAndAppendsNewOffers() throws {
        let v1 = try OfferCatalog(jsonl: sample)
        let v2 = try v1.upserting([
            Offer(id: "referral", valueCents: 3000), Offer(id: "loyalty", surfaces: SurfaceSet(.email)),
            Offer(id: "loyalty", surfaces: SurfaceSet([.email, .cart])),
        ])
        #expect(v2.offers.map(\.id) == ["gift_box", "rush_shipping", "referral", "loyalty"])
        #expect(v2.offers.map(\.index) == [0, 1, 2, 3])
        #expect(v2[2].valueCents == 3000)
        #expect(v2[3].surfaces == SurfaceSet([.email, .cart]))
        #expect(v2.index(of: "loyalty") == 3)
        #expect(v1.count == 3)
        #expect(v1[2].valueCents == 2000)
        #expect(v1.index(of: "loyalty") == -1)
        let v3 = try v2.upserting(jsonl: "{\"offer_id\": \"gift_box\", \"surfaces\": [\"email\"]}")
        #expect(v3[0].surfaces == SurfaceSet(.email))
        #expect(v3.indices(on: .cart) == [1, 2, 3])
    }
}
