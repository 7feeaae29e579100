import Synchronization
import Testing

@testable import EncoreTransport

@Suite struct RequestMemoryBudgetTests {
    @Test func streamsPastTheTotalAreRefusedExceptSmallOnesWithinTheReserve() {
        let budget = RequestMemoryBudget(limit: 8 << 20)  // reserve: 1 MiB (an eighth)
        #expect(budget.reserve == 1 << 20)
        #expect(budget.take(8 << 20, streamBytes: 8 << 20))
        // Over the limit: a large stream is refused (its bytes are still counted until given back).
        #expect(!budget.take(100 << 10, streamBytes: 100 << 10))
        budget.give(100 << 10)
        // A small call (up to 64 KiB) may use the reserve...
        for _ in 0..<16 { #expect(budget.take(64 << 10, streamBytes: 64 << 10)) }
        // ...but not beyond it.
        #expect(!budget.take(1, streamBytes: 1))
        budget.give(1)
        budget.give(16 * (64 << 10))
        budget.give(8 << 20)
        #expect(budget.held.load(ordering: .relaxed) == 0)
        #expect(budget.take(1 << 20, streamBytes: 1 << 20))
    }

    @Test func zeroMeansNoBound() {
        let budget = RequestMemoryBudget(limit: 0)
        #expect(budget.limit == Int.max)
        #expect(budget.take(1 << 40, streamBytes: 1 << 40))
    }
}
