import EncoreCrypto

/// The decision id format (Protocol/PROTOCOL.md):
/// `<12 hex instance>-<2 hex thread>-<10 hex counter>-<16 hex customer key>-<16 hex MAC>`, 60
/// lowercase ASCII bytes. The first 43 (the body) name the decision and its customer; the MAC is
/// SipHash-2-4 of the body under the engine's decision key, as 16 hex digits (most significant
/// first), so only a holder of the key can make an id that ReportOutcome accepts.
public enum DecisionID {
    /// Bytes of the body the MAC covers.
    public static let bodyLength = 43
    /// Bytes of a whole id.
    public static let length = 60
    /// Bytes of "<instance>-<thread>-", the prefix a workspace absorbs once per key.
    static let prefixLength = 16

    /// The SipHash state after "<12 hex instance>-<2 hex thread>-" (two blocks), so Decide
    /// absorbs only the id's last 27 body bytes.
    static func prefixState(key: SipHash24.Key, instance: UInt64, thread: UInt64) -> SipHash24 {
        func hex(_ value: UInt64, _ width: Int) -> [UInt8] {
            let text = String(value, radix: 16)
            return Array((String(repeating: "0", count: max(0, width - text.count)) + text).utf8.suffix(width))
        }
        let prefix = hex(instance, 12) + [UInt8(ascii: "-")] + hex(thread, 2) + [UInt8(ascii: "-")]
        var state = SipHash24(key: key)
        prefix.withUnsafeBytes { raw in
            state.absorb(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)))
            state.absorb(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        return state
    }

    /// The MAC of the body in `id` (at least 48 readable bytes; the body in the first 43), from a
    /// state that absorbed its first 16 bytes.
    @inline(__always)
    static func mac(_ id: UnsafeRawBufferPointer, prefix: SipHash24) -> UInt64 {
        var state = prefix
        state.absorb(UInt64(littleEndian: id.loadUnaligned(fromByteOffset: 16, as: UInt64.self)))
        state.absorb(UInt64(littleEndian: id.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
        state.absorb(UInt64(littleEndian: id.loadUnaligned(fromByteOffset: 32, as: UInt64.self)))
        let tail = UInt64(littleEndian: id.loadUnaligned(fromByteOffset: 40, as: UInt64.self)) & 0xFF_FFFF
        return state.finalize(tail: tail, totalLength: bodyLength)
    }

    /// Whether `id` is a decision id whose MAC verifies under one of `keys`. Every key is tried
    /// and the MAC compared without an early exit, so the time taken does not depend on how many
    /// leading digits of a guess were right, nor on which key matched.
    public static func verify(_ id: UnsafeRawBufferPointer, keys: some Collection<SipHash24.Key>) -> Bool {
        guard id.count == length, id[bodyLength] == UInt8(ascii: "-") else { return false }
        let body = UnsafeRawBufferPointer(rebasing: id[0..<bodyLength])
        // The given digits, as the two memory-order words `hex16` produces.
        let given0 = id.loadUnaligned(fromByteOffset: bodyLength + 1, as: UInt64.self)
        let given1 = id.loadUnaligned(fromByteOffset: bodyLength + 9, as: UInt64.self)
        var matched: UInt64 = 0
        for key in keys {
            let expected = DecisionWorkspace.hex16(SipHash24.hash(body, key: key))
            let diff = (given0 ^ expected.0) | (given1 ^ expected.1)
            // 1 when diff == 0, else 0, without a branch on the value.
            matched |= ((diff | (0 &- diff)) >> 63) ^ 1
        }
        return matched != 0
    }
}
