import EncoreCrypto
import EncoreModel
import EncoreStore
import EncoreSupport
import Synchronization

/// The decision engine: the published model (snapshot + catalog + store) and the settings
/// every reactor thread decides with. Each thread decides through its own `DecisionWorkspace`.
public final class DecisionEngine: Sendable {
    public let configuration: EngineConfiguration
    /// The active model. Published by admin work (push, activate, rollback, catalog and
    /// customer upserts); read lock-free by workspaces.
    public let active: Published<ActiveModel>
    /// The per-process prefix of decision ids: random, so ids stay unique across restarts, unless
    /// `EngineConfiguration.instanceID` fixes it (tests and simulations).
    public let instanceID: UInt64
    /// Unknown `candidate_offer_ids` ignored so far (all threads).
    public let unknownCandidatesIgnored = Atomic<Int>(0)
    /// Decisions whose scores were not finite and that fell back to the uniform policy over the
    /// eligible offers (all threads; written by workspaces, read by anyone).
    public let nonFiniteScoreFallbacks = Atomic<Int>(0)

    /// Decision and outcome log rings (nil: logging off).
    public let log: DecisionLog?

    /// Per-customer SHOWN/DECLINED events (frequency caps, decline suppression). Written by
    /// `recordOutcome` on any thread, read lock-free by Decide.
    public let counters: CustomerCounters
    /// Per-offer daily budget spend. Written by `recordOutcome`, read by Decide; lock-free.
    public let budgets: OfferBudgets
    /// Outcomes whose decision id names no customer (not from this engine's id format), so no
    /// counter could be updated.
    public let unattributedOutcomes = Atomic<Int>(0)
    /// Outcomes refused because their decision id did not verify (another format, a wrong MAC,
    /// or a key no longer configured): written by ReportOutcome on any thread, read at shutdown.
    public let unverifiedOutcomes = Atomic<Int>(0)
    /// The key this engine MACs decision ids under (`EngineConfiguration.decisionKey`, else
    /// random at start).
    public let decisionKey: SipHash24.Key
    /// The keys an id verifies under: `decisionKey`, then the configured previous keys.
    public let verificationKeys: [SipHash24.Key]
    /// Recent `request_id` keys, so a retried Decide is logged once (nil: logging off, nothing to
    /// deduplicate).
    public let requestIDs: RequestIDTable?

    public init(configuration: EngineConfiguration, model: ActiveModel, log: DecisionLog? = nil) {
        self.configuration = configuration
        self.log = log
        active = Published(model)
        counters = CustomerCounters(maxCustomers: configuration.counterCustomers)
        requestIDs =
            log == nil
            ? nil
            : RequestIDTable(
                entries: configuration.idempotencyTableEntries, windowSeconds: configuration.idempotencyWindowSeconds)
        budgets = OfferBudgets()
        let key = configuration.decisionKey ?? SipHash24.Key.random()
        decisionKey = key
        verificationKeys = [key] + configuration.previousDecisionKeys.filter { $0 != key }
        if let fixed = configuration.instanceID {
            instanceID = fixed & EngineConfiguration.maxInstanceID
        } else {
            var generator = SystemRandomNumberGenerator()
            instanceID = generator.next() & EngineConfiguration.maxInstanceID
        }
    }

    /// A workspace for one thread (`threadIndex` goes into decision ids).
    public func makeWorkspace(threadIndex: Int) -> DecisionWorkspace {
        DecisionWorkspace(engine: self, threadIndex: threadIndex)
    }
}

/// What a customer did with a placed offer (the wire's `Outcome` values).
public enum OutcomeKind: Int32, Sendable {
    case shown = 1
    case accepted = 2
    case declined = 3
    case ignored = 4
}

extension DecisionEngine {
    /// Whether `id` is a decision id this engine (or one sharing its key, or a previous key)
    /// issued: its MAC verifies (`DecisionID.verify`). Constant time in the MAC's digits.
    public func verifyDecisionID(_ id: UnsafeRawBufferPointer) -> Bool {
        DecisionID.verify(id, keys: verificationKeys)
    }

    /// The customer key a decision id of this engine's format carries (its fourth field, 16
    /// hex digits), or nil for another format or a decision without a customer. Does not check
    /// the MAC (`verifyDecisionID` does).
    public static func customerKey(fromDecisionID id: UnsafeRawBufferPointer) -> UInt64? {
        guard id.count == DecisionID.length, id[12] == 0x2D, id[15] == 0x2D, id[26] == 0x2D, id[43] == 0x2D else {
            return nil
        }
        var key: UInt64 = 0
        for i in 27..<43 {
            let c = id[i]
            let digit: UInt8
            switch c {
            case 0x30...0x39: digit = c - 0x30
            case 0x61...0x66: digit = c - 0x61 + 10
            default: return nil
            }
            key = key << 4 | UInt64(digit)
        }
        return key == 0 ? nil : key
    }

    /// Feeds one acknowledged outcome to the rule state: SHOWN and DECLINED to the customer's
    /// counters (when the offer has a cap or a suppression window), SHOWN and ACCEPTED to the
    /// offer's daily budget spend. Unknown offers are ignored. Safe from any thread; never on the
    /// Decide path (counter writers serialize on a mutex). Returns the offer's catalog index (-1:
    /// not in the catalog).
    @discardableResult
    public func recordOutcome(
        decisionID: UnsafeRawBufferPointer, offerID: UnsafeRawBufferPointer, outcome: OutcomeKind,
        nowMillis: Int64, model: ActiveModel
    ) -> Int32 {
        let offer = model.catalog.index(of: offerID)
        guard offer >= 0 else { return -1 }
        let now = nowMillis / 1000
        switch outcome {
        case .shown: budgets.add(offer: offer, unit: .shows, atSeconds: now)
        case .accepted: budgets.add(offer: offer, unit: .acceptances, atSeconds: now)
        case .declined, .ignored: break
        }
        let rule = model.rules.offers[Int(offer)]
        let kind: CustomerCounters.Kind
        switch outcome {
        case .shown where rule.cap > 0: kind = .shown
        case .declined where rule.suppressionSeconds > 0: kind = .declined
        default: return offer
        }
        guard let key = DecisionEngine.customerKey(fromDecisionID: decisionID) else {
            unattributedOutcomes.add(1, ordering: .relaxed)
            return offer
        }
        let rules = model.rules
        counters.record(
            customer: key, offer: offer, kind: kind, atSeconds: now, suppressionMinutes: rules.suppressionMinutes,
            cap: rules.cap)
        return offer
    }
}
