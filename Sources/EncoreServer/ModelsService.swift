import Dispatch
import EncoreProtocol
import EncoreTransport
import Foundation
import SwiftProtobuf

/// `encore.v1.Models`: PushSnapshot (client streaming), Activate, Rollback, List, GetSnapshot. All work runs
/// off the reactor threads; see `ModelRegistry`.
public struct ModelsService: Sendable {
    public let registry: ModelRegistry
    /// Checks the roles a request's contents add to its method's (`force`, `activate`); the
    /// method's own role is checked by the router guard (`AdminAuthorizer.guarding`).
    public let authorizer: AdminAuthorizer
    /// Bounds PushSnapshot streams together with the other admin uploads.
    public let uploads: AdminUploadBudget
    /// Largest snapshot a push may send (bytes).
    public static let maxSnapshotBytes = 512 << 20

    public init(
        registry: ModelRegistry, authorizer: AdminAuthorizer = AdminAuthorizer(tokens: []),
        uploads: AdminUploadBudget = AdminUploadBudget()
    ) {
        self.registry = registry
        self.authorizer = authorizer
        self.uploads = uploads
    }

    public func register(in router: inout GRPCRouter) {
        let (registry, authorizer, uploads) = (self.registry, self.authorizer, self.uploads)
        router.register(
            "/encore.v1.Models/PushSnapshot",
            .clientStreaming { context in
                SnapshotUpload(
                    registry: registry, authorizer: authorizer, context: context, reservation: uploads.begin(),
                    budget: uploads)
            })
        router.register(
            "/encore.v1.Models/Activate",
            .offloaded { request, context, responder in
                respond(responder) { () throws(GRPCStatus) in
                    let message: Encore_V1_ActivateRequest = try decode(request, "ActivateRequest")
                    guard !message.version.isEmpty else {
                        throw GRPCStatus(.invalidArgument, "ActivateRequest.version is empty")
                    }
                    if message.force,
                        let denied = authorizer.check(
                            context, .modelsForce, method: "encore.v1.Models/Activate (force)")
                    {
                        throw denied
                    }
                    return try registryCall { () throws(RegistryError) in
                        try registry.activate(version: message.version, force: message.force)
                    }
                }
            })
        router.register(
            "/encore.v1.Models/Rollback",
            .offloaded { request, _, responder in
                respond(responder) { () throws(GRPCStatus) in
                    let _: Encore_V1_RollbackRequest = try decode(request, "RollbackRequest")
                    return try registryCall { () throws(RegistryError) in try registry.rollback() }
                }
            })
        router.register(
            "/encore.v1.Models/List",
            .offloaded { request, _, responder in
                respond(responder) { () throws(GRPCStatus) in
                    let _: Encore_V1_ListModelsRequest = try decode(request, "ListModelsRequest")
                    let (models, active) = registry.list()
                    var reply = Encore_V1_ListModelsResponse()
                    reply.models = models
                    reply.activeVersion = active
                    return reply
                }
            })
        router.register(
            "/encore.v1.Models/GetSnapshot",
            .offloaded { request, _, responder in
                respond(responder) { () throws(GRPCStatus) in
                    let message: Encore_V1_GetSnapshotRequest = try decode(request, "GetSnapshotRequest")
                    let file = try registryCall { () throws(RegistryError) in
                        try registry.snapshotFile(version: message.version)
                    }
                    guard message.offset <= UInt64(file.bytes.count) else {
                        throw GRPCStatus(
                            .outOfRange,
                            "GetSnapshotRequest.offset \(message.offset) is past the end of \(file.version) (\(file.bytes.count) bytes)"
                        )
                    }
                    let start = Int(message.offset)
                    let end = min(file.bytes.count, start + ModelsService.snapshotPartBytes)
                    var part = Encore_V1_SnapshotPart()
                    part.version = file.version
                    part.offset = message.offset
                    part.data = Data(file.bytes[start..<end])
                    part.totalBytes = UInt64(file.bytes.count)
                    part.sha256 = file.sha256
                    return part
                }
            })
    }

    /// Largest `SnapshotPart.data` GetSnapshot sends (bytes).
    public static let snapshotPartBytes = 1 << 20

    /// Accumulates one PushSnapshot stream, then validates off the reactor.
    final class SnapshotUpload: GRPCClientStreamHandler {
        let registry: ModelRegistry
        let authorizer: AdminAuthorizer
        let context: GRPCCallContext
        let budget: AdminUploadBudget
        /// This upload's share of the admin upload budget (nil: refused, too many in flight).
        var reservation: AdminUploadBudget.Reservation?
        var bytes: [UInt8] = []
        var activate = false

        init(
            registry: ModelRegistry, authorizer: AdminAuthorizer, context: GRPCCallContext,
            reservation: AdminUploadBudget.Reservation?, budget: AdminUploadBudget
        ) {
            self.registry = registry
            self.authorizer = authorizer
            self.context = context
            self.reservation = reservation
            self.budget = budget
        }

        func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? {
            guard let reservation else { return budget.tooManyUploads }
            if let refusal = reservation.reserve(message.count) {
                cancel()
                return refusal
            }
            let chunk: Encore_V1_SnapshotChunk
            do {
                chunk = try Encore_V1_SnapshotChunk(serializedBytes: Array(message))
            } catch {
                return GRPCStatus(.invalidArgument, "SnapshotChunk could not be decoded: \(error)")
            }
            if chunk.activate && !activate {
                if let denied = authorizer.check(
                    context, .modelsActivate, method: "encore.v1.Models/PushSnapshot (activate)")
                {
                    return denied
                }
                activate = true
            }
            guard bytes.count + chunk.data.count <= ModelsService.maxSnapshotBytes else {
                return GRPCStatus(.resourceExhausted, "snapshot larger than \(ModelsService.maxSnapshotBytes) bytes")
            }
            bytes.append(contentsOf: chunk.data)
            return nil
        }

        func finish(_ responder: GRPCResponder) {
            let (registry, bytes, activate, reservation) = (self.registry, self.bytes, self.activate, self.reservation)
            let refusal = budget.tooManyUploads
            self.bytes = []
            self.reservation = nil
            DispatchQueue.global().async {
                // Holding the reservation until the push is applied or refused keeps its bytes counted.
                respond(responder) { () throws(GRPCStatus) in
                    guard reservation != nil else { throw refusal }
                    guard !bytes.isEmpty else {
                        throw GRPCStatus(.invalidArgument, "PushSnapshot received no snapshot bytes")
                    }
                    let (info, activated) = try registryCall { () throws(RegistryError) in
                        try registry.push(bytes, activate: activate)
                    }
                    var reply = Encore_V1_PushSnapshotResponse()
                    reply.model = info
                    reply.activated = activated
                    return reply
                }
            }
        }

        func cancel() {
            bytes = []
            reservation = nil
        }
    }
}

/// Decodes a protobuf request or throws INVALID_ARGUMENT naming the message.
func decode<M: SwiftProtobuf.Message>(_ bytes: [UInt8], _ name: String) throws(GRPCStatus) -> M {
    do {
        return try M(serializedBytes: bytes)
    } catch {
        throw GRPCStatus(.invalidArgument, "\(name) could not be decoded: \(error)")
    }
}

/// Runs `body` and answers the call with its message or its status.
func respond(_ responder: GRPCResponder, _ body: () throws(GRPCStatus) -> some SwiftProtobuf.Message) {
    do {
        let message = try body()
        responder.succeed((try? message.serializedBytes()) ?? [])
    } catch {
        responder.fail(error)
    }
}
