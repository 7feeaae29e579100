extension CustomerTable {
    /// Builds the generation after `records` (see `upsert`); returns it and the count of
    /// customers new to both base and overlay.
    static func apply(
        _ records: [CustomerUpsert], to old: CustomerGeneration, number: UInt64, maxOverlayCount: Int
    ) throws -> (CustomerGeneration, Int) {
        let base = old.base
        let featureCount = base.featureCount
        var segmentNames = old.segmentNames
        var segmentBit = Dictionary(uniqueKeysWithValues: segmentNames.enumerated().map { ($1, $0) })
        var newIDs: [String] = []
        var count = old.overlayCount
        var rowOf: [String: Int] = [:]
        var baseIndex = old.overlayBaseIndex
        var features: [Float] = Array(
            UnsafeBufferPointer(start: old.overlayFeatures, count: old.overlayCount * featureCount))
        var masks: [UInt64] = Array(UnsafeBufferPointer(start: old.overlayMasks, count: old.overlayCount))
        var inserted = 0
        for (r, record) in records.enumerated() {
            func fail(_ code: StoreError.Code, _ message: String) -> StoreError {
                StoreError(code, "records[\(r)] (customer_id \"\(record.customerID)\"): \(message)")
            }
            let idBytes = record.customerID.utf8.count
            guard idBytes > 0 else { throw StoreError(.missingField, "records[\(r)]: customer_id is empty") }
            guard idBytes <= CustomerUpsert.maxIDBytes else {
                throw fail(.limitExceeded, "customer_id is \(idBytes) bytes (at most \(CustomerUpsert.maxIDBytes))")
            }
            var row: Int
            if let existing = rowOf[record.customerID] {
                row = existing
            } else if case let o = old.overlayIDs.lookup(record.customerID), o >= 0 {
                row = Int(o)
                rowOf[record.customerID] = row
            } else {
                row = count
                let b = base.lookup(record.customerID)
                if b >= 0 {
                    features.append(contentsOf: base.features(at: b))
                    masks.append(base.segments(at: b))
                } else {
                    features.append(contentsOf: repeatElement(0, count: featureCount))
                    masks.append(0)
                    inserted += 1
                }
                newIDs.append(record.customerID)
                count += 1
                baseIndex.append(b)
                rowOf[record.customerID] = row
                guard count <= maxOverlayCount else {
                    throw StoreError(
                        .resourceExhausted,
                        "customer overlay is full (\(maxOverlayCount) customers); compact the table "
                            + "or reload the customer file with these records included")
                }
            }
            for (name, value) in record.features {
                guard let j = base.featureIndex(named: name) else {
                    throw fail(
                        .invalidField, "unknown feature \"\(name)\" (the store's features are fixed by its file)")
                }
                guard value.isFinite else {
                    throw fail(.invalidField, "feature \"\(name)\" is \(value) (must be finite)")
                }
                features[row * featureCount + j] = value
            }
            if let names = record.segments {
                var mask: UInt64 = 0
                for name in names where !name.isEmpty {
                    if segmentBit[name] == nil {
                        guard segmentNames.count < SegmentTable.maxSegments else {
                            throw fail(.limitExceeded, "segment \"\(name)\" would be the 65th distinct segment")
                        }
                        segmentBit[name] = segmentNames.count
                        segmentNames.append(name)
                    }
                    mask |= 1 << UInt64(segmentBit[name]!)
                }
                masks[row] = mask
            }
        }
        let oldBytes = old.overlayIDs.offsets[old.overlayCount]
        let arena = ByteBuffer(capacity: oldBytes + newIDs.reduce(0) { $0 + $1.utf8.count })
        arena.append(UnsafeRawBufferPointer(start: old.overlayIDs.arena, count: oldBytes))
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: count + 1)
        offsets.update(from: old.overlayIDs.offsets, count: old.overlayCount + 1)
        for (k, id) in newIDs.enumerated() {
            arena.append(id)
            offsets[old.overlayCount + k + 1] = arena.count
        }
        let arenaCopy = UnsafeMutablePointer<UInt8>.allocate(capacity: max(arena.count, 1))
        arenaCopy.update(from: arena.base, count: arena.count)
        let overlayIDs = try IdIndex(arena: arenaCopy, offsets: offsets, count: count)
        let f = UnsafeMutablePointer<Float>.allocate(capacity: max(features.count, 1))
        f.initialize(from: features, count: features.count)
        let m = UnsafeMutablePointer<UInt64>.allocate(capacity: max(count, 1))
        m.initialize(from: masks, count: count)
        let next = CustomerGeneration(
            base: base, segmentNames: segmentNames, number: number, overlayIDs: overlayIDs,
            overlayFeatures: f, overlayMasks: m, overlayBaseIndex: baseIndex)
        return (next, inserted)
    }

    /// A new base holding `generation`'s base with its overlay applied (new customers appended
    /// in overlay order). The defaults (per-feature means) are carried over from the old base.
    static func merge(_ generation: CustomerGeneration) throws -> CustomerStore {
        let base = generation.base
        let featureCount = base.featureCount
        let count = base.count + generation.newCustomerCount
        let matrix = UnsafeMutablePointer<Float>.allocate(capacity: max(count * featureCount, 1))
        matrix.update(from: base.matrix, count: base.count * featureCount)
        let masks = UnsafeMutablePointer<UInt64>.allocate(capacity: max(count, 1))
        masks.update(from: base.masks, count: base.count)
        var extraBytes = 0
        for i in 0..<generation.overlayCount where generation.overlayBaseIndex[i] < 0 {
            extraBytes += generation.overlayIDs.id(at: i).count
        }
        let baseBytes = base.ids.offsets[base.count]
        let arena = UnsafeMutablePointer<UInt8>.allocate(capacity: max(baseBytes + extraBytes, 1))
        arena.update(from: base.ids.arena, count: baseBytes)
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: count + 1)
        offsets.update(from: base.ids.offsets, count: base.count + 1)
        var row = base.count
        for i in 0..<generation.overlayCount {
            let source = generation.overlayFeatures + i * featureCount
            var target = Int(generation.overlayBaseIndex[i])
            if target < 0 {
                target = row
                let id = generation.overlayIDs.id(at: i)
                UnsafeMutableRawPointer(arena + offsets[row]).copyMemory(from: id.baseAddress!, byteCount: id.count)
                offsets[row + 1] = offsets[row] + id.count
                row += 1
            }
            (matrix + target * featureCount).update(from: source, count: featureCount)
            masks[target] = generation.overlayMasks[i]
        }
        let defaults = UnsafeMutablePointer<Float>.allocate(capacity: max(featureCount, 1))
        defaults.initialize(from: base.defaults, count: max(featureCount, 1))
        // Ids were unique in base and overlay, and new rows are ids absent from the base.
        let ids = try IdIndex(arena: arena, offsets: offsets, count: count)
        return try CustomerStore(
            featureNames: base.featureNames, segmentNames: generation.segmentNames, ids: ids, matrix: matrix,
            masks: masks, defaults: defaults)
    }
}
