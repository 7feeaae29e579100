import EncoreProtocol
import EncoreTransport

/// gRPC server reflection, `grpc.reflection.v1.ServerReflection` and its older name
/// `grpc.reflection.v1alpha.ServerReflection` (the same messages): lists the services of one
/// listener and serves the FileDescriptorProtos of the .proto files Encore is built from, so
/// grpcurl, Postman or grpcio-reflection can call Encore without the .proto files.
///
/// `ServerReflectionInfo` is a bidirectional stream: each request is answered as it arrives, on
/// the reactor thread (a lookup in prebuilt tables and a copy of at most a few kilobytes). Cold
/// path: it allocates.
public struct ReflectionService: Sendable {
    /// The two service names reflection is served under.
    public static let serviceNames = [
        "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
    ]

    /// The services `list_services` names (sorted); descriptors outside their files (and
    /// imports) are not served.
    public let services: [String]
    let descriptors: ProtocolDescriptors

    /// Reflection over `services` (the listener's own, without the reflection services, which are
    /// added) using the compiled-in descriptors.
    public init(services: [String], descriptors: ProtocolDescriptors = .compiledIn) {
        let all = Array(Set(services + ReflectionService.serviceNames)).sorted()
        self.services = all
        self.descriptors = descriptors.restricted(toServices: all)
    }

    public func register(in router: inout GRPCRouter) {
        let service = self
        for name in ReflectionService.serviceNames {
            router.register(
                "/\(name)/ServerReflectionInfo",
                .bidirectionalStreaming { _, stream in ReflectionStream(service: service, stream: stream) })
        }
    }

    /// The serialized ServerReflectionResponse to one serialized ServerReflectionRequest, or the
    /// status that ends the stream (a request that does not decode).
    func answer(_ request: UnsafeRawBufferPointer) -> Result<[UInt8], GRPCStatus> {
        var reader = ProtoWireReader(request)
        var host: UnsafeRawBufferPointer? = nil
        // (field number, string value) of the oneof, or the extension request's fields.
        var kind: UInt32 = 0
        var text = ""
        var extensionType = ""
        var extensionNumber: Int32 = 0
        do {
            while let (number, type) = try reader.nextField() {
                switch (number, type) {
                case (1, .lengthDelimited):
                    host = try reader.readLengthDelimited()
                case (3, .lengthDelimited), (4, .lengthDelimited), (6, .lengthDelimited), (7, .lengthDelimited):
                    kind = number
                    text = String(decoding: try reader.readLengthDelimited(), as: UTF8.self)
                case (5, .lengthDelimited):
                    kind = 5
                    var inner = ProtoWireReader(try reader.readLengthDelimited())
                    while let (n, t) = try inner.nextField() {
                        if n == 1 && t == .lengthDelimited {
                            extensionType = String(decoding: try inner.readLengthDelimited(), as: UTF8.self)
                        } else if n == 2 && t == .varint {
                            extensionNumber = Int32(truncatingIfNeeded: try inner.readVarint())
                        } else {
                            try inner.skip(t)
                        }
                    }
                default:
                    try reader.skip(type)
                }
            }
        } catch {
            return .failure(GRPCStatus(.invalidArgument, "ServerReflectionRequest could not be decoded: \(error)"))
        }
        var out = ProtoWriter()
        if let host, host.count > 0 { out.bytes(1, Array(host)) }
        out.bytes(2, Array(request))  // original_request, as received
        switch kind {
        case 3:
            if let file = descriptors.file(named: text) {
                out.message(4, fileResponse(file))
            } else {
                out.message(7, error(.notFound, "no file named '\(text)' is served here"))
            }
        case 4:
            if let file = descriptors.file(containingSymbol: text) {
                out.message(4, fileResponse(file))
            } else {
                out.message(7, error(.notFound, "no symbol '\(text)' in the descriptors served here"))
            }
        case 5:
            if let file = descriptors.file(containingExtensionOf: extensionType, number: extensionNumber) {
                out.message(4, fileResponse(file))
            } else {
                out.message(7, error(.notFound, "no extension \(extensionNumber) of '\(extensionType)' is served here"))
            }
        case 6:
            if let numbers = descriptors.extensionNumbers(of: text) {
                var response = ProtoWriter()
                response.string(1, text)
                for n in numbers { response.varint(2, UInt64(bitPattern: Int64(n))) }
                out.message(5, response.output)
            } else {
                out.message(7, error(.notFound, "no message type '\(text)' in the descriptors served here"))
            }
        case 7:
            var list = ProtoWriter()
            for name in services {
                var entry = ProtoWriter()
                entry.string(1, name)
                list.message(1, entry.output)
            }
            out.message(6, list.output)
        default:
            out.message(
                7, error(.invalidArgument, "ServerReflectionRequest names no request (message_request is empty)"))
        }
        return .success(out.output)
    }

    /// FileDescriptorResponse: the file, then the files it imports.
    private func fileResponse(_ file: ProtocolDescriptors.File) -> [UInt8] {
        var out = ProtoWriter()
        for f in descriptors.withDependencies(file) { out.bytes(1, f.serialized) }
        return out.output
    }

    private func error(_ code: GRPCStatus.Code, _ message: String) -> [UInt8] {
        var out = ProtoWriter()
        out.varint(1, UInt64(code.rawValue))
        out.string(2, message)
        return out.output
    }
}

/// One ServerReflectionInfo call: answers each request in order; ends with OK when the client
/// half-closes.
final class ReflectionStream: GRPCStreamHandler {
    let service: ReflectionService
    let stream: GRPCServerStream

    init(service: ReflectionService, stream: GRPCServerStream) {
        self.service = service
        self.stream = stream
    }

    func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? {
        switch service.answer(message) {
        case .success(let response):
            stream.send(response)
            return nil
        case .failure(let status):
            return status
        }
    }

    func requestsEnded() { stream.finish(.ok) }

    func cancel() {}
}

/// Writes protobuf wire format (the few field kinds reflection answers need).
struct ProtoWriter {
    private(set) var output: [UInt8] = []

    mutating func varint(_ field: UInt32, _ value: UInt64) {
        rawVarint(UInt64(field) << 3)
        rawVarint(value)
    }

    mutating func bytes(_ field: UInt32, _ value: [UInt8]) {
        rawVarint(UInt64(field) << 3 | 2)
        rawVarint(UInt64(value.count))
        output.append(contentsOf: value)
    }

    mutating func string(_ field: UInt32, _ value: String) { bytes(field, Array(value.utf8)) }

    mutating func message(_ field: UInt32, _ value: [UInt8]) { bytes(field, value) }

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            output.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        output.append(UInt8(v))
    }
}
