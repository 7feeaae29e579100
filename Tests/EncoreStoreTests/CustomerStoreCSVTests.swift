import Testing

@testable import EncoreStore

@Suite struct CustomerStoreCSVTests {
    private let csv = """
        customer_id,segments,orders,aov,recency_days
        c1,vip|repeat,12,85.5,3
        c2,,0,0,400

        c3,repeat,1.5e1,-2.25,
        "c,4",new,1,2,3
        """

    @Test func loadsIdsFeaturesAndSegments() throws {
        let store = try TemporaryFile.loadCustomers(csv, name: "customers.csv").store
        #expect(store.count == 4)
        #expect(store.featureNames == ["orders", "aov", "recency_days"])
        #expect(store.segmentNames == ["vip", "repeat", "new"])
        let c1 = store.lookup("c1")
        #expect(c1 == 0)
        #expect(Array(store.features(at: c1)) == [12, 85.5, 3])
        #expect(store.segmentNames(in: store.segments(at: c1)) == ["vip", "repeat"])
        let c2 = store.lookup("c2")
        #expect(Array(store.features(at: c2)) == [0, 0, 400])
        #expect(store.segments(at: c2) == 0)
        let c3 = store.lookup("c3")
        #expect(Array(store.features(at: c3)) == [15, -2.25, 0])
        #expect(store.segmentNames(in: store.segments(at: c3)) == ["repeat"])
        #expect(store.lookup("c,4") == 3)
        #expect(store.customerID(at: 3) == "c,4")
    }

    @Test func unknownIdsAreNotFoundAndDefaultsAreMeans() throws {
        let store = try TemporaryFile.loadCustomers(csv, name: "customers.csv").store
        for id in ["c5", "", "C1", "c1 ", "c"] {
            #expect(store.lookup(id) == -1, "\(id)")
        }
        var id = "c2"
        #expect(id.withUTF8 { store.lookup(UnsafeRawBufferPointer($0)) } == 1)
        let means: [Float] = [28.0 / 4, 85.25 / 4, 406.0 / 4]
        #expect(Array(store.defaultFeatures) == means)
    }

    @Test func sniffsCSVWithoutAnExtension() throws {
        #expect(try TemporaryFile.loadCustomers(csv, name: "customers.dat").store.count == 4)
    }

    @Test func rejectsNaNAndInfinityNamingLineAndColumn() {
        let e = TemporaryFile.loadError("customer_id,segments,a,b\nc1,,1,2\nc2,,3,NaN\n", name: "x.csv")
        #expect(e?.code == .invalidField)
        #expect(e?.line == 3)
        #expect(e?.message.contains("column 4 (b)") == true)
        let inf = TemporaryFile.loadError("customer_id,segments,a\nc1,,-inf\n", name: "x.csv")
        #expect(inf?.line == 2)
        #expect(inf?.message.contains("column 3 (a)") == true)
        let big = TemporaryFile.loadError("customer_id,segments,a\nc1,,1e40\n", name: "x.csv")
        #expect(big?.code == .invalidField)
        let text = TemporaryFile.loadError("customer_id,segments,a\nc1,,12abc\n", name: "x.csv")
        #expect(text?.message.contains("not a number") == true)
    }

    @Test func rejectsBadHeaders() {
        for header in [
            "id,segments,a", "customer_id,a,b", "customer_id", "customer_id,segments,a,a", "customer_id,segments,a,",
        ] {
            let e = TemporaryFile.loadError(header + "\nc1,,1\n", name: "x.csv")
            #expect(e?.code == .malformed, "\(header)")
            #expect(e?.line == 1, "\(header)")
            #expect(e?.message.contains("bad header") == true)
        }
        #expect(TemporaryFile.loadError("", name: "x.csv")?.code == .malformed)
    }

    @Test func rejectsWrongColumnCounts() {
        let short = TemporaryFile.loadError("customer_id,segments,a,b\nc1,,1,2\nc2,,1\n", name: "x.csv")
        #expect(short?.code == .malformed)
        #expect(short?.line == 3)
        #expect(short?.message.contains("expected 4 columns, found 3") == true)
        let long = TemporaryFile.loadError("customer_id,segments,a\nc1,,1,2\n", name: "x.csv")
        #expect(long?.line == 2)
        #expect(long?.message.contains("expected 3 columns, found 4") == true)
        let idOnly = TemporaryFile.loadError("customer_id,segments,a\nc1\n", name: "x.csv")
        #expect(idOnly?.line == 2)
    }

    @Test func duplicateCustomerIdIsAnErrorNamingBothLines() {
        let e = TemporaryFile.loadError("customer_id,segments,a\nc1,,1\n\nc2,,2\nc1,,3\n", name: "x.csv")
        #expect(e?.code == .duplicateID)
        #expect(e?.line == 5)
        #expect(e?.message.contains("first on line 2") == true)
    }

    @Test func rejectsEmptyIdAndMoreThan64Segments() {
        let empty = TemporaryFile.loadError("customer_id,segments,a\n,,1\n", name: "x.csv")
        #expect(empty?.code == .missingField)
        var lines = "customer_id,segments\n"
        for i in 0..<65 { lines += "c\(i),s\(i)\n" }
        let e = TemporaryFile.loadError(lines, name: "x.csv")
        #expect(e?.code == .limitExceeded)
        #expect(e?.line == 66)
        #expect(e?.message.contains("s64") == true)
    }

    @Test func parallelChunksAgreeWithOneThread() throws {
        // Big enough (> 4 MiB) to be split across threads, with blank lines in both halves.
        var text = "customer_id,segments,a,b\n"
        let n = 120_000
        for i in 0..<n {
            text += "cust-\(i),\(i % 70 == 0 ? "" : "s\(i % 7)|t\(i % 3)"),\(i).25,\(-Double(i) / 8)\n"
            if i % 50_000 == 0 { text += "\n" }
        }
        let path = TemporaryFile.write(text, name: "big.csv")
        defer { TemporaryFile.remove(path) }
        let one = try CustomerStore.load(contentsOf: path, threads: 1, progress: nil)
        let four = try CustomerStore.load(contentsOf: path, threads: 4, progress: nil)
        #expect(one.count == n)
        #expect(four.count == n)
        #expect(one.segmentNames == four.segmentNames)
        for i in stride(from: 0, to: n, by: 997) {
            let a = one.lookup("cust-\(i)")
            let b = four.lookup("cust-\(i)")
            #expect(a == Int32(i))
            #expect(b == Int32(i))
            #expect(Array(one.features(at: a)) == [Float(i) + 0.25, Float(-Double(i) / 8)])
            #expect(Array(four.features(at: b)) == Array(one.features(at: a)))
            #expect(four.segmentNames(in: four.segments(at: b)) == one.segmentNames(in: one.segments(at: a)))
        }
        let e = TemporaryFile.loadError(text + "cust-7,,1,2\n", name: "dup.csv")
        #expect(e?.line == n + 5)  // header, n rows, 3 blank lines
    }
}
