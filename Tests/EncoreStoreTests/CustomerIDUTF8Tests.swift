import EncoreStore
import Foundation
import Testing

/// A customer id that is not valid UTF-8 could never match a request and read back altered; the
/// loader refuses it naming the line (found by the customers-csv fuzz target; its input is in
/// Fuzz/Regressions/customers-csv/).
@Suite struct CustomerIDUTF8Tests {
    func loadError(_ bytes: [UInt8], name: String) -> StoreError? {
        let path = NSTemporaryDirectory() + "/encore-utf8-\(UInt64.random(in: 0...UInt64.max))-" + name
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try CustomerStore.load(contentsOf: path, threads: 1, progress: nil)
            return nil
        } catch let error as StoreError {
            return error
        } catch {
            return nil
        }
    }

    @Test func csvRefusesACustomerIDThatIsNotUTF8() {
        let bytes = Array("customer_id,segments,f\nok,,1\n".utf8) + [0x63, 0xFF, 0xFE] + Array(",,2\n".utf8)
        let error = loadError(bytes, name: "c.csv")
        #expect(
            error?.message.contains("column 1 (customer_id) is not valid UTF-8") == true, "\(String(describing: error))"
        )
        #expect(error?.message.contains("3") == true, "names line 3: \(String(describing: error))")
        // Valid multi-byte UTF-8 is accepted.
        #expect(loadError(Array("customer_id,segments,f\nc\u{e9}\u{1F600},,1\n".utf8), name: "d.csv") == nil)
    }

    @Test func jsonlRefusesACustomerIDThatIsNotUTF8() {
        let bytes = Array(#"{"customer_id":"c"#.utf8) + [0xFF] + Array(#""}"#.utf8) + [0x0A]
        let error = loadError(bytes, name: "c.jsonl")
        #expect(error?.message.contains("customer_id\" is not valid UTF-8") == true, "\(String(describing: error))")
        #expect(loadError(Array(#"{"customer_id":"c\u00e9"}"#.utf8) + [0x0A], name: "d.jsonl") == nil)
    }
}
