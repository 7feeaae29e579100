/// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): a keyed
/// 64-bit MAC for short messages under a 128-bit key. Pure Swift, no allocation; the state is
/// four words, so a caller that MACs many messages with a common prefix can absorb the prefix
/// once and copy the state (`absorb`, then `finalize`).
///
/// The key's 16 bytes k[0..15] are read as two little-endian words (k0 = k[0..7], k1 = k[8..15]),
/// message words likewise, and the 64-bit result is the reference implementation's output
/// read as a little-endian word (its `vectors.h` bytes, in order, are this value's bytes from
/// least significant).
public struct SipHash24: Sendable {
    /// A 128-bit SipHash key.
    public struct Key: Sendable, Equatable, Hashable {
        public var k0: UInt64
        public var k1: UInt64

        public init(k0: UInt64, k1: UInt64) {
            self.k0 = k0
            self.k1 = k1
        }

        /// The key whose bytes are `bytes` (exactly 16), k0 from the first eight little-endian.
        public init?(bytes: some Collection<UInt8>) {
            guard bytes.count == 16 else { return nil }
            var k0: UInt64 = 0
            var k1: UInt64 = 0
            for (i, b) in bytes.enumerated() {
                if i < 8 { k0 |= UInt64(b) << (8 * UInt64(i)) } else { k1 |= UInt64(b) << (8 * UInt64(i - 8)) }
            }
            self.init(k0: k0, k1: k1)
        }

        /// Parses 32 hex digits (the key's 16 bytes in order; either case; surrounding whitespace
        /// ignored). nil for anything else.
        public init?(hex text: String) {
            let digits = Array(text.utf8.drop(while: Key.isSpace).reversed().drop(while: Key.isSpace).reversed())
            guard digits.count == 32 else { return nil }
            var bytes: [UInt8] = []
            for i in stride(from: 0, to: 32, by: 2) {
                guard let hi = Key.nibble(digits[i]), let lo = Key.nibble(digits[i + 1]) else { return nil }
                bytes.append(hi << 4 | lo)
            }
            self.init(bytes: bytes)
        }

        /// A key from the system's cryptographic random source.
        public static func random() -> Key {
            var generator = SystemRandomNumberGenerator()
            return Key(k0: generator.next(), k1: generator.next())
        }

        /// The key's 16 bytes in order.
        public var bytes: [UInt8] {
            (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? k0 : k1) >> (8 * UInt64(i % 8))) }
        }

        /// The 32 lowercase hex digits `init(hex:)` reads.
        public var hex: String {
            let digits = Array("0123456789abcdef".utf8)
            var out: [UInt8] = []
            for b in bytes {
                out.append(digits[Int(b >> 4)])
                out.append(digits[Int(b & 15)])
            }
            return String(decoding: out, as: UTF8.self)
        }

        private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }

        private static func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
    }

    @usableFromInline var v0: UInt64
    @usableFromInline var v1: UInt64
    @usableFromInline var v2: UInt64
    @usableFromInline var v3: UInt64

    /// The initial state for `key` (nothing absorbed).
    @inlinable
    public init(key: Key) {
        v0 = key.k0 ^ 0x736f_6d65_7073_6575
        v1 = key.k1 ^ 0x646f_7261_6e64_6f6d
        v2 = key.k0 ^ 0x6c79_6765_6e65_7261
        v3 = key.k1 ^ 0x7465_6462_7974_6573
    }

    @inlinable @inline(__always)
    mutating func round() {
        v0 = v0 &+ v1
        v1 = v1.rotl(13)
        v1 ^= v0
        v0 = v0.rotl(32)
        v2 = v2 &+ v3
        v3 = v3.rotl(16)
        v3 ^= v2
        v0 = v0 &+ v3
        v3 = v3.rotl(21)
        v3 ^= v0
        v2 = v2 &+ v1
        v1 = v1.rotl(17)
        v1 ^= v2
        v2 = v2.rotl(32)
    }

    /// Absorbs one full 8-byte message block (`m`: the block's bytes read little-endian).
    @inlinable @inline(__always)
    public mutating func absorb(_ m: UInt64) {
        v3 ^= m
        round()
        round()
        v0 ^= m
    }

    /// Absorbs the last, partial block and returns the MAC. `tail` holds the message's last
    /// `totalLength % 8` bytes little-endian (zero above them); `totalLength` counts every
    /// byte of the message, including those absorbed before.
    @inlinable @inline(__always)
    public mutating func finalize(tail: UInt64, totalLength: Int) -> UInt64 {
        absorb(tail | UInt64(truncatingIfNeeded: totalLength) << 56)
        v2 ^= 0xFF
        round()
        round()
        round()
        round()
        return v0 ^ v1 ^ v2 ^ v3
    }

    /// SipHash-2-4 of `bytes` under `key`.
    @inlinable
    public static func hash(_ bytes: UnsafeRawBufferPointer, key: Key) -> UInt64 {
        var state = SipHash24(key: key)
        let blocks = bytes.count / 8
        for i in 0..<blocks {
            state.absorb(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
        }
        return state.finalize(tail: tail(bytes, from: 8 * blocks), totalLength: bytes.count)
    }

    /// The bytes of `bytes` from `start` to its end (fewer than 8), little-endian.
    @inlinable @inline(__always)
    public static func tail(_ bytes: UnsafeRawBufferPointer, from start: Int) -> UInt64 {
        var t: UInt64 = 0
        var i = bytes.count - 1
        while i >= start {
            t = t << 8 | UInt64(bytes[i])
            i -= 1
        }
        return t
    }
}

extension UInt64 {
    @inlinable @inline(__always)
    func rotl(_ n: UInt64) -> UInt64 { self << n | self >> (64 - n) }
}
