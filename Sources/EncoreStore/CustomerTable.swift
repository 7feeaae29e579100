import EncoreSupport
import Synchronization

/// The customers the server reads: a `CustomerStore` loaded from a file plus upserts, published
/// as immutable `CustomerGeneration`s through `Published`.
///
/// - Readers (reactor threads) each keep a `Reader`; `lookup` is one atomic load, a hash probe
///   in the overlay and one in the base: no lock, no allocation.
/// - `upsert` (the `UpsertCustomers` RPC, admin threads) validates a whole batch, builds a new
///   overlay (copying the previous overlay only, never the base) and publishes it with one
///   swap, so a batch is visible atomically. Writers are serialized.
/// - The overlay is bounded by `maxOverlayCount` distinct customers, because each batch copies
///   it (O(overlay) per batch). A batch that would pass the bound is rejected whole with
///   `StoreError(.resourceExhausted)` (RESOURCE_EXHAUSTED at the edge) and nothing changes;
///   `compact()`, run off the reactor threads, folds the overlay into a rebuilt base (it needs
///   memory for a second base while it runs) and empties the overlay.
public final class CustomerTable: Sendable {
    /// The default overlay bound: 262,144 customers (32 MiB of features at 32 features).
    public static let defaultMaxOverlayCount = 1 << 18

    /// The most customers the overlay holds before `upsert` throws `.resourceExhausted`.
    public let maxOverlayCount: Int
    private let published: Published<CustomerGeneration>
    /// Serializes writers (upsert, compact); holds the last published generation number.
    private let writer = Mutex<UInt64>(1)

    /// A table over `base` with an empty overlay.
    public init(base: CustomerStore, maxOverlayCount: Int = CustomerTable.defaultMaxOverlayCount) {
        self.maxOverlayCount = maxOverlayCount
        published = Published(CustomerGeneration(base: base, number: 1))
    }

    /// The current generation (takes a mutex: for admin paths; reactor threads use a `Reader`).
    public var current: CustomerGeneration { published.value }

    /// A per-thread reader. Not Sendable: create one per reactor thread.
    public func makeReader() -> Reader { Reader(Published.Reader(published)) }

    /// A per-thread, lock-free view of the table's current generation.
    public struct Reader {
        private var inner: Published<CustomerGeneration>.Reader

        init(_ inner: Published<CustomerGeneration>.Reader) { self.inner = inner }

        /// The current generation; it stays alive until this reader observes a newer one.
        public mutating func generation() -> CustomerGeneration { inner.current() }

        /// The record for the UTF-8 `id` in the current generation (overlay, then base, else
        /// cold-start defaults). The view's buffer is valid until this reader's next call.
        @inline(__always)
        public mutating func lookup(_ id: UnsafeRawBufferPointer) -> CustomerView { inner.current().lookup(id) }
    }

    /// Applies a batch of upserts atomically (all or nothing). Within a batch, later records
    /// for the same id apply on top of earlier ones.
    /// - Throws: `StoreError` naming the record (0-based `records[i]`) and field for an empty or
    ///   over-long id, an unknown feature name, a non-finite value, or a 65th segment; and
    ///   `.resourceExhausted` if the overlay would pass `maxOverlayCount`. Nothing is
    ///   published on error.
    @discardableResult
    public func upsert(_ records: [CustomerUpsert]) throws -> CustomerUpsertResult {
        try upsert(records) { _ in }
    }

    /// `upsert`, with `commit` called on the next generation before it is published (while
    /// other writers of this table wait): the owner of a model bound to this table publishes
    /// that model over the new generation there. When `commit` throws, nothing is published and
    /// its error is rethrown.
    @discardableResult
    public func upsert(_ records: [CustomerUpsert], commit: (CustomerGeneration) throws -> Void) throws
        -> CustomerUpsertResult
    {
        try writer.withLock { number in
            let old = published.value
            let (next, inserted) = try CustomerTable.apply(
                records, to: old, number: number + 1, maxOverlayCount: maxOverlayCount)
            try commit(next)
            published.publish(next)
            number += 1
            return CustomerUpsertResult(
                applied: records.count, inserted: inserted, overlayCount: next.overlayCount, generation: number)
        }
    }

    /// Folds the overlay into a new base (every row of the old base copied, overlay rows
    /// replaced or appended, the hash index rebuilt) and publishes it with an empty overlay.
    /// Slow (seconds for 10M customers) and needs memory for a second base while it runs: call
    /// it off the reactor threads. Upserts wait for it. Returns the new generation.
    @discardableResult
    public func compact() throws -> CustomerGeneration {
        try writer.withLock { number in
            let old = published.value
            let base = try CustomerTable.merge(old)
            number += 1
            let next = CustomerGeneration(base: base, number: number)
            published.publish(next)
            return next
        }
    }
}
