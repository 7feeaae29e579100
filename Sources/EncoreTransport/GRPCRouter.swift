import EncoreSupport

/// Per-call information handed to handlers.
public struct GRPCCallContext: Sendable {
    /// Index of the reactor thread that owns the call (0..<threads): handlers that keep
    /// per-thread scratch state index it with this.
    public var reactorIndex: Int
    /// Monotonic deadline in nanoseconds (`MonotonicClock.nowNanos` scale), or nil for none.
    public var deadlineNanos: UInt64?
    /// Who is calling, as `GRPCServerConfiguration.credentials` mapped the `authorization` header
    /// (`anonymous` without the header or without a credentials hook).
    public var principal: Int32 = GRPCCallContext.anonymous
    /// The connection's peer, read at accept (for audit lines).
    public var peer: PeerAddress = .unknown

    /// FNV-1a 64 of the request's `x-encore-customer` header (the load balancer's routing key,
    /// Protocol/PROTOCOL.md), or nil when the request has none. A handler compares it with the
    /// same hash of the body's customer id (`GRPCCallContext.affinityHash`) without allocating.
    public var affinityKeyHash: UInt64? = nil

    /// The principal of a call without credentials.
    public static let anonymous: Int32 = -1

    public init(
        reactorIndex: Int, deadlineNanos: UInt64?, principal: Int32 = GRPCCallContext.anonymous,
        peer: PeerAddress = .unknown,
        affinityKeyHash: UInt64? = nil
    ) {
        self.reactorIndex = reactorIndex
        self.deadlineNanos = deadlineNanos
        self.principal = principal
        self.peer = peer
        self.affinityKeyHash = affinityKeyHash
    }

    /// FNV-1a 64 of `bytes`: the hash `affinityKeyHash` holds.
    @inlinable
    public static func affinityHash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }
}

/// The reusable buffer a hot-path handler writes its serialized response message into.
/// Its storage belongs to the stream slot and is reused across calls.
public struct GRPCResponseBuffer {
    @usableFromInline var bytes: [UInt8]
    /// Which of the method's latency labels this call is observed under (an index into the
    /// route's `latencyLabels`); -1 (the default for every call) observes nothing.
    public var metricsLabel: Int32 = -1

    init() {
        bytes = []
    }

    /// Appends raw bytes of the serialized message.
    @inlinable
    public mutating func append(_ data: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: data)
    }

    /// Appends one byte of the serialized message.
    @inlinable
    public mutating func append(_ byte: UInt8) {
        bytes.append(byte)
    }

    /// Gives direct access to the storage for encoders that append to a `[UInt8]`. Only
    /// appending is allowed: the first 5 bytes are the gRPC prefix, filled in by the transport.
    @inlinable
    public mutating func withAppendableBytes<R>(_ body: (inout [UInt8]) -> R) -> R {
        body(&bytes)
    }

    /// Bytes of the message written so far.
    public var messageByteCount: Int { bytes.count - 5 }

    /// Clears the buffer and reserves the 5-byte gRPC prefix (filled in by `sealMessage`).
    mutating func beginMessage() {
        bytes.removeAll(keepingCapacity: true)
        for _ in 0..<5 { bytes.append(0) }
    }

    /// Writes the prefix for the message appended since `beginMessage`.
    mutating func sealMessage() {
        GRPCFraming.writePrefix(length: UInt32(bytes.count - 5), into: &bytes, at: 0)
    }

    /// Replaces the content with a framed copy of `message`.
    mutating func setMessage(_ message: [UInt8]) {
        beginMessage()
        bytes.append(contentsOf: message)
        sealMessage()
    }
}

/// A unary handler that runs inline on the reactor thread. It must not block, lock, log or
/// allocate: it decodes `request`, appends the serialized response to `response`, and returns
/// the status (`.ok` sends the response; any other status sends a trailers-only error).
public typealias GRPCInlineHandler =
    @Sendable (_ request: UnsafeRawBufferPointer, _ response: inout GRPCResponseBuffer, _ context: GRPCCallContext)
    -> GRPCStatus

/// A unary handler that runs off the reactor thread (admin work). It gets a copy of the request
/// and must eventually call `responder.succeed` or `responder.fail` exactly once, from any thread.
public typealias GRPCOffloadedHandler =
    @Sendable (_ request: [UInt8], _ context: GRPCCallContext, _ responder: GRPCResponder) -> Void

/// One client-streaming call's handler. `receive` and `finish` run on the reactor thread and
/// must be quick: heavy work belongs on another thread, answering through the responder.
public protocol GRPCClientStreamHandler: AnyObject {
    /// Called per complete request message (bytes valid only during the call). Returning a
    /// status ends the call with it.
    func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus?
    /// Called when the client half-closes; must eventually answer through `responder`.
    func finish(_ responder: GRPCResponder)
    /// Called if the call ends before `finish` (client reset, deadline, connection closed).
    func cancel()
}

/// What a deferrable handler decided: answer now with a status (`.ok` sends the response it
/// appended), or later through the `GRPCDeferredCall` it was given.
public enum GRPCDeferrableResult: Sendable {
    case now(GRPCStatus)
    case later
}

/// A unary handler that runs inline on the reactor thread like `GRPCInlineHandler` (same
/// rules: no blocking, locking kept short) but may hand the call to another thread and answer
/// it later, in batches, through `GRPCDeferredCall.answer` (e.g. after a group-committed
/// fsync). A call answered later has an empty response message.
public typealias GRPCDeferrableHandler =
    @Sendable (
        _ request: UnsafeRawBufferPointer, _ response: inout GRPCResponseBuffer, _ context: GRPCCallContext,
        _ call: GRPCDeferredCall
    ) -> GRPCDeferrableResult

/// One call whose server sends a stream of messages (server streaming or bidirectional): the
/// handler receives the request messages on the reactor thread and answers through the
/// `GRPCServerStream` it was made with (`send` any number of times, then `finish`), from any
/// thread, now or later. `receive`, `requestsEnded` and `cancel` must be quick.
public protocol GRPCStreamHandler: AnyObject {
    /// Called per complete request message (bytes valid only during the call); for a
    /// server-streaming method, once, with the one request. Returning a status ends the call.
    func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus?
    /// The client half-closed (server streaming: right after the request). The call goes on
    /// until the handler finishes its stream.
    func requestsEnded()
    /// The call ended before the handler finished it (client reset or cancelled, deadline,
    /// connection closed, server stopped): later sends are dropped.
    func cancel()
}

/// Makes the handler of one streaming call, on the reactor thread, when its headers arrive.
public typealias GRPCStreamHandlerFactory =
    @Sendable (_ context: GRPCCallContext, _ stream: GRPCServerStream) -> any GRPCStreamHandler

/// A plain HTTP GET request served next to gRPC (admin endpoints such as `/metrics`).
public struct GRPCHTTPRequest: Sendable {
    /// The path without the query string.
    public var path: String
    /// The `Accept` header as far as the transport keeps it: over HTTP/2 only
    /// `application/openmetrics-text` when the header asked for it, else nil.
    public var accept: String?
    /// The `authorization` header mapped by `GRPCServerConfiguration.credentials`.
    public var principal: Int32

    public init(path: String, accept: String?, principal: Int32) {
        self.path = path
        self.accept = accept
        self.principal = principal
    }
}

/// The answer to a `GRPCHTTPRequest`.
public struct GRPCHTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    /// A `WWW-Authenticate` header value (with status 401), e.g. `Bearer realm="encore-admin"`.
    public var wwwAuthenticate: String?

    public init(status: Int, contentType: String, body: [UInt8], wwwAuthenticate: String? = nil) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.wwwAuthenticate = wwwAuthenticate
    }
}

/// Serves a plain HTTP GET (off the reactor thread; any thread).
public typealias GRPCHTTPHandler = @Sendable (GRPCHTTPRequest) -> GRPCHTTPResponse

/// What serves one gRPC method.
public enum GRPCMethodHandler: Sendable {
    case inline(GRPCInlineHandler)
    /// Inline, or answered later from any thread (`GRPCDeferrableHandler`).
    case deferrable(GRPCDeferrableHandler)
    case offloaded(GRPCOffloadedHandler)
    /// Makes a fresh handler per call, on the reactor thread.
    case clientStreaming(@Sendable (GRPCCallContext) -> any GRPCClientStreamHandler)
    /// One request message, a stream of response messages.
    case serverStreaming(GRPCStreamHandlerFactory)
    /// Streams both ways: each request message is delivered as it completes, responses are
    /// sent whenever the handler sends them.
    case bidirectionalStreaming(GRPCStreamHandlerFactory)

    var kind: GRPCStreamStateMachine.Kind {
        switch self {
        case .inline, .offloaded, .deferrable: .unary
        case .clientStreaming: .clientStreaming
        case .serverStreaming: .serverStreaming
        case .bidirectionalStreaming: .bidirectionalStreaming
        }
    }
}

/// Maps `:path` values (`/package.Service/Method`) to handlers. Built before the server starts
/// and read-only afterwards; lookups compare bytes in place and never allocate.
public struct GRPCRouter: Sendable {
    struct Route: Sendable {
        var path: [UInt8]
        var handler: GRPCMethodHandler
        /// Labels of the method's latency histograms (empty: no histogram); an inline handler
        /// picks one per call with `GRPCResponseBuffer.metricsLabel`.
        var latencyLabels: [String] = []
    }

    struct HTTPRoute: Sendable {
        var path: [UInt8]
        var handler: GRPCHTTPHandler
    }

    private(set) var routes: [Route] = []
    private(set) var httpRoutes: [HTTPRoute] = []

    public init() {}

    /// Registers `handler` for `path` (e.g. "/grpc.health.v1.Health/Check"). A later
    /// registration of the same path replaces the earlier one. With `latencyLabels`, the
    /// transport keeps a latency histogram per label for the method (from the request's first
    /// byte to the response handed to the socket); an inline handler names the label of each
    /// call by setting `GRPCResponseBuffer.metricsLabel` to its index (calls without one are not
    /// observed).
    public mutating func register(_ path: String, _ handler: GRPCMethodHandler, latencyLabels: [String] = []) {
        precondition(path.hasPrefix("/") && path.dropFirst().contains("/"), "gRPC paths look like /pkg.Service/Method")
        let bytes = Array(path.utf8)
        if let i = routes.firstIndex(where: { $0.path == bytes }) {
            routes[i].handler = handler
            routes[i].latencyLabels = latencyLabels
        } else {
            routes.append(Route(path: bytes, handler: handler, latencyLabels: latencyLabels))
        }
    }

    /// Registers a plain HTTP GET handler for `path` (e.g. "/metrics"), served over HTTP/2 by
    /// this transport (the query string is ignored for matching). It runs off the reactor
    /// thread. Any other non-POST request keeps its gRPC answer (405).
    public mutating func registerHTTP(_ path: String, _ handler: @escaping GRPCHTTPHandler) {
        precondition(path.hasPrefix("/"), "HTTP paths start with /")
        let bytes = Array(path.utf8)
        if let i = httpRoutes.firstIndex(where: { $0.path == bytes }) {
            httpRoutes[i].handler = handler
        } else {
            httpRoutes.append(HTTPRoute(path: bytes, handler: handler))
        }
    }

    /// The HTTP route index for a `:path` value (without its query), or -1.
    func lookupHTTP(_ path: UnsafeRawBufferPointer) -> Int {
        guard !httpRoutes.isEmpty else { return -1 }
        var length = 0
        while length < path.count && path[length] != UInt8(ascii: "?") { length += 1 }
        for (i, route) in httpRoutes.enumerated() where route.path.count == length {
            if route.path.withUnsafeBytes({ memcmp($0.baseAddress!, path.baseAddress!, length) == 0 }) { return i }
        }
        return -1
    }

    func httpHandler(at index: Int) -> GRPCHTTPHandler { httpRoutes[index].handler }

    func httpPath(at index: Int) -> String { String(decoding: httpRoutes[index].path, as: UTF8.self) }

    /// Registers, for every path of `other`, a handler of the same kind that answers
    /// `status(path)` (not OK) without doing anything: for methods served on another listener,
    /// so a caller learns where to go instead of getting UNIMPLEMENTED.
    public mutating func refuse(pathsOf other: GRPCRouter, with makeStatus: (String) -> GRPCStatus) {
        for route in other.routes where lookupPath(route.path) < 0 {
            let path = String(decoding: route.path, as: UTF8.self)
            let status = makeStatus(path)
            precondition(!status.isOK, "a refusal needs an error status")
            switch route.handler.kind {
            case .unary:
                register(path, .inline { _, _, _ in status })
            case .clientStreaming:
                register(path, .clientStreaming { _ in RefusingStream(status) })
            case .serverStreaming:
                register(path, .serverStreaming { _, stream in RefusingStreamHandler(status, stream) })
            case .bidirectionalStreaming:
                register(path, .bidirectionalStreaming { _, stream in RefusingStreamHandler(status, stream) })
            }
        }
    }

    private func lookupPath(_ path: [UInt8]) -> Int {
        path.withUnsafeBytes { lookup($0) }
    }

    /// A copy whose handlers first run `guardFor(path)`'s check (when it returns one) with the
    /// call's context: a non-nil status ends the call with it before the handler runs (unary:
    /// once the request arrived; streaming: the stream is refused).
    public func guarded(
        _ guardFor: (String) -> (@Sendable (GRPCCallContext) -> GRPCStatus?)?
    ) -> GRPCRouter {
        var out = self
        for i in out.routes.indices {
            guard let check = guardFor(String(decoding: out.routes[i].path, as: UTF8.self)) else { continue }
            switch out.routes[i].handler {
            case .inline(let handler):
                out.routes[i].handler = .inline { request, response, context in
                    check(context) ?? handler(request, &response, context)
                }
            case .deferrable(let handler):
                out.routes[i].handler = .deferrable { request, response, context, call in
                    if let status = check(context) { return .now(status) }
                    return handler(request, &response, context, call)
                }
            case .offloaded(let handler):
                out.routes[i].handler = .offloaded { request, context, responder in
                    if let status = check(context) {
                        responder.fail(status)
                    } else {
                        handler(request, context, responder)
                    }
                }
            case .clientStreaming(let factory):
                out.routes[i].handler = .clientStreaming { context in
                    if let status = check(context) { return RefusingStream(status) }
                    return factory(context)
                }
            case .serverStreaming(let factory):
                out.routes[i].handler = .serverStreaming { context, stream in
                    if let status = check(context) { return RefusingStreamHandler(status, stream) }
                    return factory(context, stream)
                }
            case .bidirectionalStreaming(let factory):
                out.routes[i].handler = .bidirectionalStreaming { context, stream in
                    if let status = check(context) { return RefusingStreamHandler(status, stream) }
                    return factory(context, stream)
                }
            }
        }
        return out
    }

    /// A copy whose offloaded and client-streaming handlers report to a recorder made per call
    /// by `recorderFor(path, context)` (when it returns one): every request message, then the
    /// answer, before the answer is sent (audit logs). Inline, deferrable (data-plane) and
    /// server-streaming or bidirectional (Watch, reflection: read-only) handlers are left alone.
    public func recorded(
        _ recorderFor: @escaping @Sendable (String, GRPCCallContext) -> (any GRPCCallRecorder)?
    ) -> GRPCRouter {
        var out = self
        for i in out.routes.indices {
            let path = String(decoding: out.routes[i].path, as: UTF8.self)
            switch out.routes[i].handler {
            case .inline, .deferrable, .serverStreaming, .bidirectionalStreaming:
                // Data-plane and read-only streaming methods (Health/Watch, reflection).
                continue
            case .offloaded(let handler):
                out.routes[i].handler = .offloaded { request, context, responder in
                    guard let recorder = recorderFor(path, context) else {
                        return handler(request, context, responder)
                    }
                    request.withUnsafeBytes { recorder.request($0) }
                    handler(request, context, responder.recording(to: recorder))
                }
            case .clientStreaming(let factory):
                out.routes[i].handler = .clientStreaming { context in
                    let inner = factory(context)
                    guard let recorder = recorderFor(path, context) else { return inner }
                    return RecordingStream(inner, recorder)
                }
            }
        }
        return out
    }

    /// Registered paths, for logs and docs.
    public var paths: [String] { routes.map { String(decoding: $0.path, as: UTF8.self) } }

    /// The route index for a `:path` value, or -1.
    public func lookup(_ path: UnsafeRawBufferPointer) -> Int {
        // Through an unsafe buffer: the routes are borrowed in place, not copied (no reference
        // counting per header on the request path).
        routes.withUnsafeBufferPointer { table in
            for i in table.indices where table[i].path.count == path.count {
                let same = table[i].path.withUnsafeBytes { memcmp($0.baseAddress!, path.baseAddress!, path.count) == 0 }
                if same { return i }
            }
            return -1
        }
    }

    func handler(at index: Int) -> GRPCMethodHandler { routes[index].handler }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Observes one call for `GRPCRouter.recorded`: its request messages (reactor thread), then
/// its answer (any thread, exactly once, before the answer is sent).
public protocol GRPCCallRecorder: AnyObject, Sendable {
    func request(_ message: UnsafeRawBufferPointer)
    func answered(_ status: GRPCStatus, response: [UInt8]?)
}

/// A client stream that reports to a recorder (see `GRPCRouter.recorded`).
final class RecordingStream: GRPCClientStreamHandler {
    let inner: any GRPCClientStreamHandler
    let recorder: any GRPCCallRecorder
    private var ended = false

    init(_ inner: any GRPCClientStreamHandler, _ recorder: any GRPCCallRecorder) {
        self.inner = inner
        self.recorder = recorder
    }

    func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? {
        recorder.request(message)
        let status = inner.receive(message)
        if let status, !ended {
            ended = true
            recorder.answered(status, response: nil)
        }
        return status
    }

    func finish(_ responder: GRPCResponder) {
        guard !ended else { return inner.finish(responder) }
        ended = true
        inner.finish(responder.recording(to: recorder))
    }

    func cancel() {
        if !ended {
            ended = true
            recorder.answered(
                GRPCStatus(.cancelled, "the call ended before the client finished sending"), response: nil)
        }
        inner.cancel()
    }
}

/// A client stream answered with one fixed status (see `GRPCRouter.refuse`).
final class RefusingStream: GRPCClientStreamHandler {
    let status: GRPCStatus
    init(_ status: GRPCStatus) { self.status = status }
    func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? { status }
    func finish(_ responder: GRPCResponder) { responder.fail(status) }
    func cancel() {}
}

/// A streaming call answered with one fixed status (see `GRPCRouter.refuse` and `guarded`).
final class RefusingStreamHandler: GRPCStreamHandler {
    let status: GRPCStatus
    init(_ status: GRPCStatus, _ stream: GRPCServerStream) {
        self.status = status
        stream.finish(status)
    }
    func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? { status }
    func requestsEnded() {}
    func cancel() {}
}
