internal import CNghttp2
import EncoreSupport

#if canImport(Glibc)
    import Glibc
#endif

/// How one call on an `HTTP2LoadConnection` ended: `0` is gRPC OK, `1...16` a non-OK gRPC
/// status, and the negative values below are transport failures.
public enum LoadCallStatus {
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

/// One non-blocking HTTP/2 client connection (h2c, or TLS with ALPN h2) that keeps up to
/// `maxStreams` unary gRPC calls in flight, for `encore bench`. It is driven from one thread's
/// poll loop: `submit` queues calls, `flush` writes what nghttp2 produced, `readAvailable` feeds
/// what the socket has into nghttp2 (mem_recv/mem_send, as the server does), and
/// `drainFinished` hands back each finished call's tag and status.
///
/// Request bodies are not copied at submit: the caller keeps each body's bytes alive and
/// unchanged until the call finishes (the load generator keeps one pre-encoded pool). Headers are
/// built once per connection, and nghttp2's per-stream allocations come from a per-connection
/// `BlockPool`, so once warm a call makes no heap allocation (measured with
/// scripts/malloc-count: 0 per call in steady state).
public final class HTTP2LoadConnection {
    /// The socket, for the owner's poll set.
    public let fd: Int32
    /// Most calls in flight at once.
    public let maxStreams: Int
    /// Calls submitted and not finished yet.
    public private(set) var inFlight = 0
    /// Set once the connection has failed or closed (then every call in flight has finished
    /// with `LoadCallStatus.connectionLost` and `submit` refuses new ones).
    public private(set) var failure: String?
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
    // Header block (names and values live in `headerBytes` for the connection's lifetime).
    private let headers: UnsafeMutablePointer<nghttp2_nv>
    private let headerCount: Int
    private let headerBytes: UnsafeMutableRawBufferPointer
    // I/O buffers.
    private let readBuffer: UnsafeMutableRawBufferPointer
    private var out: UnsafeMutableRawPointer
    private var outCapacity = 256 << 10
    private var outStart = 0
    private var outEnd = 0

    /// Connects to `host:port` (blocking, bounded by `connectTimeoutSeconds`, including the TLS
    /// handshake when `tls` is a client context), then switches the socket to non-blocking.
    /// Calls go to `path` (e.g. `/encore.v1.Decisions/Decide`). Throws `TransportError` or
    /// `TLSError` naming the address.
    public init(
        host: String, port: Int, path: String, tls: TLSContext?, maxStreams: Int, connectTimeoutSeconds: Double = 5
    ) throws {
        precondition(maxStreams > 0, "maxStreams must be positive")
        self.maxStreams = maxStreams
        let socketFD = try Socket.connect(host: host, port: port, timeoutSeconds: connectTimeoutSeconds)
        fd = socketFD
        _ = fcntl(socketFD, F_SETFL, fcntl(socketFD, F_GETFL) | O_NONBLOCK)
        if let tls {
            guard let stream = TLSStream(context: tls, fd: socketFD) else {
                close(socketFD)
                throw TLSError(description: "cannot create a TLS connection object")
            }
            do {
                try HTTP2LoadConnection.handshake(
                    stream, fd: socketFD, deadlineNanos: MonotonicClock.nowNanos + UInt64(connectTimeoutSeconds * 1e9),
                    address: "\(host):\(port)")
            } catch {
                close(socketFD)
                throw error
            }
            self.tls = stream
        } else {
            self.tls = nil
        }
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
        readBuffer = .allocate(byteCount: 64 << 10, alignment: 16)
        out = .allocate(byteCount: outCapacity, alignment: 16)

        let fields: [(String, String)] = [
            (":method", "POST"), (":scheme", tls == nil ? "http" : "https"), (":path", path),
            (":authority", "\(host):\(port)"), ("content-type", "application/grpc"), ("te", "trailers"),
        ]
        headerCount = fields.count
        headers = .allocate(capacity: fields.count)
        headerBytes = .allocate(byteCount: fields.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count }, alignment: 1)
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
                malloc: { size, pool in loadPool(pool).allocate(size) },
                free: { pointer, pool in loadPool(pool).deallocate(pointer) },
                calloc: { count, size, pool in loadPool(pool).allocateZeroed(count, size) },
                realloc: { pointer, size, pool in loadPool(pool).reallocate(pointer, size) }))
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_header_callback(callbacks, loadOnHeader)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, loadOnStreamClose)
        var created: OpaquePointer?
        guard
            nghttp2_session_client_new3(&created, callbacks, Unmanaged.passUnretained(self).toOpaque(), nil, memory)
                == 0
        else {
            failure = "cannot create an HTTP/2 client session"
            throw TransportError("cannot create an HTTP/2 client session for \(host):\(port)")
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

    /// Queues one unary call with `body` (a complete gRPC-framed request message) and `tag`
    /// (returned with its status by `drainFinished`; the load generator passes a time). The
    /// bytes are sent by the next `flush`. Returns false if the connection is full or failed.
    public func submit(body: UnsafeRawBufferPointer, tag: UInt64) -> Bool {
        guard canSubmit, let session else { return false }
        freeCount -= 1
        let slot = Int(freeSlots[freeCount])
        slotTag[slot] = tag
        slotBody[slot] = body
        slotOffset[slot] = 0
        slotHTTPStatus[slot] = 0
        slotGRPCStatus[slot] = -1
        var provider = cnghttp2_data_provider(loadReadBody)
        let stream = nghttp2_submit_request(
            session, nil, headers, headerCount, &provider, UnsafeMutableRawPointer(bitPattern: slot + 1))
        guard stream > 0 else {
            freeSlots[freeCount] = Int32(slot)
            freeCount += 1
            fail("cannot submit a request (nghttp2 error \(stream))")
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
                        fail("HTTP/2 send error: \(String(cString: nghttp2_strerror(Int32(n))))")
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
                    fail("the server closed the TLS session")
                    return false
                case .failed(let reasons):
                    fail("TLS write failed: \(reasons)")
                    return false
                }
            } else {
                let w = send(fd, pending.baseAddress, pending.count, Int32(MSG_NOSIGNAL))
                if w < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { return true }
                    fail("write: \(Socket.errnoText())")
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
                    fail("the server closed the connection")
                    return
                case .failed(let reasons):
                    fail("TLS read failed: \(reasons)")
                    return
                }
            } else {
                let r = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
                if r < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { return }
                    fail("read: \(Socket.errnoText())")
                    return
                }
                if r == 0 {
                    fail("the server closed the connection")
                    return
                }
                count = r
            }
            let rv = nghttp2_session_mem_recv(
                session, readBuffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count)
            if rv < 0 {
                fail("HTTP/2 protocol error: \(String(cString: nghttp2_strerror(Int32(rv))))")
                return
            }
            // A short read means the socket is drained; TLS may still hold decrypted bytes.
            if count < readBuffer.count && (tls == nil || tls!.pendingBytes == 0) { return }
        }
    }

    /// Calls `body(tag, status)` for every call finished since the last drain (status as in
    /// `LoadCallStatus`), in the order they finished.
    @inline(__always)
    public func drainFinished(_ body: (UInt64, Int32) -> Void) {
        var i = 0
        while i < doneCount {
            body(doneTag[i], doneStatus[i])
            i += 1
        }
        doneCount = 0
    }

    /// Marks the connection failed; every call in flight finishes as `connectionLost`.
    private func fail(_ reason: String) {
        guard failure == nil else { return }
        failure = reason
        for slot in 0..<maxStreams where slotStream[slot] != 0 {
            finish(slot: slot, status: LoadCallStatus.connectionLost)
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
            slotHTTPStatus[slot] = HTTP2LoadConnection.digits(value)
        } else if name.count == 11 && name[0] == UInt8(ascii: "g") && name[5] == UInt8(ascii: "s") {
            slotGRPCStatus[slot] = HTTP2LoadConnection.digits(value)
        }
    }

    fileprivate func streamClosed(slot: Int, errorCode: UInt32) {
        let status: Int32
        if errorCode != 0 {
            status = LoadCallStatus.streamReset
        } else if slotHTTPStatus[slot] != 200 {
            status = LoadCallStatus.httpError
        } else if slotGRPCStatus[slot] < 0 {
            status = LoadCallStatus.missingStatus
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

    private static func handshake(_ stream: TLSStream, fd: Int32, deadlineNanos: UInt64, address: String) throws {
        while true {
            var events = Int16(0)
            switch stream.handshake() {
            case .bytes:
                guard stream.negotiatedH2 else {
                    throw TLSError(description: "\(address) did not negotiate ALPN h2")
                }
                return
            case .wantRead: events = Int16(POLLIN)
            case .wantWrite: events = Int16(POLLOUT)
            case .closed: throw TLSError(description: "\(address) closed the connection during the TLS handshake")
            case .failed(let reasons): throw TLSError(description: "TLS handshake with \(address) failed: \(reasons)")
            }
            let now = MonotonicClock.nowNanos
            guard now < deadlineNanos else { throw TLSError(description: "TLS handshake with \(address) timed out") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            _ = poll(&p, 1, Int32((deadlineNanos - now) / 1_000_000 + 1))
        }
    }
}

// nghttp2 callbacks: recover the connection from user data; never throw or allocate.

@inline(__always)
private func loadPool(_ raw: UnsafeMutableRawPointer?) -> BlockPool {
    Unmanaged<BlockPool>.fromOpaque(raw!).takeUnretainedValue()
}

private let loadOnHeader: nghttp2_on_header_callback = {
    session, frame, name, nameLength, value, valueLength, _, user in
    guard let frame, cnghttp2_frame_type(frame) == UInt8(CNGHTTP2_FRAME_HEADERS), let user else { return 0 }
    let me = Unmanaged<HTTP2LoadConnection>.fromOpaque(user).takeUnretainedValue()
    guard let slot = me.slot(forStream: cnghttp2_frame_stream_id(frame)) else { return 0 }
    me.header(
        slot: slot, name: UnsafeRawBufferPointer(start: name, count: nameLength),
        value: UnsafeRawBufferPointer(start: value, count: valueLength))
    return 0
}

private let loadOnStreamClose: nghttp2_on_stream_close_callback = { _, stream, errorCode, user in
    guard let user else { return 0 }
    let me = Unmanaged<HTTP2LoadConnection>.fromOpaque(user).takeUnretainedValue()
    if let slot = me.slot(forStream: stream) { me.streamClosed(slot: slot, errorCode: errorCode) }
    return 0
}

private let loadReadBody: nghttp2_data_source_read_callback = { session, stream, buffer, length, flags, _, user in
    guard let user, let buffer, let flags else { return Int(CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE) }
    let me = Unmanaged<HTTP2LoadConnection>.fromOpaque(user).takeUnretainedValue()
    guard let slot = me.slot(forStream: stream) else { return Int(CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE) }
    let (n, eof) = me.readBody(slot: slot, into: buffer, length: length)
    if eof { flags.pointee |= UInt32(CNGHTTP2_DATA_FLAG_EOF) }
    return n
}
