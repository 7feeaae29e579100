import Testing

@testable import EncoreTransport

@Suite struct BlockPoolTests {
    @Test func sizeClassIsTheSmallestClassThatFits() {
        for total in 1...20_000 {
            let expected = BlockPool.classSizes.firstIndex { $0 >= total } ?? -1
            #expect(BlockPool.sizeClass(for: total) == expected, "total \(total)")
        }
    }

    @Test func reusesFreedBlocksOfTheSameClass() {
        let pool = BlockPool()
        let a = pool.allocate(100)!
        pool.deallocate(a)
        let b = pool.allocate(90)!
        #expect(a == b)
        pool.deallocate(b)
    }

    @Test func blocksAreUsableToTheirFullSizeAndAligned() {
        let pool = BlockPool()
        for size in [0, 1, 47, 48, 49, 100, 1000, 16368, 16369, 100_000] {
            let p = pool.allocate(size)!
            #expect(Int(bitPattern: p) % 16 == 0)
            #expect(pool.usableSize(p) >= size)
            p.initializeMemory(as: UInt8.self, repeating: 0xAB, count: size)
            pool.deallocate(p)
        }
    }

    @Test func callocZeroesAndReallocPreservesContents() {
        let pool = BlockPool()
        let dirty = pool.allocate(200)!
        dirty.initializeMemory(as: UInt8.self, repeating: 0xFF, count: 200)
        pool.deallocate(dirty)
        let zeroed = pool.allocateZeroed(10, 20)!
        #expect((0..<200).allSatisfy { zeroed.load(fromByteOffset: $0, as: UInt8.self) == 0 })
        for i in 0..<200 { zeroed.storeBytes(of: UInt8(i), toByteOffset: i, as: UInt8.self) }
        let grown = pool.reallocate(zeroed, 5000)!
        #expect((0..<200).allSatisfy { grown.load(fromByteOffset: $0, as: UInt8.self) == UInt8($0) })
        pool.deallocate(grown)
        #expect(pool.allocateZeroed(Int.max, 2) == nil)
    }

    @Test func boundsTheBlocksItKeeps() {
        let pool = BlockPool(maxCachedPerClass: 4)
        let blocks = (0..<10).map { _ in pool.allocate(32)! }
        blocks.forEach { pool.deallocate($0) }
        #expect(pool.cachedBlocks.max() == 4)
    }
}
