import Dispatch
import EncoreProtocol
import EncoreStore
import EncoreTransport

/// `encore.v1.Customers/UpsertCustomers`: a client stream of customer records applied as one
/// batch when the stream ends (off the reactor), visible atomically to the next decision.
public struct CustomersService: Sendable {
    public let registry: ModelRegistry
    /// Records and bytes one stream may carry (the overlay bound applies too).
    public let limits: UpsertLimits
    /// Bounds this method's streams together with the other admin uploads.
    public let uploads: AdminUploadBudget

    public init(
        registry: ModelRegistry, limits: UpsertLimits = UpsertLimits(), uploads: AdminUploadBudget = AdminUploadBudget()
    ) {
        self.registry = registry
        self.limits = limits
        self.uploads = uploads
    }

    public func register(in router: inout GRPCRouter) {
        let (registry, limits, uploads) = (self.registry, self.limits, self.uploads)
        router.register(
            "/encore.v1.Customers/UpsertCustomers",
            .clientStreaming { _ in
                CustomerUpload(registry: registry, limits: limits, reservation: uploads.begin(), budget: uploads)
            })
    }

    final class CustomerUpload: GRPCClientStreamHandler {
        let registry: ModelRegistry
        let limits: UpsertLimits
        let budget: AdminUploadBudget
        /// This upload's share of the admin upload budget (nil: refused, too many in flight).
        var reservation: AdminUploadBudget.Reservation?
        var records: [CustomerUpsert] = []
        var bytes = 0

        init(
            registry: ModelRegistry, limits: UpsertLimits, reservation: AdminUploadBudget.Reservation?,
            budget: AdminUploadBudget
        ) {
            self.registry = registry
            self.limits = limits
            self.reservation = reservation
            self.budget = budget
        }

        func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? {
            guard let reservation else { return budget.tooManyUploads }
            if let refusal = reservation.reserve(message.count) {
                cancel()
                return refusal
            }
            if let refusal = limits.admit(message.count, records: records.count, total: &bytes, what: "customer") {
                records = []
                return refusal
            }
            do {
                let record = try Encore_V1_CustomerRecord(serializedBytes: Array(message))
                guard !record.customerID.isEmpty else {
                    return GRPCStatus(.invalidArgument, "customer record \(records.count + 1): customer_id is empty")
                }
                records.append(
                    CustomerUpsert(
                        customerID: record.customerID, segments: record.segments.isEmpty ? nil : record.segments,
                        features: record.features))
                return nil
            } catch {
                return GRPCStatus(
                    .invalidArgument, "customer record \(records.count + 1) could not be decoded: \(error)")
            }
        }

        func finish(_ responder: GRPCResponder) {
            let (registry, records, reservation) = (self.registry, self.records, self.reservation)
            let refusal = budget.tooManyUploads
            self.records = []
            self.reservation = nil
            DispatchQueue.global().async {
                // Holding the reservation until the batch is applied or refused keeps its bytes counted.
                respond(responder) { () throws(GRPCStatus) in
                    guard reservation != nil else { throw refusal }
                    let result = try registryCall { () throws(RegistryError) in
                        try registry.upsertCustomers(records)
                    }
                    var reply = Encore_V1_UpsertResponse()
                    reply.upserted = UInt32(result.applied)
                    reply.total = UInt64(registry.customers.current.customerCount)
                    return reply
                }
            }
        }

        func cancel() {
            records = []
            reservation = nil
        }
    }
}
