internal import CNghttp2
import EncoreSupport
import EncoreTransport

#if canImport(Glibc)
    import Glibc
#endif

/// How one call on an `HTTP2ClientConnection` ended: `0` is gRPC OK, `1...16` a non-OK gRPC
/// status, and the negative values below are transport failures.
public enum ClientCallStatus {
    /// gRPC OK (HTTP 200 with `grpc-status: 0`).
    public static let ok: Int32 = 0
    /// The response's `:status` was not 200.
    public static let httpError: Int32 = -1
    /// The stream ended with an HTTP/2 error (RST_STREAM or a GOAWAY that covered it).
    public static let streamReset: Int32 = -2
    /// The connection failed or was closed while the call was in flight.
    public static let connectionLost: Int32 = -3
    /// HTTP 200 but the stream ended without a `grpc-status`.
    public static let missingStatus: Int32 = -4
}

/// A finished call with what the server sent back, kept only by a connection opened with
/// `capturesResponses` (the tools' `GRPCClient`; the load generator keeps just tag and status).
public struct ClientCallResponse: Sendable {
    /// The call's tag, as given to `submit`.
    public var tag: UInt64
    /// As in `ClientCallStatus` (a gRPC status code, or a negative transport failure).
    public var status: Int32
    /// The response's `:status` (0 if none arrived).
    public var httpStatus: Int32
    /// `grpc-message`, percent-decoded ("" if none).
    public var grpcMessage: String
    /// The HTTP/2 error code of a reset stream (0 otherwise).
    public var resetCode: UInt32
    /// The response body: gRPC-framed messages, as received.
    public var body: [UInt8]
}

/// The one HTTP/2 client session type (h2c, or TLS with ALPN h2 and certificate verification),
/// on libnghttp2's client session: it keeps up to `maxStreams` unary or client-streaming gRPC
/// calls in flight. Driven from one thread's poll loop: `submit` queues calls, `flush` writes
/// what nghttp2 produced, `readAvailable` feeds what the socket has into nghttp2
/// (mem_recv/mem_send, as the server does), and `drainFinished` hands back each finished call's
/// tag and status. `encore bench` drives many of them from its load threads; `GRPCClient` drives
/// one, blocking, for the tools.
///
/// Request bodies are not copied at submit: the caller keeps each body's bytes alive and
/// unchanged until the call finishes (the load generator keeps one pre-encoded pool). With a
/// fixed `path`, the request headers are built once per connection, and nghttp2's per-stream
/// allocations come from a per-connection `BlockPool`, so once warm a call on
/// `submit(body:tag:)` makes no heap allocation (measured with scripts/malloc-count: 0 per call in
/// steady state). Calls that carry their own path and metadata (`submit(path:...)`) and
/// connections that keep responses (`capturesResponses`) allocate; they are for the tools.
public final class HTTP2ClientConnection {
    /// The socket, for the owner's poll set.
    public let fd: Int32
    /// `host:port`, as dialed: named in every error.
    public let address: String
    /// Most calls in flight at once.
    public let maxStreams: Int
    /// Calls submitted and not finished yet.
    public private(set) var inFlight = 0
    /// Set once the connection has failed or closed (then every call in flight has finished
    /// with `ClientCallStatus.connectionLost` and `submit` refuses new ones). Names the address.
    public private(set) var failure: String?
    private let host: String
    private let port: Int
    private var session: OpaquePointer?
    private let tls: TLSStream?
    /// nghttp2's allocator (streams, frames, header copies come from free lists, not malloc);
    /// outlives the session, which `deinit` deletes first.
    private let pool = BlockPool()
    private let memory: UnsafeMutablePointer<nghttp2_mem>
    // Per-slot call state; slot = stream user data - 1.
    private let slotTag: UnsafeMutablePointer<UInt64>
    private let slotBody: UnsafeMutablePointer<UnsafeRawBufferPointer>
    private let slotOffset: UnsafeMutablePointer<Int>
    private let slotHTTPStatus: UnsafeMutablePointer<Int32>
    private let slotGRPCStatus: UnsafeMutablePointer<Int32>
    private let slotStream: UnsafeMutablePointer<Int32>
    private let freeSlots: UnsafeMutablePointer<Int32>
    private var freeCount: Int
    // Finished calls since the last `drainFinished`.
    private let doneTag: UnsafeMutablePointer<UInt64>
    private let doneStatus: UnsafeMutablePointer<Int32>
    private var doneCount = 0
    /// Finished calls that did not fit the finished list (the owner drained too late); never
    /// expected with `encore bench`'s loop, reported so a miscount cannot go unnoticed.
    public private(set) var droppedFinished = 0
    // With `capturesResponses`: what each slot's call received, and the finished calls' responses.
    public let capturesResponses: Bool
    private var slotReceived: [[UInt8]]
    private var slotMessage: [String]
    private var slotReset: [UInt32]
    private var finishedResponses: [ClientCallResponse] = []
    // The fixed request header block (names and values live in `headerBytes` for the
    // connection's lifetime), when the connection was opened with a `path`.
    private let headers: UnsafeMutablePointer<nghttp2_nv>
    private let headerCount: Int
    private let headerBytes: UnsafeMutableRawBufferPointer
    private let scheme: String
    // I/O buffers.
    private let readBuffer: UnsafeMutableRawBufferPointer
    private var out: UnsafeMutableRawPointer
    private var outCapacity = 256 << 10
    private var outStart = 0
    private var outEnd = 0

    /// Connects to `host:port` (blocking, bounded by `connectTimeoutSeconds`, including the TLS
    /// handshake when `tls` is a client context, which checks the server's certificate and the
    /// host name unless it skips verification), then switches the socket to non-blocking.
    /// `submit(body:tag:)` calls go to `path` (e.g. `/encore.v1.Decisions/Decide`). Throws a
    /// `TransportError` naming the address (and, for TLS, OpenSSL's reason).
    public init(
        host: String, port: Int, path: String? = nil, tls context: TLSContext?, maxStreams: Int,
        capturesResponses: Bool = false, connectTimeoutSeconds: Double = 5
    ) throws {
        precondition(maxStreams > 0, "maxStreams must be positive")
        self.host = host
        self.port = port
        address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        self.maxStreams = maxStreams
        self.capturesResponses = capturesResponses
        let socketFD = try Socket.connect(host: host, port: port, timeoutSeconds: connectTimeoutSeconds)
        fd = socketFD
        _ = fcntl(socketFD, F_SETFL, fcntl(socketFD, F_GETFL) | O_NONBLOCK)
        if let context {
            do {
                tls = try HTTP2ClientConnection.handshake(
                    context, fd: socketFD, host: host, address: address,
                    deadlineNanos: MonotonicClock.nowNanos + UInt64(connectTimeoutSeconds * 1e9))
            } catch {
                close(socketFD)
                throw error
            }
        } else {
            tls = nil
        }
        scheme = context == nil ? "http" : "https"
        slotTag = .allocate(capacity: maxStreams)
        slotTag.initialize(repeating: 0, count: maxStreams)
        slotBody = .allocate(capacity: maxStreams)
        slotBody.initialize(repeating: UnsafeRawBufferPointer(start: nil, count: 0), count: maxStreams)
        slotOffset = .allocate(capacity: maxStreams)
        slotOffset.initialize(repeating: 0, count: maxStreams)
        slotHTTPStatus = .allocate(capacity: maxStreams)
        slotHTTPStatus.initialize(repeating: 0, count: maxStreams)
        slotGRPCStatus = .allocate(capacity: maxStreams)
        slotGRPCStatus.initialize(repeating: -1, count: maxStreams)
        slotStream = .allocate(capacity: maxStreams)
        slotStream.initialize(repeating: 0, count: maxStreams)
        freeSlots = .allocate(capacity: maxStreams)
        for i in 0..<maxStreams { (freeSlots + i).initialize(to: Int32(maxStreams - 1 - i)) }
        freeCount = maxStreams
        // A slot freed into the finished list can be reused before the owner drains it; twice
        // the slots is more than can finish between two drains of a loop that submits only
        // after draining (and `finish` refuses to overrun it regardless).
        doneTag = .allocate(capacity: 2 * maxStreams)
        doneTag.initialize(repeating: 0, count: 2 * maxStreams)
        doneStatus = .allocate(capacity: 2 * maxStreams)
        doneStatus.initialize(repeating: 0, count: 2 * maxStreams)
        let captured = capturesResponses ? maxStreams : 0
        slotReceived = [[UInt8]](repeating: [], count: captured)
        slotMessage = [String](repeating: "", count: captured)
        slotReset = [UInt32](repeating: 0, count: captured)
        readBuffer = .allocate(byteCount: 64 << 10, alignment: 16)
        out = .allocate(byteCount: outCapacity, alignment: 16)

        let fields: [(String, String)] =
            path.map {
                [
                    (":method", "POST"), (":scheme", context == nil ? "http" : "https"), (":path", $0),
                    (":authority", "\(host):\(port)"), ("content-type", "application/grpc"), ("te", "trailers"),
                ]
            } ?? []
        headerCount = fields.count
        headers = .allocate(capacity: max(1, fields.count))
        headerBytes = .allocate(
            byteCount: max(1, fields.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count }), alignment: 1)
        var offset = 0
        for (i, (name, value)) in fields.enumerated() {
            let base = headerBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let namePointer = base + offset
            for b in name.utf8 {
                base[offset] = b
                offset += 1
            }
            let valuePointer = base + offset
            for b in value.utf8 {
                base[offset] = b
                offset += 1
            }
            // No copy of names or values: the bytes live as long as the connection.
            (headers + i).initialize(
                to: cnghttp2_nv(namePointer, name.utf8.count, valuePointer, value.utf8.count, 0))
        }

        memory = .allocate(capacity: 1)
        memory.initialize(
            to: nghttp2_mem(
                mem_user_data: Unmanaged.passUnretained(pool).toOpaque(),
                malloc: { size, pool in clientPool(pool).allocate(size) },
                free: { pointer, pool in clientPool(pool).deallocate(pointer) },
                calloc: { count, size, pool in clientPool(pool).allocateZeroed(count, size) },
                realloc: { pointer, size, pool in clientPool(pool).reallocate(pointer, size) }))
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_header_callback(callbacks, clientOnHeader)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, clientOnStreamClose)
        if capturesResponses {
            nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, clientOnDataChunk)
        }
        var created: OpaquePointer?
        guard
            nghttp2_session_client_new3(&created, callbacks, Unmanaged.passUnretained(self).toOpaque(), nil, memory)
                == 0
        else {
            failure = "cannot create an HTTP/2 client session for \(address)"
            throw TransportError("cannot create an HTTP/2 client session for \(address)")
        }
        session = created
        var settings = [
            cnghttp2_setting(Int32(CNGHTTP2_SETTINGS_ENABLE_PUSH), 0),
            cnghttp2_setting(Int32(CNGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE), 1 << 20),
        ]
        nghttp2_submit_settings(created, 0, &settings, settings.count)
        // A large connection window, so WINDOW_UPDATEs stay rare.
        nghttp2_session_set_local_window_size(created, 0, 0, 1 << 24)
    }

    deinit {
        if let session { nghttp2_session_del(session) }
        memory.deallocate()
        tls?.shutdown()
        close(fd)
        slotTag.deallocate()
        slotBody.deallocate()
        slotOffset.deallocate()
        slotHTTPStatus.deallocate()
        slotGRPCStatus.deallocate()
        slotStream.deallocate()
        freeSlots.deallocate()
        doneTag.deallocate()
        doneStatus.deallocate()
        headers.deallocate()
        headerBytes.deallocate()
        readBuffer.deallocate()
        out.deallocate()
    }

    /// True when another call can be submitted now.
    @inline(__always)
    public var canSubmit: Bool { freeCount > 0 && failure == nil }

    /// Queues one unary call to the connection's `path` with `body` (complete gRPC-framed
    /// request messages) and `tag` (returned with its status by `drainFinished`; the load
    /// generator passes a time). The bytes are sent by the next `flush`. Returns false if the
    /// connection is full or failed.
    public func submit(body: UnsafeRawBufferPointer, tag: UInt64) -> Bool {
        precondition(headerCount > 0, "submit(body:tag:) needs a connection opened with a path")
        return submit(headers, headerCount, body: body, tag: tag)
    }

    /// Queues one call to `path` with extra request headers (`metadata`, lower-case names, e.g.
    /// `authorization`) and a `grpc-timeout` of `timeoutMillis`, and `body` (complete
    /// gRPC-framed messages, kept alive by the caller until the call finishes). nghttp2 copies
    /// these headers. Returns false if the connection is full or failed.
    public func submit(
        path: String, metadata: [(String, String)], timeoutMillis: Int, body: UnsafeRawBufferPointer, tag: UInt64
    ) -> Bool {
        let fields: [(String, String)] =
            [
                (":method", "POST"), (":scheme", scheme), (":authority", address), (":path", path),
                ("content-type", "application/grpc"), ("te", "trailers"),
                ("grpc-timeout", "\(min(max(1, timeoutMillis), 99_999_999))m"),
            ] + metadata
        var bytes: [UInt8] = []
        for (name, value) in fields {
            bytes += name.utf8
            bytes += value.utf8
        }
        return bytes.withUnsafeBufferPointer { base in
            let nva = UnsafeMutablePointer<nghttp2_nv>.allocate(capacity: fields.count)
            defer { nva.deallocate() }
            var offset = 0
            for (i, (name, value)) in fields.enumerated() {
                let n = name.utf8.count
                let v = value.utf8.count
                var nv = cnghttp2_nv(base.baseAddress! + offset, n, base.baseAddress! + offset + n, v, 1)
                // nghttp2 copies name and value during submit: these bytes end with this call.
                nv.flags = 0  // NGHTTP2_NV_FLAG_NONE
                nva[i] = nv
                offset += n + v
            }
            return submit(nva, fields.count, body: body, tag: tag)
        }
    }

    private func submit(_ nva: UnsafePointer<nghttp2_nv>, _ count: Int, body: UnsafeRawBufferPointer, tag: UInt64)
        -> Bool
    {
        guard canSubmit, let session else { return false }
        freeCount -= 1
        let slot = Int(freeSlots[freeCount])
        slotTag[slot] = tag
        slotBody[slot] = body
        slotOffset[slot] = 0
        slotHTTPStatus[slot] = 0
        slotGRPCStatus[slot] = -1
        if capturesResponses {
            slotReceived[slot] = []
            slotMessage[slot] = ""
            slotReset[slot] = 0
        }
        var provider = cnghttp2_data_provider(clientReadBody)
        let stream = nghttp2_submit_request(
            session, nil, nva, count, &provider, UnsafeMutableRawPointer(bitPattern: slot + 1))
        guard stream > 0 else {
            freeSlots[freeCount] = Int32(slot)
            freeCount += 1
            fail("cannot submit a request to \(address) (nghttp2 error \(stream))")
            return false
        }
        slotStream[slot] = stream
        inFlight += 1
        return true
    }

    /// Writes what nghttp2 has to send (requests, SETTINGS acks, WINDOW_UPDATEs). Returns true
    /// when bytes are still waiting for the socket to become writable (poll for POLLOUT).
    @discardableResult
    public func flush() -> Bool {
        guard failure == nil, let session else { return false }
        while true {
            if outStart == outEnd {
                outStart = 0
                outEnd = 0
                // Gather nghttp2's output into one buffer, so one write carries many frames.
                while true {
                    var data: UnsafePointer<UInt8>?
                    let n = nghttp2_session_mem_send(session, &data)
                    if n < 0 {
                        fail("HTTP/2 send error on \(address): \(String(cString: nghttp2_strerror(Int32(n))))")
                        return false
                    }
                    if n == 0 { break }
                    if outEnd + n > outCapacity {
                        // Rare (large frames): grow; a larger buffer is kept.
                        let grown = UnsafeMutableRawPointer.allocate(
                            byteCount: max(outCapacity * 2, outEnd + n), alignment: 16)
                        grown.copyMemory(from: out, byteCount: outEnd)
                        out.deallocate()
                        out = grown
                        outCapacity = max(outCapacity * 2, outEnd + n)
                    }
                    (out + outEnd).copyMemory(from: data!, byteCount: n)
                    outEnd += n
                    if outEnd >= 64 << 10 { break }
                }
                if outEnd == 0 { return false }
            }
            let pending = UnsafeRawBufferPointer(start: out + outStart, count: outEnd - outStart)
            if let tls {
                switch tls.write(pending) {
                case .bytes(let n): outStart += n
                case .wantWrite, .wantRead: return true
                case .closed:
                    fail("\(address) closed the TLS session")
                    return false
                case .failed(let reasons):
                    fail("TLS write to \(address) failed: \(reasons)")
                    return false
                }
            } else {
                let w = send(fd, pending.baseAddress, pending.count, Int32(MSG_NOSIGNAL))
                if w < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { return true }
                    fail("write to \(address): \(Socket.errnoText())")
                    return false
                }
                outStart += w
            }
        }
    }

    /// Reads what the socket has (until it would block) and feeds it to nghttp2; finished calls
    /// are collected for `drainFinished`.
    public func readAvailable() {
        guard failure == nil, let session else { return }
        while failure == nil {
            var count = 0
            if let tls {
                switch tls.read(into: readBuffer) {
                case .bytes(let n): count = n
                case .wantRead, .wantWrite: return
                case .closed:
                    fail("\(address) closed the connection")
                    return
                case .failed(let reasons):
                    fail("TLS read from \(address) failed: \(reasons)")
                    return
                }
            } else {
                let r = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
                if r < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { return }
                    fail("read from \(address): \(Socket.errnoText())")
                    return
                }
                if r == 0 {
                    fail("\(address) closed the connection")
                    return
                }
                count = r
            }
            let rv = nghttp2_session_mem_recv(
                session, readBuffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count)
            if rv < 0 {
                fail("HTTP/2 protocol error from \(address): \(String(cString: nghttp2_strerror(Int32(rv))))")
                return
            }
            // A short read means the socket is drained; TLS may still hold decrypted bytes.
            if count < readBuffer.count && (tls == nil || tls!.pendingBytes == 0) { return }
        }
    }

    /// Calls `body(tag, status)` for every call finished since the last drain (status as in
    /// `ClientCallStatus`), in the order they finished.
    @inline(__always)
    public func drainFinished(_ body: (UInt64, Int32) -> Void) {
        var i = 0
        while i < doneCount {
            body(doneTag[i], doneStatus[i])
            i += 1
        }
        doneCount = 0
    }

    /// With `capturesResponses`: the calls finished since the last call of this, with what they
    /// received, in the order they finished (independent of `drainFinished`).
    public func takeFinishedResponses() -> [ClientCallResponse] {
        defer { finishedResponses = [] }
        return finishedResponses
    }

    /// Marks the connection failed; every call in flight finishes as `connectionLost`.
    private func fail(_ reason: String) {
        guard failure == nil else { return }
        failure = reason
        for slot in 0..<maxStreams where slotStream[slot] != 0 {
            finish(slot: slot, status: ClientCallStatus.connectionLost)
        }
    }

    fileprivate func finish(slot: Int, status: Int32) {
        guard slotStream[slot] != 0 else { return }
        slotStream[slot] = 0
        if doneCount < 2 * maxStreams {
            doneTag[doneCount] = slotTag[slot]
            doneStatus[doneCount] = status
            doneCount += 1
        } else {
            droppedFinished += 1
        }
        if capturesResponses {
            finishedResponses.append(
                ClientCallResponse(
                    tag: slotTag[slot], status: status, httpStatus: slotHTTPStatus[slot],
                    grpcMessage: HTTP2ClientConnection.percentDecode(slotMessage[slot]), resetCode: slotReset[slot],
                    body: slotReceived[slot]))
            slotReceived[slot] = []
        }
        freeSlots[freeCount] = Int32(slot)
        freeCount += 1
        inFlight -= 1
    }

    fileprivate func slot(forStream stream: Int32) -> Int? {
        guard let session, let user = nghttp2_session_get_stream_user_data(session, stream) else { return nil }
        let slot = Int(bitPattern: user) - 1
        return slot >= 0 && slot < maxStreams && slotStream[slot] == stream ? slot : nil
    }

    fileprivate func header(slot: Int, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        // ":status" and "grpc-status" (in the headers or the trailers); digits only.
        if name.count == 7 && name[0] == UInt8(ascii: ":") && name[1] == UInt8(ascii: "s") {
            slotHTTPStatus[slot] = HTTP2ClientConnection.digits(value)
        } else if name.count == 11 && name[0] == UInt8(ascii: "g") && name[5] == UInt8(ascii: "s") {
            slotGRPCStatus[slot] = HTTP2ClientConnection.digits(value)
        } else if capturesResponses && name.count == 12 && name[0] == UInt8(ascii: "g") && name[5] == UInt8(ascii: "m")
        {
            slotMessage[slot] = String(decoding: value, as: UTF8.self)
        }
    }

    fileprivate func received(slot: Int, _ data: UnsafeRawBufferPointer) {
        slotReceived[slot].append(contentsOf: data)
    }

    fileprivate func streamClosed(slot: Int, errorCode: UInt32) {
        let status: Int32
        if errorCode != 0 {
            status = ClientCallStatus.streamReset
            if capturesResponses { slotReset[slot] = errorCode }
        } else if slotHTTPStatus[slot] != 200 {
            status = ClientCallStatus.httpError
        } else if slotGRPCStatus[slot] < 0 {
            status = ClientCallStatus.missingStatus
        } else {
            status = slotGRPCStatus[slot]
        }
        finish(slot: slot, status: status)
    }

    fileprivate func readBody(slot: Int, into buffer: UnsafeMutablePointer<UInt8>, length: Int) -> (Int, Bool) {
        let body = slotBody[slot]
        let n = min(length, body.count - slotOffset[slot])
        if n > 0 {
            UnsafeMutableRawPointer(buffer).copyMemory(from: body.baseAddress! + slotOffset[slot], byteCount: n)
        }
        slotOffset[slot] += n
        return (n, slotOffset[slot] == body.count)
    }

    private static func digits(_ value: UnsafeRawBufferPointer) -> Int32 {
        var v: Int32 = 0
        for b in value {
            guard b >= 0x30 && b <= 0x39, v < 100_000 else { return -1 }
            v = v * 10 + Int32(b - 0x30)
        }
        return value.isEmpty ? -1 : v
    }

    /// `grpc-message` is percent-encoded (gRPC over HTTP/2); a malformed escape stays as it is.
    static func percentDecode(_ text: String) -> String {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
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

    /// The client side of a TLS handshake on the non-blocking socket, bounded by the deadline;
    /// checks ALPN h2. Errors name the address, OpenSSL's reasons and why the server's
    /// certificate did not verify (`hostname mismatch`, `unable to get local issuer certificate`).
    private static func handshake(
        _ context: TLSContext, fd: Int32, host: String, address: String, deadlineNanos: UInt64
    ) throws -> TLSStream {
        guard let stream = TLSStream(context: context, fd: fd, serverName: host) else {
            throw TransportError("TLS to \(address): cannot set up the session (host name \(host))")
        }
        while true {
            var events = Int16(0)
            switch stream.handshake() {
            case .bytes:
                guard stream.negotiatedH2 else {
                    throw TransportError("TLS to \(address): the server did not negotiate HTTP/2 (ALPN h2)")
                }
                return stream
            case .wantRead: events = Int16(POLLIN)
            case .wantWrite: events = Int16(POLLOUT)
            case .closed:
                throw TransportError("TLS to \(address): the server closed the connection during the handshake")
            case .failed(let reasons):
                let detail = stream.certificateVerifyFailure.map { " (server certificate: \($0))" } ?? ""
                throw TransportError("TLS handshake with \(address) failed: \(reasons)\(detail)")
            }
            let now = MonotonicClock.nowNanos
            guard now < deadlineNanos else { throw TransportError("TLS handshake with \(address) timed out") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            _ = poll(&p, 1, Int32((deadlineNanos - now) / 1_000_000 + 1))
        }
    }
}

// nghttp2 callbacks: recover the connection from user data; never throw (and, on the load
// generator's path, never allocate).

@inline(__always)
private func clientPool(_ raw: UnsafeMutableRawPointer?) -> BlockPool {
    Unmanaged<BlockPool>.fromOpaque(raw!).takeUnretainedValue()
}

private let clientOnHeader: nghttp2_on_header_callback = {
    session, frame, name, nameLength, value, valueLength, _, user in
    guard let frame, cnghttp2_frame_type(frame) == UInt8(CNGHTTP2_FRAME_HEADERS), let user else { return 0 }
    let me = Unmanaged<HTTP2ClientConnection>.fromOpaque(user).takeUnretainedValue()
    guard let slot = me.slot(forStream: cnghttp2_frame_stream_id(frame)) else { return 0 }
    me.header(
        slot: slot, name: UnsafeRawBufferPointer(start: name, count: nameLength),
        value: UnsafeRawBufferPointer(start: value, count: valueLength))
    return 0
}

private let clientOnDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, stream, data, length, user in
    guard let user else { return 0 }
    let me = Unmanaged<HTTP2ClientConnection>.fromOpaque(user).takeUnretainedValue()
    if let slot = me.slot(forStream: stream) {
        me.received(slot: slot, UnsafeRawBufferPointer(start: data, count: length))
    }
    return 0
}

private let clientOnStreamClose: nghttp2_on_stream_close_callback = { _, stream, errorCode, user in
    guard let user else { return 0 }
    let me = Unmanaged<HTTP2ClientConnection>.fromOpaque(user).takeUnretainedValue()
    if let slot = me.slot(forStream: stream) { me.streamClosed(slot: slot, errorCode: errorCode) }
    return 0
}

private let clientReadBody: nghttp2_data_source_read_callback = { session, stream, buffer, length, flags, _, user in
    guard let user, let buffer, let flags else { return Int(CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE) }
    let me = Unmanaged<HTTP2ClientConnection>.fromOpaque(user).takeUnretainedValue()
    guard let slot = me.slot(forStream: stream) else { return Int(CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE) }
    let (n, eof) = me.readBody(slot: slot, into: buffer, length: length)
    if eof { flags.pointee |= UInt32(CNGHTTP2_DATA_FLAG_EOF) }
    return n
}
