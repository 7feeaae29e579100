import EncoreFuzzTargets
import EncoreProtocol
import Testing

/// Differential tests of ``DecideRequestDecoder`` against SwiftProtobuf on generated and
/// mutated messages. Cases are split into chunks so swift-testing can run them in parallel.
@Suite struct DecideRequestDecoderDifferentialTests {
    static let chunks = Array(0..<8)
    static let messagesPerChunk = 12_500
    static let mutationsPerChunk = 12_500

    /// 8 x 12,500 = 100,000 generated messages: both decoders must accept every one the other
    /// accepts and produce the same values.
    @Test(arguments: chunks)
    func matchesSwiftProtobufOnGeneratedMessages(chunk: Int) {
        var generator = DecideRequestGenerator(seed: 0xDEC1_DE00 + UInt64(chunk))
        var decoder = DecideRequestDecoder()
        var accepted = 0
        var disagreements = 0
        for index in 0..<Self.messagesPerChunk {
            let bytes = generator.message()
            let result = differentialDecide(bytes, &decoder)
            if result.swiftProtobufAccepted { accepted += 1 }
            if result.swiftProtobufAccepted != result.decoderAccepted || result.mismatch != nil {
                disagreements += 1
                if disagreements <= 3 {
                    Issue.record(
                        """
                        chunk \(chunk) case \(index): SwiftProtobuf accepted \(result.swiftProtobufAccepted), \
                        decoder \(result.decoderAccepted), \(result.mismatch ?? "") bytes \(bytes)
                        """
                    )
                }
            }
        }
        #expect(disagreements == 0)
        // The generator writes valid messages except for rare odd map entries.
        #expect(accepted > Self.messagesPerChunk * 98 / 100)
    }

    /// 8 x 12,500 = 100,000 mutated encodings (bit flips, byte overwrites, truncations,
    /// insertions, deletions, duplicated slices): never a crash, the same verdict as
    /// SwiftProtobuf, and the same values whenever both accept.
    @Test(arguments: chunks)
    func matchesSwiftProtobufOnMutatedMessages(chunk: Int) {
        var generator = DecideRequestGenerator(seed: 0x0BAD_B17E + UInt64(chunk))
        var rng = SplitMix64(seed: 0x5EED + UInt64(chunk))
        var decoder = DecideRequestDecoder()
        var bothAccepted = 0
        var bothRejected = 0
        var disagreements = 0
        var original: [UInt8] = []
        for index in 0..<Self.mutationsPerChunk {
            // Four mutants per generated message keep generation from dominating the run time.
            if index % 4 == 0 { original = generator.message() }
            var bytes = original
            for _ in 0..<rng.int(1...3) { mutate(&bytes, &rng) }
            let result = differentialDecide(bytes, &decoder)
            if result.swiftProtobufAccepted != result.decoderAccepted || result.mismatch != nil {
                disagreements += 1
                if disagreements <= 3 {
                    Issue.record(
                        """
                        chunk \(chunk) case \(index): SwiftProtobuf accepted \(result.swiftProtobufAccepted), \
                        decoder \(result.decoderAccepted), \(result.mismatch ?? "") bytes \(bytes)
                        """
                    )
                }
            } else if result.decoderAccepted {
                bothAccepted += 1
            } else {
                bothRejected += 1
            }
        }
        #expect(disagreements == 0)
        // Both verdicts must be well represented, or the test proves little.
        #expect(bothAccepted > Self.mutationsPerChunk / 10)
        #expect(bothRejected > Self.mutationsPerChunk / 10)
    }
}

/// Applies one random corruption to `bytes`.
func mutate(_ bytes: inout [UInt8], _ rng: inout SplitMix64) {
    let interesting: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x08, 0x0A, 0x0B, 0x0C, 0x0E, 0x0F, 0x12, 0x1A, 0x32]
    guard !bytes.isEmpty else {
        bytes = (0..<rng.int(1...6)).map { _ in rng.percent(50) ? rng.pick(interesting) : UInt8(rng.below(256)) }
        return
    }
    let position = rng.below(bytes.count)
    switch rng.below(8) {
    case 0: bytes[position] ^= 1 << UInt8(rng.below(8))
    case 1: bytes[position] = UInt8(rng.below(256))
    case 2: bytes[position] = rng.pick(interesting)
    case 3: bytes.removeSubrange(position...)
    case 4:
        let inserted = (0..<rng.int(1...4)).map { _ in rng.percent(50) ? rng.pick(interesting) : UInt8(rng.below(256)) }
        bytes.insert(contentsOf: inserted, at: position)
    case 5: bytes.removeSubrange(position..<min(bytes.count, position + rng.int(1...8)))
    case 6:
        // Corrupt what may be a length prefix: bump it up or down by a little.
        bytes[position] = bytes[position] &+ UInt8(truncatingIfNeeded: rng.int(-3...3))
    default:
        let end = min(bytes.count, position + rng.int(1...16))
        bytes.insert(contentsOf: Array(bytes[position..<end]), at: rng.below(bytes.count + 1))
    }
}
