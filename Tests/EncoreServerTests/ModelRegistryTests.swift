import Dispatch
import EncoreDemo
import EncoreEngine
import EncoreModel
import EncoreStore
import Synchronization
import Testing

@testable import EncoreServer

@Suite struct ModelRegistryTests {
    /// Loaded once: `DemoCustomers.store` goes through one temporary file per process, which
    /// tests running in parallel would share.
    static let demoCustomers = try? DemoCustomers.store(count: 1000)

    /// A registry over the demo catalog, 1,000 demo customers and the demo snapshot.
    static func makeRegistry() throws -> ModelRegistry {
        let table = CustomerTable(base: try #require(Self.demoCustomers))
        let snapshot = try DemoModel.snapshot(seed: DemoModel.defaultSeed)
        let model = try ActiveModel(
            snapshot: snapshot, catalog: try OfferCatalog(jsonl: DemoCatalog.jsonl), customers: table.current)
        let engine = DecisionEngine(configuration: EngineConfiguration(), model: model)
        return ModelRegistry(engine: engine, customers: table, trustedKeys: [], initial: nil)
    }

    @Test func concurrentUpsertsBesidePushesAreNeverLost() throws {
        let registry = try Self.makeRegistry()
        let baseOffers = registry.engine.active.value.catalog.count
        let snapshots = try (41..<51).map { seed in
            try DemoModel.snapshot(seed: UInt64(seed), createdAtMillis: 1_764_000_000_000 + Int64(seed))
        }
        let files = try snapshots.map { try SnapshotFile.write($0) }
        let (writers, batches, perBatch) = (8, 10, 5)
        let failures = Mutex<[String]>([])
        // Iterations 0..<writers upsert offers and customers; the last one pushes each snapshot
        // (activating it), activates the one before it again, and ends on the last one. No
        // #expect here: expectations are recorded on the test's own thread.
        @Sendable func check(_ ok: Bool, _ what: String) {
            if !ok { failures.withLock { $0.append(what) } }
        }
        // Parsed up front: parsing is not what races.
        let offers = try (0..<writers).map { w in
            try (0..<batches).map { b in
                try (0..<perBatch).map { r in
                    try Offer(jsonLine: "{\"offer_id\": \"race_\(w)_\(b)_\(r)\", \"surfaces\": [\"cart\"]}")
                }
            }
        }
        DispatchQueue.concurrentPerform(iterations: writers + 1) { w in
            do {
                if w == writers {
                    var previous: String?
                    for file in files {
                        let (info, activated) = try registry.push(file, activate: true)
                        check(activated, "push of \(info.version) not activated")
                        if let previous { _ = try registry.activate(version: previous) }
                        previous = info.version
                    }
                    _ = try registry.activate(version: snapshots[snapshots.count - 1].version)
                    return
                }
                for b in 0..<batches {
                    let (upserted, _) = try registry.upsertOffers(offers[w][b])
                    check(upserted == perBatch, "writer \(w) batch \(b): \(upserted) offers upserted")
                    let records = (0..<perBatch).map { r in
                        CustomerUpsert(customerID: "race-\(w)-\(b)-\(r)", segments: ["vip"], features: [:])
                    }
                    let applied = try registry.upsertCustomers(records).applied
                    check(applied == perBatch, "writer \(w) batch \(b): \(applied) customers applied")
                }
            } catch {
                failures.withLock { $0.append("writer \(w): \(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        let active = registry.engine.active.value
        #expect(active.version == snapshots[snapshots.count - 1].version)
        #expect(registry.list().active == active.version)
        #expect(active.catalog.count == baseOffers + writers * batches * perBatch)
        var missingOffers = 0
        var unknownCustomers = 0
        for w in 0..<writers {
            for b in 0..<batches {
                for r in 0..<perBatch {
                    if active.catalog.index(of: "race_\(w)_\(b)_\(r)") < 0 { missingOffers += 1 }
                    if !active.customers.lookup("race-\(w)-\(b)-\(r)").isKnown { unknownCustomers += 1 }
                }
            }
        }
        #expect(missingOffers == 0)
        #expect(unknownCustomers == 0)
        // The active model reads the customer table's current generation, not an older one.
        #expect(active.customers.number == registry.customers.current.number)
    }

    @Test func refusalsCarryTheirCodeAndPublishNothing() throws {
        let registry = try Self.makeRegistry()
        let before = registry.engine.active.value
        do {
            _ = try registry.activate(version: "no-such-version")
            Issue.record("an unknown version was activated")
        } catch {
            #expect(error.code == .notFound && error.status.code == .notFound)
        }
        do {
            _ = try registry.upsertCustomers([CustomerUpsert(customerID: "x", segments: nil, features: ["nope": 1])])
            Issue.record("an unknown feature name was accepted")
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains("nope"))
        }
        do {
            _ = try registry.push([1, 2, 3], activate: true)
            Issue.record("three bytes were accepted as a snapshot")
        } catch {
            #expect(error.code == .failedPrecondition && error.status.code == .failedPrecondition)
        }
        do {
            _ = try registry.rollback()
            Issue.record("a rollback with no previous snapshot succeeded")
        } catch {
            #expect(error.code == .failedPrecondition)
        }
        #expect(registry.engine.active.value === before)
    }
}
