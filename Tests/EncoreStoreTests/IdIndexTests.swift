import Testing

@testable import EncoreStore

@Suite struct IdIndexTests {
    @Test func findsEveryOneOf200kIdsAndNoAbsentOne() throws {
        let n = 200_000
        let ids = (0..<n).map { "customer-\($0 &* 2_654_435_761 % 1_000_000_007)" }
        let index = try IdIndex(ids)
        #expect(index.count == n)
        for (i, id) in ids.enumerated() {
            #expect(index.lookup(id) == Int32(i))
        }
        var misses = 0
        for i in 0..<n where index.lookup("customer-x\(i)") != -1 || index.lookup("absent-\(i)") != -1 {
            misses += 1
        }
        #expect(misses == 0)
        #expect(index.lookup("") == -1)
        #expect(index.string(at: 12_345) == ids[12_345])
    }

    @Test func reportsTheFirstDuplicate() {
        #expect(throws: IdIndex.Duplicate.self) { try IdIndex(["a", "b", "c", "b"]) }
        do {
            _ = try IdIndex(["a", "b", "c", "b"])
        } catch let dup as IdIndex.Duplicate {
            #expect(dup.first == 1)
            #expect(dup.duplicate == 3)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func hashesPrefixesAndLengthsApart() throws {
        // Ids that share 8-byte words or differ only in length or tail bytes.
        let ids = ["", "a", "aa", "aaaaaaaa", "aaaaaaaaa", "aaaaaaaa\u{0}", "abcdefgh12345678", "abcdefgh12345679"]
        let index = try IdIndex(ids)
        for (i, id) in ids.enumerated() { #expect(index.lookup(id) == Int32(i)) }
    }
}
