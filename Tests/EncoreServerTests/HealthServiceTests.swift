import EncoreProtocol
import SwiftProtobuf
import Testing

@testable import EncoreServer
@testable import EncoreTransport

func check(_ request: Grpc_Health_V1_HealthCheckRequest, draining: Bool = false) throws -> (
    GRPCStatus, Grpc_Health_V1_HealthCheckResponse?
) {
    let bytes: [UInt8] = try request.serializedBytes()
    var response = GRPCResponseBuffer()
    response.beginMessage()
    let status = bytes.withUnsafeBytes { HealthService.check($0, &response, draining: draining) }
    guard status.isOK else { return (status, nil) }
    return (status, try Grpc_Health_V1_HealthCheckResponse(serializedBytes: Array(response.bytes.dropFirst(5))))
}

@Suite struct HealthServiceTests {
    @Test(arguments: ["", "encore.v1.Decisions"])
    func servingForKnownServices(_ name: String) throws {
        var request = Grpc_Health_V1_HealthCheckRequest()
        request.service = name
        let (status, response) = try check(request)
        #expect(status.isOK)
        #expect(response?.status == .serving)
    }

    @Test func notServingWhileDraining() throws {
        let (status, response) = try check(Grpc_Health_V1_HealthCheckRequest(), draining: true)
        #expect(status.isOK)
        #expect(response?.status == .notServing)
    }

    @Test func unknownServiceIsNotFound() throws {
        var request = Grpc_Health_V1_HealthCheckRequest()
        request.service = "encore.v1.Nope"
        #expect(try check(request).0.code == .notFound)
    }

    @Test func toleratesUnknownFields() throws {
        // field 1 = "" then unknown field 9 (varint 5) and 10 (bytes "zz")
        let bytes: [UInt8] = [0x0A, 0x00, 0x48, 0x05, 0x52, 0x02, 0x7A, 0x7A]
        var response = GRPCResponseBuffer()
        response.beginMessage()
        let status = bytes.withUnsafeBytes { HealthService.check($0, &response, draining: false) }
        #expect(status.isOK)
        #expect(Array(response.bytes.dropFirst(5)) == [0x08, 0x01])
    }

    @Test func skipsAnUnknownGroupAsSwiftProtobufDoes() throws {
        // Field 9 as a group (start 0x4B, a varint field 1 = 1 inside, end 0x4C), then field 1 = "".
        // SwiftProtobuf keeps the group as an unknown field; so does the health reader.
        let bytes: [UInt8] = [0x4B, 0x08, 0x01, 0x4C, 0x0A, 0x00]
        _ = try Grpc_Health_V1_HealthCheckRequest(serializedBytes: bytes)
        var response = GRPCResponseBuffer()
        response.beginMessage()
        let status = bytes.withUnsafeBytes { HealthService.check($0, &response, draining: false) }
        #expect(status.isOK)
        #expect(Array(response.bytes.dropFirst(5)) == [0x08, 0x01])
    }

    @Test func undecodableRequestIsInvalidArgument() {
        for bytes: [UInt8] in [
            [0x0A, 0x05, 0x61], [0x0A], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], [0x0B],
        ] {
            var response = GRPCResponseBuffer()
            response.beginMessage()
            let status = bytes.withUnsafeBytes { HealthService.check($0, &response, draining: false) }
            #expect(status.code == .invalidArgument, "\(bytes)")
        }
    }
}
