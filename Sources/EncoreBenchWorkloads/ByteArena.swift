import EncoreModel
import EncoreSupport

/// Bytes at stable addresses for the whole benchmark run (DecisionInput and the codecs borrow
/// raw views; these are never freed, on purpose).
public final class ByteArena: @unchecked Sendable {
    public init() {}

    /// A stable copy of `bytes`.
    public func bytes(_ bytes: [UInt8]) -> UnsafeRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        buffer.copyBytes(from: bytes)
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<bytes.count])
    }

    /// A stable copy of `text`'s UTF-8.
    public func utf8(_ text: String) -> UnsafeRawBufferPointer { bytes(Array(text.utf8)) }

    /// A stable array of values.
    public func array<T>(_ values: [T]) -> UnsafeBufferPointer<T> {
        let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: max(values.count, 1))
        _ = buffer.initialize(from: values)
        return UnsafeBufferPointer(rebasing: UnsafeBufferPointer(buffer)[0..<values.count])
    }
}

/// A small deterministic generator (SplitMix64) for fixture data.
public struct FixtureRandom {
    /// The engine's own generator (SplitMix64), so fixtures need no second copy of it.
    var generator: SplitMix64
    public init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    public mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [-scale, scale).
    public mutating func weight(_ scale: Float) -> Float {
        Float(Double(next() >> 11) * 0x1.0p-53 * 2 - 1) * scale
    }

    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
