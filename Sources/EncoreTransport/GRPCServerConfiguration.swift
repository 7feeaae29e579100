#if canImport(Glibc)
    import Glibc
#endif

/// Everything the transport needs to serve. Defaults are the production defaults of
/// `encore serve`; every limit has a flag there.
public struct GRPCServerConfiguration: Sendable {
    /// Address to listen on (IPv4 or IPv6 literal, or a name).
    public var host = "127.0.0.1"
    /// TCP port; 0 picks a free one (reported by `GRPCServer.start`).
    public var port = 50051
    /// Reactor threads, each with its own SO_REUSEPORT listener. Default: one per core.
    public var threads = min(GRPCServerConfiguration.coreCount, 255)
    /// TLS settings; nil serves h2c (HTTP/2 over cleartext TCP).
    public var tls: TLSContext? = nil
    /// Largest accepted request message (bytes, without the 5-byte prefix).
    public var maxMessageBytes = 4 << 20
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised and enforced per connection.
    public var maxConcurrentStreams = 128
    /// SETTINGS_MAX_HEADER_LIST_SIZE advertised and enforced (bytes, RFC 9113 accounting).
    public var maxHeaderListBytes = 16 << 10
    /// A connection with no open stream and no input for this long gets GOAWAY and is closed.
    public var idleTimeoutNanos: UInt64 = 300 * 1_000_000_000
    /// Open connections across all threads. At the limit a new connection takes the place of
    /// the one (on its reactor) idle the longest, if one has been idle for
    /// `evictionMinIdleNanos`; else it is closed at once.
    public var maxConnections = 10_000
    /// How long a connection must have read nothing before a new one may take its place at
    /// `maxConnections`.
    public var evictionMinIdleNanos: UInt64 = 1_000_000_000
    /// A stream's request headers must be complete this long after its first HEADERS frame;
    /// else RST_STREAM ENHANCE_YOUR_CALM (0: no limit).
    public var requestHeaderTimeoutNanos: UInt64 = 10 * 1_000_000_000
    /// While a request message (or a one-message call's end) is still due, the client must send
    /// at least this many bytes per second, measured over `requestProgressWindowNanos`; else
    /// RESOURCE_EXHAUSTED and RST_STREAM (0: no limit). A stream of requests may pause between
    /// messages.
    public var minRequestBytesPerSecond = 32 << 10
    /// A response (or a streaming call's queued messages) that makes no progress toward the
    /// client for this long is reset (RST_STREAM CANCEL); a connection whose socket takes no
    /// output for this long is closed (0: no limit).
    public var responseWriteTimeoutNanos: UInt64 = 30 * 1_000_000_000
    /// The window `minRequestBytesPerSecond` is measured over.
    public var requestProgressWindowNanos: UInt64 = 5 * 1_000_000_000
    /// In-flight streams a connection may reset per second before GOAWAY ENHANCE_YOUR_CALM
    /// (enforced once resets also exceed half of the streams opened in that second).
    public var rapidResetLimitPerSecond = 100
    /// Requests with a header list over `maxHeaderListBytes` (answered 431) a connection may
    /// send per second before GOAWAY ENHANCE_YOUR_CALM (an HPACK bomb keeps sending them).
    public var maxOversizedHeaderListsPerSecond = 3
    /// Decoded request header bytes (name + value + 32 per field) a connection may send within
    /// one second before GOAWAY ENHANCE_YOUR_CALM (an HPACK bomb references a large
    /// dynamic-table entry thousands of times, a byte each on the wire; 0: no bound).
    public var maxHeaderBytesPerSecond = 64 << 20
    /// Request bytes the streams of one connection may hold at once (messages still arriving,
    /// or received and not yet answered); the stream whose DATA would pass it is answered
    /// RESOURCE_EXHAUSTED, the connection goes on (0: no bound).
    public var maxConnectionBufferedRequestBytes = 16 << 20
    /// Request bytes all connections together may hold at once; past it the stream whose DATA
    /// would pass it is answered RESOURCE_EXHAUSTED, except small ones (up to 64 KiB), which may
    /// use a reserve of an eighth more (0: no bound).
    public var maxBufferedRequestBytes = 256 << 20
    /// How long a drain (SIGTERM) lets in-flight streams finish before closing everything.
    public var drainTimeoutNanos: UInt64 = 10 * 1_000_000_000
    /// Bytes queued for a connection's socket above which reading from it pauses (backpressure).
    public var maxPendingOutputBytes = 1 << 20
    /// Bytes of HTTP/2 output gathered per connection before a write (writes are coalesced
    /// per loop turn up to this size).
    public var writeChunkBytes = 256 << 10

    /// Maps credentials (an `authorization` header value, a verified client certificate) to
    /// `GRPCCallContext.principal`; nil ignores both. See `GRPCCredentials`.
    public var credentials: (any GRPCCredentials)? = nil

    /// Takes plaintext connections whose first bytes are not the HTTP/2 client preface (an
    /// HTTP/1.1 request such as a Prometheus scrape): the reactor peeks at the first bytes
    /// without reading them and hands the socket over (the callee owns and closes it). nil: every
    /// connection is HTTP/2 (a bad preface is refused). Ignored with TLS (ALPN selects h2).
    /// Called on the reactor thread; it must not block.
    public var http1Handoff: (@Sendable (Int32) -> Void)? = nil

    public init() {}

    /// Online processors.
    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Checks the limits; throws a `TransportError` naming the bad setting.
    public func validate() throws(TransportError) {
        if !(0...65535).contains(port) { throw TransportError("port must be in 0...65535, got \(port)") }
        // 255 at most: thread field ff of decision ids is reserved for idempotent (request_id) decisions.
        if threads < 1 || threads > 255 { throw TransportError("threads must be in 1...255, got \(threads)") }
        if maxMessageBytes < 0 || maxMessageBytes > Int(Int32.max) {
            throw TransportError("max message bytes must be in 0...\(Int32.max), got \(maxMessageBytes)")
        }
        if maxConcurrentStreams < 1 || maxConcurrentStreams > 65_536 {
            throw TransportError("max concurrent streams must be in 1...65536, got \(maxConcurrentStreams)")
        }
        if maxHeaderListBytes < 1024 || maxHeaderListBytes > 1 << 20 {
            throw TransportError("max header list bytes must be in 1024...1048576, got \(maxHeaderListBytes)")
        }
        if maxConnections < 1 { throw TransportError("max connections must be at least 1, got \(maxConnections)") }
        if maxOversizedHeaderListsPerSecond < 0 {
            throw TransportError(
                "max oversized header lists must be 0 or more, got \(maxOversizedHeaderListsPerSecond)")
        }
        if maxHeaderBytesPerSecond < 0 {
            throw TransportError("max header bytes per second must be 0 or more, got \(maxHeaderBytesPerSecond)")
        }
        if maxConnectionBufferedRequestBytes < 0 || maxBufferedRequestBytes < 0 {
            throw TransportError("buffered request byte limits must be 0 or more")
        }
        if minRequestBytesPerSecond < 0 {
            throw TransportError("min request bytes per second must be 0 or more, got \(minRequestBytesPerSecond)")
        }
        if requestProgressWindowNanos < 1_000_000_000 {
            throw TransportError("the request progress window must be at least one second")
        }
        if rapidResetLimitPerSecond < 1 {
            throw TransportError("rapid reset limit must be at least 1, got \(rapidResetLimitPerSecond)")
        }
    }
}

/// Verifies a caller's credentials for the transport, which keeps the result per connection.
///
/// A connection remembers the last `authorization` value it verified and its principal, so a
/// client that repeats the same header (HPACK-indexed, as gRPC clients do) costs one byte
/// compare per request; the cache is dropped when `generation` changes (a reload of the
/// credentials). Called on reactor threads: implementations must be thread-safe and must not
/// block.
public protocol GRPCCredentials: AnyObject, Sendable {
    /// Changes whenever the set of valid credentials changes.
    var generation: UInt64 { get }
    /// The principal for an `authorization` header value (negative: not valid).
    func principal(authorization value: UnsafeRawBufferPointer) -> Int32
    /// The principal for a client certificate that verified against the listener's client CA,
    /// given its names (`CN=...`, `DNS:...`, `URI:...`); `GRPCCallContext.anonymous` when no
    /// configured client matches.
    func principal(certificateNames: [String]) -> Int32
}
