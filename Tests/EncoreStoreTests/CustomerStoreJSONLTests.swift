import Testing

@testable import EncoreStore

@Suite struct CustomerStoreJSONLTests {
    private let jsonl = """
        {"customer_id": "c1", "segments": ["vip","repeat"], "features": {"f0": 0.5, "f1": 2, "f2": -1e-1}}
        {"features": {"f2": 7, "f0": 1}, "customer_id": "c2"}

        {"customer_id": "c\\u00e9\\"3", "segments": [], "features": {}}
        {"customer_id": "c4", "segments": ["new"]}
        """

    @Test func loadsWithTheFirstLineDefiningTheSchema() throws {
        let store = try TemporaryFile.loadCustomers(jsonl, name: "customers.jsonl").store
        #expect(store.count == 4)
        #expect(store.featureNames == ["f0", "f1", "f2"])
        #expect(store.segmentNames == ["vip", "repeat", "new"])
        #expect(Array(store.features(at: store.lookup("c1"))) == [0.5, 2, -0.1])
        #expect(store.segments(at: store.lookup("c1")) == 0b11)
        #expect(Array(store.features(at: store.lookup("c2"))) == [1, 0, 7])
        #expect(store.segments(at: store.lookup("c2")) == 0)
        let c3 = store.lookup("cé\"3")
        #expect(c3 == 2)
        #expect(Array(store.features(at: c3)) == [0, 0, 0])
        #expect(store.segmentNames(in: store.segments(at: store.lookup("c4"))) == ["new"])
        #expect(store.lookup("c5") == -1)
    }

    @Test func sniffsJSONLWithoutAnExtension() throws {
        #expect(try TemporaryFile.loadCustomers(jsonl, name: "customers.txt").store.count == 4)
    }

    @Test func unknownFeatureIsAnErrorNamingLineAndKey() {
        let e = TemporaryFile.loadError(
            "{\"customer_id\": \"a\", \"features\": {\"f0\": 1}}\n{\"customer_id\": \"b\", \"features\": {\"f9\": 1}}\n",
            name: "x.jsonl")
        #expect(e?.code == .invalidField)
        #expect(e?.line == 2)
        #expect(e?.message.contains("\"f9\"") == true)
    }

    @Test func rejectsBadValuesAndLines() {
        let cases: [(String, StoreError.Code)] = [
            ("{\"customer_id\": \"b\", \"features\": {\"f0\": \"1\"}}", .invalidField),
            ("{\"customer_id\": \"b\", \"features\": {\"f0\": NaN}}", .invalidField),
            ("{\"customer_id\": \"b\", \"features\": {\"f0\": 1e99}}", .invalidField),
            ("{\"customer_id\": \"b\", \"features\": {\"f0\": 1}", .malformed),
            ("{\"features\": {\"f0\": 1}}", .missingField),
            ("{\"customer_id\": \"\"}", .missingField),
            ("{\"customer_id\": 5}", .invalidField),
            ("{\"customer_id\": \"b\", \"segment\": [\"x\"]}", .invalidField),
            ("{\"customer_id\": \"a\"}", .duplicateID),
        ]
        for (line, code) in cases {
            let e = TemporaryFile.loadError(
                "{\"customer_id\": \"a\", \"features\": {\"f0\": 1}}\n" + line + "\n", name: "x.jsonl")
            #expect(e?.code == code, "\(line)")
            #expect(e?.line == 2, "\(line)")
            #expect(e?.file?.hasSuffix("x.jsonl") == true)
        }
    }
}
