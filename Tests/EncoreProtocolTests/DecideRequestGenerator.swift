/// Generates `DecideRequest` wire bytes with random field presence, extreme values, repeated
/// scalars and `order` messages (which merge), shuffled field order and unknown fields of every
/// wire type. Deterministic for a seed.
struct DecideRequestGenerator {
    var rng: SplitMix64
    /// Small messages only (at most 2 entries per repeated field, strings under 64 bytes): the
    /// mutation tests need structure, not bulk, and SwiftProtobuf is slow in debug builds.
    var small: Bool

    /// Typical offer ids, made once.
    static let offerIDs: [[UInt8]] = (0..<200).map { Array("o\($0)".utf8) }
    /// Typical feature keys, made once (enough for the largest map generated).
    static let featureKeys: [[UInt8]] = (0..<150).map { Array("f\($0)".utf8) }

    init(seed: UInt64, small: Bool = false) {
        rng = SplitMix64(seed: seed)
        self.small = small
    }

    /// How many times a singular field appears: usually 0 or 1, sometimes repeated.
    mutating func occurrences() -> Int {
        switch rng.below(100) {
        case 0..<35: 0
        case 35..<90: 1
        case 90..<97: 2
        default: 3
        }
    }

    /// A size from a distribution with a long tail up to `max`.
    mutating func count(max: Int) -> Int {
        if small { return rng.int(0...2) }
        return switch rng.below(100) {
        case 0..<45: 0
        case 45..<90: rng.int(1...min(3, max))
        case 90..<98: rng.int(1...min(20, max))
        default: rng.int(0...max)
        }
    }

    /// Joins fields, optionally shuffled, with unknown fields inserted.
    mutating func assemble(_ fields: [[UInt8]], lowestUnknown: Int, wrongWire: [(Int, UInt8)]) -> [UInt8] {
        var fields = fields
        if rng.percent(30) { fields.shuffle(using: &rng) }
        let unknowns = rng.percent(60) ? 0 : rng.int(1...4)
        return WireBuilder.join(fields, unknowns: unknowns, lowestUnknown: lowestUnknown, wrongWire: wrongWire, &rng)
    }

    /// One encoded field.
    mutating func field(_ build: (inout WireBuilder, inout SplitMix64) -> Void) -> [UInt8] {
        var builder = WireBuilder()
        build(&builder, &rng)
        return builder.bytes
    }

    /// A short id: mostly ASCII, sometimes empty or non-ASCII.
    mutating func shortID() -> [UInt8] {
        rng.percent(85) ? Self.offerIDs[rng.below(Self.offerIDs.count)] : rng.utf8String(maxLong: 64)
    }

    /// A whole `DecideRequest`.
    mutating func message() -> [UInt8] {
        var fields: [[UInt8]] = []
        for number in [1, 2, 7] {
            for _ in 0..<occurrences() {
                let value = rng.utf8String(maxLong: small ? 63 : 4096)
                fields.append(field { $0.lengthDelimited(number, value, &$1) })
            }
        }
        for _ in 0..<occurrences() {
            let value = rng.varintValue()
            fields.append(field { $0.varintField(4, value, &$1) })
        }
        for _ in 0..<count(max: 80) {
            let value = shortID()
            fields.append(field { $0.lengthDelimited(5, value, &$1) })
        }
        let featureCount = count(max: 150)
        let keys = (0..<max(1, featureCount * 3 / 4)).map { index in
            rng.percent(80) ? Self.featureKeys[index] : rng.utf8String(maxLong: 64)
        }
        for _ in 0..<featureCount {
            let entry = featureEntry(keys: keys)
            fields.append(field { $0.lengthDelimited(6, entry, &$1) })
        }
        for _ in 0..<occurrences() {
            let order = order()
            fields.append(field { $0.lengthDelimited(3, order, &$1) })
        }
        let wrongWire: [(Int, UInt8)] = [(1, 2), (2, 2), (3, 2), (4, 0), (5, 2), (6, 2), (7, 2)]
        return assemble(fields, lowestUnknown: 8, wrongWire: wrongWire)
    }

    /// One `features` map entry body, in the many shapes the wire allows.
    mutating func featureEntry(keys: [[UInt8]]) -> [UInt8] {
        let key = rng.pick(keys)
        let value = rng.doubleBits()
        var parts: [[UInt8]] = []
        let keyField = field { $0.lengthDelimited(1, key, &$1) }
        let valueField = field { $0.fixed64Field(2, value, &$1) }
        switch rng.below(100) {
        case 0..<70: parts = [keyField, valueField]
        case 70..<78: parts = [valueField, keyField]
        case 78..<83: parts = [keyField]
        case 83..<88: parts = [valueField]
        case 88..<91: parts = []
        case 91..<95:
            let other = rng.pick(keys)
            parts = [field { $0.lengthDelimited(1, other, &$1) }, keyField, valueField]
        case 95..<100 where rng.below(50) != 0:
            parts = [field { $0.fixed64Field(2, $1.doubleBits(), &$1) }, keyField, valueField]
        default:
            // A key or value with the wrong wire type: SwiftProtobuf then reads its payload as
            // the next key, which usually (not always) fails.
            parts = [field { $0.varintField($1.int(1...2), UInt64($1.below(300)), &$1) }, keyField, valueField]
        }
        if rng.percent(5) {
            parts.insert(
                field { $0.unknownField(WireBuilder.randomFieldNumber(&$1, lowest: 3), &$1) },
                at: rng.int(0...parts.count))
        }
        return WireBuilder.concatenate(parts)
    }

    /// One `Order` body.
    mutating func order() -> [UInt8] {
        var fields: [[UInt8]] = []
        for number in [1, 3, 5, 6, 7, 8] {
            for _ in 0..<occurrences() {
                let value = number == 3 || number == 8 ? shortID() : rng.utf8String(maxLong: small ? 63 : 4096)
                fields.append(field { $0.lengthDelimited(number, value, &$1) })
            }
        }
        for _ in 0..<occurrences() {
            let value = rng.varintValue()
            fields.append(field { $0.varintField(2, value, &$1) })
        }
        for _ in 0..<occurrences() {
            let value = rng.percent(70) ? UInt64(rng.below(2)) : rng.varintValue()
            fields.append(field { $0.varintField(9, value, &$1) })
        }
        let itemCount = !small && rng.below(1000) < 8 ? rng.int(41...140) : count(max: 12)
        for _ in 0..<itemCount {
            let item = lineItem()
            fields.append(field { $0.lengthDelimited(4, item, &$1) })
        }
        let wrongWire: [(Int, UInt8)] = [(1, 2), (2, 0), (4, 2), (9, 0)]
        return assemble(fields, lowestUnknown: 10, wrongWire: wrongWire)
    }

    /// One `LineItem` body.
    mutating func lineItem() -> [UInt8] {
        var fields: [[UInt8]] = []
        for number in [1, 2] {
            for _ in 0..<occurrences() {
                let value = shortID()
                fields.append(field { $0.lengthDelimited(number, value, &$1) })
            }
        }
        for number in [3, 4] {
            for _ in 0..<occurrences() {
                let value = rng.varintValue()
                fields.append(field { $0.varintField(number, value, &$1) })
            }
        }
        return assemble(fields, lowestUnknown: 5, wrongWire: [(1, 2), (3, 0), (4, 0)])
    }
}
