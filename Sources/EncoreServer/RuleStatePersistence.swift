import EncoreEngine
import EncoreStore
import EncoreTransport
import Foundation
import Synchronization

/// Keeps the rule counters (declines, shows, budget spend) across restarts: loads the state file
/// at start, saves it every `intervalSeconds` on its own thread and once more on stop (SIGTERM,
/// after the reactors have drained, so every acknowledged outcome is in it).
final class RuleStatePersistence: @unchecked Sendable {
    let path: String
    let engine: DecisionEngine
    let intervalSeconds: Double
    private let stopping = Atomic<Bool>(false)
    private var thread: Thread? = nil
    private let done = DispatchSemaphore(value: 0)
    /// Serializes the periodic and the final save (they write the same temporary file).
    private let saving = Mutex<Int>(0)

    /// Loads `path` if it exists (a missing file starts empty; a damaged one is an error naming
    /// it, so a restart never silently forgets declines).
    init(path: String, engine: DecisionEngine, intervalSeconds: Double) throws {
        self.path = path
        self.engine = engine
        self.intervalSeconds = intervalSeconds
        guard FileManager.default.fileExists(atPath: path) else {
            Log.info("rule state: \(path) does not exist yet; counters start empty")
            return
        }
        let catalog = engine.active.value.catalog
        let summary = try RuleStateFile.load(
            from: path, counters: engine.counters, budgets: engine.budgets, indexOf: { catalog.index(of: $0) })
        Log.info(
            "rule state: loaded \(summary.customers) customers (\(summary.histories) offer histories) from \(path)"
                + (summary.droppedHistories > 0
                    ? " (\(summary.droppedHistories) histories of offers no longer in the catalog dropped)" : ""))
    }

    func start() {
        guard intervalSeconds > 0 else { return }
        let thread = Thread { [self] in
            while !stopping.load(ordering: .acquiring) {
                if done.wait(timeout: .now() + intervalSeconds) == .success { break }
                save(final: false)
            }
        }
        thread.name = "encore-rule-state"
        self.thread = thread
        thread.start()
    }

    /// Stops the periodic saves and saves one last time.
    func stop() {
        stopping.store(true, ordering: .releasing)
        done.signal()
        save(final: true)
    }

    func save(final: Bool) {
        saving.withLock { saves in
            saves += 1
            write(final: final)
        }
    }

    private func write(final: Bool) {
        let model = engine.active.value
        do {
            try RuleStateFile.save(
                counters: engine.counters, budgets: engine.budgets, offerIDs: model.catalog.offers.map(\.id), to: path)
            if final { Log.info("rule state: saved \(engine.counters.count) customers to \(path)") }
        } catch {
            Log.error("rule state: \(error)")
        }
    }
}
