/// Builds protobuf wire bytes by hand, so tests can shuffle, repeat and pad fields and insert
/// unknown ones in ways no protobuf library writes.
struct WireBuilder {
    /// The wire types a field value can have (end-group only closes a group).
    static let wireTypes: [UInt8] = [0, 1, 2, 3, 5]

    var bytes: [UInt8] = []

    /// A varint; `padding` extra bytes make a valid over-long form (at most 10 bytes in all).
    mutating func varint(_ value: UInt64, padding: Int = 0) {
        var rest = value
        var written = 1
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
            written += 1
        }
        var pad = min(padding, 10 - written)
        guard pad > 0 else {
            bytes.append(UInt8(rest))
            return
        }
        bytes.append(UInt8(rest) | 0x80)
        while pad > 1 {
            bytes.append(0x80)
            pad -= 1
        }
        bytes.append(0)
    }

    /// A field key, sometimes over-long (never past the 5 bytes SwiftProtobuf allows for keys).
    mutating func key(_ number: Int, _ wire: UInt8, _ rng: inout SplitMix64) {
        let key = UInt64(number) << 3 | UInt64(wire)
        guard rng.percent(3) else { return varint(key) }
        var minimal = 1
        while minimal < 10 && key >> (7 * UInt64(minimal)) != 0 { minimal += 1 }
        varint(key, padding: rng.int(0...max(0, 5 - minimal)))
    }

    /// A varint field (value sometimes over-long).
    mutating func varintField(_ number: Int, _ value: UInt64, _ rng: inout SplitMix64) {
        key(number, 0, &rng)
        varint(value, padding: rng.percent(3) ? rng.int(1...9) : 0)
    }

    /// A length-delimited field (length prefix sometimes over-long).
    mutating func lengthDelimited(_ number: Int, _ body: [UInt8], _ rng: inout SplitMix64) {
        key(number, 2, &rng)
        varint(UInt64(body.count), padding: rng.percent(2) ? rng.int(1...4) : 0)
        bytes.append(contentsOf: body)
    }

    /// A fixed64 field, little-endian.
    mutating func fixed64Field(_ number: Int, _ bits: UInt64, _ rng: inout SplitMix64) {
        key(number, 1, &rng)
        var rest = bits
        for _ in 0..<8 {
            bytes.append(UInt8(truncatingIfNeeded: rest))
            rest >>= 8
        }
    }

    /// A field the message does not define (or a defined number with a wire type it does not
    /// use, when `number` is a known one): any wire type, groups nested up to `depth` levels.
    mutating func unknownField(_ number: Int, _ rng: inout SplitMix64, depth: Int = 2, wire: UInt8? = nil) {
        let wire = wire ?? Self.wireTypes[rng.below(5)]
        switch wire {
        case 0: varintField(number, rng.varintValue(), &rng)
        case 1: fixed64Field(number, rng.next(), &rng)
        case 2: lengthDelimited(number, (0..<rng.int(0...12)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, &rng)
        case 3:
            key(number, 3, &rng)
            for _ in 0..<(depth > 0 ? rng.int(0...3) : 0) {
                unknownField(Self.randomFieldNumber(&rng, lowest: 1), &rng, depth: depth - 1)
            }
            key(number, 4, &rng)
        default:
            key(number, 5, &rng)
            for _ in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
        }
    }

    /// A field number at or above `lowest`, biased towards small and extreme values.
    static func randomFieldNumber(_ rng: inout SplitMix64, lowest: Int) -> Int {
        switch rng.below(4) {
        case 0: return lowest + rng.below(20)
        case 1: return rng.pick([lowest, 1000, 16, 2047, 2048, 262_143, 536_870_911].filter { $0 >= lowest })
        default: return rng.int(lowest...536_870_911)
        }
    }

    /// Inserts `count` unknown fields between whole fields of `fields` and joins them. A
    /// `known` number may be used with a wrong wire type (SwiftProtobuf skips those too).
    static func join(
        _ fields: [[UInt8]],
        unknowns count: Int,
        lowestUnknown: Int,
        wrongWire: [(number: Int, wire: UInt8)],
        _ rng: inout SplitMix64
    ) -> [UInt8] {
        var fields = fields
        if count == 0 { return concatenate(fields) }
        for _ in 0..<count {
            var builder = WireBuilder()
            if !wrongWire.isEmpty && rng.percent(25) {
                let (number, correct) = rng.pick(wrongWire)
                var wire = correct
                while wire == correct { wire = Self.wireTypes[rng.below(5)] }
                builder.unknownField(number, &rng, wire: wire)
            } else {
                builder.unknownField(randomFieldNumber(&rng, lowest: lowestUnknown), &rng)
            }
            fields.insert(builder.bytes, at: rng.int(0...fields.count))
        }
        return concatenate(fields)
    }

    /// Joins encoded fields (a plain loop: `flatMap` is slow in debug builds).
    static func concatenate(_ fields: [[UInt8]]) -> [UInt8] {
        var total = 0
        for field in fields { total += field.count }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        for field in fields { bytes.append(contentsOf: field) }
        return bytes
    }
}
