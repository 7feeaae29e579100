import EncoreTransport

/// `encore.v1.Decisions`. STUB for now: both methods are routed and answer UNIMPLEMENTED until
/// the decision core (feature store, policy, snapshots) lands.
public struct DecisionsService: Sendable {
    public init() {}

    public func register(in router: inout GRPCRouter) {
        router.register(
            "/encore.v1.Decisions/Decide",
            .inline { _, _, _ in
                GRPCStatus(
                    .unimplemented, static: "encore.v1.Decisions/Decide is not implemented yet (decision core pending)")
            })
        router.register(
            "/encore.v1.Decisions/ReportOutcome",
            .inline { _, _, _ in
                GRPCStatus(
                    .unimplemented,
                    static: "encore.v1.Decisions/ReportOutcome is not implemented yet (decision core pending)")
            })
    }
}
