#if canImport(Glibc)
    import Glibc
#endif

/// The decision engine's log: one `LogRing` per reactor thread for decision and outcome
/// records, drained by a writer thread (see EncoreServer's `LogWriter`). Producers never block:
/// a full ring drops the record and counts it.
public final class DecisionLog: @unchecked Sendable {
    public static let decisionRecord: UInt8 = 1
    public static let outcomeRecord: UInt8 = 2
    /// Default ring size per thread (bytes).
    public static let defaultRingBytes = 16 << 20
    /// Largest encoded record (bytes); larger ones are dropped and counted. A request at every
    /// `RequestLimits` and id limit at once takes about 46 KiB; the rest is room for the
    /// customer features, context vector and candidates (thousands of each).
    public static let maxRecordBytes = 64 << 10

    public let rings: [LogRing]
    /// Per-thread scratch for encoding a record before it is copied into the ring.
    let scratch: [UnsafeMutableRawPointer]

    public init(threads: Int, ringBytes: Int = DecisionLog.defaultRingBytes) {
        rings = (0..<threads).map { _ in LogRing(capacityBytes: ringBytes) }
        scratch = (0..<threads).map { _ in
            UnsafeMutableRawPointer.allocate(byteCount: DecisionLog.maxRecordBytes, alignment: 16)
        }
    }

    deinit {
        scratch.forEach { $0.deallocate() }
    }

    /// Records dropped because a ring was full or a record too large, across threads.
    public var droppedRecords: Int { rings.reduce(0) { $0 + $1.dropped.load(ordering: .relaxed) } }
    /// Records accepted into the rings, across threads.
    public var writtenRecords: Int { rings.reduce(0) { $0 + $1.written.load(ordering: .relaxed) } }

    /// Milliseconds since the Unix epoch (CLOCK_REALTIME through the vDSO: no syscall).
    @inline(__always)
    public static var nowMillis: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Logs an outcome from thread `thread` (ReportOutcome). Returns false if it was dropped.
    @discardableResult
    public func appendOutcome(
        thread: Int, decisionID: UnsafeRawBufferPointer, offerID: UnsafeRawBufferPointer, outcome: Int32,
        revenueCents: Int64, nowMillis: Int64 = DecisionLog.nowMillis
    ) -> Bool {
        var buffer = LogBuffer(base: scratch[thread], capacity: DecisionLog.maxRecordBytes)
        buffer.u8(DecisionLog.outcomeRecord)
        buffer.i64(nowMillis)
        buffer.string(decisionID)
        buffer.string(offerID)
        buffer.u32(UInt32(bitPattern: outcome))
        buffer.i64(revenueCents)
        return commit(buffer, thread: thread)
    }

    func commit(_ buffer: LogBuffer, thread: Int) -> Bool {
        if buffer.overflowed {
            rings[thread].dropped.add(1, ordering: .relaxed)
            return false
        }
        return rings[thread].append(buffer.bytes)
    }
}
