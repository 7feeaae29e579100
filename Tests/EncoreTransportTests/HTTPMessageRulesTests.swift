import EncoreSupport
import Testing

@testable import EncoreTransport

/// The server turns libnghttp2's HTTP message checks off and enforces RFC 9113 §8 in
/// `GRPCRequestHead`. These tests send the same requests to two sessions, one with nghttp2's
/// checks on (the reference) and one as the server runs it, both with a delegate that uses
/// `GRPCRequestHead` as `Connection` does, and require the same outcome: the same stream reset
/// with PROTOCOL_ERROR or not, the same fields reported, the same verdict. Under the reference,
/// the head must also never refuse what nghttp2 passed.
@Suite struct HTTPMessageRulesTests {
    /// One request: its header block, optional DATA and trailers.
    struct Request: CustomStringConvertible {
        var fields: [([UInt8], [UInt8])]
        /// DATA payload length, or nil for END_STREAM on HEADERS.
        var body: Int? = 0
        /// The DATA in two frames (the first one byte), not one.
        var splitBody = false
        var trailers: [([UInt8], [UInt8])]? = nil
        /// Whether the trailers' HEADERS carries END_STREAM (else an empty DATA ends it).
        var trailersEndStream = true

        var description: String {
            func show(_ list: [([UInt8], [UInt8])]) -> String {
                list.map { "\(String(decoding: $0.0, as: UTF8.self).debugDescription): \($0.1)" }.joined(
                    separator: ", ")
            }
            return "[\(show(fields))] body \(body.map(String.init) ?? "none")\(splitBody ? " split" : "")"
                + (trailers.map { " trailers [\(show($0))] end \(trailersEndStream)" } ?? "")
        }

        var bytes: [UInt8] {
            var out = ClientBytes.preface + ClientBytes.settings + ClientBytes.settingsAck
            let endOnHeaders = body == nil && trailers == nil
            out += ClientBytes.frame(type: 1, flags: 0x4 | (endOnHeaders ? 1 : 0), stream: 1, block(fields))
            if let body {
                let grpc = [0, 0, 0, 0, UInt8(max(body - 5, 0))] + [UInt8](repeating: 0x41, count: max(body - 5, 0))
                let payload = Array(grpc.prefix(body))
                let end: UInt8 = trailers == nil ? 1 : 0
                if splitBody && payload.count > 1 {
                    out += ClientBytes.frame(type: 0, flags: 0, stream: 1, Array(payload.prefix(1)))
                    out += ClientBytes.frame(type: 0, flags: end, stream: 1, Array(payload.dropFirst()))
                } else {
                    out += ClientBytes.frame(type: 0, flags: end, stream: 1, payload)
                }
            }
            if let trailers {
                out += ClientBytes.frame(type: 1, flags: 0x4 | (trailersEndStream ? 1 : 0), stream: 1, block(trailers))
                if !trailersEndStream { out += ClientBytes.frame(type: 0, flags: 1, stream: 1, []) }
            }
            return out
        }

        /// HPACK literals without indexing or Huffman coding (lengths under 127).
        func block(_ list: [([UInt8], [UInt8])]) -> [UInt8] {
            var out: [UInt8] = []
            for (name, value) in list {
                out.append(0)
                out.append(UInt8(name.count))
                out += name
                out.append(UInt8(value.count))
                out += value
            }
            return out
        }
    }

    /// What a session did with a request.
    struct Outcome: Equatable, CustomStringConvertible {
        var resetProtocolError = false
        var otherResets: [UInt32] = []
        var used: [String] = []
        var verdict = "none"
        var ended = false
        var alive = true

        var description: String {
            "reset \(resetProtocolError) other \(otherResets) verdict \(verdict) ended \(ended) alive \(alive) used \(used)"
        }
    }

    /// Uses `GRPCRequestHead` as `Connection` does.
    final class HeadDelegate: HTTP2SessionDelegate {
        var head = GRPCRequestHead(maxHeaderListBytes: 16384)
        var used: [String] = []
        var verdict = "none"
        var ended = false
        /// Under the reference session, nghttp2 passed something the head refused.
        var disagreement: String? = nil
        let isReference: Bool

        init(isReference: Bool) { self.isReference = isReference }

        func note(_ what: String) {
            if isReference && disagreement == nil { disagreement = what }
        }

        func streamBegan(streamID: Int32) -> Int { 0 }

        func streamHeader(slot: Int, isTrailer: Bool, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)
            -> Bool
        {
            let wellFormed =
                isTrailer
                ? head.acceptTrailer(name: name, value: value) : head.accept(name: name, value: value) { _ in 0 }
            guard wellFormed else {
                note("malformed: a field nghttp2 passed: \(Array(name)) = \(Array(value))")
                return false
            }
            used.append((isTrailer ? "T " : "") + "\(Array(name))=\(Array(value))")
            return true
        }

        func streamHeadersComplete(slot: Int, isTrailer: Bool, endStream: Bool) -> Bool {
            if isTrailer {
                if !endStream { note("trailers without END_STREAM nghttp2 passed") }
                return endStream
            }
            let verdict = head.verdict(endingStream: endStream)
            self.verdict = "\(verdict)"
            if verdict == .malformed {
                note("malformed header block nghttp2 passed")
                return false
            }
            return true
        }

        func streamData(slot: Int, bytes: UnsafeRawBufferPointer) -> Bool {
            if head.receivedBody(bytes.count) { return true }
            note("body over content-length nghttp2 passed")
            return false
        }

        func streamEnded(slot: Int) -> Bool {
            ended = true
            if head.bodyComplete() { return true }
            note("body short of content-length nghttp2 passed")
            return false
        }

        func streamReset(slot: Int) {}
        func streamClosed(slot: Int, errorCode: UInt32) {}
        func readResponseBody(slot: Int, into buffer: UnsafeMutableRawBufferPointer) -> (Int, HTTP2BodyEnd) {
            (0, .okTrailers)
        }
        func withTrailerStatus(slot: Int, _ body: (Int, UnsafeRawBufferPointer) -> Void) {}
    }

    /// One pool and the two session templates.
    final class Sessions {
        let pool = BlockPool()
        let reference: HTTP2SessionTemplate
        let server: HTTP2SessionTemplate

        init() throws {
            reference = try HTTP2SessionTemplate(pool: pool, nghttp2ChecksMessages: true)
            server = try HTTP2SessionTemplate(pool: pool)
        }

        func outcome(_ request: Request, reference isReference: Bool) throws -> (Outcome, String?) {
            let delegate = HeadDelegate(isReference: isReference)
            let settings = HTTP2Settings(maxConcurrentStreams: 8, maxHeaderListBytes: 16 << 10)
            let session = try HTTP2Session(
                delegate: delegate, settings: settings, template: isReference ? reference : server)
            _ = session.takeGreeting()
            var outcome = Outcome()
            outcome.alive = request.bytes.withUnsafeBytes { session.receive($0) }
            var out: [UInt8] = []
            _ = session.drainOutput {
                out += $0
                return true
            }
            for frame in parseFrames(out) where frame.type == 3 && frame.stream == 1 {
                let code = frame.payload.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                if code == 1 { outcome.resetProtocolError = true } else { outcome.otherResets.append(code) }
            }
            outcome.used = delegate.used
            outcome.verdict = delegate.verdict
            outcome.ended = delegate.ended
            return (outcome, delegate.disagreement)
        }

        /// Records an issue when the two sessions disagree about `request`.
        func compare(_ request: Request, _ comment: @autoclosure () -> String = "") throws {
            let (expected, disagreement) = try outcome(request, reference: true)
            let (actual, _) = try outcome(request, reference: false)
            #expect(disagreement == nil, "\(comment()) \(request)")
            // Under the reference, a field nghttp2 drops never reaches the head; the rest must
            // match exactly (a reset stream's verdict and end are not compared: nghttp2 stops
            // before reporting them).
            var a = actual
            var e = expected
            if e.resetProtocolError && a.resetProtocolError {
                a.verdict = ""
                e.verdict = ""
                a.ended = false
                e.ended = false
                a.used = []
                e.used = []
            }
            #expect(a == e, "\(comment()) \(request)\n nghttp2: \(expected)\n encore:  \(actual)")
        }
    }

    static let base: [(String, String)] = [
        (":method", "POST"), (":scheme", "http"), (":path", "/encore.v1.Decisions/Decide"),
        (":authority", "localhost:50051"), ("content-type", "application/grpc"), ("te", "trailers"),
        ("user-agent", "grpc-test/1.0"),
    ]

    static func bytes(_ list: [(String, String)]) -> [([UInt8], [UInt8])] {
        list.map { (Array($0.0.utf8), Array($0.1.utf8)) }
    }

    /// Every byte value inside, at the start and at the end of a name, a value and each
    /// pseudo-header field's value.
    @Test func everyByteInEveryPosition() throws {
        let sessions = try Sessions()
        let fields = Self.bytes(Self.base)
        for b in 0...255 {
            let c = UInt8(b)
            var variants: [[([UInt8], [UInt8])]] = [
                fields + [([0x78, c, 0x79], [0x31])],  // x?y: 1
                fields + [([c], [0x31])],
                fields + [([0x78], [0x61, c, 0x7A])],  // x: a?z
                fields + [([0x78], [c, 0x61])],
                fields + [([0x78], [0x61, c])],
                fields + [([0x78], [c])],
            ]
            // Inside long values, where the checks read eight bytes at a time.
            let long = Array("abcdefghij".utf8)
            variants.append(fields + [([0x78], long + [c] + long)])
            variants.append(fields + [([0x78], long + [c])])
            // Each pseudo-header field (`base` order: :method, :scheme, :path, :authority): the
            // byte appended, prepended and in the middle.
            for index in 0..<4 {
                var appended = fields
                appended[index].1 += [c]
                variants.append(appended)
                var leading = fields
                leading[index].1 = [c] + leading[index].1
                variants.append(leading)
                var middle = fields
                middle[index].1.insert(c, at: middle[index].1.count / 2)
                variants.append(middle)
            }
            for variant in variants {
                try sessions.compare(Request(fields: variant), "byte \(b)")
            }
        }
    }

    /// Hand-picked requests, one or two per rule.
    @Test func eachRule() throws {
        let sessions = try Sessions()
        let fields = Self.bytes(Self.base)
        func with(_ extra: [(String, String)]) -> [([UInt8], [UInt8])] { fields + Self.bytes(extra) }
        func without(_ name: String) -> [([UInt8], [UInt8])] { fields.filter { $0.0 != Array(name.utf8) } }
        var cases: [Request] = [
            Request(fields: fields),
            Request(fields: fields, body: nil),
            Request(fields: with([("Content-Type", "x")])),
            Request(fields: with([("connection", "close")])),
            Request(fields: with([("keep-alive", "1")])),
            Request(fields: with([("proxy-connection", "1")])),
            Request(fields: with([("transfer-encoding", "chunked")])),
            Request(fields: with([("upgrade", "h2c")])),
            Request(fields: with([("te", "gzip")])),
            Request(fields: with([("te", "TRAILERS")])),
            Request(fields: with([(":authority", "late")])),
            Request(fields: with([(":protocol", "websocket")])),
            Request(fields: Self.bytes([(":status", "200")]) + fields),
            Request(fields: Self.bytes([(":foo", "1")]) + fields),
            Request(fields: Self.bytes([(":", "1")]) + fields),
            Request(fields: Self.bytes([("", "1")]) + fields),
            Request(fields: with([("", "1")])),
            Request(fields: without(":method")),
            Request(fields: without(":scheme")),
            Request(fields: without(":path")),
            Request(fields: without(":authority")),
            Request(fields: without(":authority") + Self.bytes([("host", "localhost")])),
            Request(fields: with([("host", "a"), ("host", "b")])),
            Request(fields: with([("host", "")])),
            Request(fields: with([("host", "a b")])),
            Request(
                fields: Self.bytes([(":method", "OPTIONS"), (":scheme", "http"), (":path", "*"), (":authority", "h")])),
            Request(
                fields: Self.bytes([(":method", "POST"), (":scheme", "http"), (":path", "*"), (":authority", "h")])),
            Request(
                fields: Self.bytes([(":method", "POST"), (":scheme", "ftp"), (":path", "x"), (":authority", "h")])),
            Request(
                fields: Self.bytes([(":method", "POST"), (":scheme", "HTTPS"), (":path", "x"), (":authority", "h")])),
            Request(fields: Self.bytes([(":method", "CONNECT"), (":authority", "h:443")])),
            Request(
                fields: Self.bytes([(":method", "CONNECT"), (":authority", "h:443"), ("content-length", "3")]), body: 9),
            Request(fields: Self.bytes([(":method", "CONNECT"), (":authority", "h:443"), (":path", "/")])),
            Request(fields: Self.bytes([(":method", "CONNECT"), (":scheme", "http")])),
            Request(fields: Self.bytes(Array(Self.base.prefix(1))) + fields),
            Request(fields: fields + [(Array(":path".utf8), [])]),
        ]
        for (length, body) in [("10", 10), ("10", 9), ("10", 11), ("0", 0), ("5", 0), ("0", nil as Int?), ("3", nil)] {
            cases.append(Request(fields: with([("content-length", length)]), body: body))
        }
        for bad in ["", "x", "-1", "1.0", "99999999999999999999", "9223372036854775807", "9223372036854775808"] {
            cases.append(Request(fields: with([("content-length", bad)]), body: 5))
        }
        cases.append(Request(fields: with([("content-length", "5"), ("content-length", "5")]), body: 5))
        cases.append(
            Request(fields: with([("content-length", "5")]), body: 5, trailers: Self.bytes([("content-length", "5")])))
        cases.append(Request(fields: with([("content-length", "9")]), body: 5, trailers: Self.bytes([("x-a", "1")])))
        for trailer in [
            ("x-checksum", "1"), (":path", "/"), ("X-A", "1"), ("connection", "x"), ("te", "x"), ("host", "a"),
        ] {
            cases.append(Request(fields: fields, body: 5, trailers: Self.bytes([trailer])))
            cases.append(Request(fields: with([("host", "h")]), body: 5, trailers: Self.bytes([trailer])))
        }
        cases.append(Request(fields: fields, body: 5, trailers: Self.bytes([("x-a", "1")]), trailersEndStream: false))
        // CONNECT: its header block content-length is not checked; one in its trailers is.
        let connect = Self.bytes([(":method", "CONNECT"), (":authority", "h:443")])
        for (headerLength, trailerLength, body) in [
            (nil, "5", 0), (nil, "5", 5), ("3", "0", 0), ("3", nil, 9), ("3", "9", 9), (nil, nil, 4),
        ] as [(String?, String?, Int)] {
            let head = connect + (headerLength.map { Self.bytes([("content-length", $0)]) } ?? [])
            let trailers = trailerLength.map { Self.bytes([("content-length", $0)]) } ?? Self.bytes([("x-a", "1")])
            cases.append(Request(fields: head, body: body, trailers: trailers))
        }
        for length in ["4", "5", "6"] {
            cases.append(Request(fields: with([("content-length", length)]), body: 5, splitBody: true))
        }
        cases.append(Request(fields: fields, body: 5, trailers: [], trailersEndStream: false))
        for request in cases { try sessions.compare(request) }
    }

    /// Random requests: the base request with up to four mutations drawn from the pieces the
    /// rules name (a fixed seed, so every run checks the same 4,000).
    @Test func randomRequests() throws {
        let sessions = try Sessions()
        var random = SplitMix64(seed: 0x6E67_6874_7470_32)
        let names = [
            ":method", ":scheme", ":path", ":authority", ":protocol", ":status", ":x", "host", "te", "content-length",
            "connection", "upgrade", "content-type", "grpc-timeout", "grpc-encoding", "x-a", "X-A", "x a", "", "x\u{0}",
            "priority",
            "authorization", "x-encore-customer", "user-agent", "transfer-encoding",
        ].map { Array($0.utf8) }
        let values =
            [
                "", "POST", "GET", "CONNECT", "OPTIONS", "http", "https", "HTTP", "ftp", "1x", "/", "*", "/a", "a",
                "trailers", "Trailers", "gzip", "0", "5", "12", "-1", "localhost", "a b", " a", "a ", "a\tb", "\t",
                "a\u{0}",
                "a\r\n", "\u{7f}", "application/grpc", "1S", "[::1]:80", "a#b", "a/b", "u=1, i", "CONNECT",
                "a-long-value-of-more-than-eight-bytes", "a-long-value-with-a\u{1}-control", "12345678901",
            ].map { Array($0.utf8) } + [[0x80], [0xFF, 0x61]]
        func pick<T>(_ list: [T]) -> T { list[Int(random.next() % UInt64(list.count))] }
        for i in 0..<4000 {
            var fields = Self.bytes(Self.base)
            for _ in 0...(random.next() % 4) {
                let at = Int(random.next() % UInt64(fields.count + 1))
                switch random.next() % 5 {
                case 0: fields.insert((pick(names), pick(values)), at: at)
                case 1: if at < fields.count { fields.remove(at: at) }
                case 2: if at < fields.count { fields[at].1 = pick(values) }
                case 3:
                    if at < fields.count { fields.insert(fields[at], at: Int(random.next() % UInt64(fields.count))) }
                default: fields.append((pick(names), pick(values)))
                }
            }
            var request = Request(fields: fields)
            switch random.next() % 4 {
            case 0: request.body = nil
            case 1:
                request.body = Int(random.next() % 14)
                request.splitBody = random.next() % 2 == 0
            case 2:
                request.body = Int(random.next() % 14)
                request.trailers = (0..<(random.next() % 3)).map { _ in (pick(names), pick(values)) }
                request.trailersEndStream = random.next() % 4 != 0
            default: break
            }
            try sessions.compare(request, "case \(i)")
        }
    }
}
