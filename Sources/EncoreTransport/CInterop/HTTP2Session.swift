internal import CNghttp2

/// HTTP/2 settings the server advertises and enforces. `package`, like the session types
/// below, so the fuzz targets (EncoreFuzzTargets) can drive a session with in-memory bytes.
package struct HTTP2Settings: Sendable {
    package var maxConcurrentStreams: UInt32
    package var maxHeaderListBytes: UInt32
    /// Per-stream receive window (bytes).
    package var initialWindowBytes: UInt32 = 1 << 20
    /// Connection receive window (bytes).
    package var connectionWindowBytes: Int32 = 16 << 20

    package init(maxConcurrentStreams: UInt32, maxHeaderListBytes: UInt32) {
        self.maxConcurrentStreams = maxConcurrentStreams
        self.maxHeaderListBytes = maxHeaderListBytes
    }
}

/// What an `HTTP2Session` reports about request streams, with Swift types only. `Connection`
/// is the one in the server; a test can drive a session with in-memory bytes through its own.
/// Every method is called on the session's thread, from inside `HTTP2Session.receive` or
/// `drainOutput`, and must not throw or block.
package protocol HTTP2SessionDelegate: AnyObject {
    /// A request stream's HEADERS began: returns a slot index (>= 0) the session hands back in
    /// the other calls, or -1 to refuse the stream (nghttp2 resets only that stream).
    func streamBegan(streamID: Int32) -> Int
    /// One header field of the request (or of its trailers when `isTrailer`); the bytes are
    /// valid only during the call. Returns false when the field makes the request malformed
    /// (RFC 9113 §8.1.1): the session resets the stream with PROTOCOL_ERROR and reports no
    /// more of its header block. nghttp2's own HTTP message checks are off: the delegate
    /// enforces them (`GRPCRequestHead`).
    func streamHeader(slot: Int, isTrailer: Bool, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool
    /// The request HEADERS frame, or with `isTrailer` its trailers, is complete (`endStream`: it
    /// also ends the request). Returns false when the request is malformed (PROTOCOL_ERROR, as
    /// above; trailers must end the stream, RFC 9113 §8.1).
    func streamHeadersComplete(slot: Int, isTrailer: Bool, endStream: Bool) -> Bool
    /// A chunk of request DATA (valid only during the call). Returns false when the request is
    /// malformed (more DATA than its `content-length`).
    func streamData(slot: Int, bytes: UnsafeRawBufferPointer) -> Bool
    /// The client ended its side of the stream (END_STREAM). Returns false when the request is
    /// malformed (DATA short of its `content-length`).
    func streamEnded(slot: Int) -> Bool
    /// The client sent RST_STREAM (`slot` is -1 if it named no request stream).
    func streamReset(slot: Int)
    /// nghttp2 closed the stream; the slot may be reused.
    func streamClosed(slot: Int, errorCode: UInt32)
    /// Copies the next part of the response body into `buffer`; returns the bytes copied and
    /// what follows them (a unary response is `.okTrailers` once its message is copied).
    func readResponseBody(slot: Int, into buffer: UnsafeMutableRawBufferPointer) -> (Int, HTTP2BodyEnd)
    /// For `.statusTrailers`: calls `body` with the stream's final gRPC status code and its
    /// percent-encoded message (valid only during the call).
    func withTrailerStatus(slot: Int, _ body: (Int, UnsafeRawBufferPointer) -> Void)
}

/// What comes after the bytes `readResponseBody` copied.
package enum HTTP2BodyEnd {
    /// More body bytes are ready: read again.
    case more
    /// The body is complete: send the `grpc-status: 0` trailers.
    case okTrailers
    /// The body is complete: send trailers with `withTrailerStatus`'s status.
    case statusTrailers
    /// Nothing more now (a streaming call waiting for its handler): the owner calls
    /// `resumeData` when there is.
    case deferred
}

/// The nghttp2 callbacks, options, allocator and data provider every server session of one
/// reactor shares: built once per reactor, not per connection (nghttp2 copies them into each
/// session it creates). The allocator reaches the reactor's `BlockPool` through unretained
/// user data: the pool must outlive every session (the reactor owns both).
package final class HTTP2SessionTemplate {
    fileprivate let callbacks: OpaquePointer
    fileprivate let option: OpaquePointer
    fileprivate let memory: UnsafeMutablePointer<nghttp2_mem>
    fileprivate let dataProvider: UnsafeMutablePointer<nghttp2_data_provider>
    /// For plain HTTP responses (`/metrics`): the body ends the stream, no trailers.
    fileprivate let plainDataProvider: UnsafeMutablePointer<nghttp2_data_provider>

    /// `nghttp2ChecksMessages`: leave libnghttp2's HTTP message checks on (the tests compare
    /// them with `GRPCRequestHead`'s); the server turns them off.
    package init(pool: BlockPool, nghttp2ChecksMessages: Bool = false) throws(HTTP2Session.Failure) {
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else {
            throw .nghttp2("nghttp2_session_callbacks_new failed")
        }
        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0, let option else {
            nghttp2_session_callbacks_del(callbacks)
            throw .nghttp2("nghttp2_option_new failed")
        }
        self.callbacks = callbacks
        self.option = option
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, HTTP2Session.onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, HTTP2Session.onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, HTTP2Session.onFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, HTTP2Session.onDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, HTTP2Session.onStreamClose)
        // Enforce our advertised stream limit from the first frame, before the client ACKs SETTINGS.
        nghttp2_option_set_max_settings(option, 32)
        // A server session keeps closed streams for the RFC 7540 priority tree, as many as the
        // local MAX_CONCURRENT_STREAMS, which nghttp2 is told is unbounded (see
        // `unenforcedStreamLimit`): without this every finished call of a long-lived connection
        // stays in nghttp2's stream map (about 170 bytes each, 1.5M calls on one connection grew
        // the server by 250 MB and slowed every stream lookup). Encore does not use priorities.
        nghttp2_option_set_no_closed_streams(option, 1)
        // RFC 9113 §8 message rules are the delegate's (`GRPCRequestHead`): nghttp2 checks
        // every byte of every field again, about 2,300 instructions per call.
        if !nghttp2ChecksMessages { nghttp2_option_set_no_http_messaging(option, 1) }

        memory = .allocate(capacity: 1)
        memory.initialize(
            to: nghttp2_mem(
                mem_user_data: Unmanaged.passUnretained(pool).toOpaque(),
                malloc: { size, pool in
                    HTTP2SessionTemplate.withPool(pool) { $0.allocate(size) }
                },
                free: { pointer, pool in
                    HTTP2SessionTemplate.withPool(pool) { $0.deallocate(pointer) }
                },
                calloc: { count, size, pool in
                    HTTP2SessionTemplate.withPool(pool) { $0.allocateZeroed(count, size) }
                },
                realloc: { pointer, size, pool in
                    HTTP2SessionTemplate.withPool(pool) { $0.reallocate(pointer, size) }
                }))
        dataProvider = .allocate(capacity: 1)
        dataProvider.initialize(to: cnghttp2_data_provider(HTTP2Session.readBody))
        plainDataProvider = .allocate(capacity: 1)
        plainDataProvider.initialize(to: cnghttp2_data_provider(HTTP2Session.readPlainBody))
    }

    deinit {
        nghttp2_session_callbacks_del(callbacks)
        nghttp2_option_del(option)
        memory.deallocate()
        dataProvider.deallocate()
        plainDataProvider.deallocate()
    }

    /// The pool behind nghttp2's allocator user data, without retaining it.
    @inline(__always)
    private static func withPool<R>(_ raw: UnsafeMutableRawPointer?, _ body: (BlockPool) -> R) -> R {
        Unmanaged<BlockPool>.fromOpaque(raw!)._withUnsafeGuaranteedRef(body)
    }
}

/// Owns one nghttp2 server session (the only Swift type that sees nghttp2's C types).
///
/// Driven from the reactor with `receive` (nghttp2_session_mem_recv) and `drainOutput`
/// (nghttp2_session_mem_send); nghttp2 never touches the socket. Callbacks recover `self` from
/// the user-data pointer without retaining it and forward to the delegate with Swift types only.
package final class HTTP2Session {
    private var session: OpaquePointer?
    /// Retained, so callbacks borrow it from `self` without reference counting (an unowned
    /// reference would be retained on every load). The delegate owning this session must drop
    /// it when it closes (`Connection.closeSocket`) to break the cycle.
    let delegate: any HTTP2SessionDelegate
    /// Not retained: the reactor owns the template and outlives its sessions.
    private unowned(unsafe) let template: HTTP2SessionTemplate
    private let headers: UnsafeMutablePointer<nghttp2_nv>
    private static let headerCapacity = 8

    package enum Failure: Error {
        case nghttp2(String)
    }

    package init(
        delegate: any HTTP2SessionDelegate, settings: HTTP2Settings, template: HTTP2SessionTemplate
    ) throws(Failure) {
        self.delegate = delegate
        self.template = template
        headers = .allocate(capacity: HTTP2Session.headerCapacity)
        var created: OpaquePointer?
        let rv = nghttp2_session_server_new3(
            &created, template.callbacks, Unmanaged.passUnretained(self).toOpaque(), template.option, template.memory)
        guard rv == 0, let created else {
            headers.deallocate()
            throw .nghttp2("nghttp2_session_server_new3: \(String(cString: nghttp2_strerror(rv)))")
        }
        session = created

        // nghttp2 answers a stream over its acknowledged MAX_CONCURRENT_STREAMS with GOAWAY
        // PROTOCOL_ERROR for the whole connection (and its calls in flight). So nghttp2 is told a
        // limit it never reaches, the client is told the real one (`greeting`), and the owner
        // refuses a stream over it with RST_STREAM(REFUSED_STREAM), which gRPC clients retry.
        var entries = [
            cnghttp2_setting(Int32(CNGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), HTTP2Session.unenforcedStreamLimit),
            cnghttp2_setting(Int32(CNGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE), settings.maxHeaderListBytes),
            cnghttp2_setting(Int32(CNGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE), settings.initialWindowBytes),
            cnghttp2_setting(Int32(CNGHTTP2_SETTINGS_ENABLE_PUSH), 0),
            // RFC 9218: no RFC 7540 priority tree. nghttp2 then keeps no dependency tree per
            // stream (its upkeep was ~400 instructions per call); gRPC does not use priorities.
            cnghttp2_setting(Int32(CNGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES), 1),
        ]
        _ = nghttp2_submit_settings(created, 0, &entries, entries.count)
        _ = nghttp2_session_set_local_window_size(created, 0, 0, settings.connectionWindowBytes)
        var first: [UInt8] = []
        _ = drainOutput {
            first.append(contentsOf: $0)
            return true
        }
        HTTP2Session.advertise(maxConcurrentStreams: settings.maxConcurrentStreams, in: &first)
        greeting = first
    }

    /// The MAX_CONCURRENT_STREAMS nghttp2 itself is given (it never refuses or closes on it).
    static let unenforcedStreamLimit = UInt32(Int32.max)

    /// The server's first output (SETTINGS with the advertised stream limit, the connection
    /// WINDOW_UPDATE). The owner sends it before anything `drainOutput` yields.
    private(set) var greeting: [UInt8] = []

    /// Takes `greeting` (once).
    func takeGreeting() -> [UInt8] {
        defer { greeting = [] }
        return greeting
    }

    /// Rewrites the MAX_CONCURRENT_STREAMS entry of the SETTINGS frame at the start of `bytes`
    /// to `limit`.
    static func advertise(maxConcurrentStreams limit: UInt32, in bytes: inout [UInt8]) {
        guard bytes.count >= 9, bytes[3] == 4 else { return }
        let length = Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2])
        var i = 9
        while i + 6 <= min(bytes.count, 9 + length) {
            if bytes[i] == 0 && bytes[i + 1] == UInt8(CNGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) {
                bytes[i + 2] = UInt8(truncatingIfNeeded: limit >> 24)
                bytes[i + 3] = UInt8(truncatingIfNeeded: limit >> 16)
                bytes[i + 4] = UInt8(truncatingIfNeeded: limit >> 8)
                bytes[i + 5] = UInt8(truncatingIfNeeded: limit)
            }
            i += 6
        }
    }

    deinit {
        if let session { nghttp2_session_del(session) }
        headers.deallocate()
    }

    // MARK: Driving the session

    /// Feeds received bytes. Returns false when the connection must be closed (bad preface,
    /// protocol error nghttp2 cannot answer, callback failure).
    package func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let session, let base = bytes.baseAddress else { return true }
        let rv = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        if rv == Int(CNGHTTP2_ERR_BAD_CLIENT_MAGIC) { sawBadPreface = true }
        return rv >= 0
    }

    /// The input did not start with the HTTP/2 client preface (for the close reason).
    private(set) var sawBadPreface = false

    /// Calls `sink` with each chunk of serialized output (valid only during the call) until
    /// nghttp2 has nothing more or `sink` returns false. Returns false on a fatal error.
    @inline(__always)
    package func drainOutput(_ sink: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        guard let session else { return false }
        while true {
            var data: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &data)
            if n < 0 { return false }
            if n == 0 { return true }
            if !sink(UnsafeRawBufferPointer(start: data, count: n)) { return true }
        }
    }

    /// True while nghttp2 still expects input or has output to send.
    package var isAlive: Bool {
        guard let session else { return false }
        return nghttp2_session_want_read(session) != 0 || nghttp2_session_want_write(session) != 0
    }

    var wantsWrite: Bool {
        guard let session else { return false }
        return nghttp2_session_want_write(session) != 0
    }

    // MARK: Submitting

    /// HEADERS (200, application/grpc) followed by DATA pulled from the owner's response buffer
    /// and trailers with the stream's status. With the stream's `slot`, the body reads reach
    /// the owner without a stream lookup (nghttp2 copies the provider, so it may be local).
    package func submitResponse(streamID: Int32, slot: Int = -1) -> Bool {
        guard let session else { return false }
        var n = 0
        addHeader(&n, ":status", "200")
        addHeader(&n, "content-type", "application/grpc")
        addHeader(&n, "grpc-accept-encoding", "identity")
        if slot >= 0 && slot < Int(Int32.max) {
            // The tag is slot + 1: 0 stays "look it up".
            var provider = cnghttp2_data_provider_tagged(HTTP2Session.readBody, Int32(slot + 1))
            return nghttp2_submit_response(session, streamID, headers, n, &provider) == 0
        }
        return nghttp2_submit_response(session, streamID, headers, n, template.dataProvider) == 0
    }

    /// Resumes a stream whose body read returned `.deferred` (new bytes or its end are ready).
    func resumeData(streamID: Int32) {
        guard let session else { return }
        _ = nghttp2_session_resume_data(session, streamID)
    }

    /// A plain HTTP response (`/metrics`, `/status`): HEADERS with `status`, `contentType` and
    /// optionally `www-authenticate`, then the owner's response buffer as DATA ending the stream.
    func submitPlainResponse(
        streamID: Int32, status: Int, contentType: UnsafeRawBufferPointer, wwwAuthenticate: UnsafeRawBufferPointer?
    ) -> Bool {
        guard let session else { return false }
        var n = 0
        addHeader(&n, ":status", HTTP2Session.httpStatusText(status))
        addCopiedHeader(&n, "content-type", contentType)
        addHeader(&n, "cache-control", "no-store")
        if let wwwAuthenticate, wwwAuthenticate.count > 0 { addCopiedHeader(&n, "www-authenticate", wwwAuthenticate) }
        return nghttp2_submit_response(session, streamID, headers, n, template.plainDataProvider) == 0
    }

    /// One HEADERS frame with END_STREAM carrying the gRPC status (a trailers-only response).
    /// `message` is the already percent-encoded grpc-message (may be empty).
    package func submitTrailersOnly(streamID: Int32, httpStatus: Int, code: Int, message: UnsafeRawBufferPointer)
        -> Bool
    {
        guard let session else { return false }
        var n = 0
        addHeader(&n, ":status", HTTP2Session.httpStatusText(httpStatus))
        addHeader(&n, "content-type", "application/grpc")
        addHeader(&n, "grpc-accept-encoding", "identity")
        addHeader(&n, "grpc-status", HTTP2Session.statusText(code))
        if message.count > 0 {
            addCopiedHeader(&n, "grpc-message", message)
        }
        return nghttp2_submit_response(session, streamID, headers, n, nil) == 0
    }

    /// Resets a stream (e.g. RST_STREAM CANCEL after a deadline when headers were already sent).
    package func resetStream(streamID: Int32, cancel: Bool) {
        guard let session else { return }
        _ = nghttp2_submit_rst_stream(
            session, 0, streamID, UInt32(cancel ? CNGHTTP2_CANCEL : CNGHTTP2_INTERNAL_ERROR))
    }

    /// RST_STREAM error codes the owner sends itself.
    enum ResetCode {
        case noError, enhanceYourCalm
    }

    /// Resets a stream with `code`.
    func resetStream(streamID: Int32, code: ResetCode) {
        guard let session else { return }
        let value =
            switch code {
            case .noError: UInt32(CNGHTTP2_NO_ERROR)
            case .enhanceYourCalm: UInt32(CNGHTTP2_ENHANCE_YOUR_CALM)
            }
        _ = nghttp2_submit_rst_stream(session, 0, streamID, value)
    }

    /// GOAWAY with the highest possible stream id: a hint that shutdown is coming.
    func submitShutdownNotice() {
        guard let session else { return }
        _ = nghttp2_submit_shutdown_notice(session)
    }

    /// GOAWAY NO_ERROR naming the last stream processed: no new streams, existing ones finish.
    func submitGracefulGoaway() {
        guard let session else { return }
        _ = nghttp2_submit_goaway(
            session, 0, nghttp2_session_get_last_proc_stream_id(session), UInt32(CNGHTTP2_NO_ERROR), nil, 0)
    }

    /// GOAWAY with ENHANCE_YOUR_CALM, then the session ends once it is sent.
    func terminateEnhanceYourCalm() {
        guard let session else { return }
        _ = nghttp2_session_terminate_session(session, UInt32(CNGHTTP2_ENHANCE_YOUR_CALM))
    }

    /// Associates a stream with the owner's slot index (and makes it the cached entry).
    private func setSlot(_ slot: Int, for streamID: Int32) {
        guard let session else { return }
        _ = nghttp2_session_set_stream_user_data(session, streamID, UnsafeMutableRawPointer(bitPattern: slot + 1))
        cachedStreamID = streamID
        cachedSlot = slot
    }

    private static func slot(_ session: OpaquePointer?, _ streamID: Int32) -> Int {
        guard let raw = nghttp2_session_get_stream_user_data(session, streamID) else { return -1 }
        return Int(bitPattern: raw) - 1
    }

    /// The stream whose frames arrived last and its slot: a one-entry cache in front of
    /// nghttp2's stream map, which every header of a request would otherwise search. An entry
    /// is valid from `setSlot` until its stream closes (`onStreamClose` clears it); stream 0 is
    /// never a request stream.
    private var cachedStreamID: Int32 = 0
    private var cachedSlot = -1

    @inline(__always)
    private func slot(for streamID: Int32) -> Int {
        if streamID == cachedStreamID { return cachedSlot }
        let slot = HTTP2Session.slot(session, streamID)
        if slot >= 0 {
            cachedStreamID = streamID
            cachedSlot = slot
        }
        return slot
    }

    // MARK: Header tables (static bytes: nghttp2 never copies them)

    @inline(__always)
    private func addHeader(_ n: inout Int, _ name: StaticString, _ value: StaticString) {
        headers[n] = cnghttp2_nv(
            name.utf8Start, name.utf8CodeUnitCount, value.utf8Start, value.utf8CodeUnitCount, 0)
        n += 1
    }

    @inline(__always)
    private func addCopiedHeader(_ n: inout Int, _ name: StaticString, _ value: UnsafeRawBufferPointer) {
        headers[n] = cnghttp2_nv(
            name.utf8Start, name.utf8CodeUnitCount,
            value.baseAddress!.assumingMemoryBound(to: UInt8.self), value.count, 1)
        n += 1
    }

    static func statusText(_ code: Int) -> StaticString {
        switch code {
        case 0: "0"
        case 1: "1"
        case 2: "2"
        case 3: "3"
        case 4: "4"
        case 5: "5"
        case 6: "6"
        case 7: "7"
        case 8: "8"
        case 9: "9"
        case 10: "10"
        case 11: "11"
        case 12: "12"
        case 13: "13"
        case 14: "14"
        case 15: "15"
        case 16: "16"
        default: "2"
        }
    }

    static func httpStatusText(_ status: Int) -> StaticString {
        switch status {
        case 401: "401"
        case 403: "403"
        case 404: "404"
        case 405: "405"
        case 415: "415"
        case 431: "431"
        case 500: "500"
        case 503: "503"
        default: "200"
        }
    }

    // MARK: nghttp2 callbacks (C function pointers: no captures, no throwing, no allocation)

    /// The session behind nghttp2's user data, without retaining it (nghttp2 calls back only
    /// from inside `receive`/`drainOutput`, while the session is alive).
    @inline(__always)
    private static func withMe<R>(_ userData: UnsafeMutableRawPointer?, _ body: (HTTP2Session) -> R) -> R {
        Unmanaged<HTTP2Session>.fromOpaque(userData!)._withUnsafeGuaranteedRef(body)
    }

    fileprivate static let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
        guard let frame, cnghttp2_frame_type(frame) == UInt8(CNGHTTP2_FRAME_HEADERS),
            cnghttp2_frame_headers_category(frame) == Int32(CNGHTTP2_HCAT_REQUEST)
        else { return 0 }
        let streamID = cnghttp2_frame_stream_id(frame)
        return withMe(userData) { me in
            let slot = me.delegate.streamBegan(streamID: streamID)
            if slot < 0 {
                // Over the stream limit: RST_STREAM(REFUSED_STREAM) for this stream only (the
                // client may retry it; nothing of it was processed).
                _ = nghttp2_submit_rst_stream(me.session, 0, streamID, UInt32(CNGHTTP2_REFUSED_STREAM))
                return Int32(CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE)
            }
            me.setSlot(slot, for: streamID)
            return 0
        }
    }

    fileprivate static let onHeader: nghttp2_on_header_callback = {
        _, frame, name, nameLength, value, valueLength, _, userData in
        guard let frame, cnghttp2_frame_type(frame) == UInt8(CNGHTTP2_FRAME_HEADERS) else { return 0 }
        let streamID = cnghttp2_frame_stream_id(frame)
        let isTrailer = cnghttp2_frame_headers_category(frame) != Int32(CNGHTTP2_HCAT_REQUEST)
        return withMe(userData) { me in
            let slot = me.slot(for: streamID)
            guard slot >= 0 else { return 0 }
            let wellFormed = me.delegate.streamHeader(
                slot: slot, isTrailer: isTrailer,
                name: UnsafeRawBufferPointer(start: name, count: nameLength),
                value: UnsafeRawBufferPointer(start: value, count: valueLength))
            if wellFormed { return 0 }
            // The reset comes first: nghttp2's own reset for the failure below is then dropped.
            me.resetMalformed(streamID)
            return Int32(CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE)
        }
    }

    /// RST_STREAM(PROTOCOL_ERROR) for a malformed request (RFC 9113 §8.1.1).
    private func resetMalformed(_ streamID: Int32) {
        _ = nghttp2_submit_rst_stream(session, 0, streamID, UInt32(CNGHTTP2_PROTOCOL_ERROR))
    }

    fileprivate static let onFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, userData in
        guard let frame else { return 0 }
        let type = cnghttp2_frame_type(frame)
        let endStream = cnghttp2_frame_flags(frame) & UInt8(CNGHTTP2_FLAG_END_STREAM) != 0
        switch Int(type) {
        case Int(CNGHTTP2_FRAME_HEADERS):
            let streamID = cnghttp2_frame_stream_id(frame)
            let isRequest = cnghttp2_frame_headers_category(frame) == Int32(CNGHTTP2_HCAT_REQUEST)
            withMe(userData) { me in
                let slot = me.slot(for: streamID)
                guard slot >= 0 else { return }
                guard me.delegate.streamHeadersComplete(slot: slot, isTrailer: !isRequest, endStream: endStream)
                else { return me.resetMalformed(streamID) }
                if endStream && !me.delegate.streamEnded(slot: slot) { me.resetMalformed(streamID) }
            }
        case Int(CNGHTTP2_FRAME_DATA):
            guard endStream else { return 0 }
            let streamID = cnghttp2_frame_stream_id(frame)
            withMe(userData) { me in
                let slot = me.slot(for: streamID)
                if slot >= 0 && !me.delegate.streamEnded(slot: slot) { me.resetMalformed(streamID) }
            }
        case Int(CNGHTTP2_FRAME_RST_STREAM):
            let streamID = cnghttp2_frame_stream_id(frame)
            withMe(userData) { me in me.delegate.streamReset(slot: me.slot(for: streamID)) }
        default:
            break
        }
        return 0
    }

    fileprivate static let onDataChunk: nghttp2_on_data_chunk_recv_callback = {
        _, _, streamID, data, length, userData in
        withMe(userData) { me in
            let slot = me.slot(for: streamID)
            guard slot >= 0 else { return }
            if !me.delegate.streamData(slot: slot, bytes: UnsafeRawBufferPointer(start: data, count: length)) {
                me.resetMalformed(streamID)
            }
        }
        return 0
    }

    fileprivate static let onStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
        withMe(userData) { me in
            let slot = me.slot(for: streamID)
            if streamID == me.cachedStreamID {
                me.cachedStreamID = 0
                me.cachedSlot = -1
            }
            guard slot >= 0 else { return }
            me.delegate.streamClosed(slot: slot, errorCode: errorCode)
        }
        return 0
    }

    fileprivate static let readPlainBody: nghttp2_data_source_read_callback = {
        session, streamID, buffer, length, dataFlags, _, userData in
        let slot = slot(session, streamID)
        guard slot >= 0, let buffer, let dataFlags else { return Int(CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE) }
        return withMe(userData) { me in
            let (count, end) = me.delegate.readResponseBody(
                slot: slot, into: UnsafeMutableRawBufferPointer(start: buffer, count: length))
            switch end {
            case .more:
                return count
            case .deferred:
                return count > 0 ? count : Int(CNGHTTP2_ERR_DEFERRED)
            case .okTrailers, .statusTrailers:
                // A plain HTTP body has no trailers: its end ends the stream.
                dataFlags.pointee |= UInt32(CNGHTTP2_DATA_FLAG_EOF)
                return count
            }
        }
    }

    fileprivate static let readBody: nghttp2_data_source_read_callback = {
        session, streamID, buffer, length, dataFlags, source, userData in
        // Tagged by `submitResponse(streamID:slot:)`; else (0, the shared provider) looked up.
        let tag = source.map { Int(cnghttp2_data_source_tag($0)) } ?? 0
        let slot = tag > 0 ? tag - 1 : slot(session, streamID)
        guard slot >= 0, let buffer, let dataFlags else { return Int(CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE) }
        return withMe(userData) { me in
            let (count, end) = me.delegate.readResponseBody(
                slot: slot, into: UnsafeMutableRawBufferPointer(start: buffer, count: length))
            switch end {
            case .more:
                return count
            case .deferred:
                return count > 0 ? count : Int(CNGHTTP2_ERR_DEFERRED)
            case .okTrailers:
                dataFlags.pointee |= UInt32(CNGHTTP2_DATA_FLAG_EOF) | UInt32(CNGHTTP2_DATA_FLAG_NO_END_STREAM)
                var n = 0
                me.addHeader(&n, "grpc-status", "0")
                if nghttp2_submit_trailer(session, streamID, me.headers, n) != 0 {
                    return Int(CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE)
                }
                return count
            case .statusTrailers:
                dataFlags.pointee |= UInt32(CNGHTTP2_DATA_FLAG_EOF) | UInt32(CNGHTTP2_DATA_FLAG_NO_END_STREAM)
                var rv: Int32 = 0
                me.delegate.withTrailerStatus(slot: slot) { code, message in
                    var n = 0
                    me.addHeader(&n, "grpc-status", HTTP2Session.statusText(code))
                    if message.count > 0 { me.addCopiedHeader(&n, "grpc-message", message) }
                    rv = nghttp2_submit_trailer(session, streamID, me.headers, n)
                }
                return rv == 0 ? count : Int(CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE)
            }
        }
    }
}
