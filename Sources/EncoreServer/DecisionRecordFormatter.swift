import EncoreEngine

/// Turns the binary records of `DecisionWorkspace.logDecision` / `DecisionLog.appendOutcome`
/// into the JSON lines of docs/logs.md. One instance per log writer thread: it caches the
/// current model's names already rendered as JSON bytes, so a record costs byte copies, number
/// formatting and the escaping of its own strings, and nothing per name.
struct DecisionRecordFormatter {
    private var namesID: UInt32 = 0
    private var names = RenderedLogNames(nil)
    /// The current record's customer feature values and where their text sits in the output:
    /// the context repeats them (its `customer.*` features), so that text is copied rather than
    /// formatted again.
    private var customerText: [(bits: UInt32, offset: Int, count: Int)] = []

    static let outcomeNames = ["unspecified", "shown", "accepted", "declined", "ignored"]

    /// `, "replica": "<name>"`, rendered once, appended as the last field of every record (empty:
    /// no replica field).
    private let replicaField: [UInt8]

    /// `replica` names the server that wrote the records (`encore serve --replica-name`, by
    /// default its instance id), so logs collected from a fleet say where each record came from.
    init(replica: String? = nil) {
        guard let replica else {
            replicaField = []
            return
        }
        var out = JSONLineBuffer(capacity: 64 + 6 * replica.utf8.count)
        defer { out.deallocate() }
        out.append(", \"replica\": ")
        out.appendQuoted(replica)
        replicaField = Array(out.bytes)
    }

    /// Appends one decision line (or, for a malformed record, one error line) to `out`.
    mutating func appendDecision(_ record: UnsafeRawBufferPointer, to out: inout JSONLineBuffer) {
        let start = out.count
        var r = LogReader(record)
        _ = r.u8()
        let time = r.i64()
        let id = r.u32()
        // One table lookup (a mutex) and one rendering per model, not per record.
        if id != namesID {
            names = RenderedLogNames(LogNameTable.names(id))
            namesID = id
        }
        customerText.removeAll(keepingCapacity: true)
        names.blob.withUnsafeBytes { blob in
            format(&r, time: time, blob: blob, to: &out)
        }
        if r.failed {
            out.truncate(to: start)
            out.append("{\"v\": 1, \"type\": \"error\", \"message\": \"malformed decision record\"}\n")
        }
    }

    private mutating func format(
        _ r: inout LogReader, time: Int64, blob: UnsafeRawBufferPointer, to j: inout JSONLineBuffer
    ) {
        @inline(__always) func name(_ span: RenderedLogNames.Span) {
            j.append(UnsafeRawBufferPointer(rebasing: blob[span.range]))
        }
        j.append("{\"v\": 1, \"type\": \"decision\", \"decision_id\": ")
        j.appendQuoted(r.string())
        j.append(", \"request_id\": ")
        j.appendQuoted(r.string())
        j.append(", \"time_ms\": ")
        j.appendInteger(time)
        j.append(", \"surface\": ")
        j.appendQuoted(r.string())
        j.append(", \"customer_id\": ")
        j.appendQuoted(r.string())
        let flags = r.u8()
        j.append(flags & 1 != 0 ? ", \"known_customer\": true" : ", \"known_customer\": false")
        j.append(", \"model_version\": ")
        name(names.modelVersion)
        j.append(", \"exploration\": ")
        name(names.exploration)
        j.append(flags & 2 != 0 ? ", \"holdout\": true" : ", \"holdout\": false")
        // Non-finite scores: this decision used the uniform policy (docs/logs.md).
        if flags & 8 != 0 { j.append(", \"uniform_fallback\": true") }
        j.append(", \"order\": {\"order_id\": ")
        j.appendQuoted(r.string())
        j.append(", \"total_cents\": ")
        j.appendInteger(r.i64())
        j.append(", \"currency\": ")
        j.appendQuoted(r.string())
        j.append(flags & 4 != 0 ? ", \"is_gift\": true" : ", \"is_gift\": false")
        j.append(", \"shipping_method\": ")
        j.appendQuoted(r.string())
        j.append(", \"channel\": ")
        j.appendQuoted(r.string())
        j.append(", \"device\": ")
        j.appendQuoted(r.string())
        j.append(", \"country\": ")
        j.appendQuoted(r.string())
        j.append(", \"items\": [")
        let items = Int(r.u16())
        for i in 0..<items {
            j.append(i > 0 ? ", {\"sku\": " : "{\"sku\": ")
            j.appendQuoted(r.string())
            j.append(", \"category\": ")
            j.appendQuoted(r.string())
            j.append(", \"price_cents\": ")
            j.appendInteger(r.i64())
            j.append(", \"quantity\": ")
            j.appendInteger(Int64(r.u32()))
            j.append("}")
        }
        j.append("]}, \"request_features\": {")
        let features = Int(r.u16())
        for i in 0..<features {
            if i > 0 { j.append(", ") }
            j.appendQuoted(r.string())
            j.append(": ")
            j.appendNumber(r.f64())
        }
        let segments = r.u64()
        j.append("}, \"customer\": {\"segments\": [")
        var first = true
        for (bit, span) in names.segments.enumerated() where bit < 64 && segments & (1 << UInt64(bit)) != 0 {
            if !first { j.append(", ") }
            first = false
            name(span)
        }
        j.append("], \"features\": {")
        let customerCount = Int(r.u16())
        for i in 0..<customerCount {
            let v = r.f32()
            if i > 0 { j.append(", ") }
            if i < names.customerKeys.count {
                name(names.customerKeys[i])
            } else {
                j.appendQuoted("#\(i)")
                j.append(": ")
            }
            let offset = j.count
            j.appendNumber(v)
            if customerText.count < 64 { customerText.append((v.bitPattern, offset, j.count - offset)) }
        }
        j.append("}}, \"context\": {")
        let width = Int(r.u16())
        for i in 0..<width {
            let v = r.f32()
            if i > 0 { j.append(", ") }
            if i < names.contextKeys.count {
                name(names.contextKeys[i])
            } else {
                j.appendQuoted("#\(i)")
                j.append(": ")
            }
            if let same = customerText.first(where: { $0.bits == v.bitPattern }) {
                j.appendCopy(offset: same.offset, count: same.count)
            } else {
                j.appendNumber(v)
            }
        }
        j.append("}, \"candidates\": [")
        let candidates = Int(r.u16())
        for i in 0..<candidates {
            if i > 0 { j.append(", ") }
            offer(Int32(bitPattern: r.u32()), blob: blob, to: &j)
        }
        j.append("], \"placements\": [")
        let placements = Int(r.u8())
        for i in 0..<placements {
            j.append(i > 0 ? ", {\"offer_id\": " : "{\"offer_id\": ")
            offer(Int32(bitPattern: r.u32()), blob: blob, to: &j)
            j.append(", \"slot\": ")
            j.appendInteger(Int64(r.u32()))
            j.append(", \"propensity\": ")
            j.appendNumber(r.f64())
            j.append(", \"score\": ")
            j.appendNumber(r.f64())
            j.append(", \"expected_value\": ")
            j.appendNumber(r.f64())
            j.append("}")
        }
        j.append("], \"joint_propensity\": ")
        j.appendNumber(r.f64())
        appendReplica(to: &j)
        j.append("}\n")
    }

    private func appendReplica(to out: inout JSONLineBuffer) {
        if !replicaField.isEmpty { replicaField.withUnsafeBytes { out.append($0) } }
    }

    private func offer(_ index: Int32, blob: UnsafeRawBufferPointer, to j: inout JSONLineBuffer) {
        if index >= 0 && Int(index) < names.offers.count {
            j.append(UnsafeRawBufferPointer(rebasing: blob[names.offers[Int(index)].range]))
        } else {
            j.appendQuoted("#\(index)")
        }
    }

    /// Appends one outcome line to `out`.
    func appendOutcome(_ record: UnsafeRawBufferPointer, to out: inout JSONLineBuffer) {
        let start = out.count
        var r = LogReader(record)
        _ = r.u8()
        let time = r.i64()
        out.append("{\"v\": 1, \"type\": \"outcome\", \"decision_id\": ")
        out.appendQuoted(r.string())
        out.append(", \"offer_id\": ")
        out.appendQuoted(r.string())
        let outcome = Int(Int32(bitPattern: r.u32()))
        out.append(", \"outcome\": ")
        out.appendQuoted(Self.outcomeNames.indices.contains(outcome) ? Self.outcomeNames[outcome] : "code_\(outcome)")
        out.append(", \"revenue_cents\": ")
        out.appendInteger(r.i64())
        out.append(", \"time_ms\": ")
        out.appendInteger(time)
        appendReplica(to: &out)
        out.append("}\n")
        if r.failed {
            out.truncate(to: start)
            out.append("{\"v\": 1, \"type\": \"error\", \"message\": \"malformed outcome record\"}\n")
        }
    }
}

/// One model's `LogNames` rendered once as JSON bytes: quoted strings for values, `"name": `
/// for object keys, all in one blob.
struct RenderedLogNames {
    struct Span {
        var start: Int32
        var count: Int32
        var range: Range<Int> { Int(start)..<Int(start) + Int(count) }
    }

    private(set) var blob: [UInt8] = []
    private(set) var modelVersion = Span(start: 0, count: 0)
    private(set) var exploration = Span(start: 0, count: 0)
    private(set) var offers: [Span] = []
    private(set) var segments: [Span] = []
    private(set) var customerKeys: [Span] = []
    private(set) var contextKeys: [Span] = []

    /// `nil` (names no longer in the table) renders "unknown" versions and `#<index>` names.
    init(_ names: LogNames?) {
        var out = JSONLineBuffer(capacity: 4096)
        defer { out.deallocate() }
        func render(_ text: String, key: Bool) -> Span {
            let start = out.count
            out.appendQuoted(text)
            if key { out.append(": ") }
            return Span(start: Int32(start), count: Int32(out.count - start))
        }
        modelVersion = render(names?.modelVersion ?? "unknown", key: false)
        exploration = render(names?.exploration ?? "unknown", key: false)
        if let names {
            offers = names.offerIDs.map { render($0, key: false) }
            segments = names.segmentNames.map { render($0, key: false) }
            customerKeys = names.customerFeatureNames.map { render($0, key: true) }
            contextKeys = names.contextNames.map { render($0, key: true) }
        }
        blob = Array(out.bytes)
    }
}
