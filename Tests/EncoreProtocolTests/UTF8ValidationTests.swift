import EncoreProtocol
import Testing

/// ``UTF8Validation`` must agree with the standard library's UTF-8 parser, which SwiftProtobuf
/// uses to accept or reject string fields.
@Suite struct UTF8ValidationTests {
    /// The standard library's verdict, computed the way SwiftProtobuf does.
    static func reference(_ bytes: [UInt8]) -> Bool {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .error: return false
            case .emptyInput: return true
            }
        }
    }

    static func validate(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { UTF8Validation.isValid($0) }
    }

    /// The ASCII fast path reads short strings as overlapping words: one non-ASCII byte at any
    /// position of any length up to 24 must still reach the full check.
    @Test func aNonASCIIByteAnywhereInAShortStringIsSeen() {
        var disagreements = 0
        for length in 1...24 {
            for position in 0..<length {
                for byte: UInt8 in [0x80, 0xC3, 0xFF] {
                    var bytes = [UInt8](repeating: 0x61, count: length)
                    bytes[position] = byte
                    if Self.validate(bytes) != Self.reference(bytes) { disagreements += 1 }
                    if position + 1 < length, byte == 0xC3 {
                        bytes[position + 1] = 0xA9  // "é": valid
                        if Self.validate(bytes) != Self.reference(bytes) { disagreements += 1 }
                    }
                }
            }
            if !Self.validate([UInt8](repeating: 0x61, count: length)) { disagreements += 1 }
        }
        #expect(disagreements == 0)
    }

    @Test func agreesOnEveryOneAndTwoByteSequence() {
        var disagreements = 0
        for first in 0..<256 {
            if Self.validate([UInt8(first)]) != Self.reference([UInt8(first)]) { disagreements += 1 }
            for second in 0..<256 {
                let bytes = [UInt8(first), UInt8(second)]
                if Self.validate(bytes) != Self.reference(bytes) { disagreements += 1 }
            }
        }
        #expect(disagreements == 0)
    }

    @Test func agreesOnThreeAndFourByteSequencesAroundEveryBoundary() {
        let interesting: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF]
        var disagreements = 0
        for lead in 0xE0...0xFF {
            for second in 0x70...0xC8 {
                for third in interesting {
                    let three = [UInt8(lead), UInt8(second), third]
                    if Self.validate(three) != Self.reference(three) { disagreements += 1 }
                    for fourth in interesting {
                        let four = three + [fourth]
                        if Self.validate(four) != Self.reference(four) { disagreements += 1 }
                    }
                }
            }
        }
        #expect(disagreements == 0)
    }

    @Test func agreesOnRandomTextWithCorruption() {
        var rng = SplitMix64(seed: 0x07F8)
        var disagreements = 0
        var invalid = 0
        for _ in 0..<20_000 {
            var bytes = rng.utf8String(maxLong: 300)
            // Long ASCII runs exercise the 8-byte fast path; corruption lands anywhere in them.
            if rng.percent(50) { bytes = Array(repeating: 0x61, count: rng.below(20)) + bytes }
            if rng.percent(60), !bytes.isEmpty { bytes[rng.below(bytes.count)] = UInt8(rng.below(256)) }
            if rng.percent(20), !bytes.isEmpty { bytes.removeLast() }
            let expected = Self.reference(bytes)
            if !expected { invalid += 1 }
            if Self.validate(bytes) != expected { disagreements += 1 }
        }
        #expect(disagreements == 0)
        #expect(invalid > 1_000)
    }
}
