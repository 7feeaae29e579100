import EncoreProtocol
import EncoreTransport

/// `grpc.health.v1.Health`: Check answers SERVING for "" and "encore.v1.Decisions" while the
/// server serves, NOT_SERVING once it drains, NOT_FOUND for other names. Inline on the reactor,
/// allocation-free. Watch is not implemented (UNIMPLEMENTED, see Protocol/PROTOCOL.md).
public struct HealthService: Sendable {
    /// Service names this server reports on.
    public static let services: [String] = ["", "encore.v1.Decisions"]

    /// Whether the server drains (true → NOT_SERVING); read lock-free per check.
    private let serving: ServingState

    public init(serving: ServingState) {
        self.serving = serving
    }

    public func register(in router: inout GRPCRouter) {
        let serving = self.serving
        router.register(
            "/grpc.health.v1.Health/Check",
            .inline { request, response, _ in
                HealthService.check(request, &response, draining: serving.isDraining)
            })
        router.register(
            "/grpc.health.v1.Health/Watch",
            .inline { _, _, _ in
                GRPCStatus(.unimplemented, static: "grpc.health.v1.Health/Watch is not implemented; poll Check")
            })
    }

    /// Decodes a HealthCheckRequest and writes the HealthCheckResponse.
    static func check(_ request: UnsafeRawBufferPointer, _ response: inout GRPCResponseBuffer, draining: Bool)
        -> GRPCStatus
    {
        var reader = ProtoWireReader(request)
        var service = UnsafeRawBufferPointer(start: nil, count: 0)
        do {
            while let (number, type) = try reader.nextField() {
                if number == 1 && type == .lengthDelimited {
                    service = try reader.readLengthDelimited()
                } else {
                    try reader.skip(type)
                }
            }
        } catch {
            return GRPCStatus(.invalidArgument, static: "HealthCheckRequest could not be decoded")
        }
        guard service.count == 0 || equals(service, "encore.v1.Decisions") else {
            return GRPCStatus(.notFound, static: "unknown service name in HealthCheckRequest.service")
        }
        // HealthCheckResponse { status = 1 (SERVING) | 2 (NOT_SERVING) }
        response.append(0x08)
        response.append(draining ? 2 : 1)
        return .ok
    }

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        for i in 0..<bytes.count where bytes[i] != literal.utf8Start[i] { return false }
        return true
    }
}
