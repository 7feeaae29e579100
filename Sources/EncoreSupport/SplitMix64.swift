/// A small, fast, seedable PRNG (SplitMix64). Decisions seed one from (decision id, model
/// version) so that any logged decision can be replayed exactly. `@inlinable` (like `StableHash`):
/// the decision path in other modules inlines it as it did when it lived in EncoreModel.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    @usableFromInline var current: UInt64

    /// The generator's state (the seed before the first draw).
    @inlinable public var state: UInt64 { current }

    @inlinable
    public init(seed: UInt64) {
        current = seed
    }

    @inlinable
    public mutating func next() -> UInt64 {
        current &+= 0x9E37_79B9_7F4A_7C15
        var z = current
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) with 53 random bits.
    @inlinable
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}

/// FNV-1a over bytes, then a SplitMix finalizer: stable across runs and platforms (used for
/// seeds, holdout assignment and feature hashing; never Swift's per-process `Hasher`).
public enum StableHash {
    @inlinable
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return finalize(h)
    }

    @inlinable
    public static func hash(_ text: String, seed: UInt64 = 0) -> UInt64 {
        var copy = text
        return copy.withUTF8 { hash(UnsafeRawBufferPointer($0), seed: seed) }
    }

    @inlinable @inline(__always)
    public static func finalize(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
