/// The protobuf wire reader: a forward cursor over borrowed protobuf wire bytes, used by every
/// hand-written decoder (the hot-path `DecideRequest` and `OutcomeRequest` decoders, and the
/// server's health, reflection and descriptor-set readers). It reproduces SwiftProtobuf 1.x's
/// `BinaryDecoder` acceptance rules exactly (which inputs are rejected, and how unknown fields and
/// groups are skipped), never traps on malformed input and never allocates. Offsets are absolute
/// (from the start of the decoded buffer) so a cursor over a nested message yields spans into the
/// outer buffer.
///
/// A message is read as `while !cursor.isAtEnd { let (number, wire) = try
/// cursor.readMessageKey("Msg"); ... }`, with every field it does not want passed to
/// ``skipValue(number:wire:depthBudget:_:)`` (budget ``depthLimit`` - 1 for a top-level message).
public struct WireCursor {
    /// Wire type numbers (the low three bits of a field key).
    public enum Wire {
        @inlinable public static var varint: UInt8 { 0 }
        @inlinable public static var fixed64: UInt8 { 1 }
        @inlinable public static var lengthDelimited: UInt8 { 2 }
        @inlinable public static var startGroup: UInt8 { 3 }
        @inlinable public static var endGroup: UInt8 { 4 }
        @inlinable public static var fixed32: UInt8 { 5 }
    }

    /// SwiftProtobuf's default `messageDepthLimit`: how many message and group levels may nest.
    @inlinable public static var depthLimit: Int { 100 }

    /// Start of the whole decoded buffer.
    public let base: UnsafeRawPointer
    /// Absolute offset of the next unread byte.
    public internal(set) var offset: Int
    /// Absolute offset one past the last byte this cursor may read.
    public let end: Int

    /// Creates a cursor reading `base[offset..<end]`.
    @inline(__always)
    public init(base: UnsafeRawPointer, offset: Int, end: Int) {
        self.base = base
        self.offset = offset
        self.end = end
    }

    /// Creates a cursor over the whole of `bytes` (which must not be empty: a decoder returns its
    /// defaults for an empty message without a cursor).
    public init(wholeOf bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count > 0, "WireCursor over an empty buffer")
        self.init(base: bytes.baseAddress!, offset: 0, end: bytes.count)
    }

    /// Whether every byte has been read.
    @inline(__always)
    public var isAtEnd: Bool { offset >= end }

    /// `count` bytes at absolute offset `start` of the decoded buffer, as a view (for the
    /// `(start, count)` that ``readLengthDelimited(_:)`` returns).
    @inline(__always)
    public func bytes(start: Int, count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + start, count: count)
    }

    /// Reads a length-delimited field and returns its body as a view into the input.
    @inline(__always)
    public mutating func readBytes(_ field: StaticString) throws(DecodeError) -> UnsafeRawBufferPointer {
        let (start, count) = try readLengthDelimited(field)
        return bytes(start: start, count: count)
    }

    /// Reads a varint of at most 10 bytes; bits past 64 in the tenth byte are dropped, as
    /// SwiftProtobuf does.
    @inline(__always)
    public mutating func readVarint(_ field: StaticString) throws(DecodeError) -> UInt64 {
        guard offset < end else { throw DecodeError(field, .truncated) }
        let byte = base.load(fromByteOffset: offset, as: UInt8.self)
        offset &+= 1
        if byte < 0x80 { return UInt64(byte) }
        return try readVarintTail(UInt64(byte & 0x7F), field)
    }

    /// The multi-byte part of ``readVarint(_:)``, kept out of line.
    mutating func readVarintTail(_ low: UInt64, _ field: StaticString) throws(DecodeError) -> UInt64 {
        var value = low
        var shift: UInt64 = 7
        while true {
            guard offset < end else { throw DecodeError(field, .truncated) }
            guard shift <= 63 else { throw DecodeError(field, .malformedVarint) }
            let byte = base.load(fromByteOffset: offset, as: UInt8.self)
            offset &+= 1
            value |= UInt64(byte & 0x7F) &<< shift
            if byte < 0x80 { return value }
            shift &+= 7
        }
    }

    /// Reads the key of a field of a message (not of a map entry or group), with the rules of
    /// SwiftProtobuf's `nextFieldNumber()`: wire type 0...5 checked on the first byte, at most 5
    /// key bytes with the fifth at most 15, field number not 0, and no end-group marker.
    /// Call only when `!isAtEnd`.
    @inline(__always)
    public mutating func readMessageKey(_ message: StaticString) throws(DecodeError) -> (number: UInt32, wire: UInt8) {
        let c0 = base.load(fromByteOffset: offset, as: UInt8.self)
        let wire = c0 & 7
        guard wire <= Wire.fixed32, wire != Wire.endGroup else { throw DecodeError(message, .malformedTag) }
        if c0 < 0x80 {
            offset &+= 1
            guard c0 >= 8 else { throw DecodeError(message, .malformedTag) }
            return (UInt32(c0 >> 3), wire)
        }
        return (try readLongMessageKey(c0, message), wire)
    }

    /// The 2...5-byte part of ``readMessageKey(_:)``.
    mutating func readLongMessageKey(_ c0: UInt8, _ message: StaticString) throws(DecodeError) -> UInt32 {
        var number = UInt32(c0 & 0x7F) >> 3
        var index = 1
        while true {
            guard offset + index < end else { throw DecodeError(message, .truncated) }
            let byte = base.load(fromByteOffset: offset + index, as: UInt8.self)
            if index == 4 {
                guard byte <= 15 else { throw DecodeError(message, .malformedTag) }
                number |= UInt32(byte) << 25
                break
            }
            number |= UInt32(byte & 0x7F) << (UInt32(index) * 7 - 3)
            if byte < 0x80 { break }
            index += 1
        }
        offset += index + 1
        guard number != 0 else { throw DecodeError(message, .malformedTag) }
        return number
    }

    /// Reads a key the way SwiftProtobuf's `getTag()` does inside map entries and skipped groups:
    /// any varint below `UInt32.max` with a non-zero field number and wire type 0...5 (end-group
    /// included; the caller decides what it means).
    public mutating func readLooseKey(_ field: StaticString) throws(DecodeError) -> (number: UInt32, wire: UInt8) {
        let key = try readVarint(field)
        guard key < UInt64(UInt32.max), key >> 3 != 0, key & 7 <= 5 else {
            throw DecodeError(field, .malformedTag)
        }
        return (UInt32(truncatingIfNeeded: key >> 3), UInt8(truncatingIfNeeded: key & 7))
    }

    /// Reads the length prefix of a known length-delimited field and steps over its body;
    /// returns the body's absolute offset and length.
    @inline(__always)
    public mutating func readLengthDelimited(_ field: StaticString) throws(DecodeError) -> (start: Int, count: Int) {
        let length = try readVarint(field)
        guard length < 0x7FFF_FFFF else { throw DecodeError(field, .lengthTooLarge) }
        guard length <= UInt64(end &- offset) else { throw DecodeError(field, .truncated) }
        let start = offset
        offset &+= Int(length)
        return (start, Int(length))
    }

    /// Reads a string field and checks that it is valid UTF-8.
    @inline(__always)
    public mutating func readString(_ field: StaticString) throws(DecodeError) -> ByteSpan {
        let (start, count) = try readLengthDelimited(field)
        guard UTF8Validation.isValid(base + start, count: count) else { throw DecodeError(field, .invalidUTF8) }
        return ByteSpan(start: Int32(truncatingIfNeeded: start), count: Int32(truncatingIfNeeded: count))
    }

    /// Reads 8 little-endian bytes.
    @inline(__always)
    public mutating func readFixed64(_ field: StaticString) throws(DecodeError) -> UInt64 {
        guard end &- offset >= 8 else { throw DecodeError(field, .truncated) }
        let value = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        offset &+= 8
        return UInt64(littleEndian: value)
    }

    /// Skips the value of an unknown field (or of a known field sent with an unexpected wire
    /// type, which SwiftProtobuf also keeps as unknown). `depthBudget` is how many more levels may
    /// nest below the current message; a group takes one.
    public mutating func skipValue(
        number: UInt32,
        wire: UInt8,
        depthBudget: Int,
        _ message: StaticString
    ) throws(DecodeError) {
        switch wire {
        case Wire.varint:
            _ = try readVarint(message)
        case Wire.fixed64:
            try skipBytes(8, message)
        case Wire.lengthDelimited:
            let length = try readVarint(message)
            guard length <= UInt64(end &- offset) else { throw DecodeError(message, .truncated) }
            offset &+= Int(length)
        case Wire.startGroup:
            try skipGroup(number: number, depthBudget: depthBudget, message)
        case Wire.fixed32:
            try skipBytes(4, message)
        default:
            throw DecodeError(message, .truncated)
        }
    }

    /// Steps over `count` bytes.
    @inline(__always)
    public mutating func skipBytes(_ count: Int, _ message: StaticString) throws(DecodeError) {
        guard end &- offset >= count else { throw DecodeError(message, .truncated) }
        offset &+= count
    }

    /// Skips a group's body through its matching end-group key (recursion depth is bounded by
    /// `depthBudget`, at most 100 levels).
    public mutating func skipGroup(number: UInt32, depthBudget: Int, _ message: StaticString) throws(DecodeError) {
        let budget = depthBudget - 1
        guard budget >= 0 else { throw DecodeError(message, .nestingTooDeep) }
        while true {
            guard offset < end else { throw DecodeError(message, .truncated) }
            let (inner, wire) = try readLooseKey(message)
            if wire == Wire.endGroup {
                guard inner == number else { throw DecodeError(message, .malformedTag) }
                return
            }
            try skipValue(number: inner, wire: wire, depthBudget: budget, message)
        }
    }
}
