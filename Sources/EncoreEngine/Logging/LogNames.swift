import Synchronization

/// The names a log record's indices refer to: one entry per `ActiveModel` (model version,
/// exploration, offer ids, customer feature and segment names, context feature names).
/// Records carry only the entry's id; the log writer resolves names when it formats JSON.
public struct LogNames: Sendable {
    public var modelVersion: String
    public var exploration: String
    public var offerIDs: [String]
    public var customerFeatureNames: [String]
    public var segmentNames: [String]
    public var contextNames: [String]
}

/// Process-wide table of `LogNames` by id. Written when an `ActiveModel` is built (admin
/// work), read by the log writer; never touched per decision. Keeps the newest 1,024 entries.
public enum LogNameTable {
    private static let table = Mutex<(next: UInt32, entries: [UInt32: LogNames], order: [UInt32])>((1, [:], []))
    public static let maxEntries = 1_024

    /// Registers `names`; returns their id.
    public static func register(_ names: LogNames) -> UInt32 {
        table.withLock { state in
            let id = state.next
            state.next &+= 1
            state.entries[id] = names
            state.order.append(id)
            if state.order.count > maxEntries {
                state.entries[state.order.removeFirst()] = nil
            }
            return id
        }
    }

    public static func names(_ id: UInt32) -> LogNames? {
        table.withLock { $0.entries[id] }
    }
}
