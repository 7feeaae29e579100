import BenchSupport
// The decision core alone (EncoreEngine): eligibility, features, scoring, SquareCB exploration
// and a 2-slot slate for a 50-offer catalog and a 64-feature snapshot, over a pool of customers
// (14 known, 2 cold-start). One measured iteration is 1,000 decisions (scaling factor kilo).
// Issue goal: <= 2 us and 0 allocations per decision.
import Benchmark
import EncoreEngine
import EncoreModel
import EncoreStore

#if canImport(Glibc)
    import Glibc
#endif

/// Everything a decision borrows, alive for the whole run.
final class DecisionFixture: @unchecked Sendable {
    let engine: DecisionEngine
    let workspace: DecisionWorkspace
    var input = DecisionInput()
    var output = DecisionOutput()
    let customerPool: [UnsafeRawBufferPointer]

    init() throws {
        let arena = ByteArena()
        let catalog = try OfferCatalog(jsonl: Fixtures.catalogJSONL, source: "bench-catalog.jsonl")
        let directory = String(cString: mkdtemp(strdup("/tmp/encore-bench-XXXXXX"))!)
        let path = directory + "/customers.csv"
        let file = fopen(path, "w")!
        let csv = Fixtures.customersCSV
        fputs(csv, file)
        fclose(file)
        let customers = try CustomerStore.load(contentsOf: path, progress: nil)
        unlink(path)
        rmdir(directory)
        let model = try ActiveModel(snapshot: Fixtures.snapshot(), catalog: catalog, customers: customers)
        engine = DecisionEngine(configuration: EngineConfiguration(), model: model)
        workspace = engine.makeWorkspace(threadIndex: 0)

        // 14 known customers spread over the store, 2 unknown (cold start).
        customerPool =
            (0..<14).map { arena.utf8(Fixtures.customerID($0 * 71)) }
            + ["cust_unknown_1", "cust_unknown_2"].map(arena.utf8)
        input.surface = arena.utf8("thank_you")
        input.customerID = customerPool[0]
        input.requestID = arena.utf8("req-7f3a9c2e-0001")
        input.orderID = arena.utf8("order-20261120-000123")
        input.totalCents = 12_999
        input.itemQuantity = 3
        input.categories = arena.array([arena.utf8("electronics"), arena.utf8("home"), arena.utf8("electronics")])
        input.shippingMethod = arena.utf8("express")
        input.channel = arena.utf8("web")
        input.device = arena.utf8("mobile")
        input.country = arena.utf8("US")
        input.isGift = false
        input.featureKeys = arena.array(Fixtures.requestKeys.map(arena.utf8))
        input.featureValues = arena.array([7, 312, 1, 1_250])
        input.slots = 2
        // One decision up front: scratch buffers reach their size, and the input is valid.
        try workspace.decide(input, into: &output)
        precondition(output.placementCount == 2, "expected a 2-offer slate, got \(output.placementCount)")
    }

    @inline(__always)
    func decide(_ i: Int) throws(EngineError) {
        input.customerID = customerPool[i & 15]
        try workspace.decide(input, into: &output)
    }
}

let benchmarks: @Sendable () -> Void = {
    let fixture: DecisionFixture
    do {
        fixture = try DecisionFixture()
    } catch {
        fatalError("DecisionCore fixture: \(error)")
    }
    Benchmark("decide-50offers-64features-2slots", configuration: BenchSupport.configuration()) { benchmark in
        for i in benchmark.scaledIterations {
            do {
                try fixture.decide(i)
            } catch {
                benchmark.error("decide failed: \(error)")
                return
            }
        }
        blackHole(fixture.output.first.offerIndex)
    }
}
