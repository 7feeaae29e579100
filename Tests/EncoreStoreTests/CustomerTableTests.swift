import Testing

@testable import EncoreStore

@Suite struct CustomerTableTests {
    private func base() throws -> CustomerStore {
        try TemporaryFile.loadCustomers(
            "customer_id,segments,a,b\nc1,vip,1,2\nc2,,3,4\n", name: "base.csv"
        ).store
    }

    private func lookup(_ reader: inout CustomerTable.Reader, _ id: String) -> (CustomerView.Source, [Float], UInt64) {
        var id = id
        let view = id.withUTF8 { reader.lookup(UnsafeRawBufferPointer($0)) }
        return (view.source, Array(view.features), view.segments)
    }

    @Test func batchIsVisibleToAReaderAtOnceAndBaseIsUntouched() throws {
        let store = try base()
        let table = CustomerTable(base: store)
        var reader = table.makeReader()
        #expect(lookup(&reader, "c1").0 == .base)
        let before = reader.generation()
        let result = try table.upsert([
            CustomerUpsert(customerID: "c1", segments: ["vip", "churn_risk"], features: ["b": 20]),
            CustomerUpsert(customerID: "c9", features: ["a": 9]),
        ])
        #expect(result.inserted == 1)
        #expect(result.overlayCount == 2)
        // The reader sees the whole batch on its next access, through one new generation.
        let c1 = lookup(&reader, "c1")
        #expect(c1.0 == .overlay)
        #expect(c1.1 == [1, 20])
        let generation = reader.generation()
        #expect(generation !== before)
        #expect(generation.segmentNames(in: c1.2) == ["vip", "churn_risk"])
        let c9 = lookup(&reader, "c9")
        #expect(c9.0 == .overlay)
        #expect(c9.1 == [9, 0])
        #expect(c9.2 == 0)
        #expect(lookup(&reader, "c2") == (.base, [3, 4], 0))
        #expect(generation.customerCount == 3)
        // The base and the earlier generation are unchanged.
        #expect(Array(store.features(at: store.lookup("c1"))) == [1, 2])
        #expect(store.lookup("c9") == -1)
        #expect(store.segmentNames == ["vip"])
        #expect(before.lookup("c1").source == .base)
        #expect(before.lookup("c9").source == .unknown)
    }

    @Test func unknownCustomersGetTheDefaults() throws {
        let table = CustomerTable(base: try base())
        var reader = table.makeReader()
        #expect(lookup(&reader, "nobody") == (.unknown, [2, 3], 0))
    }

    @Test func laterUpsertsApplyOnTopOfTheOverlay() throws {
        let table = CustomerTable(base: try base())
        try table.upsert([CustomerUpsert(customerID: "c2", features: ["a": 30])])
        try table.upsert([CustomerUpsert(customerID: "c2", segments: ["new"], features: ["b": 40])])
        let view = table.current.lookup("c2")
        #expect(Array(view.features) == [30, 40])
        #expect(table.current.segmentNames(in: view.segments) == ["new"])
        #expect(table.current.overlayCount == 1)
        #expect(table.current.number == 3)
    }

    @Test func aBadBatchPublishesNothing() throws {
        let table = CustomerTable(base: try base())
        let before = table.current
        for bad in [
            [
                CustomerUpsert(customerID: "c1", features: ["a": 5]),
                CustomerUpsert(customerID: "c2", features: ["zz": 1]),
            ],
            [CustomerUpsert(customerID: "c1", features: ["a": .nan])],
            [CustomerUpsert(customerID: "")],
        ] {
            #expect(throws: StoreError.self) { try table.upsert(bad) }
        }
        #expect(table.current === before)
        #expect(Array(table.current.lookup("c1").features) == [1, 2])
    }

    @Test func overlayIsBoundedWithResourceExhausted() throws {
        let table = CustomerTable(base: try base(), maxOverlayCount: 3)
        try table.upsert([CustomerUpsert(customerID: "n1"), CustomerUpsert(customerID: "c1")])
        do {
            try table.upsert([CustomerUpsert(customerID: "n2"), CustomerUpsert(customerID: "n3")])
            Issue.record("expected resourceExhausted")
        } catch let e as StoreError {
            #expect(e.code == .resourceExhausted)
        }
        #expect(table.current.overlayCount == 2)
        // Updating customers already in the overlay needs no room.
        try table.upsert([CustomerUpsert(customerID: "n1", features: ["a": 1]), CustomerUpsert(customerID: "n2")])
        #expect(table.current.overlayCount == 3)
    }

    @Test func compactionFoldsTheOverlayIntoANewBase() throws {
        let table = CustomerTable(base: try base(), maxOverlayCount: 2)
        try table.upsert([
            CustomerUpsert(customerID: "c2", segments: ["late"], features: ["a": 7]),
            CustomerUpsert(customerID: "n1", features: ["b": 8]),
        ])
        var reader = table.makeReader()
        let compacted = try table.compact()
        #expect(compacted.overlayCount == 0)
        #expect(compacted.base.count == 3)
        #expect(lookup(&reader, "c2").0 == .base)
        #expect(lookup(&reader, "c2").1 == [7, 4])
        #expect(compacted.segmentNames(in: lookup(&reader, "c2").2) == ["late"])
        #expect(lookup(&reader, "n1") == (.base, [0, 8], 0))
        #expect(lookup(&reader, "c1") == (.base, [1, 2], 1))
        try table.upsert([CustomerUpsert(customerID: "n2"), CustomerUpsert(customerID: "n3")])
        #expect(table.current.customerCount == 5)
    }
}
