import Testing

@testable import EncoreTransport

@Suite struct OutputBufferTests {
    private func contents(_ buffer: OutputBuffer) -> [UInt8] { Array(buffer.pending) }

    @Test func appendsWritesFromTheFrontAndResetsWhenEmpty() {
        var buffer = OutputBuffer(capacity: 64)
        defer { buffer.deallocate() }
        buffer.append([1, 2, 3])
        buffer.append([4, 5])
        #expect(contents(buffer) == [1, 2, 3, 4, 5])
        buffer.consume(2)
        #expect(contents(buffer) == [3, 4, 5])
        #expect(buffer.start == 2)
        buffer.consume(3)
        #expect(buffer.count == 0)
        #expect(buffer.start == 0 && buffer.end == 0, "an emptied buffer starts again at the front")
    }

    @Test func growsKeepingTheUnwrittenBytesAndShrinksBackWhenEmpty() {
        var buffer = OutputBuffer(capacity: 64)
        defer { buffer.deallocate() }
        buffer.append([9, 9, 9, 9])
        buffer.consume(1)
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0) }
        buffer.append(big)
        #expect(buffer.capacity >= big.count + 3)
        #expect(buffer.count == big.count + 3)
        #expect(Array(buffer.pending.prefix(3)) == [9, 9, 9])
        #expect(Array(buffer.pending.suffix(5)) == Array(big.suffix(5)))
        buffer.consume(buffer.count)
        #expect(buffer.capacity == 64, "a large response's memory is given back once it is written")
    }

    @Test func movesUnwrittenBytesToTheFrontInsteadOfGrowing() {
        var buffer = OutputBuffer(capacity: 64)
        defer { buffer.deallocate() }
        buffer.append([UInt8](repeating: 1, count: 60))
        buffer.consume(50)
        buffer.append([UInt8](repeating: 2, count: 20))
        #expect(buffer.capacity == 64)
        #expect(contents(buffer) == [UInt8](repeating: 1, count: 10) + [UInt8](repeating: 2, count: 20))
        buffer.consume(5)
        buffer.compact(ifWrittenExceeds: 4)
        #expect(buffer.start == 0)
        #expect(contents(buffer) == [UInt8](repeating: 1, count: 5) + [UInt8](repeating: 2, count: 20))
    }
}
