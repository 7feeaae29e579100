import Foundation
import SwiftProtobuf

/// The descriptors of the .proto files Encore is built from (Protocol/**, compiled in as a
/// serialized FileDescriptorSet by Protocol/generate.sh), indexed the way gRPC server
/// reflection asks for them: by file name, by fully-qualified symbol, by extension.
///
/// Built once at start-up (cold path); lookups read immutable dictionaries.
public struct ProtocolDescriptors: Sendable {
    /// One .proto file.
    public struct File: Sendable {
        /// The file's name as compiled (`encore/v1/decisions.proto`).
        public let name: String
        /// Its serialized FileDescriptorProto, byte for byte as protoc wrote it.
        public let serialized: [UInt8]
        /// Names of the files it imports.
        public let dependencies: [String]
        /// Fully-qualified names of the services it defines.
        public let services: [String]
    }

    /// Every file, in the order of the set.
    public let files: [File]
    private let byName: [String: Int]
    /// Fully-qualified symbol (package, message, field, enum, enum value, service, method,
    /// extension) → index in `files`.
    private let symbols: [String: Int]
    /// Extended message type → extension number → index in `files`.
    private let extensions: [String: [Int32: Int]]

    /// What a descriptor set that does not decode is reported as.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The descriptors compiled into this build.
    public static let compiledIn: ProtocolDescriptors = {
        guard let data = Data(base64Encoded: fileDescriptorSetBase64, options: .ignoreUnknownCharacters) else {
            preconditionFailure("Generated/descriptor_set.pb.swift is not base64: run Protocol/generate.sh")
        }
        do { return try ProtocolDescriptors(fileDescriptorSet: [UInt8](data)) } catch {
            preconditionFailure("Generated/descriptor_set.pb.swift: \(error): run Protocol/generate.sh")
        }
    }()

    /// Indexes a serialized google.protobuf.FileDescriptorSet.
    public init(fileDescriptorSet bytes: [UInt8]) throws {
        // The set's field 1 holds each file's bytes: kept as they are, parsed for the index.
        var raw: [[UInt8]] = []
        try bytes.withUnsafeBytes { buffer in
            guard buffer.count > 0 else { return }
            var reader = WireCursor(wholeOf: buffer)
            do throws(DecodeError) {
                while !reader.isAtEnd {
                    let (number, wire) = try reader.readMessageKey("FileDescriptorSet")
                    if number == 1 && wire == WireCursor.Wire.lengthDelimited {
                        raw.append(Array(try reader.readBytes("FileDescriptorSet.file")))
                    } else {
                        try reader.skipValue(
                            number: number, wire: wire, depthBudget: WireCursor.depthLimit - 1, "FileDescriptorSet")
                    }
                }
            } catch {
                throw Failure(description: "FileDescriptorSet does not decode: \(error)")
            }
        }
        var files: [File] = []
        var byName: [String: Int] = [:]
        var symbols: [String: Int] = [:]
        var extensions: [String: [Int32: Int]] = [:]
        for bytes in raw {
            let proto = try Google_Protobuf_FileDescriptorProto(serializedBytes: bytes)
            let index = files.count
            let prefix = proto.package.isEmpty ? "" : proto.package + "."
            var services: [String] = []
            func add(_ symbol: String) { symbols[symbol] = symbols[symbol] ?? index }
            func addEnum(_ e: Google_Protobuf_EnumDescriptorProto, scope: String) {
                add(scope + e.name)
                // Enum values are scoped as siblings of their enum (protobuf's C++ scoping).
                for value in e.value { add(scope + value.name) }
            }
            func addExtension(_ field: Google_Protobuf_FieldDescriptorProto, scope: String) {
                add(scope + field.name)
                let extendee = field.extendee.hasPrefix(".") ? String(field.extendee.dropFirst()) : field.extendee
                extensions[extendee, default: [:]][field.number] = index
            }
            func addMessage(_ m: Google_Protobuf_DescriptorProto, scope: String) {
                let name = scope + m.name
                add(name)
                for field in m.field { add(name + "." + field.name) }
                for oneof in m.oneofDecl { add(name + "." + oneof.name) }
                for nested in m.nestedType { addMessage(nested, scope: name + ".") }
                for e in m.enumType { addEnum(e, scope: name + ".") }
                for x in m.extension { addExtension(x, scope: name + ".") }
            }
            for m in proto.messageType { addMessage(m, scope: prefix) }
            for e in proto.enumType { addEnum(e, scope: prefix) }
            for x in proto.extension { addExtension(x, scope: prefix) }
            for s in proto.service {
                let name = prefix + s.name
                services.append(name)
                add(name)
                for method in s.method { add(name + "." + method.name) }
            }
            byName[proto.name] = index
            files.append(File(name: proto.name, serialized: bytes, dependencies: proto.dependency, services: services))
        }
        self.files = files
        self.byName = byName
        self.symbols = symbols
        self.extensions = extensions
    }

    private init(files: [File], keeping keep: Set<Int>, from all: ProtocolDescriptors) {
        var map: [Int: Int] = [:]
        var kept: [File] = []
        for (i, file) in files.enumerated() where keep.contains(i) {
            map[i] = kept.count
            kept.append(file)
        }
        self.files = kept
        byName = all.byName.compactMapValues { map[$0] }
        symbols = all.symbols.compactMapValues { map[$0] }
        extensions = all.extensions.mapValues { $0.compactMapValues { map[$0] } }.filter { !$0.value.isEmpty }
    }

    /// Only the files that define `services` and the files they import (transitively): what one
    /// listener shows, so the data plane does not describe the admin plane's services.
    public func restricted(toServices services: [String]) -> ProtocolDescriptors {
        var keep = Set<Int>()
        for service in services {
            guard let index = symbols[service], files[index].services.contains(service) else { continue }
            for file in withDependencies(files[index]) { keep.insert(byName[file.name]!) }
        }
        return ProtocolDescriptors(files: files, keeping: keep, from: self)
    }

    /// Every service of every file, sorted.
    public var serviceNames: [String] { files.flatMap(\.services).sorted() }

    /// The file of that name.
    public func file(named name: String) -> File? { byName[name].map { files[$0] } }

    /// The file that declares a fully-qualified symbol (a leading dot is allowed).
    public func file(containingSymbol symbol: String) -> File? {
        let name = symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol
        return symbols[name].map { files[$0] }
    }

    /// The file that declares extension `number` of message type `type`.
    public func file(containingExtensionOf type: String, number: Int32) -> File? {
        extensions[type]?[number].map { files[$0] }
    }

    /// The extension numbers of message type `type` (sorted), or nil when no such message type
    /// is known.
    public func extensionNumbers(of type: String) -> [Int32]? {
        guard file(containingSymbol: type) != nil else { return nil }
        return (extensions[type].map { Array($0.keys) } ?? []).sorted()
    }

    /// `file` followed by every file it imports, transitively, each once (a client that builds a
    /// descriptor pool needs them all).
    public func withDependencies(_ file: File) -> [File] {
        var out: [File] = []
        var seen = Set<String>()
        var pending = [file.name]
        while let name = pending.first {
            pending.removeFirst()
            guard !seen.contains(name), let next = self.file(named: name) else { continue }
            seen.insert(name)
            out.append(next)
            pending.append(contentsOf: next.dependencies)
        }
        return out
    }
}
