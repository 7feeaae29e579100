/// Validates the request header block of one gRPC stream, header by header, without copying
/// header values (a pure state machine: no I/O, no allocation).
///
/// Feed each header with `accept(name:value:)`, then ask `verdict()` once the block is complete.
public struct GRPCRequestHead: Sendable {
    /// The outcome of validating a header block.
    public enum Verdict: Equatable, Sendable {
        /// The request may proceed to the handler at `routeIndex`.
        case accept(routeIndex: Int, timeoutNanos: UInt64?)
        /// Answer with a trailers-only response carrying this HTTP status and gRPC status.
        case reject(httpStatus: Int, status: GRPCStatus)
        /// A GET of a plain HTTP route (`GRPCRouter.registerHTTP`), e.g. `/metrics`.
        case http(routeIndex: Int)
    }

    /// RFC 9113 / RFC 7541 size of a header list: name + value + 32 per field.
    public private(set) var headerListBytes = 0
    public let maxHeaderListBytes: Int

    private var isPost = false
    private var isGet = false
    private var sawMethod = false
    /// The gRPC route `:path` named (-1: none or not yet seen).
    public private(set) var routeIndex = -1
    private var httpRouteIndex = -1
    /// The `accept` header asked for `application/openmetrics-text`.
    public private(set) var wantsOpenMetrics = false
    private var sawPath = false
    private var contentTypeOK = false
    private var sawContentType = false
    /// True when `grpc-encoding` is present and is not `identity`.
    public private(set) var compressedEncoding = false
    private var timeoutNanos: UInt64? = nil
    private var timeoutMalformed = false

    public init(maxHeaderListBytes: Int) {
        self.maxHeaderListBytes = maxHeaderListBytes
    }

    /// Records one header field, routing `:path` with `router`.
    @inline(__always)
    public mutating func accept(
        name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, router: borrowing GRPCRouter
    ) {
        guard counted(name: name, value: value) else { return }
        // `:path` is routed here, so the closure below captures nothing (capturing the router
        // retained and released its tables for every header of every request).
        if Self.equals(name, ":path") {
            sawPath = true
            routeIndex = router.lookup(value)
            httpRouteIndex = router.lookupHTTP(value)
            return
        }
        record(name: name, value: value, route: { _ in -1 })
    }

    /// Records one header field. `route` maps a `:path` value to a route index (or -1).
    public mutating func accept(
        name: UnsafeRawBufferPointer,
        value: UnsafeRawBufferPointer,
        route: (UnsafeRawBufferPointer) -> Int
    ) {
        guard counted(name: name, value: value) else { return }
        record(name: name, value: value, route: route)
    }

    /// Adds the field to the header-list size; false once the list is over the limit (the
    /// field is then not recorded, and `verdict` answers 431).
    @inline(__always)
    private mutating func counted(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        headerListBytes += name.count + value.count + 32
        return headerListBytes <= maxHeaderListBytes
    }

    /// Records a counted field.
    @inline(__always)
    private mutating func record(
        name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, route: (UnsafeRawBufferPointer) -> Int
    ) {
        if Self.equals(name, ":method") {
            sawMethod = true
            isPost = Self.equals(value, "POST")
            isGet = !isPost && Self.equals(value, "GET")
        } else if Self.equals(name, ":path") {
            sawPath = true
            routeIndex = route(value)
        } else if Self.equals(name, "content-type") {
            sawContentType = true
            contentTypeOK = Self.isGRPCContentType(value)
        } else if Self.equals(name, "grpc-encoding") {
            compressedEncoding = !Self.equals(value, "identity")
        } else if Self.equals(name, "grpc-timeout") {
            if let nanos = GRPCTimeout.parseNanos(value) {
                timeoutNanos = nanos
            } else {
                timeoutMalformed = true
            }
        } else if Self.equals(name, "accept") {
            wantsOpenMetrics = Self.contains(value, "application/openmetrics-text")
        }
    }

    /// The decision for a complete header block. Checks run in a fixed order so that a request
    /// with several problems always gets the same answer.
    public func verdict() -> Verdict {
        if headerListBytes > maxHeaderListBytes {
            return .reject(
                httpStatus: 431,
                status: GRPCStatus(.resourceExhausted, static: "request header list exceeds the server's limit"))
        }
        if isGet && httpRouteIndex >= 0 { return .http(routeIndex: httpRouteIndex) }
        if !sawMethod || !isPost {
            return .reject(
                httpStatus: 405, status: GRPCStatus(.unimplemented, static: "gRPC requires the POST method"))
        }
        if !sawContentType || !contentTypeOK {
            return .reject(
                httpStatus: 415,
                status: GRPCStatus(
                    .invalidArgument,
                    static: "unsupported content-type: expected application/grpc or application/grpc+proto"))
        }
        if !sawPath || routeIndex < 0 {
            return .reject(httpStatus: 200, status: GRPCStatus(.unimplemented, static: "unknown gRPC method"))
        }
        if timeoutMalformed {
            return .reject(
                httpStatus: 200, status: GRPCStatus(.invalidArgument, static: "malformed grpc-timeout header"))
        }
        return .accept(routeIndex: routeIndex, timeoutNanos: timeoutNanos)
    }

    /// `application/grpc`, optionally followed by `+proto` or by `;` parameters.
    static func isGRPCContentType(_ value: UnsafeRawBufferPointer) -> Bool {
        let base: StaticString = "application/grpc"
        let n = base.utf8CodeUnitCount
        guard value.count >= n else { return false }
        for i in 0..<n where asciiLower(value[i]) != base.utf8Start[i] { return false }
        if value.count == n { return true }
        if value[n] == UInt8(ascii: ";") { return true }
        let suffix: StaticString = "+proto"
        let m = suffix.utf8CodeUnitCount
        guard value.count >= n + m else { return false }
        for i in 0..<m where asciiLower(value[n + i]) != suffix.utf8Start[i] { return false }
        return value.count == n + m || value[n + m] == UInt8(ascii: ";")
    }

    @inline(__always)
    static func asciiLower(_ c: UInt8) -> UInt8 {
        c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c | 0x20 : c
    }

    /// Whether `literal` occurs in `bytes` (ASCII, case-sensitive).
    static func contains(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard bytes.count >= n else { return false }
        for start in 0...(bytes.count - n) where memcmp(bytes.baseAddress! + start, literal.utf8Start, n) == 0 {
            return true
        }
        return false
    }

    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard bytes.count == n else { return false }
        return memcmp(bytes.baseAddress!, literal.utf8Start, n) == 0
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
