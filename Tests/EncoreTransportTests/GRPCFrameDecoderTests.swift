import Testing

@testable import EncoreTransport

/// Frames `body` as one gRPC message.
func frame(_ body: [UInt8], compressed: Bool = false) -> [UInt8] {
    let n = UInt32(body.count)
    return [
        compressed ? 1 : 0, UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8),
        UInt8(truncatingIfNeeded: n),
    ]
        + body
}

/// Feeds `bytes` in pieces of `split` bytes and collects every complete message body.
func decodeAll(_ bytes: [UInt8], split: Int, max: Int = 1 << 20) throws -> [[UInt8]] {
    var decoder = GRPCFrameDecoder(maxMessageBytes: max)
    var messages: [[UInt8]] = []
    var i = 0
    while i < bytes.count {
        let piece = Array(bytes[i..<min(bytes.count, i + split)])
        try piece.withUnsafeBytes { try decoder.append($0) }
        while let m = try decoder.nextMessage() {
            messages.append(decoder.withBytes(of: m) { Array($0) })
        }
        decoder.compact()
        i += split
    }
    try decoder.finish()
    return messages
}

@Suite struct GRPCFrameDecoderTests {
    @Test func reassemblesMessageSplitAtEveryByteBoundary() throws {
        let body = (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let wire = frame(body)
        for split in 1...wire.count {
            #expect(try decodeAll(wire, split: split) == [body], "split \(split)")
        }
    }

    @Test func decodesZeroLengthMessage() throws {
        #expect(try decodeAll(frame([]), split: 5) == [[]])
        #expect(try decodeAll(frame([]), split: 1) == [[]])
    }

    @Test func decodesSeveralMessagesInOrderAcrossSplits() throws {
        let bodies: [[UInt8]] = [[1], [], [2, 3, 4], Array(repeating: 9, count: 1000), [5]]
        let wire = bodies.flatMap { frame($0) }
        for split in [1, 2, 3, 5, 6, 7, 64, 1000, wire.count] {
            #expect(try decodeAll(wire, split: split) == bodies, "split \(split)")
        }
    }

    @Test func refusesOversizedMessageFromItsPrefixAlone() throws {
        var decoder = GRPCFrameDecoder(maxMessageBytes: 100)
        let prefix: [UInt8] = [0, 0, 0, 0, 101]
        #expect(throws: GRPCFrameDecoder.Failure.messageTooLarge(length: 101, limit: 100)) {
            try prefix.withUnsafeBytes { try decoder.append($0) }
        }
        #expect(GRPCFrameDecoder.Failure.messageTooLarge(length: 101, limit: 100).status.code == .resourceExhausted)
    }

    @Test func acceptsMessageExactlyAtTheLimit() throws {
        let body = [UInt8](repeating: 1, count: 100)
        #expect(try decodeAll(frame(body), split: 7, max: 100) == [body])
    }

    @Test func reportsTruncatedPrefixAndBody() throws {
        for cut in [1, 3, 4, 5, 6, 20] {
            let wire = Array(frame([UInt8](repeating: 2, count: 30)).prefix(cut))
            #expect(throws: GRPCFrameDecoder.Failure.self, "cut at \(cut)") { _ = try decodeAll(wire, split: 2) }
        }
        #expect(GRPCFrameDecoder.Failure.truncated(bufferedBytes: 3).status.code == .invalidArgument)
    }

    @Test func refusesInvalidCompressedFlag() throws {
        var wire = frame([1, 2])
        wire[0] = 2
        #expect(throws: GRPCFrameDecoder.Failure.invalidCompressedFlag(2)) { _ = try decodeAll(wire, split: 100) }
    }

    @Test func reportsCompressedFlag() throws {
        var decoder = GRPCFrameDecoder(maxMessageBytes: 10)
        try frame([7], compressed: true).withUnsafeBytes { try decoder.append($0) }
        let message = try #require(try decoder.nextMessage())
        #expect(message.compressed)
    }

    @Test func resetKeepsNoStateBetweenCalls() throws {
        var decoder = GRPCFrameDecoder(maxMessageBytes: 10)
        try [0, 0, 0].withUnsafeBytes { try decoder.append($0) }
        decoder.reset()
        #expect(decoder.bufferedBytes == 0)
        try decoder.finish()
    }
}
