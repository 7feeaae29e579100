/// The gRPC message prefix (a compressed flag, then the 4-byte big-endian message length): the
/// one writer of it, shared by the server's response path (`GRPCResponseBuffer`, streaming
/// sends) and the clients (EncoreClient's calls, `encore bench`'s request pool). The one reader
/// is `GRPCFrameDecoder`, on both sides too.
public enum GRPCFraming {
    /// Bytes of the prefix.
    public static let prefixBytes = 5

    /// Writes the prefix of an uncompressed message of `length` bytes into `bytes[offset..<offset + 5]`.
    @inlinable @inline(__always)
    public static func writePrefix(length: UInt32, into bytes: inout [UInt8], at offset: Int) {
        bytes[offset] = 0
        bytes[offset + 1] = UInt8(truncatingIfNeeded: length >> 24)
        bytes[offset + 2] = UInt8(truncatingIfNeeded: length >> 16)
        bytes[offset + 3] = UInt8(truncatingIfNeeded: length >> 8)
        bytes[offset + 4] = UInt8(truncatingIfNeeded: length)
    }

    /// Appends `message` with its prefix to `bytes`.
    @inlinable
    public static func append(_ message: some Collection<UInt8>, to bytes: inout [UInt8]) {
        let offset = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: prefixBytes))
        writePrefix(length: UInt32(truncatingIfNeeded: message.count), into: &bytes, at: offset)
        bytes.append(contentsOf: message)
    }

    /// `message` with its prefix.
    public static func framed(_ message: some Collection<UInt8>) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(prefixBytes + message.count)
        append(message, to: &bytes)
        return bytes
    }
}
