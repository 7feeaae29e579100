import EncoreCrypto
import EncoreStore

/// Decision settings that are not part of a model snapshot.
public struct EngineConfiguration: Sendable {
    /// Share of customers (0...1) held out: they get no offer, `holdout = true`.
    public var holdoutShare: Double = 0
    /// Salt of the holdout hash; changing it reshuffles who is held out.
    public var holdoutSalt = "encore-holdout-v1"
    /// Business-rule defaults (per-offer catalog fields override them).
    public var rules = RuleSettings()
    /// Customers the rule counters hold (memory: 128 bytes each, allocated at start).
    public var counterCustomers = 1 << 18
    /// The 48-bit prefix of this process's decision ids. nil (the default): random at start, so
    /// ids stay unique across restarts and replicas. Fixed only for tests and simulations
    /// (`encore serve --instance-id`): decision ids, and with them every random draw (seeded
    /// from decision id and model version), then repeat from run to run.
    public var instanceID: UInt64? = nil
    /// Largest value of `instanceID` (12 hex digits).
    public static let maxInstanceID: UInt64 = 0xFFFF_FFFF_FFFF
    /// The 128-bit SipHash key decision ids carry a MAC under (`DecisionID`). nil: random at
    /// start, so ids of an earlier process no longer verify (the server passes the key of
    /// `--decision-key-file` or of its state file).
    public var decisionKey: SipHash24.Key? = nil
    /// Keys ids issued before a rotation were MACed under: they still verify (ReportOutcome)
    /// while listed; Decide never uses them.
    public var previousDecisionKeys: [SipHash24.Key] = []
    /// A Decide retried with the same non-empty `request_id` (and customer) within this many
    /// seconds is logged once. Its decision id and draw are derived from the key, so the retry's
    /// answer is the same whatever the window (while model and rules are unchanged).
    public var idempotencyWindowSeconds = 600.0
    /// Keys the request-id table remembers (8 bytes each; the oldest are forgotten first).
    public var idempotencyTableEntries = 1 << 20

    public init() {}

}

/// Rule defaults for every offer (docs/rules.md). An offer's own catalog field wins.
public struct RuleSettings: Sendable, Equatable {
    /// SHOWN outcomes per offer per customer per rolling 24 hours (0: no cap).
    public var frequencyCapPerDay = 0
    /// Days an offer stays hidden from a customer after DECLINED (0: no suppression).
    public var declineSuppressionDays = 0.0
    /// Offers whose expected value (the objective's unit) is below this are not shown (nil:
    /// no threshold). Applies only when a snapshot scores the offers.
    public var minExpectedValue: Double? = nil
    /// Daily budgets by offer id (override the catalog's `budget` field).
    public var budgets: [String: OfferRules.Budget] = [:]

    public init() {}

}
