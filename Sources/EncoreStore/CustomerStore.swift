/// Customers' stored features and segments, immutable after load and laid out for scale:
/// one contiguous row-major `Float32` matrix (`count x featureCount`), one `UInt64` segment
/// bitmask per customer, the ids in one byte arena with offsets, and an open-addressing hash
/// index of `Int32` slots. 10M customers x 32 features take about 1.7 GB.
///
/// Every read (`lookup`, `features(at:)`, `segments(at:)`) is lock-free and allocation-free,
/// for use inline on reactor threads. Load with `CustomerStore.load(contentsOf:)`; layer
/// upserts on top with `CustomerTable`.
public final class CustomerStore: @unchecked Sendable {
    /// Feature names, in column order (the CSV header after `segments`, or the first JSONL
    /// line's `features` keys).
    public let featureNames: [String]
    /// Segment names; bit `i` of `segments(at:)` is `segmentNames[i]` (at most 64).
    public let segmentNames: [String]
    /// Number of customers; indices are `0..<count` in file order.
    public let count: Int
    /// Number of features per customer (`featureNames.count`).
    public let featureCount: Int

    let ids: IdIndex
    let matrix: UnsafeMutablePointer<Float>
    let masks: UnsafeMutablePointer<UInt64>
    let defaults: UnsafeMutablePointer<Float>
    let featureIndex: IdIndex

    /// Takes ownership of the buffers (allocated with `.allocate`): `matrix` holds at least
    /// `ids.count * featureNames.count` floats, `masks` `ids.count` masks, `defaults`
    /// `featureNames.count` floats.
    init(
        featureNames: [String], segmentNames: [String], ids: IdIndex, matrix: UnsafeMutablePointer<Float>,
        masks: UnsafeMutablePointer<UInt64>, defaults: UnsafeMutablePointer<Float>
    ) throws {
        precondition(segmentNames.count <= SegmentTable.maxSegments)
        self.featureNames = featureNames
        self.segmentNames = segmentNames
        self.ids = ids
        self.count = ids.count
        self.featureCount = featureNames.count
        self.matrix = matrix
        self.masks = masks
        self.defaults = defaults
        do {
            featureIndex = try IdIndex(featureNames)
        } catch let dup as IdIndex.Duplicate {
            matrix.deallocate()
            masks.deallocate()
            defaults.deallocate()
            throw StoreError(.duplicateID, "duplicate feature name \"\(featureNames[dup.duplicate])\"")
        }
    }

    deinit {
        matrix.deallocate()
        masks.deallocate()
        defaults.deallocate()
    }

    /// The index of the customer whose id is the UTF-8 `id`, or -1 if unknown (the caller then
    /// treats the customer as cold-start: `defaultFeatures`, no segments). No allocation, no lock.
    @inline(__always)
    public func lookup(_ id: UnsafeRawBufferPointer) -> Int32 { ids.lookup(id) }

    /// The index of the customer `id`, or -1 (convenience for admin paths and tests).
    public func lookup(_ id: String) -> Int32 {
        var id = id
        return id.withUTF8 { ids.lookup(UnsafeRawBufferPointer($0)) }
    }

    /// The features of customer `index` (0 <= index < count), in `featureNames` order. The
    /// buffer lives as long as this store.
    @inline(__always)
    public func features(at index: Int32) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: matrix + Int(index) * featureCount, count: featureCount)
    }

    /// The segment bitmask of customer `index`; bit `i` means `segmentNames[i]`.
    @inline(__always)
    public func segments(at index: Int32) -> UInt64 { masks[Int(index)] }

    /// The id of customer `index` (allocates a `String`).
    public func customerID(at index: Int32) -> String { ids.string(at: Int(index)) }

    /// The UTF-8 bytes of customer `index`'s id (valid as long as this store).
    public func customerIDBytes(at index: Int32) -> UnsafeRawBufferPointer { ids.id(at: Int(index)) }

    /// The features used for an unknown (cold-start) customer: the per-feature **mean** over
    /// every customer in the loaded file (zeros for an empty store), so a cold-start customer
    /// scores like an average one rather than like one with every feature at zero.
    public var defaultFeatures: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: defaults, count: featureCount)
    }

    /// The column of feature `name`, or nil.
    public func featureIndex(named name: String) -> Int? {
        var name = name
        let i = name.withUTF8 { featureIndex.lookup(UnsafeRawBufferPointer($0)) }
        return i < 0 ? nil : Int(i)
    }

    /// The names of the segments set in `mask`, in bit order.
    public func segmentNames(in mask: UInt64) -> [String] {
        segmentNames.indices.filter { mask & (1 << UInt64($0)) != 0 }.map { segmentNames[$0] }
    }

    /// Approximate bytes held by the store (matrix, masks, id arena, offsets, hash slots).
    public var memoryBytes: Int {
        count * featureCount * 4 + count * 8 + ids.footprintBytes
    }

    /// An empty store with the given schema (no customers; default features are zeros).
    public static func empty(featureNames: [String] = [], segmentNames: [String] = []) throws -> CustomerStore {
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        offsets[0] = 0
        let defaults = UnsafeMutablePointer<Float>.allocate(capacity: max(featureNames.count, 1))
        defaults.initialize(repeating: 0, count: max(featureNames.count, 1))
        return try CustomerStore(
            featureNames: featureNames, segmentNames: segmentNames,
            ids: IdIndex(arena: .allocate(capacity: 1), offsets: offsets, count: 0),
            matrix: .allocate(capacity: 1), masks: .allocate(capacity: 1), defaults: defaults)
    }
}
