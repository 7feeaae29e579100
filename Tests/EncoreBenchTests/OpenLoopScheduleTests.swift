import Testing

@testable import EncoreBench

@Suite struct OpenLoopScheduleTests {
    @Test func requestsAreDueAtFixedIntervalsFromTheStart() {
        let s = OpenLoopSchedule(ratePerSecond: 1000, thread: 0, threads: 1, startNanos: 5_000, endNanos: 1_000_005_000)
        #expect(s.intervalNanos == 1_000_000)
        #expect(s.intendedNanos(0) == 5_000)
        #expect(s.intendedNanos(1) == 1_005_000)
        #expect(s.intendedNanos(999) == 999_005_000)
        #expect(s.contains(999))
        #expect(!s.contains(1000))
        #expect(s.totalRequests == 1000)
    }

    @Test func threadsShareTheRateAndInterleave() {
        // 3 threads at 3000/s in total: each sends every 1 ms, offset by 1/3 ms.
        let threads = (0..<3).map {
            OpenLoopSchedule(ratePerSecond: 3000, thread: $0, threads: 3, startNanos: 0, endNanos: 10_000_000)
        }
        var all: [UInt64] = []
        for t in threads {
            var k: UInt64 = 0
            while t.contains(k) {
                all.append(t.intendedNanos(k))
                k += 1
            }
            #expect(UInt64(k) == t.totalRequests)
        }
        all.sort()
        #expect(all.count == 30)
        let gaps = zip(all.dropFirst(), all).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 >= 333_332 && $0 <= 333_334 })
    }

    @Test func intendedTimesDoNotDependOnWhatWasSent() {
        // The schedule is a pure function of k: a late send never moves later requests.
        let s = OpenLoopSchedule(
            ratePerSecond: 50_000, thread: 1, threads: 2, startNanos: 1_000, endNanos: 2_000_000_000)
        #expect(s.intendedNanos(70_000) == 1_000 + 20_000 + 70_000 * 40_000)
    }
}
