import Synchronization

/// The request bytes every stream of every connection of one server holds (messages still
/// arriving, or received and not yet answered), shared by the reactors: one relaxed atomic add
/// when a DATA chunk grows a stream's buffer and one when the stream gives its bytes back, not
/// per byte. Each connection also bounds its own share (`ConnectionStateMachine.requestBytesHeld`).
final class RequestMemoryBudget: Sendable {
    /// Bytes held now, across reactors.
    let held = Atomic<Int>(0)
    /// `GRPCServerConfiguration.maxBufferedRequestBytes` (`Int.max`: no bound).
    let limit: Int
    /// Past `limit`, a stream holding at most `smallStreamBytes` may still take up to this much
    /// more, so small calls (Health, Decide) are served while large requests fill the budget.
    let reserve: Int
    static let smallStreamBytes = 64 << 10

    init(limit: Int) {
        self.limit = limit > 0 ? limit : Int.max
        reserve = limit > 0 ? max(limit / 8, 1 << 20) : 0
    }

    /// A stream grew by `delta` bytes (> 0) to `streamBytes`: false when that passes the bound
    /// (the caller then refuses the stream and gives all its bytes back, `delta` included).
    @inline(__always)
    func take(_ delta: Int, streamBytes: Int) -> Bool {
        let total = held.wrappingAdd(delta, ordering: .relaxed).newValue
        if total <= limit { return true }
        return streamBytes <= Self.smallStreamBytes && total <= limit &+ reserve
    }

    /// Bytes a stream no longer holds.
    @inline(__always)
    func give(_ bytes: Int) {
        held.wrappingSubtract(bytes, ordering: .relaxed)
    }
}
