import EncoreTransport
import Synchronization

/// Bounds admin uploads (PushSnapshot, Catalog/UpsertOffers, Customers/UpsertCustomers) across
/// all of them at once: at most `maxUploads` streams in flight and at most `maxBytes` of message
/// bytes held by them together, until each upload has been applied or refused. Per-stream
/// bounds (`UpsertLimits`, the 512 MiB snapshot cap) still apply; this one stops several
/// concurrent streams from adding up (three 512 MiB pushes held 1.35 GB). Documented in
/// Protocol/PROTOCOL.md ("Limits").
public final class AdminUploadBudget: Sendable {
    /// Most uploads in flight (`--max-admin-uploads`).
    public let maxUploads: Int
    /// Most bytes all uploads in flight may hold together (`--max-admin-upload-bytes`).
    public let maxBytes: Int
    /// Uploads in flight and the bytes they hold. Written by reactor threads (a stream opens or
    /// receives a message) and by whichever thread drops an upload's last reference (its
    /// reservation's deinit); read by anyone. Admin path only, never Decide.
    private let state = Mutex<(uploads: Int, bytes: Int)>((0, 0))

    public static let defaultMaxUploads = 4
    public static let defaultMaxBytes = 1 << 30

    public init(
        maxUploads: Int = AdminUploadBudget.defaultMaxUploads, maxBytes: Int = AdminUploadBudget.defaultMaxBytes
    ) {
        self.maxUploads = maxUploads
        self.maxBytes = maxBytes
    }

    /// Uploads in flight and the bytes they hold (for tests and status).
    public var inFlight: (uploads: Int, bytes: Int) { state.withLock { $0 } }

    /// Starts one upload, or nil when `maxUploads` are already in flight.
    func begin() -> Reservation? {
        let admitted = state.withLock { s -> Bool in
            guard s.uploads < maxUploads else { return false }
            s.uploads += 1
            return true
        }
        return admitted ? Reservation(budget: self) : nil
    }

    /// The status for a stream refused because `maxUploads` are in flight.
    var tooManyUploads: GRPCStatus {
        GRPCStatus(
            .resourceExhausted,
            "more than \(maxUploads) admin uploads in flight (--max-admin-uploads); retry when one has finished")
    }

    /// One upload's share of the budget; given back when the last reference to it goes (after
    /// the upload is applied or refused, or when its stream is cancelled).
    final class Reservation: @unchecked Sendable {
        let budget: AdminUploadBudget
        /// Bytes held by this upload. Used by one thread at a time (the stream's reactor thread,
        /// then the thread that applies the upload).
        private(set) var bytes = 0

        init(budget: AdminUploadBudget) { self.budget = budget }

        /// Adds `count` bytes, or returns the refusal when all uploads together would pass
        /// `maxBytes`.
        func reserve(_ count: Int) -> GRPCStatus? {
            let limit = budget.maxBytes
            let ok = budget.state.withLock { s -> Bool in
                guard s.bytes + count <= limit else { return false }
                s.bytes += count
                return true
            }
            guard ok else {
                return GRPCStatus(
                    .resourceExhausted,
                    "admin uploads in flight would hold more than \(limit) bytes (--max-admin-upload-bytes); retry when one has finished"
                )
            }
            bytes += count
            return nil
        }

        deinit {
            let held = bytes
            budget.state.withLock { s in
                s.uploads -= 1
                s.bytes -= held
            }
        }
    }
}
