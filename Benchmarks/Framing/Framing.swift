import BenchSupport
// GRPCFrameDecoder (EncoreTransport): a 300-byte gRPC message with its 5-byte prefix, arriving
// in 3 pieces (as DATA frames would deliver it): reset, append x3, nextMessage. One measured
// iteration is 1,000 messages.
import Benchmark
import EncoreTransport

final class FramingFixture: @unchecked Sendable {
    var decoder = GRPCFrameDecoder(maxMessageBytes: 4 << 20)
    let pieces: [UnsafeRawBufferPointer]

    init() throws {
        let arena = ByteArena()
        let body = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let frame: [UInt8] = [0, 0, 0, 0x01, 0x2C] + body  // uncompressed, length 300
        pieces = [frame[0..<3], frame[3..<150], frame[150...]].map { arena.bytes(Array($0)) }
        // First pass grows the buffer to its working size.
        guard try feed() == 300 else { fatalError("Framing: expected one 300-byte message") }
    }

    @inline(__always)
    func feed() throws(GRPCFrameDecoder.Failure) -> Int {
        decoder.reset()
        try decoder.append(pieces[0])
        try decoder.append(pieces[1])
        try decoder.append(pieces[2])
        return try decoder.nextMessage()?.range.count ?? -1
    }
}

let benchmarks: @Sendable () -> Void = {
    let fixture: FramingFixture
    do {
        fixture = try FramingFixture()
    } catch {
        fatalError("Framing fixture: \(error)")
    }

    Benchmark("GRPCFrameDecoder-300B-in-3-pieces", configuration: BenchSupport.configuration()) { benchmark in
        var total = 0
        for _ in benchmark.scaledIterations {
            do {
                total &+= try fixture.feed()
            } catch {
                benchmark.error("framing failed: \(error)")
                return
            }
        }
        blackHole(total)
    }

    // An empty iteration: package-benchmark's own allocations per measured iteration, which
    // every other benchmark's malloc count includes.
    Benchmark("empty-iteration", configuration: BenchSupport.configuration(scalingFactor: .one)) { benchmark in
        for i in benchmark.scaledIterations { blackHole(i) }
    }
}
