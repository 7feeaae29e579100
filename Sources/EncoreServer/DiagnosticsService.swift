import Dispatch
import EncoreProtocol
import EncoreTransport
import SwiftProtobuf

/// `encore.v1.Diagnostics` (enabled by `encore serve --diagnostics`): exercises the transport's
/// off-reactor unary path (Echo) and client-streaming path (Collect) for operators and tests.
/// It reads and changes no decision state.
public struct DiagnosticsService: Sendable {
    /// Longest delay Echo accepts (milliseconds).
    public static let maxDelayMillis: UInt32 = 60_000

    public init() {}

    public func register(in router: inout GRPCRouter) {
        router.register(
            "/encore.v1.Diagnostics/Echo",
            .offloaded { request, _, responder in
                let message: Encore_V1_EchoRequest
                do {
                    message = try Encore_V1_EchoRequest(serializedBytes: request)
                } catch {
                    responder.fail(GRPCStatus(.invalidArgument, "EchoRequest could not be decoded: \(error)"))
                    return
                }
                guard message.delayMs <= DiagnosticsService.maxDelayMillis else {
                    responder.fail(
                        GRPCStatus(.invalidArgument, "delay_ms must be at most \(DiagnosticsService.maxDelayMillis)"))
                    return
                }
                let answer: @Sendable () -> Void = {
                    if message.statusCode != 0 {
                        responder.fail(
                            GRPCStatus(
                                GRPCStatus.Code(rawValue: Int(min(message.statusCode, 16))), message.statusMessage))
                        return
                    }
                    var reply = Encore_V1_EchoResponse()
                    reply.payload = message.payload
                    reply.messages = 1
                    reply.bytes = UInt64(message.payload.count)
                    responder.succeed(DiagnosticsService.serialize(reply))
                }
                if message.delayMs == 0 {
                    answer()
                } else {
                    DispatchQueue.global().asyncAfter(
                        deadline: .now() + .milliseconds(Int(message.delayMs)), execute: answer)
                }
            })
        router.register("/encore.v1.Diagnostics/Collect", .clientStreaming { _ in Collector() })
    }

    static func serialize(_ message: some SwiftProtobuf.Message) -> [UInt8] {
        (try? message.serializedBytes()) ?? []
    }

    /// Counts the messages of one Collect call.
    final class Collector: GRPCClientStreamHandler {
        private var messages: UInt32 = 0
        private var bytes: UInt64 = 0

        func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? {
            let request: Encore_V1_EchoRequest
            do {
                request = try Encore_V1_EchoRequest(serializedBytes: Array(message))
            } catch {
                return GRPCStatus(.invalidArgument, "EchoRequest could not be decoded: \(error)")
            }
            if request.statusCode != 0 {
                return GRPCStatus(GRPCStatus.Code(rawValue: Int(min(request.statusCode, 16))), request.statusMessage)
            }
            messages += 1
            bytes += UInt64(request.payload.count)
            return nil
        }

        func finish(_ responder: GRPCResponder) {
            var reply = Encore_V1_EchoResponse()
            reply.messages = messages
            reply.bytes = bytes
            responder.succeed(DiagnosticsService.serialize(reply))
        }

        func cancel() {}
    }
}
