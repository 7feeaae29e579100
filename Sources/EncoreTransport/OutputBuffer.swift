#if canImport(Glibc)
    import Glibc
#endif

/// Bytes waiting for a connection's socket: appended at the end (nghttp2's frames, one copy
/// each), written from the front. Raw storage, so an append is one bounds check and one copy
/// (appending to a `[UInt8]` cost ~80 instructions of generic code per frame, three frames per
/// call). Owned by one connection on its reactor thread; `deallocate` frees it.
struct OutputBuffer {
    private var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    /// The unwritten bytes are `start..<end`.
    private(set) var start = 0
    private(set) var end = 0
    /// The capacity an empty buffer shrinks back to (a large response grew it).
    let baseCapacity: Int

    init(capacity: Int) {
        baseCapacity = max(capacity, 64)
        self.capacity = baseCapacity
        base = .allocate(byteCount: baseCapacity, alignment: 16)
    }

    func deallocate() { base.deallocate() }

    /// Bytes not yet written.
    @inline(__always)
    var count: Int { end &- start }

    /// The bytes not yet written (valid until the next mutation).
    @inline(__always)
    var pending: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + start, count: end &- start) }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        guard n > 0, let source = bytes.baseAddress else { return }
        if capacity &- end < n { makeRoom(n) }
        (base + end).copyMemory(from: source, byteCount: n)
        end &+= n
    }

    mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// `n` bytes were written from the front.
    @inline(__always)
    mutating func consume(_ n: Int) {
        start &+= n
        if start == end {
            start = 0
            end = 0
            if capacity > baseCapacity && capacity > 1 << 20 { shrink() }
        }
    }

    /// Moves the unwritten bytes to the front once more than `threshold` bytes before them
    /// were written (so a slow reader does not keep a growing prefix).
    mutating func compact(ifWrittenExceeds threshold: Int) {
        guard start > threshold else { return }
        let n = end &- start
        base.copyMemory(from: base + start, byteCount: n)
        start = 0
        end = n
    }

    private mutating func makeRoom(_ n: Int) {
        let pending = end &- start
        if start > 0 && capacity - pending >= n && pending <= capacity / 2 {
            base.copyMemory(from: base + start, byteCount: pending)
            start = 0
            end = pending
            return
        }
        var newCapacity = capacity
        while newCapacity - pending < n { newCapacity *= 2 }
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        fresh.copyMemory(from: base + start, byteCount: pending)
        base.deallocate()
        base = fresh
        capacity = newCapacity
        start = 0
        end = pending
    }

    private mutating func shrink() {
        base.deallocate()
        base = .allocate(byteCount: baseCapacity, alignment: 16)
        capacity = baseCapacity
    }
}
