/// Reassembles gRPC length-prefixed messages from DATA frame payloads split at any byte.
///
/// Each message on the wire is a 1-byte compressed flag, a 4-byte big-endian length and the
/// message bytes. The decoder is a pure state machine (no I/O): feed it bytes with `append`,
/// then take complete messages with `nextMessage`. It refuses a message longer than
/// `maxMessageBytes` as soon as the length prefix is known, before buffering its body.
/// Storage is reused across `reset()` calls, so a reused decoder does not allocate.
public struct GRPCFrameDecoder: Sendable {
    /// What went wrong with the framing; maps to a gRPC status at the transport edge.
    public enum Failure: Error, Equatable, Sendable {
        /// A message's length prefix exceeds the limit (`length` is the declared length).
        case messageTooLarge(length: Int, limit: Int)
        /// The stream ended inside a message prefix or body.
        case truncated(bufferedBytes: Int)
        /// The compressed-flag byte is neither 0 nor 1.
        case invalidCompressedFlag(UInt8)

        public var status: GRPCStatus {
            switch self {
            case .messageTooLarge:
                GRPCStatus(.resourceExhausted, static: "message larger than the server's maximum message size")
            case .truncated:
                GRPCStatus(.invalidArgument, static: "stream ended inside a gRPC message (truncated message)")
            case .invalidCompressedFlag:
                GRPCStatus(.invalidArgument, static: "invalid gRPC message prefix (compressed flag is not 0 or 1)")
            }
        }
    }

    /// A complete message inside the decoder's buffer.
    public struct Message: Equatable, Sendable {
        public var compressed: Bool
        /// Range of the message body within the decoder's buffer (valid until the next mutation).
        public var range: Range<Int>
    }

    public let maxMessageBytes: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(maxMessageBytes: Int) {
        precondition(maxMessageBytes >= 0, "maxMessageBytes must not be negative")
        self.maxMessageBytes = maxMessageBytes
    }

    /// Bytes received but not yet returned as messages.
    public var bufferedBytes: Int { buffer.count - readIndex }

    /// Bytes the buffer holds now (messages already returned included, until `compact()`):
    /// what the connection accounts as buffered request memory.
    public var storedBytes: Int { buffer.count }

    /// Storage above this is given back on `reset()` rather than kept for the next call, so a
    /// decoder that once held a large message does not keep it for the connection's life.
    public static let keptCapacityBytes = 64 << 10

    /// Forgets all state; keeps the storage for reuse up to `keptCapacityBytes`.
    public mutating func reset() {
        // Called several times per call: an empty decoder is left alone (no uniqueness check).
        if buffer.isEmpty && readIndex == 0 && buffer.capacity <= Self.keptCapacityBytes { return }
        if buffer.capacity > Self.keptCapacityBytes {
            buffer = []
        } else {
            buffer.removeAll(keepingCapacity: true)
        }
        readIndex = 0
    }

    /// Appends received bytes. Throws as soon as a pending prefix announces an oversized message.
    /// Ranges of messages already returned stay valid until `compact()` or `reset()`.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
        buffer.append(contentsOf: bytes)
        try checkPendingPrefix()
    }

    /// Returns the next complete message, or nil when more bytes are needed.
    /// Call `compact()` after consuming the messages of one `append`.
    public mutating func nextMessage() throws(Failure) -> Message? {
        guard bufferedBytes >= 5 else { return nil }
        let flag = buffer[readIndex]
        guard flag <= 1 else { throw .invalidCompressedFlag(flag) }
        let length = Self.length(buffer, at: readIndex + 1)
        guard length <= maxMessageBytes else { throw .messageTooLarge(length: length, limit: maxMessageBytes) }
        let start = readIndex + 5
        guard buffer.count - start >= length else { return nil }
        readIndex = start + length
        return Message(compressed: flag == 1, range: start..<(start + length))
    }

    /// Calls `body` with the bytes of `message` (valid only during the call).
    public func withBytes<R>(of message: Message, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeBytes { all in
            try body(UnsafeRawBufferPointer(rebasing: all[message.range]))
        }
    }

    /// Drops consumed bytes from the front of the buffer (keeps capacity).
    public mutating func compact() {
        guard readIndex > 0 else { return }
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
        } else {
            buffer.removeSubrange(0..<readIndex)
        }
        readIndex = 0
    }

    /// Call at end of stream: throws if a partial message is left over.
    public func finish() throws(Failure) {
        if bufferedBytes != 0 { throw .truncated(bufferedBytes: bufferedBytes) }
    }

    private func checkPendingPrefix() throws(Failure) {
        guard bufferedBytes >= 5 else { return }
        let flag = buffer[readIndex]
        guard flag <= 1 else { throw .invalidCompressedFlag(flag) }
        let length = Self.length(buffer, at: readIndex + 1)
        if length > maxMessageBytes { throw .messageTooLarge(length: length, limit: maxMessageBytes) }
    }

    private static func length(_ b: [UInt8], at i: Int) -> Int {
        Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
    }
}
