import Foundation
import Synchronization

/// What happened to the model registry: counts per kind and the recent history (newest last),
/// for `/metrics` (`encore_model_*`) and the status page. Written by admin calls under the
/// registry's lock (and once at start); read by scrapes. A short mutex: never on the Decide path.
public final class ModelEvents: Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        /// The model the server started with.
        case started
        /// A snapshot was accepted by PushSnapshot (validated and kept loaded).
        case pushed
        /// A pushed snapshot was refused (format, checksum, signature, schema, binding).
        case pushRefused = "push_refused"
        /// A snapshot became active (Activate, or PushSnapshot with activate).
        case activated
        /// Rollback re-activated the previous snapshot.
        case rolledBack = "rolled_back"
        /// The offline gate (`--require-ope`) refused an activation.
        case gateRefused = "gate_refused"
    }

    /// One entry of the history.
    public struct Event: Sendable {
        public var kind: Kind
        public var version: String
        public var detail: String
        public var unixMillis: Int64
    }

    private struct State {
        var counts: [Kind: UInt64] = [:]
        var history: [Event] = []
        /// When the active model last changed (start, activation, rollback).
        var lastActivationMillis: Int64 = 0
    }

    private let state = Mutex(State())
    /// Entries kept in the history.
    public static let historyLimit = 50

    public init() {}

    func record(_ kind: Kind, version: String, detail: String = "") {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        state.withLock { s in
            s.counts[kind, default: 0] += kind == .started ? 0 : 1
            s.history.append(Event(kind: kind, version: version, detail: String(detail.prefix(300)), unixMillis: now))
            if s.history.count > ModelEvents.historyLimit {
                s.history.removeFirst(s.history.count - ModelEvents.historyLimit)
            }
            if kind == .started || kind == .activated || kind == .rolledBack { s.lastActivationMillis = now }
        }
    }

    /// Counts by kind (`started` is always 0), the history, and the last activation time.
    public func snapshot() -> (counts: [Kind: UInt64], history: [Event], lastActivationMillis: Int64) {
        state.withLock { ($0.counts, $0.history, $0.lastActivationMillis) }
    }
}
