/// Decision settings that are not part of a model snapshot.
public struct EngineConfiguration: Sendable {
    /// Share of customers (0...1) held out: they get no offer, `holdout = true`.
    public var holdoutShare: Double = 0
    /// Salt of the holdout hash; changing it reshuffles who is held out.
    public var holdoutSalt = "encore-holdout-v1"
    /// Most `candidate_offer_ids` a request may name.
    public var maxCandidates = 64
    /// Longest id (customer, request, order, candidate offer) in bytes.
    public var maxIDBytes = 256
    /// Most extra request features used (more are an error).
    public var maxRequestFeatures = 128

    public init() {}

    /// Returns a message naming the bad setting, or nil.
    public func validationError() -> String? {
        if !(holdoutShare >= 0 && holdoutShare <= 1) { return "holdout share must be in [0, 1], got \(holdoutShare)" }
        if maxCandidates < 1 { return "max candidates must be at least 1" }
        return nil
    }
}
