import Foundation
import Testing

@testable import EncoreServer

/// Renders one token through a fresh buffer.
func rendered(_ body: (inout JSONLineBuffer) -> Void) -> String {
    var buffer = JSONLineBuffer(capacity: 8)
    defer { buffer.deallocate() }
    body(&buffer)
    return String(decoding: buffer.bytes, as: UTF8.self)
}

@Suite struct JSONLineBufferTests {
    static let oddDoubles: [Double] = [
        1e-300, 0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 0.8793844706912358, 0.029898689981177066, 1e-7, 123.456,
        .leastNonzeroMagnitude, .leastNormalMagnitude, .leastNormalMagnitude.nextDown, Double.leastNormalMagnitude / 3,
        .greatestFiniteMagnitude,
        .ulpOfOne, 1 + .ulpOfOne, 1.0.nextDown, 0, -0.0, 1, -1, 65535, 65536, 65535.5, -65535, 1e15, 1e16,
        9007199254740993,
        123456789012345680, -2.5e-8,
    ]

    static let oddFloats: [Float] = [
        1e-30, 0.1, 1.0 / 3, 4.8675346, 1.3863, .leastNonzeroMagnitude, .leastNormalMagnitude, 1e-40,
        .greatestFiniteMagnitude, .ulpOfOne, Float(1).nextDown, 0, -0.0, 1, -1, 65535, 65536, 65535.5, 16777217, 1e7,
        1e8,
    ]

    @Test func doublesPrintAsTheirShortestRoundTripForm() {
        var generator = SystemRandomNumberGenerator()
        let random = (0..<50_000).map { _ in Double(bitPattern: generator.next()) }.filter(\.isFinite)
        for v in Self.oddDoubles + Self.oddDoubles.map(-) + random {
            let text = rendered { $0.appendNumber(v) }
            #expect(text == v.description)
            #expect(Double(text)?.bitPattern == v.bitPattern, "\(text) does not parse back to \(v)")
        }
    }

    @Test func floatsPrintAsTheirShortestRoundTripForm() {
        var generator = SystemRandomNumberGenerator()
        let random = (0..<50_000).map { _ in Float(bitPattern: generator.next()) }.filter(\.isFinite)
        for v in Self.oddFloats + Self.oddFloats.map(-) + random {
            let text = rendered { $0.appendNumber(v) }
            #expect(text == v.description)
            #expect(Float(text)?.bitPattern == v.bitPattern, "\(text) does not parse back to \(v)")
        }
    }

    /// The integral fast path covers |v| < 65,536; every value there must match `description`.
    @Test func integralValuesMatchDescriptionAroundTheFastPath() {
        for i in -70_000...70_000 {
            #expect(rendered { $0.appendNumber(Double(i)) } == Double(i).description)
            #expect(rendered { $0.appendNumber(Float(i)) } == Float(i).description)
        }
    }

    @Test func nonFiniteNumbersBecomeNull() {
        for v in [Double.nan, -.nan, .signalingNaN, .infinity, -.infinity] {
            #expect(rendered { $0.appendNumber(v) } == "null")
        }
        for v in [Float.nan, .signalingNaN, .infinity, -.infinity] {
            #expect(rendered { $0.appendNumber(v) } == "null")
        }
    }

    @Test func integersMatchTheStandardLibrary() {
        var generator = SystemRandomNumberGenerator()
        let values: [Int64] = [0, 1, -1, 9, 10, 99, 100, -100, .max, .min, .max - 1, .min + 1]
        for v in values + (0..<10_000).map({ _ in Int64(bitPattern: generator.next()) >> (generator.next() % 64) }) {
            #expect(rendered { $0.appendInteger(v) } == String(v))
        }
    }

    @Test func stringsAreEscapedAndDecodeBackUnchanged() throws {
        let cases = [
            "", "plain", "quote \" backslash \\ slash /", "line\nbreak\r\ttab", "\u{01}\u{1F}\u{7F}", "héllo ✓ 𝄞",
        ]
        for text in cases {
            let json = rendered { $0.appendQuoted(text) }
            let decoded = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed) as? String
            #expect(decoded == text, "\(json)")
        }
        #expect(rendered { $0.appendQuoted("a\"b\\c\n\u{01}") } == #""a\"b\\c\n\u0001""#)
    }

    @Test func growsPastItsInitialCapacityKeepingEveryByte() {
        var buffer = JSONLineBuffer(capacity: 8)
        defer { buffer.deallocate() }
        var expected = ""
        for i in 0..<10_000 {
            buffer.appendInteger(Int64(i))
            buffer.append(",")
            expected += "\(i),"
        }
        #expect(String(decoding: buffer.bytes, as: UTF8.self) == expected)
        // A copy from inside the buffer that makes it grow reads the moved bytes.
        let before = buffer.count
        while buffer.count * 2 <= buffer.capacity { buffer.append(",") }
        expected += String(repeating: ",", count: buffer.count - before)
        buffer.appendCopy(offset: 0, count: buffer.count)
        expected += expected
        #expect(String(decoding: buffer.bytes, as: UTF8.self) == expected)
        buffer.removeFirst(4)
        #expect(String(decoding: buffer.bytes, as: UTF8.self) == String(expected.dropFirst(4)))
        buffer.truncate(to: 2)
        #expect(String(decoding: buffer.bytes, as: UTF8.self) == "2,")
    }
}
