import EncoreProtocol
import SwiftProtobuf
import Testing

@testable import EncoreServer
@testable import EncoreTransport

@Suite struct ReflectionServiceTests {
    @Test func compiledInDescriptorsIndexEveryProtoFile() throws {
        let all = ProtocolDescriptors.compiledIn
        #expect(
            Set(all.files.map(\.name)) == [
                "encore/v1/decisions.proto", "encore/v1/diagnostics.proto", "encore/v1/models.proto",
                "encore/v1/catalog.proto", "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto",
                "grpc/reflection/v1alpha/reflection.proto",
            ])
        #expect(all.file(containingSymbol: "encore.v1.Decisions.Decide")?.name == "encore/v1/decisions.proto")
        #expect(all.file(containingSymbol: ".encore.v1.DecideRequest")?.name == "encore/v1/decisions.proto")
        #expect(
            all.file(containingSymbol: "grpc.health.v1.HealthCheckResponse.SERVICE_UNKNOWN")?.name
                == "grpc/health/v1/health.proto")
        #expect(all.file(containingSymbol: "encore.v1.Nope") == nil)
        // The bytes are a FileDescriptorProto that names the file.
        let decisions = try #require(all.file(named: "encore/v1/decisions.proto"))
        let proto = try Google_Protobuf_FileDescriptorProto(serializedBytes: decisions.serialized)
        #expect(proto.service.map(\.name) == ["Decisions"])
    }

    @Test func aRestrictedSetServesOnlyTheFilesOfItsServices() {
        let data = ProtocolDescriptors.compiledIn.restricted(toServices: [
            "encore.v1.Decisions", "grpc.health.v1.Health",
        ])
        #expect(data.serviceNames == ["encore.v1.Decisions", "grpc.health.v1.Health"])
        #expect(data.file(named: "encore/v1/models.proto") == nil)
        #expect(data.file(containingSymbol: "encore.v1.Models") == nil)
        #expect(data.file(containingSymbol: "encore.v1.DecideResponse") != nil)
    }

    @Test func listServicesAnswersWithTheListenersServicesAndEchoesTheRequest() throws {
        let service = ReflectionService(services: ["encore.v1.Decisions", "grpc.health.v1.Health"])
        let request: [UInt8] = [0x3a, 0x00]  // list_services = ""
        let answer = request.withUnsafeBytes { service.answer($0) }
        guard case .success(let bytes) = answer else {
            Issue.record("list_services failed: \(answer)")
            return
        }
        // original_request (field 2) carries the request as sent.
        #expect(Array(bytes.prefix(4)) == [0x12, 0x02, 0x3a, 0x00])
        let names = ["encore.v1.Decisions", "grpc.health.v1.Health"] + ReflectionService.serviceNames
        for name in names { #expect(bytes.contains(subsequence: Array(name.utf8)), "\(name)") }
        #expect(!bytes.contains(subsequence: Array("encore.v1.Models".utf8)))
    }

    @Test func undecodableRequestIsInvalidArgument() {
        let service = ReflectionService(services: [])
        let answer = [UInt8]([0x0a, 0x05, 0x61]).withUnsafeBytes { service.answer($0) }
        guard case .failure(let status) = answer else {
            Issue.record("expected a failure")
            return
        }
        #expect(status.code == .invalidArgument)
    }
}

extension Array where Element == UInt8 {
    fileprivate func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        for start in 0...(count - subsequence.count) where Array(self[start..<start + subsequence.count]) == subsequence
        {
            return true
        }
        return false
    }
}
