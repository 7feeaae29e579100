import EncoreLogging
import EncoreProtocol
import EncoreStore
import EncoreTransport
import Foundation
import SwiftProtobuf
import Synchronization

/// The audit log (docs/security.md): one JSON line per admin call, naming who made it (token
/// or client-certificate name, never the token), the peer address, the method, the arguments
/// that matter (model version, force, offer ids, record counts) and the result status. Written
/// to `<log-dir>/audit-<start time>-<pid>.jsonl` (stderr without a log directory) and, for a
/// file, written and fsynced before the call's answer is sent: an acknowledged admin change is
/// always in the audit log.
public final class AuditLog: Sendable {
    private let fd: Int32
    /// The audit file (nil: stderr).
    public let path: String?
    /// The `replica` field of every line (the log records' replica name), if any.
    public let replica: String?
    private let lock = Mutex<Void>(())

    /// Opens a new audit file in `directory` (nil: lines go to stderr).
    /// - Throws: `SetupError` naming the file when it cannot be created.
    public init(directory: String?, replica: String? = nil) throws {
        self.replica = replica
        guard let directory else {
            fd = 2
            path = nil
            return
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss"
        let name = "audit-\(formatter.string(from: Date()))-\(getpid()).jsonl"
        let file = (directory as NSString).appendingPathComponent(name)
        let opened = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard opened >= 0 else {
            throw SetupError("audit log \(file): \(String(cString: strerror(errno)))")
        }
        fd = opened
        path = file
    }

    deinit {
        if fd != 2 { close(fd) }
    }

    /// Writes one record as a JSON line (keys sorted), then fsyncs a file. Returns false when
    /// the line could not be written (the caller fails the call rather than act unaudited).
    @discardableResult
    public func write(_ record: [String: Any]) -> Bool {
        var record = record
        record["ts"] = AuditLog.timestamp()
        if let replica { record["replica"] = replica }
        guard var data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else {
            return false
        }
        data.append(UInt8(ascii: "\n"))
        return lock.withLock { _ in
            let ok = data.withUnsafeBytes { bytes -> Bool in
                var offset = 0
                while offset < bytes.count {
                    let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return false }
                    offset += n
                }
                return true
            }
            return ok && (fd == 2 || fsync(fd) == 0)
        }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), now.tv_nsec / 1_000_000)
    }
}

/// Wires the audit log into the admin router: every method that needs a role
/// (`AdminAuthorizer.methodRoles`) is recorded, including the calls its role check refused.
public struct AdminAudit: Sendable {
    public let log: AuditLog
    public let authorizer: AdminAuthorizer

    public init(log: AuditLog, authorizer: AdminAuthorizer) {
        self.log = log
        self.authorizer = authorizer
    }

    /// `router` with its admin methods recorded (apply to the already guarded router).
    public func recording(_ router: GRPCRouter) -> GRPCRouter {
        let (log, authorizer) = (self.log, self.authorizer)
        return router.recorded { path, context in
            guard AdminAuthorizer.methodRoles[path] != nil else { return nil }
            return CallRecord(
                log: log, method: String(path.dropFirst()), who: authorizer.name(of: context.principal),
                peer: context.peer.description)
        }
    }

    /// Offer ids recorded per upsert call (the count is always recorded).
    static let maxRecordedIDs = 100

    final class CallRecord: GRPCCallRecorder {
        let log: AuditLog
        let method: String
        let who: String
        let peer: String
        private let arguments = Mutex<[String: Any]>([:])

        init(log: AuditLog, method: String, who: String, peer: String) {
            self.log = log
            self.method = method
            self.who = who
            self.peer = peer
        }

        func request(_ message: UnsafeRawBufferPointer) {
            let bytes = Data(message)
            arguments.withLock { args in
                switch method {
                case "encore.v1.Models/Activate":
                    if let m = try? Encore_V1_ActivateRequest(serializedBytes: bytes) {
                        args["version"] = m.version
                        args["force"] = m.force
                    }
                case "encore.v1.Models/GetSnapshot":
                    if let m = try? Encore_V1_GetSnapshotRequest(serializedBytes: bytes) {
                        args["version"] = m.version
                        args["offset"] = m.offset
                    }
                case "encore.v1.Models/PushSnapshot":
                    if let m = try? Encore_V1_SnapshotChunk(serializedBytes: bytes) {
                        args["bytes"] = (args["bytes"] as? Int ?? 0) + m.data.count
                        if m.activate { args["activate"] = true }
                    }
                case "encore.v1.Catalog/UpsertOffers":
                    args["records"] = (args["records"] as? Int ?? 0) + 1
                    var ids = args["offer_ids"] as? [String] ?? []
                    if ids.count < AdminAudit.maxRecordedIDs,
                        let m = try? Encore_V1_OfferRecord(serializedBytes: bytes),
                        case .object(let fields)? = try? JSONValue(parsing: m.json),
                        case .string(let id)? = fields["offer_id"]
                    {
                        ids.append(id)
                        args["offer_ids"] = ids
                    }
                case "encore.v1.Customers/UpsertCustomers":
                    args["records"] = (args["records"] as? Int ?? 0) + 1
                default:
                    break
                }
            }
        }

        func answered(_ status: GRPCStatus, response: [UInt8]?) {
            var record = arguments.withLock { $0 }
            record["kind"] = "admin_call"
            record["method"] = method
            record["who"] = who
            record["peer"] = peer
            record["status"] = status.code.description
            if !status.isOK { record["message"] = status.description }
            if let response {
                let bytes = Data(response)
                switch method {
                case "encore.v1.Models/PushSnapshot":
                    if let m = try? Encore_V1_PushSnapshotResponse(serializedBytes: bytes) {
                        record["version"] = m.model.version
                        record["activated"] = m.activated
                    }
                case "encore.v1.Models/Activate", "encore.v1.Models/Rollback":
                    if let m = try? Encore_V1_ModelInfo(serializedBytes: bytes) { record["active_version"] = m.version }
                case "encore.v1.Catalog/UpsertOffers", "encore.v1.Customers/UpsertCustomers":
                    if let m = try? Encore_V1_UpsertResponse(serializedBytes: bytes) {
                        record["upserted"] = Int(m.upserted)
                        record["total"] = Int(m.total)
                    }
                default:
                    break
                }
            }
            if !log.write(record) {
                Log.rateLimited("audit log: cannot write the record of a \(method) call by \(who)")
            }
        }
    }
}
