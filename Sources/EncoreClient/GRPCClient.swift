import EncoreSupport
import EncoreTransport

#if canImport(Glibc)
    import Glibc
#endif

/// A small blocking gRPC client over h2c or TLS (one connection, one call at a time) for the
/// `encore` tools (`decide`, `push`, `models`, `fleet`) and tests: an `HTTP2ClientConnection`
/// with one stream, driven by `poll` until the call finishes. With TLS the server's certificate
/// is verified against the context's CA bundle and the host name dialed (unless the context
/// skips verification).
public final class GRPCClient {
    public let host: String
    public let port: Int
    private let connection: HTTP2ClientConnection
    private var nextTag: UInt64 = 0
    /// Extra request headers sent on every call (e.g. `authorization: Bearer <token>`), names in
    /// lower case.
    public var metadata: [(String, String)] = []

    /// Connects to `host:port` (h2c, or TLS with `tls`, handshake included). Throws a
    /// `TransportError` naming the address (and, for TLS, OpenSSL's reason).
    public init(host: String, port: Int, connectTimeoutSeconds: Double = 5, tls context: TLSContext? = nil) throws {
        self.host = host
        self.port = port
        connection = try HTTP2ClientConnection(
            host: host, port: port, tls: context, maxStreams: 1, capturesResponses: true,
            connectTimeoutSeconds: connectTimeoutSeconds)
    }

    /// `host:port` as dialed.
    public var address: String { connection.address }

    /// Calls a unary method; returns the response message. Throws `GRPCStatus` for a non-OK
    /// status and `TransportError` (naming the address) for connection problems.
    public func unary(_ path: String, _ message: [UInt8], timeoutSeconds: Double = 30) throws -> [UInt8] {
        try call(path, messages: [message], timeoutSeconds: timeoutSeconds)
    }

    /// Sends `messages` on one stream (client streaming), then returns the single response.
    public func call(_ path: String, messages: [[UInt8]], timeoutSeconds: Double = 30) throws -> [UInt8] {
        var body: [UInt8] = []
        for m in messages { GRPCFraming.append(m, to: &body) }
        nextTag &+= 1
        let tag = nextTag
        let response = try body.withUnsafeBytes { bytes -> ClientCallResponse in
            guard
                connection.submit(
                    path: path, metadata: metadata, timeoutMillis: Int(timeoutSeconds * 1000), body: bytes, tag: tag)
            else {
                throw TransportError(connection.failure ?? "cannot submit a call to \(address)")
            }
            return try wait(
                for: tag, deadlineNanos: MonotonicClock.nowNanos + UInt64(timeoutSeconds * 1e9) + 1_000_000_000)
        }
        return try GRPCClient.message(of: response, path: path, address: address, failure: connection.failure)
    }

    /// The single response message of a finished call, or the error it ended with.
    static func message(of response: ClientCallResponse, path: String, address: String, failure: String?) throws
        -> [UInt8]
    {
        switch response.status {
        case ClientCallStatus.ok:
            break
        case 1...16:
            throw GRPCStatus(GRPCStatus.Code(rawValue: Int(response.status)), response.grpcMessage)
        case ClientCallStatus.connectionLost:
            throw TransportError(failure ?? "\(address): connection lost")
        case ClientCallStatus.streamReset:
            throw TransportError("call \(path) to \(address) was reset (HTTP/2 error \(response.resetCode))")
        case ClientCallStatus.httpError:
            throw TransportError("call \(path) to \(address) got HTTP \(response.httpStatus), not 200")
        default:
            throw TransportError(
                "call \(path) to \(address) ended without grpc-status (HTTP \(response.httpStatus))")
        }
        var decoder = GRPCFrameDecoder(maxMessageBytes: Int(UInt32.max))
        do {
            try response.body.withUnsafeBytes { try decoder.append($0) }
            guard let message = try decoder.nextMessage() else {
                try decoder.finish()
                throw TransportError("call \(path) to \(address) returned no message")
            }
            return decoder.withBytes(of: message) { Array($0) }
        } catch let failure as GRPCFrameDecoder.Failure {
            throw TransportError("call \(path) to \(address) returned a malformed message (\(failure.status))")
        }
    }

    /// Flushes, polls and reads until the call `tag` finishes (or the connection fails, which
    /// finishes it too); throws when the deadline passes first.
    private func wait(for tag: UInt64, deadlineNanos: UInt64) throws -> ClientCallResponse {
        while true {
            let wantsWrite = connection.flush()
            connection.drainFinished { _, _ in }
            if let done = connection.takeFinishedResponses().first(where: { $0.tag == tag }) { return done }
            if let failure = connection.failure { throw TransportError(failure) }
            let now = MonotonicClock.nowNanos
            if now >= deadlineNanos { throw TransportError("no answer from \(address) in time") }
            var p = pollfd(fd: connection.fd, events: Int16(POLLIN) | (wantsWrite ? Int16(POLLOUT) : 0), revents: 0)
            let ready = poll(&p, 1, Int32(min(1000, (deadlineNanos - now) / 1_000_000 + 1)))
            if ready < 0 && errno != EINTR { throw TransportError("poll: \(Socket.errnoText())") }
            if ready > 0 && p.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 { connection.readAvailable() }
        }
    }
}
