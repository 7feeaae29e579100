import Synchronization

/// A block of counters with one writer thread and any number of readers: the hot path's
/// metrics (per reactor thread, per decision workspace).
///
/// The writer adds with a relaxed load and a relaxed store (`add`): no read-modify-write
/// instruction, no lock prefix, no cache line shared with another writer, so a counter costs what
/// a plain `+=` costs. Readers (a scrape, the status sampler) load each cell with relaxed
/// ordering: a reading taken while the writer runs may miss the increments of the last few
/// nanoseconds, and two cells read one after the other are not a consistent pair (a histogram's
/// count may be one ahead of its buckets); each cell on its own is exact and never goes back.
/// Concurrent writers would lose increments: each block has exactly one writer thread.
public final class CounterBlock: Sendable {
    /// The cells, for the writer to keep (a trivial value: copying it retains nothing).
    public let cells: CounterCells

    /// `count` cells, all zero.
    public init(count: Int) {
        let base = UnsafeMutablePointer<Atomic<UInt64>>.allocate(capacity: max(count, 1))
        for i in 0..<max(count, 1) { (base + i).initialize(to: Atomic(0)) }
        cells = CounterCells(base: base, count: count)
    }

    deinit {
        cells.base.deinitialize(count: max(cells.count, 1))
        cells.base.deallocate()
    }

    /// The value of cell `index` (any thread).
    public func load(_ index: Int) -> UInt64 { cells.load(index) }
}

/// An unowned view of a `CounterBlock`'s cells (valid while the block lives). The writer thread
/// stores it instead of the block, so an increment touches no reference count.
public struct CounterCells: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Atomic<UInt64>>
    public let count: Int

    /// Adds `amount` to cell `index`. Only the block's writer thread may call it.
    @inline(__always)
    public func add(_ index: Int, _ amount: UInt64 = 1) {
        let cell = base + index
        cell.pointee.store(cell.pointee.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    /// Adds `value` to cell `index` holding a `Double`'s bit pattern. Writer thread only.
    @inline(__always)
    public func addDouble(_ index: Int, _ value: Double) {
        let cell = base + index
        let sum = Double(bitPattern: cell.pointee.load(ordering: .relaxed)) + value
        cell.pointee.store(sum.bitPattern, ordering: .relaxed)
    }

    /// The value of cell `index` (any thread; see `CounterBlock` for what a reading means).
    @inline(__always)
    public func load(_ index: Int) -> UInt64 { base[index].load(ordering: .relaxed) }

    /// Cell `index` read as a `Double` (cells written with `addDouble`).
    public func loadDouble(_ index: Int) -> Double { Double(bitPattern: load(index)) }
}

/// Fixed latency buckets for the hot path's histograms: an observation adds one to its bucket
/// (not cumulative), one to the count and its nanoseconds to the sum; the exposition cumulates.
/// A histogram with this layout takes `LatencyBuckets.cellCount` consecutive cells.
public enum LatencyBuckets {
    /// Upper bounds in nanoseconds (`le`), from 5 µs to 1 s; a last bucket above them is +Inf.
    /// Dense below 1 ms, where Decide lives, so `histogram_quantile` interpolates within a few
    /// tens of microseconds there.
    public static let upperBoundsNanos: [UInt64] = [
        5_000, 10_000, 20_000, 30_000, 40_000, 50_000, 75_000, 100_000, 150_000, 200_000, 300_000, 500_000,
        750_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 25_000_000, 100_000_000, 1_000_000_000,
    ]
    /// Buckets (bounds + the +Inf bucket), then the count, then the sum (nanoseconds).
    public static let bucketCount = upperBoundsNanos.count + 1
    public static let cellCount = bucketCount + 2
    public static var countCell: Int { bucketCount }
    public static var sumCell: Int { bucketCount + 1 }

    /// Records `nanos` into the histogram whose first cell is `first`. Writer thread only.
    @inline(__always)
    public static func observe(_ nanos: UInt64, into cells: CounterCells, at first: Int) {
        var bucket = 0
        // Linear: most observations land in the first few buckets.
        upperBoundsNanos.withUnsafeBufferPointer { bounds in
            while bucket < bounds.count && nanos > bounds[bucket] { bucket += 1 }
        }
        cells.add(first + bucket)
        cells.add(first + bucketCount)
        cells.add(first + bucketCount + 1, nanos)
    }

    /// A histogram read out of cells (buckets not cumulative), for merging and exposition.
    public struct Reading: Sendable, Equatable {
        public var buckets: [UInt64]
        public var count: UInt64
        public var sumNanos: UInt64

        public init() {
            buckets = Array(repeating: 0, count: LatencyBuckets.bucketCount)
            count = 0
            sumNanos = 0
        }

        /// Adds the histogram whose first cell is `first`.
        public mutating func add(_ cells: CounterCells, at first: Int) {
            for i in 0..<LatencyBuckets.bucketCount { buckets[i] &+= cells.load(first + i) }
            count &+= cells.load(first + LatencyBuckets.countCell)
            sumNanos &+= cells.load(first + LatencyBuckets.sumCell)
        }

        public mutating func add(_ other: Reading) {
            for i in 0..<buckets.count { buckets[i] &+= other.buckets[i] }
            count &+= other.count
            sumNanos &+= other.sumNanos
        }

        /// `self - earlier` (for a window between two readings; clamped at 0 per bucket).
        public func subtracting(_ earlier: Reading) -> Reading {
            var out = Reading()
            for i in 0..<buckets.count { out.buckets[i] = buckets[i] &- min(buckets[i], earlier.buckets[i]) }
            out.count = count &- min(count, earlier.count)
            out.sumNanos = sumNanos &- min(sumNanos, earlier.sumNanos)
            return out
        }

        /// The `q` quantile in seconds, interpolated linearly within its bucket as Prometheus's
        /// `histogram_quantile` does; nil without observations. Beyond the last bound: that bound.
        public func quantileSeconds(_ q: Double) -> Double? {
            let total = buckets.reduce(0, +)
            guard total > 0 else { return nil }
            let rank = q * Double(total)
            var cumulative: UInt64 = 0
            for (i, n) in buckets.enumerated() {
                let before = cumulative
                cumulative += n
                if Double(cumulative) >= rank && n > 0 {
                    let bounds = LatencyBuckets.upperBoundsNanos
                    guard i < bounds.count else { return Double(bounds.last!) / 1e9 }
                    let lower = i == 0 ? 0 : Double(bounds[i - 1])
                    let upper = Double(bounds[i])
                    let fraction = (rank - Double(before)) / Double(n)
                    return (lower + (upper - lower) * fraction) / 1e9
                }
            }
            return Double(LatencyBuckets.upperBoundsNanos.last!) / 1e9
        }
    }
}
