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
        var host: UnsafeRawBufferPointer? = nil
        // (field number, string value) of the oneof, or the extension request's fields.
        var kind: UInt32 = 0
        var text = ""
        var extensionType = ""
        var extensionNumber: Int32 = 0
        let budget = WireCursor.depthLimit - 1
        do throws(DecodeError) {
            if request.count > 0 {
                var reader = WireCursor(wholeOf: request)
                while !reader.isAtEnd {
                    let (number, wire) = try reader.readMessageKey("ServerReflectionRequest")
                    switch (number, wire) {
                    case (1, WireCursor.Wire.lengthDelimited):
                        host = try reader.readBytes("ServerReflectionRequest.host")
                    case (3, WireCursor.Wire.lengthDelimited), (4, WireCursor.Wire.lengthDelimited),
                        (6, WireCursor.Wire.lengthDelimited), (7, WireCursor.Wire.lengthDelimited):
                        kind = number
                        text = String(
                            decoding: try reader.readBytes("ServerReflectionRequest.message_request"), as: UTF8.self)
                    case (5, WireCursor.Wire.lengthDelimited):
                        kind = 5
                        let (start, count) = try reader.readLengthDelimited(
                            "ServerReflectionRequest.file_containing_extension")
                        var inner = WireCursor(base: reader.base, offset: start, end: start + count)
                        while !inner.isAtEnd {
                            let (n, w) = try inner.readMessageKey("ExtensionRequest")
                            if n == 1 && w == WireCursor.Wire.lengthDelimited {
                                extensionType = String(
                                    decoding: try inner.readBytes("ExtensionRequest.containing_type"), as: UTF8.self)
                            } else if n == 2 && w == WireCursor.Wire.varint {
                                extensionNumber = Int32(
                                    truncatingIfNeeded: try inner.readVarint("ExtensionRequest.extension_number"))
                            } else {
                                try inner.skipValue(number: n, wire: w, depthBudget: budget - 1, "ExtensionRequest")
                            }
                        }
                    default:
                        try reader.skipValue(number: number, wire: wire, depthBudget: budget, "ServerReflectionRequest")
                    }
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
