import EncoreEngine

#if canImport(Glibc)
    import Glibc
#endif

/// Turns the binary records of `DecisionWorkspace.logDecision` / `DecisionLog.appendOutcome`
/// into the JSON lines of docs/logs.md. Runs on the log writer thread only.
enum DecisionRecordFormatter {
    /// The writer thread's last looked-up names (only the writer thread calls the formatter).
    nonisolated(unsafe) static var cachedNamesID: UInt32 = 0
    nonisolated(unsafe) static var cachedNames: LogNames? = nil
    static let outcomeNames = ["unspecified", "shown", "accepted", "declined", "ignored"]

    static func appendJSON(_ record: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var r = LogReader(record)
        _ = r.u8()
        let time = r.i64()
        let namesID = r.u32()
        // One table lookup (a mutex) per model, not per record.
        if namesID != cachedNamesID {
            cachedNames = LogNameTable.names(namesID)
            cachedNamesID = namesID
        }
        let names = cachedNames
        var j = JSONWriter(out: out)
        out = []
        j.raw("{\"v\": 1, \"type\": \"decision\", \"decision_id\": ")
        j.string(r.string())
        j.raw(", \"request_id\": ")
        j.string(r.string())
        j.raw(", \"time_ms\": ")
        j.integer(time)
        j.raw(", \"surface\": ")
        j.string(r.string())
        j.raw(", \"customer_id\": ")
        j.string(r.string())
        let flags = r.u8()
        j.raw(
            flags & 1 != 0
                ? ", \"known_customer\": true, \"model_version\": " : ", \"known_customer\": false, \"model_version\": "
        )
        j.string(names?.modelVersion ?? "unknown")
        j.raw(", \"exploration\": ")
        j.string(names?.exploration ?? "unknown")
        j.raw(
            flags & 2 != 0
                ? ", \"holdout\": true, \"order\": {\"order_id\": " : ", \"holdout\": false, \"order\": {\"order_id\": "
        )
        j.string(r.string())
        j.raw(", \"total_cents\": ")
        j.integer(r.i64())
        j.raw(", \"currency\": ")
        j.string(r.string())
        j.raw(
            flags & 4 != 0
                ? ", \"is_gift\": true, \"shipping_method\": " : ", \"is_gift\": false, \"shipping_method\": ")
        j.string(r.string())
        j.raw(", \"channel\": ")
        j.string(r.string())
        j.raw(", \"device\": ")
        j.string(r.string())
        j.raw(", \"country\": ")
        j.string(r.string())
        j.raw(", \"items\": [")
        let items = Int(r.u16())
        for i in 0..<items {
            if i > 0 { j.raw(", ") }
            j.raw("{\"sku\": ")
            j.string(r.string())
            j.raw(", \"category\": ")
            j.string(r.string())
            j.raw(", \"price_cents\": ")
            j.integer(r.i64())
            j.raw(", \"quantity\": ")
            j.integer(r.u32())
            j.raw("}")
        }
        j.raw("]}, \"request_features\": {")
        let features = Int(r.u16())
        for i in 0..<features {
            if i > 0 { j.raw(", ") }
            j.string(r.string())
            j.raw(": ")
            j.number(r.f64())
        }
        let segments = r.u64()
        j.raw("}, \"customer\": {\"segments\": [")
        var first = true
        if let segmentNames = names?.segmentNames {
            for (bit, name) in segmentNames.enumerated() where bit < 64 && segments & (1 << UInt64(bit)) != 0 {
                if !first { j.raw(", ") }
                first = false
                j.string(name)
            }
        }
        j.raw("], \"features\": {")
        let customerCount = Int(r.u16())
        for i in 0..<customerCount {
            let v = r.f32()
            if i > 0 { j.raw(", ") }
            j.string(names.map { i < $0.customerFeatureNames.count ? $0.customerFeatureNames[i] : "#\(i)" } ?? "#\(i)")
            j.raw(": ")
            j.number(v)
        }
        j.raw("}}, \"context\": {")
        let width = Int(r.u16())
        for i in 0..<width {
            let v = r.f32()
            if i > 0 { j.raw(", ") }
            j.string(names.map { i < $0.contextNames.count ? $0.contextNames[i] : "#\(i)" } ?? "#\(i)")
            j.raw(": ")
            j.number(v)
        }
        j.raw("}, \"candidates\": [")
        let candidates = Int(r.u16())
        for i in 0..<candidates {
            if i > 0 { j.raw(", ") }
            j.string(offerName(names, Int32(bitPattern: r.u32())))
        }
        j.raw("], \"placements\": [")
        let placements = Int(r.u8())
        for i in 0..<placements {
            if i > 0 { j.raw(", ") }
            j.raw("{\"offer_id\": ")
            j.string(offerName(names, Int32(bitPattern: r.u32())))
            j.raw(", \"slot\": ")
            j.integer(r.u32())
            j.raw(", \"propensity\": ")
            j.number(r.f64())
            j.raw(", \"score\": ")
            j.number(r.f64())
            j.raw(", \"expected_value\": ")
            j.number(r.f64())
            j.raw("}")
        }
        j.raw("], \"joint_propensity\": ")
        j.number(r.f64())
        j.raw("}\n")
        out = j.out
        if r.failed {
            out.append(
                contentsOf: Array("{\"v\": 1, \"type\": \"error\", \"message\": \"malformed decision record\"}\n".utf8))
        }
    }

    static func appendOutcomeJSON(_ record: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var r = LogReader(record)
        _ = r.u8()
        let time = r.i64()
        var j = JSONWriter(out: out)
        out = []
        j.raw("{\"v\": 1, \"type\": \"outcome\", \"decision_id\": ")
        j.string(r.string())
        j.raw(", \"offer_id\": ")
        j.string(r.string())
        let outcome = Int(Int32(bitPattern: r.u32()))
        j.raw(", \"outcome\": ")
        j.string(outcomeNames.indices.contains(outcome) ? outcomeNames[outcome] : "code_\(outcome)")
        j.raw(", \"revenue_cents\": \(r.i64()), \"time_ms\": \(time)}\n")
        out = j.out
    }

    static func offerName(_ names: LogNames?, _ index: Int32) -> String {
        guard let names, index >= 0, Int(index) < names.offerIDs.count else { return "#\(index)" }
        return names.offerIDs[Int(index)]
    }
}

/// Appends JSON tokens to a byte buffer.
struct JSONWriter {
    var out: [UInt8]

    mutating func raw(_ s: StaticString) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    mutating func raw(_ s: String) { out.append(contentsOf: s.utf8) }

    /// Shortest round-trip decimal (Swift's description); null for NaN/Inf.
    mutating func number(_ v: Double) {
        if v.isFinite { raw(v.description) } else { raw("null") }
    }

    /// A Float32 value in its own shortest round-trip form (short enough for Swift's small-string
    /// storage, so usually no allocation).
    mutating func number(_ v: Float) {
        if v.isFinite { raw(v.description) } else { raw("null") }
    }

    mutating func integer<T: BinaryInteger>(_ value: T) {
        var v = Int64(value)
        if v < 0 {
            out.append(UInt8(ascii: "-"))
            if v == Int64.min {
                raw("9223372036854775808")
                return
            }
            v = -v
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[n] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                n += 1
            } while v > 0
            for i in stride(from: n - 1, through: 0, by: -1) { out.append(d[i]) }
        }
    }

    mutating func string(_ s: String) {
        var copy = s
        copy.withUTF8 { string(UnsafeRawBufferPointer($0)) }
    }

    mutating func string(_ bytes: UnsafeRawBufferPointer) {
        out.append(UInt8(ascii: "\""))
        let digits: StaticString = "0123456789abcdef"
        let hex = digits.utf8Start
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                raw("\\u00")
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
