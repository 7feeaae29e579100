#if canImport(Glibc)
    import Glibc
#endif

/// A size-class free-list allocator for one reactor thread, backing nghttp2's internal
/// allocations (streams, frames, header copies). nghttp2 allocates several small blocks per
/// request; taking them from free lists instead of malloc keeps the steady-state serving path
/// free of heap allocations. Not thread-safe: used only on its reactor's thread.
///
/// Each block carries a 16-byte header holding its size class. Blocks larger than the biggest
/// class go straight to malloc. Each class keeps at most `maxCachedPerClass` free blocks; the
/// rest are returned to malloc, which bounds the memory the pool holds.
package final class BlockPool {
    static let headerBytes = 16
    /// Block sizes per class (header included): 64, 128, ..., 16384.
    static var classSizes: [Int] { (0..<classCount).map(classBytes) }
    private static let largeClass: UInt64 = 0xFFFF
    let maxCachedPerClass: Int
    private var heads: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private var counts: UnsafeMutablePointer<Int>
    /// Blocks handed out and not yet returned (what nghttp2 holds: its sessions, streams and
    /// queued frames). Tests use it to see that a long-lived session's memory stays bounded.
    package private(set) var liveBlocks = 0

    package init(maxCachedPerClass: Int = 8192) {
        self.maxCachedPerClass = maxCachedPerClass
        heads = .allocate(capacity: BlockPool.classCount)
        heads.initialize(repeating: nil, count: BlockPool.classCount)
        counts = .allocate(capacity: BlockPool.classCount)
        counts.initialize(repeating: 0, count: BlockPool.classCount)
    }

    deinit {
        for c in 0..<BlockPool.classCount {
            var node = heads[c]
            while let block = node {
                node = block.load(as: UnsafeMutableRawPointer?.self)
                free(block)
            }
        }
        heads.deallocate()
        counts.deallocate()
    }

    /// The class of a block of `total` bytes (header included), or -1 above the largest class.
    /// Classes are powers of two from 64 bytes: computed, not searched (this runs for every
    /// nghttp2 allocation).
    @inline(__always)
    static func sizeClass(for total: Int) -> Int {
        if total <= 64 { return 0 }
        let c = Int.bitWidth - (total &- 1).leadingZeroBitCount - 6
        return c < classCount ? c : -1
    }

    /// Bytes of a block of class `c` (header included).
    @inline(__always)
    static func classBytes(_ c: Int) -> Int { 64 << c }

    static let classCount = 9

    /// `size` usable bytes, 16-byte aligned; nil if the system is out of memory. Inlined into
    /// nghttp2's allocator callbacks: the free-list path is a few loads and stores.
    @inline(__always)
    package func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        guard size >= 0, size <= Int.max &- BlockPool.headerBytes else { return nil }
        let total = size &+ BlockPool.headerBytes
        let c = BlockPool.sizeClass(for: total)
        if c >= 0, let head = heads[c] {
            heads[c] = head.load(as: UnsafeMutableRawPointer?.self)
            counts[c] &-= 1
            head.storeBytes(of: UInt64(truncatingIfNeeded: c), as: UInt64.self)
            liveBlocks &+= 1
            return head + BlockPool.headerBytes
        }
        return allocateSlow(size, total, c)
    }

    /// A block of a class whose free list is empty, or a large block, from malloc.
    private func allocateSlow(_ size: Int, _ total: Int, _ c: Int) -> UnsafeMutableRawPointer? {
        let block: UnsafeMutableRawPointer
        if c < 0 {
            guard let raw = malloc(total) else { return nil }
            block = raw
            block.storeBytes(of: BlockPool.largeClass, as: UInt64.self)
            block.storeBytes(of: UInt64(size), toByteOffset: 8, as: UInt64.self)
        } else {
            guard let raw = malloc(BlockPool.classBytes(c)) else { return nil }
            block = raw
            block.storeBytes(of: UInt64(c), as: UInt64.self)
        }
        liveBlocks &+= 1
        return block + BlockPool.headerBytes
    }

    /// Returns a block from `allocate` (nil is ignored).
    @inline(__always)
    package func deallocate(_ pointer: UnsafeMutableRawPointer?) {
        guard let pointer else { return }
        liveBlocks &-= 1
        let block = pointer - BlockPool.headerBytes
        let tag = block.load(as: UInt64.self)
        let c = Int(truncatingIfNeeded: tag)
        if tag == BlockPool.largeClass || counts[c] >= maxCachedPerClass {
            free(block)
            return
        }
        block.storeBytes(of: heads[c], as: UnsafeMutableRawPointer?.self)
        heads[c] = block
        counts[c] &+= 1
    }

    /// Usable bytes of a block.
    func usableSize(_ pointer: UnsafeMutableRawPointer) -> Int {
        let block = pointer - BlockPool.headerBytes
        let tag = block.load(as: UInt64.self)
        if tag == BlockPool.largeClass { return Int(block.load(fromByteOffset: 8, as: UInt64.self)) }
        return BlockPool.classBytes(Int(tag)) - BlockPool.headerBytes
    }

    package func allocateZeroed(_ count: Int, _ size: Int) -> UnsafeMutableRawPointer? {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow, let p = allocate(bytes) else { return nil }
        memset(p, 0, bytes)
        return p
    }

    package func reallocate(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
        guard let pointer else { return allocate(size) }
        let usable = usableSize(pointer)
        if size <= usable { return pointer }
        guard let fresh = allocate(size) else { return nil }
        fresh.copyMemory(from: pointer, byteCount: usable)
        deallocate(pointer)
        return fresh
    }

    /// Free blocks cached per class (for tests and metrics).
    var cachedBlocks: [Int] { (0..<BlockPool.classCount).map { counts[$0] } }
}
