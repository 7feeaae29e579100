import EncoreModel
import EncoreStore
import Synchronization

/// The decision engine: the published model (snapshot + catalog + store) and the settings
/// every reactor thread decides with. Each thread decides through its own `DecisionWorkspace`.
public final class DecisionEngine: Sendable {
    public let configuration: EngineConfiguration
    /// The active model. Published by admin work (push, activate, rollback, catalog and
    /// customer upserts); read lock-free by workspaces.
    public let active: Published<ActiveModel>
    /// A random per-process prefix of decision ids, so ids stay unique across restarts.
    let instanceID: UInt64
    /// Unknown `candidate_offer_ids` ignored so far (all threads).
    public let unknownCandidatesIgnored = Atomic<Int>(0)

    /// Decision and outcome log rings (nil: logging off).
    public let log: DecisionLog?

    public init(configuration: EngineConfiguration, model: ActiveModel, log: DecisionLog? = nil) {
        self.configuration = configuration
        self.log = log
        active = Published(model)
        var generator = SystemRandomNumberGenerator()
        instanceID = generator.next() & 0xFFFF_FFFF_FFFF
    }

    /// A workspace for one thread (`threadIndex` goes into decision ids).
    public func makeWorkspace(threadIndex: Int) -> DecisionWorkspace {
        DecisionWorkspace(engine: self, threadIndex: threadIndex)
    }
}
