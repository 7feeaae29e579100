/// A minimal, allocation-free protobuf wire-format reader over borrowed bytes, for hot-path
/// decoders written by hand. It never traps on malformed input: every read reports failure.
public struct ProtoWireReader {
    public enum WireType: UInt8, Sendable {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case startGroup = 3
        case endGroup = 4
        case fixed32 = 5
    }

    /// Why decoding stopped.
    public enum Failure: Error, Equatable, Sendable {
        case truncated
        case malformedVarint
        case invalidTag
        case invalidWireType(UInt8)
    }

    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    public var isAtEnd: Bool { offset >= bytes.count }

    /// Reads the next field key; nil at the end of input.
    public mutating func nextField() throws(Failure) -> (number: UInt32, wireType: WireType)? {
        guard !isAtEnd else { return nil }
        let key = try readVarint()
        let number = key >> 3
        guard number > 0, number <= 0x1FFF_FFFF else { throw .invalidTag }
        guard let type = WireType(rawValue: UInt8(key & 7)) else { throw .invalidWireType(UInt8(key & 7)) }
        return (UInt32(number), type)
    }

    public mutating func readVarint() throws(Failure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count else { throw .truncated }
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw .malformedVarint }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw .malformedVarint }
        }
    }

    /// Reads a length-delimited field's bytes (a view into the input).
    public mutating func readLengthDelimited() throws(Failure) -> UnsafeRawBufferPointer {
        let length = try readVarint()
        guard length <= UInt64(bytes.count - offset) else { throw .truncated }
        let start = offset
        offset += Int(length)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
    }

    public mutating func readFixed64() throws(Failure) -> UInt64 {
        guard bytes.count - offset >= 8 else { throw .truncated }
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return value
    }

    public mutating func readFixed32() throws(Failure) -> UInt32 {
        guard bytes.count - offset >= 4 else { throw .truncated }
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(bytes[offset + i]) << (8 * UInt32(i)) }
        offset += 4
        return value
    }

    /// Skips a field's value (unknown fields are tolerated). Groups are refused as malformed
    /// in proto3 messages.
    public mutating func skip(_ type: WireType) throws(Failure) {
        switch type {
        case .varint: _ = try readVarint()
        case .fixed64: _ = try readFixed64()
        case .lengthDelimited: _ = try readLengthDelimited()
        case .fixed32: _ = try readFixed32()
        case .startGroup, .endGroup: throw .invalidWireType(type.rawValue)
        }
    }
}
