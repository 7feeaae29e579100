import EncoreCrypto
import EncoreDemo
import EncoreModel
import EncoreProtocol
import EncoreServer
import EncoreStore
import SwiftProtobuf

/// The seed inputs checked in under Fuzz/Corpus/<target>: a few valid inputs and edge cases per
/// target, in the input format of its check (see each target). Written by
/// `scripts/fuzz.sh --make-seeds`; replayed by `swift test` with the fuzz corpus.
public enum FuzzSeeds {
    /// The named seeds of the target called `name`.
    public static func seeds(for name: String) -> [(name: String, bytes: [UInt8])] {
        switch name {
        case "decide-request": decideRequests()
        case "outcome-request": outcomeRequests()
        case "grpc-frames": grpcFrames()
        case "http2-stream": http2Streams()
        case "snapshot": snapshots()
        case "catalog-jsonl": catalogs()
        case "customers-csv": customersCSV()
        case "customers-jsonl": customersJSONL()
        case "config": configs()
        case "rule-state": ruleStates()
        default: []
        }
    }

    static func decideRequests() -> [(name: String, bytes: [UInt8])] {
        var full = Encore_V1_DecideRequest()
        full.surface = "cart"
        full.customerID = "c-000042"
        full.requestID = "r-1"
        full.slots = 2
        full.candidateOfferIds = ["gift_box", "rush_shipping"]
        full.features = ["basket_value": 42.5, "is_mobile": 1]
        var order = Encore_V1_Order()
        order.orderID = "o-1"
        order.totalCents = 12_999
        order.currency = "EUR"
        order.shippingMethod = "standard"
        order.channel = "web"
        order.device = "mobile"
        order.country = "DE"
        order.isGift = true
        var item = Encore_V1_LineItem()
        item.sku = "sku-1"
        item.category = "shoes"
        item.priceCents = 9_999
        item.quantity = 1
        order.items = [item, item]
        full.order = order
        var minimal = Encore_V1_DecideRequest()
        minimal.surface = "cart"
        let fullBytes: [UInt8] = try! full.serializedBytes()
        return [
            ("empty", []),
            ("minimal", try! minimal.serializedBytes()),
            ("full", fullBytes),
            // Unknown varint field 15, a group (field 9, start/end) and a repeated surface.
            ("unknown-fields-and-group", [0x78, 0x01, 0x4B, 0x08, 0x01, 0x4C, 0x0A, 0x01, 0x78] + fullBytes),
            // The order field twice (merged) and a map entry without a value.
            ("merged-order-and-bare-map-entry", fullBytes + [0x1A, 0x02, 0x32, 0x00, 0x32, 0x03, 0x0A, 0x01, 0x6B]),
            ("invalid-utf8", [0x0A, 0x02, 0xC3, 0x28]),
            ("truncated", Array(fullBytes.prefix(fullBytes.count / 2))),
        ]
    }

    static func outcomeRequests() -> [(name: String, bytes: [UInt8])] {
        var outcome = Encore_V1_OutcomeRequest()
        outcome.decisionID = "d-0123456789abcdef"
        outcome.offerID = "gift_box"
        outcome.outcome = .accepted
        outcome.revenueCents = 500
        let bytes: [UInt8] = try! outcome.serializedBytes()
        return [
            ("empty", []),
            ("accepted", bytes),
            // outcome 99 (open enum), negative revenue as a 10-byte varint.
            (
                "open-enum-negative-revenue",
                bytes + [0x18, 0x63, 0x20, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
            ),
            ("wrong-wire-type", [0x1A, 0x01, 0x00, 0x0D, 0x00, 0x00, 0x00, 0x00]),
            ("overlong-varint", [0x18] + [UInt8](repeating: 0xFF, count: 11)),
        ]
    }

    static func grpcFrames() -> [(name: String, bytes: [UInt8])] {
        let message: [UInt8] = [0, 0, 0, 0, 6, 0x0A, 0x04, 0x63, 0x61, 0x72, 0x74]
        return [
            ("one-message-whole", [0, 4] + message),
            ("three-messages-byte-by-byte", [1, 4] + message + [0, 0, 0, 0, 0] + message),
            ("compressed-flag", [3, 4, 1, 0, 0, 0, 1, 0xFF]),
            ("bad-flag", [0, 4, 2, 0, 0, 0, 0]),
            ("too-large", [2, 1, 0, 0, 0, 0x10, 0x01] + [UInt8](repeating: 0, count: 20)),
            ("truncated", [0, 4, 0, 0, 0, 0, 9, 1, 2]),
        ]
    }

    static func http2Streams() -> [(name: String, bytes: [UInt8])] {
        func frame(_ type: UInt8, _ flags: UInt8, _ stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
            let n = payload.count
            var out: [UInt8] = [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags]
            out += [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF)]
            out.append(UInt8(stream & 0xFF))
            return out + payload
        }
        func block(_ fields: [(String, String)]) -> [UInt8] {
            var out: [UInt8] = []
            for (name, value) in fields {
                out += [0, UInt8(name.utf8.count)]
                out += Array(name.utf8)
                out.append(UInt8(value.utf8.count))
                out += Array(value.utf8)
            }
            return out
        }
        func head(_ path: String, _ extra: [(String, String)] = []) -> [UInt8] {
            block(
                [
                    (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
                    ("content-type", "application/grpc"), ("te", "trailers"),
                ] + extra)
        }
        let decide: [UInt8] = [0, 0, 0, 0, 6, 0x0A, 0x04, 0x63, 0x61, 0x72, 0x74]
        let settingsAck = frame(4, 1, 0, [])
        let unary =
            settingsAck + frame(1, 0x4, 1, head("/encore.v1.Decisions/Decide", [("grpc-timeout", "1S")]))
            + frame(0, 0x1, 1, decide)
        let streaming =
            frame(1, 0x4, 3, head("/encore.v1.Catalog/UpsertOffers")) + frame(0, 0, 3, decide + decide)
            + frame(0, 0x1, 3, decide)
        return [
            ("unary-decide", [0] + unary),
            ("unary-decide-split", [7] + unary),
            (
                "client-streaming-and-unary",
                [0] + streaming + frame(1, 0x4, 5, head("/encore.v1.Decisions/ReportOutcome"))
                    + frame(0, 0x1, 5, [0, 0, 0, 0, 0])
            ),
            (
                "continuation-and-trailers",
                [0] + frame(1, 0, 1, head("/encore.v1.Models/Watch"))
                    + frame(9, 0x4, 1, block([("x-extra", "1")])) + frame(0, 0, 1, decide)
                    + frame(1, 0x5, 1, block([("x-trailer", "1")]))
            ),
            (
                "bad-content-type-and-reset",
                [0] + frame(1, 0x4, 1, block([(":method", "POST"), (":path", "/x"), ("content-type", "text/plain")]))
                    + frame(3, 0, 1, [0, 0, 0, 8]) + frame(6, 0, 0, [1, 2, 3, 4, 5, 6, 7, 8])
                    + frame(8, 0, 0, [0, 0, 1, 0])
            ),
            (
                "two-messages-on-unary",
                [0] + frame(1, 0x4, 1, head("/encore.v1.Decisions/Decide"))
                    + frame(0, 0x1, 1, decide + decide)
            ),
            (
                "priority-and-goaway",
                [0] + frame(2, 0, 1, [0, 0, 0, 0, 16]) + frame(7, 0, 0, [0, 0, 0, 0, 0, 0, 0, 0])
            ),
        ]
    }

    /// Snapshot bodies: the file without its 144-byte trailer (the target adds a valid one).
    static func snapshots() -> [(name: String, bytes: [UInt8])] {
        let file = try! SnapshotFile.write(DemoModel.snapshot(seed: DemoModel.defaultSeed))
        let body = Array(file.dropLast(SnapshotFile.trailerBytes))
        var wrongVersion = body
        wrongVersion[8] = 9
        return [
            ("demo-body", body),
            ("demo-whole-file", file),
            ("wrong-version", wrongVersion),
            ("header-only", Array(body.prefix(64))),
        ]
    }

    static func catalogs() -> [(name: String, bytes: [UInt8])] {
        [
            ("demo", Array(DemoCatalog.jsonl.utf8)),
            (
                "one-offer",
                Array(#"{"offer_id":"a","surfaces":["cart"],"value_cents":1,"rules":{"min_total_cents":100}}"#.utf8)
            ),
            (
                "blank-lines-and-escapes",
                Array("\n{\"offer_id\":\"a\\u00e9\\n\"}\r\n\n{\"offer_id\":\"b\",\"title\":\"\\ud83d\\ude00\"}\n".utf8)
            ),
            ("duplicate", Array("{\"offer_id\":\"a\"}\n{\"offer_id\":\"a\"}\n".utf8)),
            ("malformed", Array("{\"offer_id\":\"a\",\"value_cents\":1.5e400,".utf8)),
        ]
    }

    static func customersCSV() -> [(name: String, bytes: [UInt8])] {
        [
            ("demo-5", Array(DemoCustomers.csv(count: 5).utf8)),
            ("header-only", Array("customer_id,segments,f1\n".utf8)),
            ("quoted-and-crlf", Array("customer_id,segments,f1,f2\r\n\"c,1\",\"vip;new\",1.5,-2e3\r\nc2,,0,\r\n".utf8)),
            ("duplicate", Array("customer_id,f1\na,1\na,2\n".utf8)),
        ]
    }

    static func customersJSONL() -> [(name: String, bytes: [UInt8])] {
        [
            (
                "three",
                Array(
                    """
                    {"customer_id":"c1","segments":["vip","new"],"features":{"f1":1.5,"f2":-3}}
                    {"customer_id":"c2","segments":[],"features":{"f1":0,"f2":1e10}}

                    {"customer_id":"c3","features":{"f2":2}}
                    """.utf8)
            ),
            ("no-features", Array(#"{"customer_id":"a"}"#.utf8)),
            ("duplicate", Array("{\"customer_id\":\"a\"}\n{\"customer_id\":\"a\"}\n".utf8)),
            ("bad-number", Array(#"{"customer_id":"a","features":{"f":1e99999}}"#.utf8)),
        ]
    }

    static func configs() -> [(name: String, bytes: [UInt8])] {
        [
            ("demo", Array(DemoConfig.json.utf8)),
            ("empty-object", Array("{}".utf8)),
            ("unknown-section", Array(#"{"nope": {}}"#.utf8)),
            (
                "logs-and-idempotency",
                Array(
                    #"{"logs":{"dir":"logs","ring_bytes":1048576},"idempotency":{"window_seconds":60,"table_entries":1024},"models":{"require_ope":true,"ope_margin":0.01}}"#
                        .utf8)
            ),
            ("not-an-object", Array("[1,2,3]".utf8)),
        ]
    }

    /// Rule-state files without magic and checksum (the target adds both).
    static func ruleStates() -> [(name: String, bytes: [UInt8])] {
        func strip(_ file: [UInt8]) -> [UInt8] { Array(file.dropFirst(8).dropLast(8)) }
        let empty = RuleStateFile.encode(
            counters: CustomerCounters(maxCustomers: 16), budgets: OfferBudgets(capacity: 8), offerIDs: [])
        let counters = CustomerCounters(maxCustomers: 16)
        counters.restore(
            key: 42, touchSeconds: 1_764_000_000,
            histories: [.init(offer: 0, declinedAtMinute: 29_400_000, showMinutes: [29_399_990, 29_399_995])])
        counters.restore(key: 7, touchSeconds: 1_764_000_100, histories: [.init(offer: 2, showMinutes: [1])])
        let budgets = OfferBudgets(capacity: 8)
        budgets.restore(offer: 0, shows: 3, acceptances: 1)
        let full = RuleStateFile.encode(
            counters: counters, budgets: budgets, offerIDs: ["o0", "gone", "o2"],
            decisionKey: SipHash24.Key(bytes: Array(0..<16)), journalSequence: 12)
        return [
            ("empty-v3", strip(empty)),
            ("two-customers-v3", strip(full)),
            ("version-1", [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("huge-counts", [3, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 16) + [UInt8](repeating: 0xFF, count: 20)),
        ]
    }
}
