import Synchronization

/// A bounded single-producer, single-consumer byte ring for log records. The producer (one
/// reactor thread) appends whole records without blocking, allocating or locking; when a record
/// does not fit it is dropped and counted. The consumer (the log writer thread) drains records
/// in order.
///
/// Records are stored as a 4-byte little-endian length followed by the payload, wrapping at
/// the end of the buffer.
public final class LogRing: @unchecked Sendable {
    /// Capacity in bytes (a power of two).
    public let capacity: Int
    private let mask: Int
    private let storage: UnsafeMutableRawPointer
    /// The consumer publishes its progress after this many bytes (and at the end of a drain).
    static let publishBytes = 64 << 10
    /// Bytes written so far (producer stores, consumer loads).
    private let head = Atomic<Int>(0)
    /// Bytes consumed so far (consumer stores, producer loads).
    private let tail = Atomic<Int>(0)
    /// Records dropped because the ring was full (producer increments; anyone reads).
    public let dropped = Atomic<Int>(0)
    /// Records written (producer increments; anyone reads).
    public let written = Atomic<Int>(0)

    /// `capacityBytes` is rounded up to a power of two (at least 4 KiB).
    public init(capacityBytes: Int) {
        var c = 4096
        while c < capacityBytes { c <<= 1 }
        capacity = c
        mask = c - 1
        storage = .allocate(byteCount: c, alignment: 64)
    }

    deinit {
        storage.deallocate()
    }

    /// Producer: appends one record (`payload` bytes). Returns false (and counts a drop) when the
    /// ring lacks space.
    @discardableResult
    public func append(_ payload: UnsafeRawBufferPointer) -> Bool {
        let h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        let needed = 4 + payload.count
        guard needed <= capacity - (h - t) else {
            dropped.add(1, ordering: .relaxed)
            return false
        }
        var length = UInt32(payload.count).littleEndian
        withUnsafeBytes(of: &length) { copyIn($0, at: h) }
        copyIn(payload, at: h + 4)
        head.store(h + needed, ordering: .releasing)
        written.add(1, ordering: .relaxed)
        return true
    }

    /// Consumer: calls `body` with each available record (bytes valid only during the call) and
    /// frees consumed space every `publishBytes`, so a slow consumer gives space back as it goes
    /// without bouncing the tail's cache line to the producer on every record. A record that
    /// wraps around the end of the buffer is first copied into `scratch`; others are passed in
    /// place. Returns the number of records consumed.
    @discardableResult
    public func drain(into scratch: inout [UInt8], _ body: (UnsafeRawBufferPointer) -> Void) -> Int {
        var t = tail.load(ordering: .relaxed)
        var published = t
        let h = head.load(ordering: .acquiring)
        var count = 0
        while t < h {
            var length: UInt32 = 0
            withUnsafeMutableBytes(of: &length) { copyOut(into: $0, from: t) }
            let n = Int(UInt32(littleEndian: length))
            let start = (t + 4) & mask
            if start + n <= capacity {
                body(UnsafeRawBufferPointer(start: storage + start, count: n))
            } else {
                if scratch.count < n { scratch = [UInt8](repeating: 0, count: max(n, scratch.count * 2)) }
                scratch.withUnsafeMutableBytes { buffer in
                    let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
                    copyOut(into: target, from: t + 4)
                    body(UnsafeRawBufferPointer(target))
                }
            }
            t += 4 + n
            count += 1
            if t - published >= LogRing.publishBytes {
                tail.store(t, ordering: .releasing)
                published = t
            }
        }
        if t != published { tail.store(t, ordering: .releasing) }
        return count
    }

    /// Bytes waiting for the consumer.
    public var pendingBytes: Int { head.load(ordering: .acquiring) - tail.load(ordering: .acquiring) }

    private func copyIn(_ bytes: UnsafeRawBufferPointer, at position: Int) {
        guard bytes.count > 0 else { return }
        let start = position & mask
        let first = min(bytes.count, capacity - start)
        (storage + start).copyMemory(from: bytes.baseAddress!, byteCount: first)
        if first < bytes.count {
            storage.copyMemory(from: bytes.baseAddress! + first, byteCount: bytes.count - first)
        }
    }

    private func copyOut(into target: UnsafeMutableRawBufferPointer, from position: Int) {
        guard target.count > 0 else { return }
        let start = position & mask
        let first = min(target.count, capacity - start)
        target.baseAddress!.copyMemory(from: storage + start, byteCount: first)
        if first < target.count {
            (target.baseAddress! + first).copyMemory(from: storage, byteCount: target.count - first)
        }
    }
}
