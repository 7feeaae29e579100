/// Interns segment names to bit positions 0..<64 in order of first appearance, without
/// allocating per lookup (a 256-slot open-addressing table over a byte arena). One per loader
/// thread; the tables are merged after the threads join.
final class SegmentTable {
    /// The most distinct segments a store can hold (one bit each in a `UInt64`).
    static let maxSegments = 64

    private let arena = ByteBuffer(capacity: 1024)
    private var offsets: [Int] = [0]
    /// The file line where each segment first appeared (for the >64 error after merging).
    private(set) var firstLines: [Int] = []
    private var slots = [Int8](repeating: -1, count: 256)

    var count: Int { firstLines.count }

    func name(at i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: arena.bytes[offsets[i]..<offsets[i + 1]])
    }

    func string(at i: Int) -> String { String(decoding: name(at: i), as: UTF8.self) }

    /// The bit of `name`, interning it if new.
    /// - Throws: `StoreError(.limitExceeded)` when it would be the 65th distinct segment.
    @inline(__always)
    func intern(_ name: UnsafeRawBufferPointer, line: Int) throws -> Int {
        var slot = Int(truncatingIfNeeded: IdIndex.hash(name)) & 255
        while true {
            let candidate = slots[slot]
            if candidate < 0 { break }
            if IdIndex.equal(self.name(at: Int(candidate)), name) { return Int(candidate) }
            slot = (slot + 1) & 255
        }
        guard count < SegmentTable.maxSegments else {
            throw StoreError(
                .limitExceeded,
                "segment \"\(String(decoding: name, as: UTF8.self))\" is the 65th distinct segment "
                    + "(a store holds at most \(SegmentTable.maxSegments))")
        }
        let bit = count
        arena.append(name)
        offsets.append(arena.count)
        firstLines.append(line)
        slots[slot] = Int8(bit)
        return bit
    }
}
