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
                head.accept(
                    name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb), route: { router.lookup($0) })
            }
        }
    }
    return head.verdict()
}

let good: [(String, String)] = [
    (":method", "POST"), (":scheme", "http"), (":path", "/pkg.Svc/Known"), ("content-type", "application/grpc"),
    ("te", "trailers"),
]

func replacing(_ name: String, with value: String?) -> [(String, String)] {
    var headers = good.filter { $0.0 != name }
    if let value { headers.append((name, value)) }
    return headers
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
                head.accept(name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb), route: { _ in -1 })
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
                    head.accept(name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb), router: router)
                }
            }
        }
        return head
    }

    @Test func getOfAnHTTPRouteIsServedAsHTTP() {
        #expect(head([(":method", "GET"), (":path", "/metrics")]).verdict() == .http(routeIndex: 0))
        // The query string does not change the route.
        #expect(head([(":method", "GET"), (":path", "/metrics?x=1")]).verdict() == .http(routeIndex: 0))
    }

    @Test func otherGetsAndPostsKeepTheirGRPCAnswers() {
        if case .reject(let http, _) = head([(":method", "GET"), (":path", "/status")]).verdict() {
            #expect(http == 405)
        } else {
            Issue.record("GET of an unregistered path must keep the gRPC 405")
        }
        if case .reject(let http, _) = head([(":method", "POST"), (":path", "/metrics")]).verdict() {
            #expect(http == 415)  // no gRPC content-type
        } else {
            Issue.record("POST /metrics is not an HTTP route")
        }
    }

    @Test func recordsAnOpenMetricsAccept() {
        let h = head([
            (":method", "GET"), (":path", "/metrics"),
            ("accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
        ])
        #expect(h.wantsOpenMetrics)
        #expect(!head([(":method", "GET"), (":path", "/metrics"), ("accept", "text/plain")]).wantsOpenMetrics)
    }
}
