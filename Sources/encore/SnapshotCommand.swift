import ArgumentParser
import EncoreCrypto
import EncoreDemo
import EncoreModel
import EncoreServer
import Foundation

/// `encore snapshot build|inspect|verify|demo|keygen`.
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Build, inspect, verify and sign model snapshots.",
        subcommands: [Build.self, Inspect.self, Verify.self, Demo.self, Keygen.self])

    struct Build: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Build a snapshot from a trainer's JSON export.")
        @Option(help: "JSON export (see docs/snapshots.md).") var from: String
        @Option(help: "Snapshot file to write.") var out: String
        @Option(help: "PEM Ed25519 private key to sign with.") var signKey: String?
        func run() throws {
            guard let data = FileManager.default.contents(atPath: from) else { throw CLIError("cannot read \(from)") }
            let snapshot = try SnapshotExport.decode(data).snapshot()
            try write(snapshot, to: out, signKey: signKey)
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a snapshot's header, schema and weights summary.")
        @Argument(help: "Snapshot file.") var file: String
        func run() throws {
            let (s, meta) = try SnapshotFile.read(path: file)
            print("version       \(s.version)")
            print("created       \(Date(timeIntervalSince1970: Double(s.createdAtMillis) / 1000))")
            print("size          \(meta.fileBytes) bytes, sha256 \(SHA256.hex(meta.sha256))")
            print("signature     \(meta.signedBy.map { "Ed25519 by " + SHA256.hex($0) } ?? "unsigned")")
            print("exploration   \(ModelRegistry.describe(s.exploration))")
            print("link          \(s.link.rawValue), objective \(s.objective.rawValue)")
            print("features      \(s.schema.features.count) + \(s.schema.interactions.count) interactions")
            for i in 0..<s.schema.width { print("  \(i): \(s.schema.name(at: i))  shared \(s.sharedWeights[i])") }
            print("offers        \(s.offerIDs.count)")
            let width = s.schema.width
            for (o, id) in s.offerIDs.enumerated() {
                let row = s.offerWeights[(o * width)..<((o + 1) * width)]
                let top = row.enumerated().sorted { abs($0.element) > abs($1.element) }.prefix(3)
                    .map { "\(s.schema.name(at: $0.offset))=\(String(format: "%.3f", $0.element))" }
                print(
                    "  \(id): bias \(String(format: "%.3f", s.offerBiases[o])); strongest \(top.joined(separator: ", "))"
                )
            }
            if let slot1 = s.slot1 {
                let k = s.offerIDs.count
                let strongest = slot1.pairs.enumerated().filter { $0.element != 0 }
                    .sorted { abs($0.element) > abs($1.element) }.prefix(5)
                    .map {
                        "\(s.offerIDs[$0.offset / k])>\(s.offerIDs[$0.offset % k])=\(String(format: "%.3f", $0.element))"
                    }
                print("slot 1        biases and \(k) x \(k) pair terms; strongest \(strongest.joined(separator: ", "))")
            } else {
                print("slot 1        no slot-1 model (slot 1 is scored like slot 0)")
            }
            if let rules = s.rulesJSON { print("rules         \(rules)") }
            if let ope = s.opeReportJSON { print("ope           \(ope)") }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a snapshot completely (exit 1 with the reason if invalid).")
        @Argument(help: "Snapshot file.") var file: String
        @Option(
            name: .customLong("trusted-key"),
            help: "PEM Ed25519 public key the snapshot must be signed by (repeatable).")
        var trustedKeys: [String] = []
        func run() throws {
            let keys = try trustedKeys.map { try Ed25519.PublicKey(pem: String(contentsOfFile: $0, encoding: .utf8)) }
            do {
                let (s, meta) = try SnapshotFile.read(path: file, trustedKeys: keys)
                print("ok: \(s.version), \(meta.fileBytes) bytes, \(meta.signedBy == nil ? "unsigned" : "signed")")
            } catch {
                throw CLIError("invalid snapshot \(file): \(error.message)")
            }
        }
    }

    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a valid demo snapshot (different seeds, different weights).")
        @Option(help: "Seed for the weights' noise.") var seed: UInt64 = DemoModel.defaultSeed
        @Option(help: "Snapshot file to write.") var out: String
        @Option(help: "PEM Ed25519 private key to sign with.") var signKey: String?
        @Option(help: "Creation time in ms since the Unix epoch (default: the demo model's fixed time).")
        var createdAtMillis: Int64?
        func run() throws {
            try write(
                try DemoModel.snapshot(
                    seed: seed, createdAtMillis: createdAtMillis ?? DemoModel.defaultCreatedAtMillis),
                to: out, signKey: signKey)
        }
    }

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an Ed25519 key pair for signing snapshots.")
        @Option(help: "Private key file to write (the public key goes to <out>.pub).") var out: String
        func run() throws {
            let key = try Ed25519.PrivateKey()
            try key.pem.write(toFile: out, atomically: true, encoding: .utf8)
            chmod(out, 0o600)
            let pub =
                "-----BEGIN PUBLIC KEY-----\n"
                + Data([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00] + key.publicKey.raw)
                .base64EncodedString() + "\n-----END PUBLIC KEY-----\n"
            try pub.write(toFile: out + ".pub", atomically: true, encoding: .utf8)
            print("wrote \(out) and \(out).pub (public key \(SHA256.hex(key.publicKey.raw)))")
        }
    }
}

func write(_ snapshot: ModelSnapshot, to path: String, signKey: String?) throws {
    let key = try signKey.map { try Ed25519.PrivateKey(pem: String(contentsOfFile: $0, encoding: .utf8)) }
    let bytes = try SnapshotFile.write(snapshot, signingKey: key)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    print("wrote \(path): \(snapshot.version), \(bytes.count) bytes, \(key == nil ? "unsigned" : "signed")")
}
