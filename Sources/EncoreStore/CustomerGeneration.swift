/// One immutable view of the customers: a base `CustomerStore` plus an overlay of upserted
/// records (its own small arena, hash index, matrix and masks). `CustomerTable` publishes one
/// per upsert batch; readers see a batch entirely or not at all.
public final class CustomerGeneration: @unchecked Sendable {
    /// The loaded customers (shared, never copied, by every generation until a compaction).
    public let base: CustomerStore
    /// Segment names of this generation: the base's, then names first seen in upserts.
    public let segmentNames: [String]
    /// The number of this generation (1 for the first, +1 per publish).
    public let number: UInt64
    /// Records in the overlay.
    public let overlayCount: Int
    /// Overlay records whose id is not in the base.
    public let newCustomerCount: Int

    let overlayIDs: IdIndex
    let overlayFeatures: UnsafeMutablePointer<Float>
    let overlayMasks: UnsafeMutablePointer<UInt64>
    /// For each overlay row, the base index it shadows, or -1 for a new customer.
    let overlayBaseIndex: [Int32]

    /// Takes ownership of the buffers (`overlayIDs.count` rows each).
    init(
        base: CustomerStore, segmentNames: [String], number: UInt64, overlayIDs: IdIndex,
        overlayFeatures: UnsafeMutablePointer<Float>, overlayMasks: UnsafeMutablePointer<UInt64>,
        overlayBaseIndex: [Int32]
    ) {
        self.base = base
        self.segmentNames = segmentNames
        self.number = number
        self.overlayIDs = overlayIDs
        self.overlayFeatures = overlayFeatures
        self.overlayMasks = overlayMasks
        self.overlayBaseIndex = overlayBaseIndex
        overlayCount = overlayIDs.count
        newCustomerCount = overlayBaseIndex.reduce(0) { $0 + ($1 < 0 ? 1 : 0) }
    }

    /// A generation with an empty overlay over `base`.
    public convenience init(base: CustomerStore, number: UInt64 = 0) {
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        offsets[0] = 0
        // An empty index cannot hold duplicates.
        let ids = try! IdIndex(arena: .allocate(capacity: 1), offsets: offsets, count: 0)
        self.init(
            base: base, segmentNames: base.segmentNames, number: number, overlayIDs: ids,
            overlayFeatures: .allocate(capacity: 1), overlayMasks: .allocate(capacity: 1), overlayBaseIndex: [])
    }

    deinit {
        overlayFeatures.deallocate()
        overlayMasks.deallocate()
    }

    /// Feature names (the base's schema; upserts cannot add features).
    public var featureNames: [String] { base.featureNames }

    /// Distinct customers visible: the base plus new customers from upserts.
    public var customerCount: Int { base.count + newCustomerCount }

    /// The record for the UTF-8 `id`: the overlay first, then the base, else the cold-start
    /// defaults. Lock-free and allocation-free; the buffer lives as long as this generation.
    @inline(__always)
    public func lookup(_ id: UnsafeRawBufferPointer) -> CustomerView {
        let featureCount = base.featureCount
        if overlayCount > 0 {
            let i = overlayIDs.lookup(id)
            if i >= 0 {
                return CustomerView(
                    source: .overlay,
                    features: UnsafeBufferPointer(start: overlayFeatures + Int(i) * featureCount, count: featureCount),
                    segments: overlayMasks[Int(i)])
            }
        }
        let b = base.lookup(id)
        if b >= 0 {
            return CustomerView(source: .base, features: base.features(at: b), segments: base.segments(at: b))
        }
        return CustomerView(source: .unknown, features: base.defaultFeatures, segments: 0)
    }

    /// `lookup` for a `String` id (admin paths and tests).
    public func lookup(_ id: String) -> CustomerView {
        var id = id
        return id.withUTF8 { lookup(UnsafeRawBufferPointer($0)) }
    }

    /// The names of the segments set in `mask`, in bit order.
    public func segmentNames(in mask: UInt64) -> [String] {
        segmentNames.indices.filter { mask & (1 << UInt64($0)) != 0 }.map { segmentNames[$0] }
    }
}
