import Dispatch
import EncoreProtocol
import EncoreStore
import EncoreTransport

/// `encore.v1.Customers/UpsertCustomers`: a client stream of customer records applied as one
/// batch when the stream ends (off the reactor), visible atomically to the next decision.
public struct CustomersService: Sendable {
    public let registry: ModelRegistry
    /// Most records one call may carry (the overlay bound applies too).
    public static let maxRecordsPerCall = 100_000

    public init(registry: ModelRegistry) {
        self.registry = registry
    }

    public func register(in router: inout GRPCRouter) {
        let registry = self.registry
        router.register(
            "/encore.v1.Customers/UpsertCustomers", .clientStreaming { _ in CustomerUpload(registry: registry) })
    }

    final class CustomerUpload: GRPCClientStreamHandler {
        let registry: ModelRegistry
        var records: [CustomerUpsert] = []

        init(registry: ModelRegistry) {
            self.registry = registry
        }

        func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? {
            guard records.count < CustomersService.maxRecordsPerCall else {
                return GRPCStatus(
                    .resourceExhausted, "more than \(CustomersService.maxRecordsPerCall) customer records in one call")
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
