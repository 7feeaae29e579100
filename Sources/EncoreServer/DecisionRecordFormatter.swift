import EncoreEngine

/// Turns the binary records of `DecisionWorkspace.logDecision` / `DecisionLog.appendOutcome`
/// into the JSON lines of docs/logs.md. Runs on the log writer thread only.
enum DecisionRecordFormatter {
    static let outcomeNames = ["unspecified", "shown", "accepted", "declined", "ignored"]

    static func appendJSON(_ record: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var r = LogReader(record)
        _ = r.u8()
        let time = r.i64()
        let namesID = r.u32()
        let names = LogNameTable.names(namesID)
        var j = JSONWriter(out: out)
        out = []
        j.raw("{\"v\": 1, \"type\": \"decision\", \"decision_id\": ")
        j.string(r.string())
        j.raw(", \"request_id\": ")
        j.string(r.string())
        j.raw(", \"time_ms\": \(time), \"surface\": ")
        j.string(r.string())
        j.raw(", \"customer_id\": ")
        j.string(r.string())
        let flags = r.u8()
        j.raw(", \"known_customer\": \(flags & 1 != 0), \"model_version\": ")
        j.string(names?.modelVersion ?? "unknown")
        j.raw(", \"exploration\": ")
        j.string(names?.exploration ?? "unknown")
        j.raw(", \"holdout\": \(flags & 2 != 0), \"order\": {\"order_id\": ")
        j.string(r.string())
        j.raw(", \"total_cents\": \(r.i64()), \"currency\": ")
        j.string(r.string())
        j.raw(", \"is_gift\": \(flags & 4 != 0), \"shipping_method\": ")
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
            j.raw(", \"price_cents\": \(r.i64()), \"quantity\": \(r.u32())}")
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
            j.number(Double(v))
        }
        j.raw("}}, \"context\": {")
        let width = Int(r.u16())
        for i in 0..<width {
            let v = r.f32()
            if i > 0 { j.raw(", ") }
            j.string(names.map { i < $0.contextNames.count ? $0.contextNames[i] : "#\(i)" } ?? "#\(i)")
            j.raw(": ")
            j.number(Double(v))
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
            j.raw(", \"slot\": \(r.u32()), \"propensity\": ")
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

    mutating func raw(_ s: String) { out.append(contentsOf: s.utf8) }

    mutating func number(_ v: Double) {
        if v.isFinite { raw("\(v)") } else { raw("null") }
    }

    mutating func string(_ s: String) {
        var copy = s
        copy.withUTF8 { string(UnsafeRawBufferPointer($0)) }
    }

    mutating func string(_ bytes: UnsafeRawBufferPointer) {
        out.append(UInt8(ascii: "\""))
        let hex = Array("0123456789abcdef".utf8)
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20: out += Array("\\u00".utf8) + [hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
