import EncoreTransport
import Testing

@testable import EncoreClient

/// The one client core against an in-process h2c server: the blocking tool client and the
/// load generator's non-blocking connection, on the same session type. Counts and contents
/// only, no timing.
@Suite(.serialized) struct GRPCClientTests {
    func withServer(_ body: (Int) throws -> Void) throws {
        var router = GRPCRouter()
        // Echoes the request message.
        router.register(
            "/client.Test/Echo",
            .inline { request, response, _ in
                response.withAppendableBytes { $0.append(contentsOf: request) }
                return .ok
            })
        router.register(
            "/client.Test/Fail",
            .inline { _, _, _ in GRPCStatus(.notFound, "no offer for caf\u{e9} (100% sure)") })
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

    @Test func unaryCallsReturnTheMessageOnOneConnection() throws {
        try withServer { port in
            let client = try GRPCClient(host: "127.0.0.1", port: port)
            #expect(try client.unary("/client.Test/Echo", [1, 2, 3]) == [1, 2, 3])
            // A second call on the same connection, and an empty message.
            #expect(try client.unary("/client.Test/Echo", []) == [])
            let large = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
            #expect(try client.unary("/client.Test/Echo", large) == large)
        }
    }

    @Test func aNonOKStatusIsThrownWithItsDecodedMessage() throws {
        try withServer { port in
            let client = try GRPCClient(host: "127.0.0.1", port: port)
            do {
                _ = try client.unary("/client.Test/Fail", [1])
                Issue.record("expected a GRPCStatus")
            } catch let status as GRPCStatus {
                #expect(status.code == .notFound)
                #expect(status.message.string == "no offer for caf\u{e9} (100% sure)")
            }
            do {
                _ = try client.unary("/client.Test/Missing", [1])
                Issue.record("expected a GRPCStatus")
            } catch let status as GRPCStatus {
                #expect(status.code == .unimplemented)
            }
            // The connection still works after errors.
            #expect(try client.unary("/client.Test/Echo", [9]) == [9])
        }
    }

    @Test func aRefusedConnectionNamesTheAddress() throws {
        do {
            _ = try GRPCClient(host: "127.0.0.1", port: 1)
            Issue.record("expected a TransportError")
        } catch let error as TransportError {
            #expect(error.description.hasPrefix("cannot connect to 127.0.0.1:1:"), "\(error)")
        }
    }

    @Test func theLoadPathKeepsManyCallsInFlightOnAFixedPath() throws {
        try withServer { port in
            let connection = try HTTP2ClientConnection(
                host: "127.0.0.1", port: port, path: "/client.Test/Echo", tls: nil, maxStreams: 8)
            let body = GRPCFraming.framed([4, 2])
            var finished: [UInt64: Int32] = [:]
            try body.withUnsafeBytes { bytes in
                var submitted: UInt64 = 0
                while connection.canSubmit {
                    #expect(connection.submit(body: bytes, tag: submitted))
                    submitted += 1
                }
                #expect(submitted == 8 && connection.inFlight == 8)
                let poller = LoadPoller(fds: [connection.fd])
                var rounds = 0
                while finished.count < 8 && connection.failure == nil {
                    rounds += 1
                    if rounds > 10_000 { throw TransportError("calls did not finish") }
                    poller.setWantsWrite(0, connection.flush())
                    if poller.wait(timeoutNanos: 100_000_000) > 0 && poller.isReadable(0) { connection.readAvailable() }
                    connection.drainFinished { tag, status in finished[tag] = status }
                }
            }
            #expect(connection.failure == nil)
            #expect(finished == Dictionary(uniqueKeysWithValues: (0..<8).map { (UInt64($0), ClientCallStatus.ok) }))
            #expect(connection.inFlight == 0 && connection.droppedFinished == 0)
        }
    }

    @Test func framingWritesTheLengthPrefix() {
        #expect(GRPCFraming.framed([7, 8]) == [0, 0, 0, 0, 2, 7, 8])
        var bytes: [UInt8] = [0xAA]
        GRPCFraming.append(repeatElement(1, count: 0x0102_03), to: &bytes)
        #expect(Array(bytes.prefix(6)) == [0xAA, 0, 0, 1, 2, 3])
        #expect(bytes.count == 1 + 5 + 0x0102_03)
        #expect(HTTP2ClientConnection.percentDecode("a%20b%25%zz") == "a b%%zz")
    }
}
