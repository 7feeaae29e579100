import EncoreTransport
import Testing

@testable import EncoreBench

/// The load generator against an in-process server whose handler fails every call whose message
/// starts with 2: counts only (timing belongs to `encore bench` runs, not unit tests).
@Suite(.serialized) struct BenchRunnerTests {
    func withServer(_ body: (Int) throws -> Void) throws {
        var router = GRPCRouter()
        router.register(
            "/bench.Test/Call",
            .inline { request, response, _ in
                request.first == 2 ? GRPCStatus(.invalidArgument, static: "two") : .ok
            })
        var configuration = GRPCServerConfiguration()
        configuration.port = 0
        configuration.threads = 1
        let server = GRPCServer(configuration: configuration, router: router)
        let port = try server.start()
        defer {
            server.shutdown()
            _ = server.waitUntilStopped()
        }
        try body(port)
    }

    func options(port: Int, mode: BenchOptions.Mode) -> BenchOptions {
        var o = BenchOptions()
        o.port = port
        o.path = "/bench.Test/Call"
        o.mode = mode
        o.durationSeconds = 0.3
        o.warmupSeconds = 0.1
        o.connections = 2
        o.streams = 4
        o.threads = 2
        o.progress = false
        return o
    }

    @Test(arguments: [BenchOptions.Mode.max, .rate(perSecond: 2_000)])
    func countsNonOKStatusesAsErrors(_ mode: BenchOptions.Mode) throws {
        let pool = RequestPool(framedBodies: [RequestPool.frame([1]), RequestPool.frame([2])])
        try withServer { port in
            let r = try BenchRunner.run(options(port: port, mode: mode), pool: pool)
            #expect(r.sent > 0)
            #expect(r.ok > 0)
            #expect(r.errors > 0)
            #expect(r.ok + r.errors == r.sent)
            #expect(r.errorKinds.map(\.0) == ["grpc_3"])
            #expect(r.connectionFailures.isEmpty)
        }
    }

    @Test func unknownMethodIsAnError() throws {
        let pool = RequestPool(framedBodies: [RequestPool.frame([1])])
        try withServer { port in
            var o = options(port: port, mode: .rate(perSecond: 1_000))
            o.path = "/bench.Test/Missing"
            let r = try BenchRunner.run(o, pool: pool)
            #expect(r.ok == 0)
            #expect(r.errors == r.sent)
            #expect(r.errorKinds.map(\.0) == ["grpc_12"])
        }
    }

    @Test func refusedConnectionThrows() {
        var o = options(port: 1, mode: .max)
        o.port = 1
        #expect(throws: (any Error).self) {
            _ = try BenchRunner.run(o, pool: RequestPool(framedBodies: [RequestPool.frame([1])]))
        }
    }
}
