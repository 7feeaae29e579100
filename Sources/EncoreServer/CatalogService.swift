import Dispatch
import EncoreProtocol
import EncoreStore
import EncoreTransport

/// `encore.v1.Catalog/UpsertOffers`: a client stream of catalog JSON objects, applied as one new
/// catalog generation when the stream ends (off the reactor), then published atomically with
/// the active snapshot rebound to it.
public struct CatalogService: Sendable {
    public let registry: ModelRegistry
    /// Records and bytes one stream may carry.
    public let limits: UpsertLimits

    public init(registry: ModelRegistry, limits: UpsertLimits = UpsertLimits()) {
        self.registry = registry
        self.limits = limits
    }

    public func register(in router: inout GRPCRouter) {
        let (registry, limits) = (self.registry, self.limits)
        router.register(
            "/encore.v1.Catalog/UpsertOffers", .clientStreaming { _ in OfferUpload(registry: registry, limits: limits) }
        )
    }

    final class OfferUpload: GRPCClientStreamHandler {
        let registry: ModelRegistry
        let limits: UpsertLimits
        var offers: [Offer] = []
        var bytes = 0

        init(registry: ModelRegistry, limits: UpsertLimits) {
            self.registry = registry
            self.limits = limits
        }

        func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? {
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
            let (registry, offers) = (self.registry, self.offers)
            DispatchQueue.global().async {
                respond(responder) { () throws(GRPCStatus) in
                    let catalog: OfferCatalog
                    do {
                        catalog = try registry.engine.active.value.catalog.upserting(offers)
                    } catch {
                        throw GRPCStatus(.invalidArgument, "offers refused: \(error)")
                    }
                    try registry.rebind(catalog: catalog)
                    var reply = Encore_V1_UpsertResponse()
                    reply.upserted = UInt32(offers.count)
                    reply.total = UInt64(catalog.count)
                    return reply
                }
            }
        }

        func cancel() { offers = [] }
    }
}
