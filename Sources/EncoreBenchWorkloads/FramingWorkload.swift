import EncoreTransport

/// GRPCFrameDecoder (EncoreTransport): a 300-byte gRPC message with its 5-byte prefix, arriving
/// in 3 pieces (as DATA frames would deliver it): reset, append x3, nextMessage.
public final class FramingWorkload: @unchecked Sendable {
    var decoder = GRPCFrameDecoder(maxMessageBytes: 4 << 20)
    let pieces: [UnsafeRawBufferPointer]

    /// Builds the pieces and feeds them once, so the decoder's buffer reaches its working size.
    public init() throws {
        let arena = ByteArena()
        let body = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let frame: [UInt8] = [0, 0, 0, 0x01, 0x2C] + body  // uncompressed, length 300
        pieces = [frame[0..<3], frame[3..<150], frame[150...]].map { arena.bytes(Array($0)) }
        guard try feed() == 300 else { fatalError("Framing: expected one 300-byte message") }
    }

    /// Decodes the message once; returns its length in bytes (300).
    @inline(__always)
    public func feed() throws(GRPCFrameDecoder.Failure) -> Int {
        decoder.reset()
        try decoder.append(pieces[0])
        try decoder.append(pieces[1])
        try decoder.append(pieces[2])
        return try decoder.nextMessage()?.range.count ?? -1
    }
}
