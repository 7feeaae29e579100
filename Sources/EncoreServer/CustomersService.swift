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

    public init(registry: ModelRegistry, limits: UpsertLimits = UpsertLimits()) {
        self.registry = registry
        self.limits = limits
    }

    public func register(in router: inout GRPCRouter) {
        let (registry, limits) = (self.registry, self.limits)
        router.register(
            "/encore.v1.Customers/UpsertCustomers",
            .clientStreaming { _ in CustomerUpload(registry: registry, limits: limits) })
    }

    final class CustomerUpload: GRPCClientStreamHandler {
        let registry: ModelRegistry
        let limits: UpsertLimits
        var records: [CustomerUpsert] = []
        var bytes = 0

        init(registry: ModelRegistry, limits: UpsertLimits) {
            self.registry = registry
            self.limits = limits
        }

        func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? {
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
            let (registry, records) = (self.registry, self.records)
            DispatchQueue.global().async {
                respond(responder) { () throws(GRPCStatus) in
                    let result = try registry.upsertCustomers(records)
                    var reply = Encore_V1_UpsertResponse()
                    reply.upserted = UInt32(result.applied)
                    reply.total = UInt64(registry.customers.current.customerCount)
                    return reply
                }
            }
        }

        func cancel() { records = [] }
    }
}
