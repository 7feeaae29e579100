import ArgumentParser
import Dispatch
import EncoreClient
import EncoreProtocol
import EncoreTransport
import Foundation
import SwiftProtobuf

/// `encore fleet push|status`: one snapshot rollout to every replica of a fleet, and what each
/// replica serves (docs/scaling.md). Targets are the replicas' admin-plane addresses.
struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet", abstract: "Roll a snapshot out to every replica of a fleet, or show what each serves.",
        subcommands: [Push.self, Status.self])

    /// The replicas: `--targets h:p,...` and/or `--targets-file F`, plus the credentials.
    struct Targets: ParsableArguments {
        @Option(help: "Admin-plane addresses of the replicas, comma-separated (host:port, [v6]:port).")
        var targets: String?
        @Option(help: "File with one admin-plane address per line ('#' starts a comment).")
        var targetsFile: String?
        @OptionGroup var credentials: Credentials
        @Option(help: "Seconds each call to a replica may take.") var timeout: Double = 30

        func validate() throws {
            if targets == nil && targetsFile == nil {
                throw ValidationError("give the replicas' admin addresses with --targets or --targets-file")
            }
            if !(timeout > 0 && timeout.isFinite) { throw ValidationError("--timeout must be a positive number") }
        }

        /// Every address, in order, without duplicates. Throws naming a malformed one.
        func resolve() throws -> [Replica] {
            var texts = (targets ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            if let targetsFile {
                try TLSOptions.checkReadable(targetsFile, flag: "--targets-file")
                guard let data = FileManager.default.contents(atPath: targetsFile) else {
                    throw CLIError("--targets-file \(targetsFile): cannot read the file")
                }
                for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
                    let text = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
                        .trimmingCharacters(in: .whitespaces)
                    if !text.isEmpty { texts.append(text) }
                }
            }
            var seen = Set<String>()
            var replicas: [Replica] = []
            for text in texts where !text.isEmpty && seen.insert(text).inserted {
                guard let replica = Replica(text) else {
                    throw CLIError("target '\(text)': expected host:port (or [v6-address]:port)")
                }
                replicas.append(replica)
            }
            guard !replicas.isEmpty else { throw CLIError("no replica address given") }
            return replicas
        }
    }

    /// One replica's admin-plane address.
    struct Replica: Sendable {
        var address: String
        var host: String
        var port: Int

        init?(_ text: String) {
            let host: Substring
            let port: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                    return nil
                }
                host = text[text.index(after: text.startIndex)..<close]
                port = text[text.index(close, offsetBy: 2)...]
            } else {
                guard let colon = text.lastIndex(of: ":") else { return nil }
                host = text[..<colon]
                port = text[text.index(after: colon)...]
            }
            guard !host.isEmpty, let number = Int(port), (1...65535).contains(number) else { return nil }
            self.address = text
            self.host = String(host)
            self.port = number
        }

        /// One unary call to this replica's admin plane; the status becomes a one-line error.
        func call(
            _ path: String, _ message: some SwiftProtobuf.Message, metadata: [(String, String)], tls: TLSContext?,
            timeout: Double
        )
            throws -> [UInt8]
        {
            let client = try GRPCClient(host: host, port: port, connectTimeoutSeconds: min(timeout, 5), tls: tls)
            client.metadata = metadata
            return try client.unary(path, try message.serializedBytes(), timeoutSeconds: timeout)
        }

        func list(metadata: [(String, String)], tls: TLSContext?, timeout: Double) throws
            -> Encore_V1_ListModelsResponse
        {
            try Encore_V1_ListModelsResponse(
                serializedBytes: try call(
                    "/encore.v1.Models/List", Encore_V1_ListModelsRequest(), metadata: metadata, tls: tls,
                    timeout: timeout))
        }
    }

    /// Runs `body` for every replica at once and returns the results in the replicas' order.
    static func forEach<R: Sendable>(_ replicas: [Replica], _ body: @Sendable (Replica) -> R) -> [R] {
        let results = ResultBox<R>(count: replicas.count)
        DispatchQueue.concurrentPerform(iterations: replicas.count) { i in results.set(i, body(replicas[i])) }
        return results.values
    }

    /// "what failed" for an error thrown by a call.
    static func describe(_ error: Error) -> String {
        if let status = error as? GRPCStatus { return "\(status)" }
        return "\(error)"
    }

    // MARK: push

    struct Push: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Upload a snapshot to every replica; with --activate, activate it everywhere only if all accepted it.",
            discussion: """
                Phase 1 uploads the snapshot to every replica at once without activating it; each replica \
                validates it completely (checksum, signature, schema against its data). Only when every \
                replica accepted it does phase 2 (--activate) activate it on all of them. If a replica \
                fails phase 2, the replicas already switched are rolled back to the version they served \
                before, so the fleet never stays split. Exit code 0 only when every step succeeded; \
                each replica's result is printed (or one JSON object with --json).
                """)

        @OptionGroup var targets: Targets
        @Flag(help: "Activate the snapshot everywhere once every replica has accepted it.") var activate = false
        @Flag(help: "Skip the offline-evaluation gate on activation (role models.force).") var force = false
        @Flag(help: "Print one JSON object instead of text.") var json = false
        @Argument(help: "Snapshot file.") var file: String

        func run() throws {
            let replicas = try targets.resolve()
            let metadata = try targets.credentials.metadata()
            let tls = try targets.credentials.tlsContext()
            let timeout = targets.timeout
            try TLSOptions.checkReadable(file, flag: "snapshot file")
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CLIError("snapshot file \(file): cannot read the file")
            }
            let messages = try PushCommand.chunks([UInt8](data), activate: false)
            let started = Date()

            // Phase 1: every replica validates and loads it; nothing changes what they serve.
            let phase1 = FleetCommand.forEach(replicas) { replica -> Result<(String, String), FleetFailure> in
                do {
                    let before = try replica.list(metadata: metadata, tls: tls, timeout: timeout).activeVersion
                    let client = try GRPCClient(host: replica.host, port: replica.port, tls: tls)
                    client.metadata = metadata
                    let reply = try Encore_V1_PushSnapshotResponse(
                        serializedBytes: try client.call(
                            "/encore.v1.Models/PushSnapshot", messages: messages, timeoutSeconds: max(timeout, 120)))
                    return .success((before, reply.model.version))
                } catch {
                    return .failure(FleetFailure(FleetCommand.describe(error)))
                }
            }
            var report = FleetReport(file: file, activate: activate)
            for (replica, result) in zip(replicas, phase1) {
                switch result {
                case .success(let (before, version)):
                    report.replicas.append(.init(target: replica.address, previous: before, version: version))
                case .failure(let failure):
                    report.replicas.append(.init(target: replica.address, error: "upload refused: \(failure.message)"))
                }
            }
            let versions = Set(phase1.compactMap { try? $0.get().1 })
            if report.replicas.contains(where: { $0.error != nil }) {
                report.outcome = "phase 1 failed: nothing was activated, every replica serves what it served before"
            } else if versions.count != 1 {
                report.outcome = "phase 1 failed: replicas read different versions \(versions.sorted()) from one file"
            } else if !activate {
                report.outcome = "uploaded to every replica (not activated: add --activate)"
                report.ok = true
            } else {
                let version = versions.first!
                var activation = Encore_V1_ActivateRequest()
                activation.version = version
                activation.force = force
                let request = activation
                // Phase 2: switch everyone; any failure rolls back the ones that switched.
                let phase2 = FleetCommand.forEach(replicas) { replica -> String? in
                    do {
                        _ = try replica.call(
                            "/encore.v1.Models/Activate", request, metadata: metadata, tls: tls, timeout: timeout)
                        return nil
                    } catch {
                        return FleetCommand.describe(error)
                    }
                }
                for i in replicas.indices {
                    if let error = phase2[i] {
                        report.replicas[i].error = "activation failed: \(error)"
                    } else {
                        report.replicas[i].active = version
                    }
                }
                if phase2.allSatisfy({ $0 == nil }) {
                    report.outcome = "active on every replica: \(version)"
                    report.ok = true
                } else {
                    let switched = replicas.indices.filter {
                        phase2[$0] == nil && report.replicas[$0].previous != version
                    }
                    let rolled = FleetCommand.forEach(switched.map { replicas[$0] }) { replica -> (String?, String?) in
                        do {
                            let m = try Encore_V1_ModelInfo(
                                serializedBytes: try replica.call(
                                    "/encore.v1.Models/Rollback", Encore_V1_RollbackRequest(), metadata: metadata,
                                    tls: tls,
                                    timeout: timeout))
                            return (m.version, nil)
                        } catch {
                            return (nil, FleetCommand.describe(error))
                        }
                    }
                    for (k, i) in switched.enumerated() {
                        if let version = rolled[k].0 {
                            report.replicas[i].active = version
                            report.replicas[i].rolledBack = true
                        } else {
                            report.replicas[i].error = "rollback failed: \(rolled[k].1 ?? "?")"
                        }
                    }
                    report.outcome =
                        "phase 2 failed: \(switched.count) replica(s) that had switched were rolled back"
                }
            }
            report.seconds = Date().timeIntervalSince(started)
            report.print(json: json)
            if !report.ok { throw ExitCode(1) }
        }
    }

    // MARK: status

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show each replica's active version, health and lag behind the newest version in the fleet.",
            discussion: """
                Lag: a replica serving an older snapshot than the newest one any replica serves (by its \
                created-at) is `behind`, with the snapshots' age difference. Exit code 0 \
                only when every replica answered SERVING and all serve the same version.
                """)

        @OptionGroup var targets: Targets
        @Flag(help: "Print one JSON object instead of text.") var json = false

        func run() throws {
            let replicas = try targets.resolve()
            let metadata = try targets.credentials.metadata()
            let tls = try targets.credentials.tlsContext()
            let timeout = min(targets.timeout, 10)
            struct Row: Sendable {
                var health = "unreachable"
                var active: Encore_V1_ModelInfo? = nil
                var activeVersion = ""
                var error: String? = nil
                var callMillis = 0.0
            }
            let rows = FleetCommand.forEach(replicas) { replica -> Row in
                var row = Row()
                let start = Date()
                do {
                    let health = try Grpc_Health_V1_HealthCheckResponse(
                        serializedBytes: try replica.call(
                            "/grpc.health.v1.Health/Check", Grpc_Health_V1_HealthCheckRequest(), metadata: metadata,
                            tls: tls,
                            timeout: timeout))
                    row.health =
                        switch health.status {
                        case .serving: "SERVING"
                        case .notServing: "NOT_SERVING"
                        default: "UNKNOWN"
                        }
                    let list = try replica.list(metadata: metadata, tls: tls, timeout: timeout)
                    row.activeVersion = list.activeVersion
                    row.active = list.models.first { $0.active }
                } catch {
                    row.error = FleetCommand.describe(error)
                }
                row.callMillis = Date().timeIntervalSince(start) * 1000
                return row
            }
            // Lag: how far behind the newest snapshot any replica serves (by its created-at).
            let newest = rows.compactMap { $0.active }.max { $0.createdAtMillis < $1.createdAtMillis }
            var objects: [[String: Any]] = []
            var healthy = true
            for (replica, row) in zip(replicas, rows) {
                var o: [String: Any] = ["target": replica.address, "health": row.health]
                if let error = row.error {
                    o["error"] = error
                    healthy = false
                } else {
                    o["active_version"] = row.activeVersion
                    if row.health != "SERVING" { healthy = false }
                    if let active = row.active {
                        o["created_at_ms"] = active.createdAtMillis
                        o["loaded_ms_ago"] = Int64(Date().timeIntervalSince1970 * 1000) - active.loadedAtMillis
                        o["sha256"] = active.sha256
                    }
                    let behind = (newest?.createdAtMillis ?? 0) - (row.active?.createdAtMillis ?? 0)
                    o["lag_ms"] = max(0, behind)
                    o["behind"] = newest.map { $0.version != row.activeVersion } ?? false
                }
                o["call_ms"] = (row.callMillis * 10).rounded() / 10
                objects.append(o)
            }
            let versions = Set(rows.filter { $0.error == nil }.map(\.activeVersion))
            if json {
                let top: [String: Any] = [
                    "replicas": objects, "newest_version": newest?.version ?? "", "versions": versions.sorted(),
                    "consistent": versions.count == 1 && healthy,
                ]
                let data = try JSONSerialization.data(withJSONObject: top, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                for o in objects {
                    let target = (o["target"] as! String).padding(toLength: 22, withPad: " ", startingAt: 0)
                    if let error = o["error"] {
                        print("\(target) unreachable  \(error)")
                        continue
                    }
                    let health = (o["health"] as! String).padding(toLength: 12, withPad: " ", startingAt: 0)
                    let lag =
                        (o["behind"] as? Bool ?? false)
                        ? "behind: newest is \(newest?.version ?? "?") (created \(o["lag_ms"]!) ms later)"
                        : "up to date"
                    print("\(target) \(health) \(o["active_version"]!)  \(lag)")
                }
                print(
                    versions.count == 1
                        ? "fleet: \(replicas.count) replica(s) on \(versions.first!)\(healthy ? "" : " (not all healthy)")"
                        : "fleet: split across \(versions.sorted().joined(separator: ", "))")
            }
            // Exit 1 unless every replica answered SERVING and all serve one version.
            if !healthy || versions.count != 1 { throw ExitCode(1) }
        }
    }
}

/// A phase-1 failure's message.
struct FleetFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Per-replica results of `encore fleet push`.
struct FleetReport {
    struct Row {
        var target: String
        var previous = ""
        var version = ""
        var active = ""
        var rolledBack = false
        var error: String? = nil
        init(target: String, previous: String = "", version: String = "", error: String? = nil) {
            self.target = target
            self.previous = previous
            self.version = version
            self.error = error
        }
    }
    var file: String
    var activate: Bool
    var replicas: [Row] = []
    var outcome = ""
    var ok = false
    var seconds = 0.0

    func print(json: Bool) {
        if json {
            let rows: [[String: Any]] = replicas.map { r in
                var o: [String: Any] = [
                    "target": r.target, "previous_version": r.previous, "pushed_version": r.version,
                    "active_version": r.active.isEmpty ? r.previous : r.active, "rolled_back": r.rolledBack,
                ]
                if let error = r.error { o["error"] = error }
                return o
            }
            let top: [String: Any] = [
                "ok": ok, "outcome": outcome, "replicas": rows, "seconds": (seconds * 1000).rounded() / 1000,
            ]
            let data = (try? JSONSerialization.data(withJSONObject: top, options: [.sortedKeys])) ?? Data()
            Swift.print(String(decoding: data, as: UTF8.self))
            return
        }
        for r in replicas {
            let target = r.target.padding(toLength: 22, withPad: " ", startingAt: 0)
            if let error = r.error {
                Swift.print("\(target) FAILED  \(error)")
            } else if r.rolledBack {
                Swift.print("\(target) rolled back to \(r.active) (had switched from \(r.previous))")
            } else if !r.active.isEmpty {
                Swift.print("\(target) active \(r.active) (was \(r.previous))")
            } else {
                Swift.print("\(target) loaded \(r.version) (serving \(r.previous))")
            }
        }
        Swift.print("fleet push: \(outcome) (\(String(format: "%.2f", seconds)) s)")
    }
}

/// Results written by concurrent tasks, one slot each.
final class ResultBox<R: Sendable>: @unchecked Sendable {
    private var slots: [R?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ value: R) {
        lock.lock()
        slots[i] = value
        lock.unlock()
    }
    var values: [R] { slots.map { $0! } }
}
