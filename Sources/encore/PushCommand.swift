import ArgumentParser
import EncoreClient
import EncoreProtocol
import EncoreTransport
import Foundation
import SwiftProtobuf

/// `encore push`: uploads a snapshot to a running server (Models/PushSnapshot).
struct PushCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push", abstract: "Upload a model snapshot to a running server (and activate it).")

    @Option(help: "Server address (the admin plane).") var host = "127.0.0.1"
    @Option(help: "Admin plane port (`encore serve --admin-port`).") var port = 50052
    @OptionGroup var credentials: Credentials
    @Flag(help: "Activate the snapshot once the server has validated it.") var activate = false
    @Argument(help: "Snapshot file.") var file: String

    func run() throws {
        try TLSOptions.checkReadable(file, flag: "snapshot file")
        guard let data = FileManager.default.contents(atPath: file) else {
            throw CLIError("snapshot file \(file): cannot read the file")
        }
        let messages = try Self.chunks([UInt8](data), activate: activate)
        do {
            let client = try credentials.client(host: host, port: port)
            let reply = try Encore_V1_PushSnapshotResponse(
                serializedBytes: try client.call(
                    "/encore.v1.Models/PushSnapshot", messages: messages, timeoutSeconds: 120))
            let m = reply.model
            print("pushed \(m.version) (\(m.sizeBytes) bytes, sha256 \(m.sha256.prefix(16))..., \(m.exploration))")
            print(
                reply.activated
                    ? "active: \(m.version)" : "loaded, not active (activate with: encore models activate \(m.version))"
            )
        } catch let status as GRPCStatus {
            throw CLIError("push refused: \(status)")
        }
    }

    /// `bytes` as PushSnapshot messages of at most 1 MiB of snapshot each.
    static func chunks(_ bytes: [UInt8], activate: Bool) throws -> [[UInt8]] {
        let chunkBytes = 1 << 20
        var messages: [[UInt8]] = []
        var offset = 0
        repeat {
            var chunk = Encore_V1_SnapshotChunk()
            chunk.data = Data(bytes[offset..<min(bytes.count, offset + chunkBytes)])
            chunk.activate = activate
            messages.append(try chunk.serializedBytes())
            offset += chunkBytes
        } while offset < bytes.count
        return messages
    }
}

/// `encore models list|activate|rollback`.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models", abstract: "List, activate or roll back the snapshots of a running server.",
        subcommands: [List.self, Activate.self, Rollback.self])

    struct Connection: ParsableArguments {
        @Option(help: "Server address (the admin plane).") var host = "127.0.0.1"
        @Option(help: "Admin plane port (`encore serve --admin-port`).") var port = 50052
        @OptionGroup var credentials: Credentials
        func call(_ method: String, _ message: some SwiftProtobuf.Message) throws -> [UInt8] {
            let client = try credentials.client(host: host, port: port)
            do {
                return try client.unary(
                    "/encore.v1.Models/\(method)", try message.serializedBytes())
            } catch let status as GRPCStatus {
                throw CLIError("\(method) failed: \(status)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the loaded snapshots (newest first) and the active version.")
        @OptionGroup var connection: Connection
        func run() throws {
            let reply = try Encore_V1_ListModelsResponse(
                serializedBytes: try connection.call("List", Encore_V1_ListModelsRequest()))
            for m in reply.models {
                print(
                    "\(m.active ? "*" : " ") \(m.version)  \(m.exploration)  \(m.features) features  \(m.offers) offers  \(m.signed ? "signed" : "unsigned")  sha256 \(m.sha256.prefix(16))..."
                )
            }
            print("active: \(reply.activeVersion)")
        }
    }

    struct Activate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a loaded snapshot active (through the offline gate unless --force).")
        @OptionGroup var connection: Connection
        @Argument(help: "Model version to activate.") var version: String
        @Flag(help: "Skip the offline-evaluation gate (servers started with --require-ope).") var force = false
        func run() throws {
            var request = Encore_V1_ActivateRequest()
            request.version = version
            request.force = force
            let m = try Encore_V1_ModelInfo(serializedBytes: try connection.call("Activate", request))
            print("active: \(m.version)")
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-activate the snapshot that was active before the current one.")
        @OptionGroup var connection: Connection
        func run() throws {
            let m = try Encore_V1_ModelInfo(
                serializedBytes: try connection.call("Rollback", Encore_V1_RollbackRequest()))
            print("rolled back; active: \(m.version)")
        }
    }
}
