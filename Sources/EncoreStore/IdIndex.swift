import EncoreSupport

/// Interned ids: every id's bytes in one arena with offsets, and an open-addressing hash table of
/// `Int32` slots (linear probing, load factor <= 1/2). Immutable after init, so lookups are
/// lock-free; they hash the bytes and compare at most a few candidates, without allocating.
///
/// Used for customer ids (10M+), offer ids and the customer overlay.
final class IdIndex: @unchecked Sendable {
    /// The ids' bytes, back to back.
    let arena: UnsafeMutablePointer<UInt8>
    /// `count + 1` offsets into `arena`; id `i` is `arena[offsets[i]..<offsets[i + 1]]`.
    let offsets: UnsafeMutablePointer<Int>
    /// Number of ids.
    let count: Int
    private let slots: UnsafeMutablePointer<Int32>
    private let mask: Int

    /// Ids `duplicate` and `first` are equal; thrown by `init` with their indices.
    struct Duplicate: Error {
        var first: Int
        var duplicate: Int
        /// The repeated id.
        var id: String
    }

    /// Takes ownership of `arena` and `offsets` (allocated with `.allocate`), then hashes every id.
    /// - Throws: `Duplicate` for the first repeated id (`arena` and `offsets` are freed).
    init(arena: UnsafeMutablePointer<UInt8>, offsets: UnsafeMutablePointer<Int>, count: Int) throws {
        precondition(count < Int(Int32.max), "too many ids for Int32 indices")
        self.arena = arena
        self.offsets = offsets
        self.count = count
        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: -1, count: capacity)
        for i in 0..<count {
            let id = self.id(at: i)
            var slot = Int(truncatingIfNeeded: IdIndex.hash(id)) & mask
            while true {
                let existing = slots[slot]
                if existing < 0 {
                    slots[slot] = Int32(i)
                    break
                }
                if IdIndex.equal(self.id(at: Int(existing)), id) {
                    throw Duplicate(first: Int(existing), duplicate: i, id: String(decoding: id, as: UTF8.self))
                }
                slot = (slot + 1) & mask
            }
        }
    }

    /// Interns `ids` in order (copies them).
    /// - Throws: `Duplicate` for the first repeated id.
    convenience init(_ ids: [String]) throws {
        let buffer = ByteBuffer(capacity: ids.reduce(0) { $0 + $1.utf8.count })
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: ids.count + 1)
        for (i, id) in ids.enumerated() {
            offsets[i] = buffer.count
            buffer.append(id)
        }
        offsets[ids.count] = buffer.count
        let arena = UnsafeMutablePointer<UInt8>.allocate(capacity: max(buffer.count, 1))
        arena.update(from: buffer.base, count: buffer.count)
        try self.init(arena: arena, offsets: offsets, count: ids.count)
    }

    deinit {
        arena.deallocate()
        offsets.deallocate()
        slots.deallocate()
    }

    /// The bytes of id `i` (0 <= i < count).
    @inline(__always) func id(at i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: arena + offsets[i], count: offsets[i + 1] - offsets[i])
    }

    /// Id `i` as a `String` (allocates; not for hot paths).
    func string(at i: Int) -> String { String(decoding: id(at: i), as: UTF8.self) }

    /// The index of `key`, or -1. Allocation-free and lock-free.
    @inline(__always) func lookup(_ key: UnsafeRawBufferPointer) -> Int32 {
        var slot = Int(truncatingIfNeeded: IdIndex.hash(key)) & mask
        while true {
            let candidate = slots[slot]
            if candidate < 0 { return -1 }
            if IdIndex.equal(id(at: Int(candidate)), key) { return candidate }
            slot = (slot + 1) & mask
        }
    }

    /// The index of `key`, or -1 (convenience for admin paths).
    func lookup(_ key: String) -> Int32 {
        var key = key
        return key.withUTF8 { lookup(UnsafeRawBufferPointer($0)) }
    }

    /// Bytes allocated by the index (arena, offsets, slots).
    var footprintBytes: Int { offsets[count] + (count + 1) * 8 + (mask + 1) * 4 }

    @inline(__always) static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0 else { return true }
        return memcmp8(a.baseAddress!, b.baseAddress!, a.count)
    }

    @inline(__always) private static func memcmp8(
        _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int
    ) -> Bool {
        var i = 0
        while i + 8 <= n {
            if a.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                != b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            {
                return false
            }
            i += 8
        }
        while i < n {
            if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) {
                return false
            }
            i += 1
        }
        return true
    }

    /// A fast 64-bit hash of a byte string (8 bytes per step, multiply-xorshift mixing).
    @inline(__always) static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 { ByteHash.hash(bytes) }
}
