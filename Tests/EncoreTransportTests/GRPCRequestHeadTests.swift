import Testing

@testable import EncoreTransport

func verdict(_ headers: [(String, String)], maxHeaderListBytes: Int = 16384) -> GRPCRequestHead.Verdict {
    var router = GRPCRouter()
    router.register("/pkg.Svc/Known", .inline { _, _, _ in .ok })
    var head = GRPCRequestHead(maxHeaderListBytes: maxHeaderListBytes)
    for (name, value) in headers {
        var n = name
        var v = value
        n.withUTF8 { nb in
            v.withUTF8 { vb in
                _ = head.accept(
                    name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb), route: { router.lookup($0) })
            }
        }
    }
    return head.verdict()
}

let good: [(String, String)] = [
    (":method", "POST"), (":scheme", "http"), (":path", "/pkg.Svc/Known"), (":authority", "localhost:50051"),
    ("content-type", "application/grpc"), ("te", "trailers"),
]

/// `good` with `name`'s value replaced in place (removed when nil).
func replacing(_ name: String, with value: String?) -> [(String, String)] {
    good.compactMap { field in field.0 != name ? field : value.map { (name, $0) } }
}

@Suite struct GRPCRequestHeadTests {
    @Test func acceptsWellFormedRequest() {
        #expect(verdict(good) == .accept(routeIndex: 0, timeoutNanos: nil))
    }

    @Test(arguments: [
        "application/grpc", "application/grpc+proto", "application/grpc; charset=utf-8", "Application/GRPC+Proto",
    ])
    func acceptsGRPCContentTypes(_ value: String) {
        #expect(verdict(replacing("content-type", with: value)) == .accept(routeIndex: 0, timeoutNanos: nil))
    }

    @Test(arguments: ["text/plain", "application/grpc+json", "application/grpcx", "application/json", ""])
    func rejectsOtherContentTypesWith415(_ value: String) {
        guard case .reject(let http, let status) = verdict(replacing("content-type", with: value)) else {
            Issue.record("accepted \(value)")
            return
        }
        #expect(http == 415)
        #expect(status.code == .invalidArgument)
    }

    @Test func rejectsMissingContentType() {
        guard case .reject(415, _) = verdict(replacing("content-type", with: nil)) else {
            Issue.record("missing content-type accepted")
            return
        }
    }

    @Test func rejectsNonPostWith405() {
        guard case .reject(405, let status) = verdict(replacing(":method", with: "GET")) else {
            Issue.record("GET accepted")
            return
        }
        #expect(status.code == .unimplemented)
    }

    @Test func unknownMethodIsUnimplemented() {
        guard case .reject(200, let status) = verdict(replacing(":path", with: "/pkg.Svc/Unknown")) else {
            Issue.record("unknown path accepted")
            return
        }
        #expect(status.code == .unimplemented)
    }

    @Test func parsesTimeout() {
        #expect(verdict(good + [("grpc-timeout", "250m")]) == .accept(routeIndex: 0, timeoutNanos: 250_000_000))
    }

    @Test func malformedTimeoutIsInvalidArgument() {
        guard case .reject(_, let status) = verdict(good + [("grpc-timeout", "soon")]) else {
            Issue.record("malformed timeout accepted")
            return
        }
        #expect(status.code == .invalidArgument)
    }

    @Test func headerListOverTheLimitIsResourceExhausted() {
        let big = String(repeating: "x", count: 2000)
        guard case .reject(_, let status) = verdict(good + [("x-big", big)], maxHeaderListBytes: 1024) else {
            Issue.record("oversized header list accepted")
            return
        }
        #expect(status.code == .resourceExhausted)
        #expect(
            verdict(good + [("x-small", "y")], maxHeaderListBytes: 1024) == .accept(routeIndex: 0, timeoutNanos: nil))
    }

    @Test func flagsNonIdentityEncoding() {
        var head = GRPCRequestHead(maxHeaderListBytes: 16384)
        var n = "grpc-encoding"
        var v = "gzip"
        n.withUTF8 { nb in
            v.withUTF8 { vb in
                _ = head.accept(name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb), route: { _ in -1 })
            }
        }
        #expect(head.compressedEncoding)
    }
}

@Suite struct GRPCTimeoutTests {
    @Test func parsesEveryUnit() {
        #expect(GRPCTimeout.parseNanos("1H") == 3_600_000_000_000)
        #expect(GRPCTimeout.parseNanos("2M") == 120_000_000_000)
        #expect(GRPCTimeout.parseNanos("3S") == 3_000_000_000)
        #expect(GRPCTimeout.parseNanos("4m") == 4_000_000)
        #expect(GRPCTimeout.parseNanos("5u") == 5_000)
        #expect(GRPCTimeout.parseNanos("99999999n") == 99_999_999)
        #expect(GRPCTimeout.parseNanos("0m") == 0)
    }

    @Test(arguments: ["", "S", "10", "10s", "123456789S", "-1S", "1.5S", "1 S"])
    func rejectsMalformed(_ text: String) {
        #expect(GRPCTimeout.parseNanos(text) == nil)
    }
}

@Suite struct GRPCStatusTests {
    @Test func percentEncodesPerGRPCSpec() {
        var out: [UInt8] = []
        var text = "ok 100% déjà\n"
        text.withUTF8 { GRPCStatus.percentEncode(UnsafeRawBufferPointer($0), into: &out) }
        #expect(String(decoding: out, as: UTF8.self) == "ok 100%25 d%C3%A9j%C3%A0%0A")
    }

    @Test func staticMessagesRoundTrip() {
        let status = GRPCStatus(.notFound, static: "nope")
        #expect(status.message.string == "nope")
        #expect(status.description == "NOT_FOUND: nope")
        #expect(status == GRPCStatus(.notFound, "nope"))
    }
}

@Suite struct GRPCRouterTests {
    @Test func looksUpByExactBytes() {
        var router = GRPCRouter()
        router.register("/a.B/C", .inline { _, _, _ in .ok })
        router.register("/a.B/D", .inline { _, _, _ in .ok })
        func find(_ p: String) -> Int {
            var s = p
            return s.withUTF8 { router.lookup(UnsafeRawBufferPointer($0)) }
        }
        #expect(find("/a.B/C") == 0)
        #expect(find("/a.B/D") == 1)
        #expect(find("/a.B/E") == -1)
        #expect(find("/a.B/CC") == -1)
        #expect(find("") == -1)
    }
}

@Suite struct GRPCRequestHeadHTTPRouteTests {
    func get(_ path: String) -> [(String, String)] {
        [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "localhost")]
    }

    func head(_ headers: [(String, String)]) -> GRPCRequestHead {
        var router = GRPCRouter()
        router.register("/pkg.Svc/Known", .inline { _, _, _ in .ok })
        router.registerHTTP("/metrics") { _ in GRPCHTTPResponse(status: 200, contentType: "text/plain", body: []) }
        var head = GRPCRequestHead(maxHeaderListBytes: 16384)
        for (name, value) in headers {
            var n = name
            var v = value
            n.withUTF8 { nb in
                v.withUTF8 { vb in
                    _ = head.accept(name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb), router: router)
                }
            }
        }
        return head
    }

    @Test func getOfAnHTTPRouteIsServedAsHTTP() {
        #expect(head(get("/metrics")).verdict() == .http(routeIndex: 0))
        // The query string does not change the route.
        #expect(head(get("/metrics?x=1")).verdict() == .http(routeIndex: 0))
    }

    @Test func otherGetsAndPostsKeepTheirGRPCAnswers() {
        if case .reject(let http, _) = head(get("/status")).verdict() {
            #expect(http == 405)
        } else {
            Issue.record("GET of an unregistered path must keep the gRPC 405")
        }
        if case .reject(let http, _) = head([
            (":method", "POST"), (":scheme", "http"), (":path", "/metrics"), (":authority", "h"),
        ]).verdict() {
            #expect(http == 415)  // no gRPC content-type
        } else {
            Issue.record("POST /metrics is not an HTTP route")
        }
    }

    @Test func recordsAnOpenMetricsAccept() {
        let h = head(get("/metrics") + [("accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")])
        #expect(h.wantsOpenMetrics)
        #expect(!head(get("/metrics") + [("accept", "text/plain")]).wantsOpenMetrics)
    }
}

/// The HTTP/2 message rules (RFC 9113 §8) `GRPCRequestHead` enforces in place of nghttp2's.
/// `HTTPMessageRulesTests` checks the same rules against nghttp2's own checks.
@Suite struct GRPCRequestHeadMessageRuleTests {
    /// Feeds `headers` (then `trailers`) to a head; returns whether each field was well formed,
    /// and the verdict.
    func run(_ headers: [(String, String)], trailers: [(String, String)] = [])
        -> (fields: [Bool], trailers: [Bool], verdict: GRPCRequestHead.Verdict)
    {
        var head = GRPCRequestHead(maxHeaderListBytes: 16384)
        func each(_ list: [(String, String)], _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
            for (name, value) in list {
                var n = name
                var v = value
                n.withUTF8 { nb in v.withUTF8 { vb in body(UnsafeRawBufferPointer(nb), UnsafeRawBufferPointer(vb)) } }
            }
        }
        var fields: [Bool] = []
        each(headers) { n, v in fields.append(head.accept(name: n, value: v, route: { _ in 0 })) }
        let verdict = head.verdict()
        var trailerFields: [Bool] = []
        each(trailers) { n, v in trailerFields.append(head.acceptTrailer(name: n, value: v)) }
        return (fields, trailerFields, verdict)
    }

    let accepted = GRPCRequestHead.Verdict.accept(routeIndex: 0, timeoutNanos: nil)

    @Test func upperCaseNameIsMalformed() {
        #expect(run(good + [("X-Trace", "1")]).fields.last == false)
        #expect(run(replacing("content-type", with: nil) + [("Content-Type", "application/grpc")]).fields.last == false)
    }

    @Test(arguments: ["x y", "x\u{0}y", "x(y", "x:y", "é", "x\u{7f}", ""])
    func nameOutsideTheTokenCharactersIsMalformed(_ name: String) {
        #expect(run(good + [(name, "1")]).fields.last == false)
        #expect(run(good, trailers: [(name, "1")]).trailers == [false])
    }

    @Test(arguments: ["a\u{0}b", "a\rb", "a\nb", "a\u{7f}b", "\u{1}", " leading", "trailing ", "\ttab", "tab\t"])
    func badValueIsMalformed(_ value: String) {
        #expect(run(good + [("x-note", value)]).fields.last == false)
        let timeout = value.first == " " || value.first == "\t" ? value + "1S" : "1S" + value
        #expect(run(good + [("grpc-timeout", timeout)]).fields.last == false)
    }

    @Test func valuesMayHoldTabsSpacesAndHighBytesInside() {
        #expect(run(good + [("x-note", "a\tb c\u{e9}")]).fields.last == true)
        #expect(run(good + [("x-note", "")]).fields.last == true)
    }

    @Test(arguments: ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"])
    func connectionSpecificFieldIsMalformed(_ name: String) {
        #expect(run(good + [(name, "close")]).fields.last == false)
        #expect(run(good, trailers: [(name, "close")]).trailers == [false])
    }

    @Test func teMayOnlyBeTrailers() {
        #expect(run(replacing("te", with: "Trailers")).verdict == accepted)
        #expect(run(replacing("te", with: "gzip")).fields.contains(false))
        #expect(run(replacing("te", with: "trailers, deflate")).fields.contains(false))
    }

    @Test func pseudoHeaderFieldsComeFirstOnceAndOnlyTheDefinedOnes() {
        #expect(run(good + [(":authority", "late")]).fields.last == false)
        #expect(run(Array(good.prefix(1)) + good).fields.contains(false), "a second :method")
        #expect(run(Array(good.prefix(2)) + [(":protocol", "websocket")] + Array(good.dropFirst(2))).fields[2] == false)
        #expect(run([(":status", "200")] + good).fields[0] == false)
        #expect(run(replacing(":path", with: "")).fields.contains(false))
        #expect(run(replacing(":method", with: "PO ST")).fields.contains(false))
        #expect(run(replacing(":scheme", with: "1http")).fields.contains(false))
        #expect(run(replacing(":authority", with: "a b")).fields.contains(false))
        #expect(run(replacing(":path", with: "/a b")).fields.contains(false))
    }

    @Test func requiredPseudoHeaderFields() {
        for name in [":method", ":scheme", ":path"] {
            #expect(run(replacing(name, with: nil)).verdict == .malformed, "without \(name)")
        }
        #expect(run(replacing(":authority", with: nil)).verdict == .malformed, "no authority at all")
        #expect(run(replacing(":authority", with: nil) + [("host", "localhost")]).verdict == accepted)
        #expect(run(good + [("host", "a"), ("host", "b")]).fields.last == false, "two hosts")
    }

    @Test func pathMustBeAbsoluteForHTTPSchemes() {
        #expect(run(replacing(":path", with: "pkg.Svc/Known")).verdict == .malformed)
        #expect(run(replacing(":scheme", with: "ftp")).verdict == accepted, "other schemes are not checked")
        let optionsStar = replacing(":method", with: "OPTIONS").map { $0.0 == ":path" ? ($0.0, "*") : $0 }
        guard case .reject(405, _) = run(optionsStar).verdict else {
            Issue.record("OPTIONS * is a well-formed request (answered 405)")
            return
        }
        #expect(run(replacing(":path", with: "*")).verdict == .malformed, "* is only for OPTIONS")
    }

    @Test func connectNamesOnlyItsAuthority() {
        guard case .reject(405, _) = run([(":method", "CONNECT"), (":authority", "example.com:443")]).verdict else {
            Issue.record("a CONNECT with only :authority is well formed (answered 405)")
            return
        }
        #expect(run([(":method", "CONNECT"), (":authority", "h:1"), (":path", "/")]).verdict == .malformed)
        #expect(run([(":method", "CONNECT")]).verdict == .malformed)
    }

    @Test func contentLengthMatchesTheBody() {
        var head = GRPCRequestHead(maxHeaderListBytes: 16384)
        for (name, value) in good + [("content-length", "10")] {
            var n = name
            var v = value
            n.withUTF8 { nb in
                v.withUTF8 { vb in
                    let field = head.accept(name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb)) { _ in
                        0
                    }
                    #expect(field)
                }
            }
        }
        let six = head.receivedBody(6)
        #expect(six)
        #expect(!head.bodyComplete(), "6 of 10 bytes")
        let ten = head.receivedBody(4)
        #expect(ten)
        #expect(head.bodyComplete())
        let eleven = head.receivedBody(1)
        #expect(!eleven, "an 11th byte")
        #expect(run(good + [("content-length", "12a")]).fields.last == false)
        #expect(run(good + [("content-length", "")]).fields.last == false)
        #expect(run(good + [("content-length", "99999999999999999999")]).fields.last == false)
        #expect(run(good + [("content-length", "1"), ("content-length", "1")]).fields.last == false)
        #expect(run(good + [("content-length", " 1")]).fields.last == false)
    }

    @Test func trailersHoldOnlyRegularFields() {
        #expect(run(good, trailers: [("x-checksum", "abc"), ("grpc-status", "0")]).trailers == [true, true])
        #expect(run(good, trailers: [(":path", "/x")]).trailers == [false])
        #expect(run(good, trailers: [("X-Checksum", "abc")]).trailers == [false])
        #expect(run(good, trailers: [("te", "gzip")]).trailers == [false])
    }
}
