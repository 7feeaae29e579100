import Synchronization

/// Publishes immutable values (model snapshots, catalog generations, ...) to reader threads
/// without a lock or reference-count traffic per read.
///
/// Writers (admin threads) call `publish`, which stores the value under a mutex and bumps an
/// atomic version. Each reader thread keeps a `Published.Reader` that caches a strong reference;
/// `current` costs one atomic load and a compare, and takes the mutex only on the first read
/// after a publish. A value stays alive while any reader still caches it, so a reader that
/// started a decision on one value finishes on it, and the old value is freed when the last
/// reader moves on.
public final class Published<Value: AnyObject & Sendable>: Sendable {
    private let storage: Mutex<Value>
    /// Incremented by every publish (writers); loaded by readers per access.
    private let version = Atomic<UInt64>(1)

    public init(_ initial: Value) {
        storage = Mutex(initial)
    }

    /// Makes `value` current for every reader's next access.
    public func publish(_ value: Value) {
        storage.withLock { $0 = value }
        version.add(1, ordering: .releasing)
    }

    /// The current value (takes the mutex: for admin paths, not per-request reads).
    public var value: Value { storage.withLock { $0 } }

    /// A per-thread cache of the current value. Not Sendable: one per thread.
    public struct Reader {
        private let source: Published<Value>
        private var cachedVersion: UInt64
        private var cached: Value

        public init(_ source: Published<Value>) {
            self.source = source
            cachedVersion = source.version.load(ordering: .acquiring)
            cached = source.value
        }

        /// The current value: an atomic load and a compare; refreshes after a publish.
        public mutating func current() -> Value {
            let v = source.version.load(ordering: .acquiring)
            if v != cachedVersion {
                cached = source.value
                cachedVersion = v
            }
            return cached
        }
    }
}
