internal import CNghttp2
import EncoreSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A small blocking gRPC client over h2c or TLS (one TCP connection, one call at a time), on
/// libnghttp2's client session. Used by the `encore` tools (`decide`, `push`, `models`) and
/// tests; not a serving path. With TLS the server's certificate is verified against the
/// context's CA bundle and the host name dialed (unless the context skips verification).
public final class GRPCClient {
    public let host: String
    public let port: Int
    private let fd: Int32
    private let tls: TLSStream?
    private var session: OpaquePointer?
    private var requestBody: [UInt8] = []
    private var requestOffset = 0
    private var responseBody: [UInt8] = []
    private var httpStatus = 0
    private var grpcStatus: Int? = nil
    private var grpcMessage = ""
    private var contentType = ""
    private var streamClosed = false
    private var closeError: UInt32 = 0
    private var currentStream: Int32 = -1
    private let headerScratch: UnsafeMutablePointer<nghttp2_nv>
    /// Extra request headers sent on every call (e.g. `authorization: Bearer <token>`); at most
    /// `maxMetadata`, names in lower case.
    public var metadata: [(String, String)] = [] {
        didSet {
            precondition(metadata.count <= GRPCClient.maxMetadata, "at most \(GRPCClient.maxMetadata) metadata entries")
        }
    }
    public static let maxMetadata = 8

    /// Connects to `host:port` (h2c, or TLS with `tls`, handshake included). Throws a
    /// `TransportError` naming the address (and, for TLS, OpenSSL's reason).
    public init(host: String, port: Int, connectTimeoutSeconds: Double = 5, tls context: TLSContext? = nil) throws {
        self.host = host
        self.port = port
        let fd = try Socket.connect(host: host, port: port, timeoutSeconds: connectTimeoutSeconds)
        self.fd = fd
        if let context {
            do { tls = try GRPCClient.handshake(context, fd: fd, host: host, port: port) } catch {
                close(fd)
                throw error
            }
        } else {
            tls = nil
        }
        headerScratch = .allocate(capacity: 8 + GRPCClient.maxMetadata)
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _, frame, name, nameLength, value, valueLength, _, user in
            guard let frame, cnghttp2_frame_type(frame) == UInt8(CNGHTTP2_FRAME_HEADERS) else { return 0 }
            let me = Unmanaged<GRPCClient>.fromOpaque(user!).takeUnretainedValue()
            let n = String(decoding: UnsafeRawBufferPointer(start: name, count: nameLength), as: UTF8.self)
            let v = String(decoding: UnsafeRawBufferPointer(start: value, count: valueLength), as: UTF8.self)
            switch n {
            case ":status": me.httpStatus = Int(v) ?? 0
            case "grpc-status": me.grpcStatus = Int(v)
            case "grpc-message": me.grpcMessage = GRPCClient.percentDecode(v)
            case "content-type": me.contentType = v
            default: break
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, _, data, length, user in
            let me = Unmanaged<GRPCClient>.fromOpaque(user!).takeUnretainedValue()
            me.responseBody.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, user in
            let me = Unmanaged<GRPCClient>.fromOpaque(user!).takeUnretainedValue()
            if streamID == me.currentStream {
                me.streamClosed = true
                me.closeError = errorCode
            }
            return 0
        }
        var created: OpaquePointer?
        guard nghttp2_session_client_new(&created, callbacks, Unmanaged.passUnretained(self).toOpaque()) == 0 else {
            close(fd)
            headerScratch.deallocate()
            throw TransportError("cannot create an HTTP/2 client session")
        }
        session = created
        var settings = [cnghttp2_setting(Int32(CNGHTTP2_SETTINGS_ENABLE_PUSH), 0)]
        nghttp2_submit_settings(created, 0, &settings, 1)
    }

    /// The client side of a TLS handshake on a blocking socket; checks ALPN h2.
    private static func handshake(_ context: TLSContext, fd: Int32, host: String, port: Int) throws -> TLSStream {
        guard let stream = TLSStream(context: context, fd: fd, serverName: host) else {
            throw TransportError("TLS to \(host):\(port): cannot set up the session (host name \(host))")
        }
        while true {
            switch stream.handshake() {
            case .bytes:
                guard stream.negotiatedH2 else {
                    throw TransportError("TLS to \(host):\(port): the server did not negotiate HTTP/2 (ALPN h2)")
                }
                return stream
            case .wantRead, .wantWrite:
                var p = pollfd(fd: fd, events: Int16(POLLIN | POLLOUT), revents: 0)
                _ = poll(&p, 1, 1000)
            case .closed:
                throw TransportError("TLS to \(host):\(port): the server closed the connection during the handshake")
            case .failed(let reasons):
                let detail = stream.certificateVerifyFailure.map { " (server certificate: \($0))" } ?? ""
                throw TransportError("TLS handshake with \(host):\(port) failed: \(reasons)\(detail)")
            }
        }
    }

    deinit {
        if let session { nghttp2_session_del(session) }
        tls?.shutdown()
        close(fd)
        headerScratch.deallocate()
    }

    /// Calls a unary method; returns the response message. Throws `GRPCStatus` for a non-OK
    /// status and `TransportError` for connection problems.
    public func unary(_ path: String, _ message: [UInt8], timeoutSeconds: Double = 30) throws -> [UInt8] {
        try call(path, messages: [message], timeoutSeconds: timeoutSeconds)
    }

    /// Sends `messages` on one stream (client streaming), then returns the single response.
    public func call(_ path: String, messages: [[UInt8]], timeoutSeconds: Double = 30) throws -> [UInt8] {
        requestBody.removeAll(keepingCapacity: true)
        for m in messages {
            let n = UInt32(m.count)
            requestBody += [0, UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
            requestBody += m
        }
        requestOffset = 0
        responseBody.removeAll()
        httpStatus = 0
        grpcStatus = nil
        grpcMessage = ""
        contentType = ""
        streamClosed = false
        closeError = 0
        let authority = "\(host):\(port)"
        let timeoutMillis = max(1, Int(timeoutSeconds * 1000))
        let headers: [(String, String)] =
            [
                (":method", "POST"), (":scheme", tls == nil ? "http" : "https"), (":authority", authority),
                (":path", path),
                ("content-type", "application/grpc"), ("te", "trailers"),
                ("grpc-timeout", "\(min(timeoutMillis, 99_999_999))m"),
            ] + metadata
        // nghttp2 copies names and values during submit (copy flag set); the bytes live in one
        // buffer until then.
        let total = headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count }
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 1)
        defer { bytes.deallocate() }
        var offset = 0
        for (i, (name, value)) in headers.enumerated() {
            let n = Array(name.utf8)
            let v = Array(value.utf8)
            let namePointer = (bytes.baseAddress! + offset).assumingMemoryBound(to: UInt8.self)
            n.withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<(offset + n.count)]).copyMemory(from: $0)
            }
            offset += n.count
            let valuePointer = (bytes.baseAddress! + offset).assumingMemoryBound(to: UInt8.self)
            v.withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<(offset + v.count)]).copyMemory(from: $0)
            }
            offset += v.count
            headerScratch[i] = cnghttp2_nv(namePointer, n.count, valuePointer, v.count, 1)
        }
        var provider = cnghttp2_data_provider { _, _, buffer, length, flags, _, user in
            let me = Unmanaged<GRPCClient>.fromOpaque(user!).takeUnretainedValue()
            let n = min(length, me.requestBody.count - me.requestOffset)
            me.requestBody.withUnsafeBytes { src in
                UnsafeMutableRawPointer(buffer!).copyMemory(from: src.baseAddress! + me.requestOffset, byteCount: n)
            }
            me.requestOffset += n
            if me.requestOffset == me.requestBody.count { flags!.pointee |= UInt32(CNGHTTP2_DATA_FLAG_EOF) }
            return n
        }
        currentStream = nghttp2_submit_request(session, nil, headerScratch, headers.count, &provider, nil)
        guard currentStream > 0 else {
            throw TransportError("cannot submit the request (nghttp2 error \(currentStream))")
        }
        let deadline = MonotonicClock.nowNanos + UInt64(timeoutSeconds * 1e9) + 1_000_000_000
        try pump(until: { self.streamClosed }, deadlineNanos: deadline)
        if let code = grpcStatus, code != 0 {
            throw GRPCStatus(GRPCStatus.Code(rawValue: code), grpcMessage)
        }
        guard grpcStatus == 0 else {
            throw TransportError(
                "call \(path) ended without grpc-status (HTTP \(httpStatus), stream error \(closeError))")
        }
        guard responseBody.count >= 5 else { throw TransportError("call \(path) returned no message") }
        let length =
            Int(responseBody[1]) << 24 | Int(responseBody[2]) << 16 | Int(responseBody[3]) << 8 | Int(responseBody[4])
        guard responseBody.count >= 5 + length else {
            throw TransportError("call \(path) returned a truncated message")
        }
        return Array(responseBody[5..<(5 + length)])
    }

    private func pump(until done: () -> Bool, deadlineNanos: UInt64) throws {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while !done() {
            while nghttp2_session_want_write(session) != 0 {
                var data: UnsafePointer<UInt8>?
                let n = nghttp2_session_mem_send(session, &data)
                if n < 0 { throw TransportError("HTTP/2 send error \(n)") }
                if n == 0 { break }
                var off = 0
                while off < n {
                    if let tls {
                        switch tls.write(UnsafeRawBufferPointer(start: data! + off, count: n - off)) {
                        case .bytes(let w): off += w
                        case .wantRead, .wantWrite: continue
                        case .closed: throw TransportError("\(host):\(port) closed the TLS connection")
                        case .failed(let reasons): throw TransportError("TLS write to \(host):\(port): \(reasons)")
                        }
                        continue
                    }
                    let w = send(fd, data! + off, n - off, Int32(MSG_NOSIGNAL))
                    if w < 0 {
                        if errno == EINTR || errno == EAGAIN { continue }
                        throw TransportError("write to \(host):\(port): \(Socket.errnoText())")
                    }
                    off += w
                }
            }
            if done() { break }
            let now = MonotonicClock.nowNanos
            if now >= deadlineNanos { throw TransportError("no answer from \(host):\(port) in time") }
            if (tls?.pendingBytes ?? 0) == 0 {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&p, 1, Int32(min(1000, (deadlineNanos - now) / 1_000_000 + 1)))
                if ready < 0 && errno != EINTR { throw TransportError("poll: \(Socket.errnoText())") }
                if ready <= 0 { continue }
            }
            let r: Int
            if let tls {
                switch buffer.withUnsafeMutableBytes({ tls.read(into: $0) }) {
                case .bytes(let n): r = n
                case .wantRead, .wantWrite: continue
                case .closed: r = 0
                case .failed(let reasons): throw TransportError("TLS read from \(host):\(port): \(reasons)")
                }
            } else {
                r = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            }
            if r == 0 { throw TransportError("\(host):\(port) closed the connection") }
            if r < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw TransportError("read from \(host):\(port): \(Socket.errnoText())")
            }
            let rv = buffer.withUnsafeBytes {
                nghttp2_session_mem_recv(session, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), r)
            }
            if rv < 0 {
                throw TransportError(
                    "HTTP/2 protocol error from \(host):\(port): \(String(cString: nghttp2_strerror(Int32(rv))))")
            }
        }
    }

    static func percentDecode(_ text: String) -> String {
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
                let v = UInt8(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)
            {
                out.append(v)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
