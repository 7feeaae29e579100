import Testing

@testable import EncoreStore

@Suite struct DecimalParserTests {
    private func parse(_ s: String) -> Double? {
        var s = s
        return s.withUTF8 { DecimalParser.parse(UnsafeRawBufferPointer($0)) }
    }

    @Test func agreesWithTheStandardLibrary() {
        let cases = [
            "0", "-0", "1", "0.5", "0.1234", "-12.75", "1e3", "1.5E-3", "+2", "123456789012345678901234",
            "0.000000000000000000000000001", "3.4028235e38", "1e-45", "98765.4321e-2",
        ]
        for text in cases {
            #expect(parse(text) == Double(text), "\(text)")
        }
        #expect(parse(".5") == 0.5)
        #expect(parse("5.") == 5)
    }

    @Test func rejectsNonNumbers() {
        for text in ["", "-", "abc", "1.2.3", "1e", "nan", "inf", "1,5", " 1"] {
            #expect(parse(text) == nil, "\(text)")
        }
    }
}
