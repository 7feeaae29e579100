import Dispatch
import EncoreProtocol
import EncoreStore
import EncoreTransport

/// `encore.v1.Catalog/UpsertOffers`: a client stream of catalog JSON objects, parsed as they
/// arrive and applied by the registry as one new catalog generation when the stream ends (off
/// the reactor), published atomically with the active snapshot rebound to it.
public struct CatalogService: Sendable {
    public let registry: ModelRegistry
    /// Records and bytes one stream may carry.
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
            "/encore.v1.Catalog/UpsertOffers",
            .clientStreaming { _ in
                OfferUpload(registry: registry, limits: limits, reservation: uploads.begin(), budget: uploads)
            }
        )
    }

    final class OfferUpload: GRPCClientStreamHandler {
        let registry: ModelRegistry
        let limits: UpsertLimits
        let budget: AdminUploadBudget
        /// This upload's share of the admin upload budget (nil: refused, too many in flight).
        var reservation: AdminUploadBudget.Reservation?
        var offers: [Offer] = []
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
            if let refusal = limits.admit(message.count, records: offers.count, total: &bytes, what: "offer") {
                offers = []
                return refusal
            }
            do {
                let record = try Encore_V1_OfferRecord(serializedBytes: Array(message))
                offers.append(try Offer(jsonLine: record.json))
                return nil
            } catch {
                return GRPCStatus(.invalidArgument, "offer record \(offers.count + 1): \(error)")
            }
        }

        func finish(_ responder: GRPCResponder) {
            let (registry, offers, reservation) = (self.registry, self.offers, self.reservation)
            let refusal = budget.tooManyUploads
            self.offers = []
            self.reservation = nil
            DispatchQueue.global().async {
                // Holding the reservation until the batch is applied or refused keeps its bytes counted.
                respond(responder) { () throws(GRPCStatus) in
                    guard reservation != nil else { throw refusal }
                    let (upserted, total) = try registryCall { () throws(RegistryError) in
                        try registry.upsertOffers(offers)
                    }
                    var reply = Encore_V1_UpsertResponse()
                    reply.upserted = UInt32(upserted)
                    reply.total = UInt64(total)
                    return reply
                }
            }
        }

        func cancel() {
            offers = []
            reservation = nil
        }
    }
}
