import Testing

@testable import EncoreEngine

@Suite struct LogRingTests {
    /// Records of varying sizes cycle through a 4 KiB ring many times, so some wrap around its
    /// end (copied into scratch) and most do not (passed in place); every one comes out intact
    /// and in order, and a record that does not fit is dropped and counted.
    @Test func drainsRecordsInOrderAcrossTheWrap() {
        let ring = LogRing(capacityBytes: 4096)
        var scratch: [UInt8] = []
        var next = 0
        var expected = 0
        for round in 0..<200 {
            for _ in 0..<(1 + round % 5) {
                let record = (0..<(1 + next * 37 % 700)).map { UInt8(truncatingIfNeeded: $0 &+ next) }
                #expect(record.withUnsafeBytes { ring.append($0) })
                next += 1
            }
            ring.drain(into: &scratch) { bytes in
                let want = (0..<(1 + expected * 37 % 700)).map { UInt8(truncatingIfNeeded: $0 &+ expected) }
                #expect(Array(bytes) == want, "record \(expected)")
                expected += 1
            }
        }
        #expect(expected == next)
        #expect(ring.pendingBytes == 0)
        let tooBig = [UInt8](repeating: 1, count: 4096)
        #expect(!tooBig.withUnsafeBytes { ring.append($0) })
        #expect(ring.dropped.load(ordering: .relaxed) == 1)
    }
}
