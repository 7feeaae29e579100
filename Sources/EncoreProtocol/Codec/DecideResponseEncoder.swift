/// The fields of one `encore.v1.Placement` to encode, borrowing the offer id's bytes.
public struct PlacementFields {
    /// `offer_id` (field 1): UTF-8 bytes (not validated here; the caller passes catalog ids).
    public var offerID: UnsafeRawBufferPointer
    /// `slot` (field 2): 0-based slot index.
    public var slot: UInt32
    /// `propensity` (field 3): probability that the policy chose this offer for this slot.
    public var propensity: Double
    /// `score` (field 4).
    public var score: Double
    /// `expected_value` (field 5): expected reward in the objective's unit.
    public var expectedValue: Double

    /// Creates placement fields; `offerID` must stay valid until encoding is done.
    @inlinable
    public init(
        offerID: UnsafeRawBufferPointer,
        slot: UInt32,
        propensity: Double,
        score: Double,
        expectedValue: Double
    ) {
        self.offerID = offerID
        self.slot = slot
        self.propensity = propensity
        self.score = score
        self.expectedValue = expectedValue
    }
}

/// Encodes `encore.v1.DecideResponse` without building messages or strings. The output is
/// byte-for-byte what SwiftProtobuf's `serializedBytes()` produces for the same values: fields in
/// number order, proto3 defaults omitted (empty strings, slot 0, doubles whose bit pattern is 0,
/// `holdout` false; `-0.0` and NaN are written), every placement written even when empty, and
/// minimal varints.
public enum DecideResponseEncoder {
    /// The exact serialized size in bytes of the response these arguments describe.
    public static func encodedByteCount(
        decisionID: UnsafeRawBufferPointer,
        placements: UnsafeBufferPointer<PlacementFields>,
        modelVersion: UnsafeRawBufferPointer,
        holdout: Bool
    ) -> Int {
        var total = stringFieldSize(decisionID) + stringFieldSize(modelVersion) + (holdout ? 2 : 0)
        for placement in placements {
            let body = placementBodySize(placement)
            total += 1 + varintSize(UInt64(body)) + body
        }
        return total
    }

    /// Appends a serialized `DecideResponse` to `out` (existing contents are kept). Allocates
    /// nothing when `out` already has the capacity (see ``encodedByteCount(decisionID:placements:modelVersion:holdout:)``).
    public static func encode(
        decisionID: UnsafeRawBufferPointer,
        placements: UnsafeBufferPointer<PlacementFields>,
        modelVersion: UnsafeRawBufferPointer,
        holdout: Bool,
        into out: inout [UInt8]
    ) {
        let size = encodedByteCount(
            decisionID: decisionID,
            placements: placements,
            modelVersion: modelVersion,
            holdout: holdout
        )
        let start = out.count
        // Grow by `size` bytes with one copy from a zero block (appending `repeatElement`
        // stored the bytes one at a time), then write them in place.
        if size <= zeroBlock.count {
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: zeroBlock[0..<size]))
        } else {
            out.append(contentsOf: repeatElement(0, count: size))
        }
        out.withUnsafeMutableBytes { buffer in
            let written = write(
                decisionID: decisionID,
                placements: placements,
                modelVersion: modelVersion,
                holdout: holdout,
                size: size,
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[start...])
            )
            assert(written == size)
        }
    }

    /// 4 KiB of zeros (never freed, never written after initialization, so safe to share).
    nonisolated(unsafe) private static let zeroBlock: UnsafeRawBufferPointer = {
        let block = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 16)
        block.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        return UnsafeRawBufferPointer(start: block, count: 4096)
    }()

    /// Writes a serialized `DecideResponse` at the start of `buffer` and returns its length in
    /// bytes. `buffer` must hold at least ``encodedByteCount(decisionID:placements:modelVersion:holdout:)``
    /// bytes (checked with a precondition). Never allocates.
    @discardableResult
    public static func encode(
        decisionID: UnsafeRawBufferPointer,
        placements: UnsafeBufferPointer<PlacementFields>,
        modelVersion: UnsafeRawBufferPointer,
        holdout: Bool,
        into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        let size = encodedByteCount(
            decisionID: decisionID,
            placements: placements,
            modelVersion: modelVersion,
            holdout: holdout
        )
        return write(
            decisionID: decisionID, placements: placements, modelVersion: modelVersion, holdout: holdout, size: size,
            into: buffer)
    }

    /// `encode(into: UnsafeMutableRawBufferPointer)` with its size already computed.
    @inline(__always)
    static func write(
        decisionID: UnsafeRawBufferPointer,
        placements: UnsafeBufferPointer<PlacementFields>,
        modelVersion: UnsafeRawBufferPointer,
        holdout: Bool,
        size: Int,
        into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        precondition(buffer.count >= size, "DecideResponseEncoder: buffer too small")
        guard size > 0, let base = buffer.baseAddress else { return 0 }
        var writer = Writer(pointer: base)
        writer.string(decisionID, key: 0x0A)
        for placement in placements {
            writer.byte(0x12)
            writer.varint(UInt64(placementBodySize(placement)))
            writer.string(placement.offerID, key: 0x0A)
            if placement.slot != 0 {
                writer.byte(0x10)
                writer.varint(UInt64(placement.slot))
            }
            writer.double(placement.propensity, key: 0x19)
            writer.double(placement.score, key: 0x21)
            writer.double(placement.expectedValue, key: 0x29)
        }
        writer.string(modelVersion, key: 0x1A)
        if holdout {
            writer.byte(0x20)
            writer.byte(1)
        }
        return writer.pointer - base
    }

    /// The size of one placement's body (without its key and length).
    @inline(__always)
    static func placementBodySize(_ placement: PlacementFields) -> Int {
        var size = stringFieldSize(placement.offerID)
        if placement.slot != 0 { size += 1 + varintSize(UInt64(placement.slot)) }
        if placement.propensity.bitPattern != 0 { size += 9 }
        if placement.score.bitPattern != 0 { size += 9 }
        if placement.expectedValue.bitPattern != 0 { size += 9 }
        return size
    }

    /// The size of a string field with a one-byte key; 0 when the string is empty (omitted).
    @inline(__always)
    static func stringFieldSize(_ bytes: UnsafeRawBufferPointer) -> Int {
        bytes.isEmpty ? 0 : 1 + varintSize(UInt64(bytes.count)) + bytes.count
    }

    /// The number of bytes of `value` as a minimal varint.
    @inline(__always)
    static func varintSize(_ value: UInt64) -> Int {
        // 1 + floor(log2(value) / 7), with 0 taking one byte.
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }

    /// Writes wire-format pieces at a raw pointer the caller has sized.
    struct Writer {
        var pointer: UnsafeMutableRawPointer

        @inline(__always)
        mutating func byte(_ value: UInt8) {
            pointer.storeBytes(of: value, as: UInt8.self)
            pointer += 1
        }

        @inline(__always)
        mutating func varint(_ value: UInt64) {
            var rest = value
            while rest >= 0x80 {
                byte(UInt8(truncatingIfNeeded: rest) | 0x80)
                rest >>= 7
            }
            byte(UInt8(rest))
        }

        /// A string field with a one-byte key, skipped when empty.
        @inline(__always)
        mutating func string(_ bytes: UnsafeRawBufferPointer, key: UInt8) {
            guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
            byte(key)
            varint(UInt64(bytes.count))
            pointer.copyMemory(from: source, byteCount: bytes.count)
            pointer += bytes.count
        }

        /// A double field with a one-byte key, skipped when its bit pattern is 0 (+0.0).
        @inline(__always)
        mutating func double(_ value: Double, key: UInt8) {
            guard value.bitPattern != 0 else { return }
            byte(key)
            pointer.storeBytes(of: value.bitPattern.littleEndian, as: UInt64.self)
            pointer += 8
        }
    }
}
