/// Validates the request header block of one gRPC stream, header by header, without copying
/// header values (a pure state machine: no I/O, no allocation).
///
/// It enforces the HTTP/2 message rules of RFC 9113 §8 that libnghttp2 would otherwise check
/// (the session turns nghttp2's own checks off, which cost about 2,300 instructions per call):
/// field names are lower-case tokens, values hold no NUL, CR, LF or other controls and no
/// leading or trailing white space, pseudo-header fields come first, once each, and only the
/// defined ones, requests carry `:method`, `:scheme`, `:path` and `:authority` (or `host`),
/// connection-specific fields are refused, `te` may only be `trailers`, trailers hold no
/// pseudo-header field, and `content-length` matches the DATA received. A field that breaks a
/// rule makes the request malformed (§8.1.1: the stream is reset with PROTOCOL_ERROR, as
/// nghttp2 does). `HTTPMessageRulesTests` checks every rule against nghttp2's own checks.
///
/// Feed each header with `accept(name:value:)` (false: malformed), trailers with
/// `acceptTrailer`, DATA lengths with `receivedBody`, then ask `verdict()` once the header
/// block is complete and `bodyComplete()` at END_STREAM.
public struct GRPCRequestHead: Sendable {
    /// The outcome of validating a header block.
    public enum Verdict: Equatable, Sendable {
        /// The request may proceed to the handler at `routeIndex`.
        case accept(routeIndex: Int, timeoutNanos: UInt64?)
        /// Answer with a trailers-only response carrying this HTTP status and gRPC status.
        case reject(httpStatus: Int, status: GRPCStatus)
        /// A GET of a plain HTTP route (`GRPCRouter.registerHTTP`), e.g. `/metrics`.
        case http(routeIndex: Int)
        /// The header block breaks an HTTP/2 message rule (a required pseudo-header field is
        /// missing, or `:path` does not fit the scheme): reset the stream with PROTOCOL_ERROR,
        /// with no response.
        case malformed
    }

    /// RFC 9113 / RFC 7541 size of a header list: name + value + 32 per field.
    public private(set) var headerListBytes = 0
    public let maxHeaderListBytes: Int

    private var isPost = false
    private var isGet = false
    /// The gRPC route `:path` named (-1: none or not yet seen).
    public private(set) var routeIndex = -1
    private var httpRouteIndex = -1
    /// The `accept` header asked for `application/openmetrics-text`.
    public private(set) var wantsOpenMetrics = false
    private var contentTypeOK = false
    private var sawContentType = false
    /// True when `grpc-encoding` is present and is not `identity`.
    public private(set) var compressedEncoding = false
    private var timeoutNanos: UInt64? = nil
    private var timeoutMalformed = false
    /// HTTP/2 message state (`Message` bits).
    private var message: UInt16 = 0
    /// The `content-length` field's value, or -1 without one.
    private var contentLength: Int64 = -1
    /// DATA payload bytes received.
    private var bodyBytes: Int64 = 0

    /// Bits of `message`.
    private enum Message {
        static let method: UInt16 = 1 << 0
        static let path: UInt16 = 1 << 1
        static let scheme: UInt16 = 1 << 2
        static let authority: UInt16 = 1 << 3
        static let host: UInt16 = 1 << 4
        /// A regular field was seen: no pseudo-header field may follow.
        static let regularSeen: UInt16 = 1 << 5
        static let connect: UInt16 = 1 << 6
        static let options: UInt16 = 1 << 7
        /// `:scheme` is `http` or `https`.
        static let httpScheme: UInt16 = 1 << 8
        /// `:path` starts with `/`.
        static let regularPath: UInt16 = 1 << 9
        /// `:path` is `*`.
        static let asteriskPath: UInt16 = 1 << 10
        /// A CONNECT's trailers began: `contentLength` is the trailers' own.
        static let connectLengthCleared: UInt16 = 1 << 11
        static let required: UInt16 = method | path | scheme
    }

    public init(maxHeaderListBytes: Int) {
        self.maxHeaderListBytes = maxHeaderListBytes
    }

    /// Records one request header field, routing `:path` with `router`; false when the field
    /// makes the request malformed.
    @inline(__always)
    public mutating func accept(
        name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, router: borrowing GRPCRouter
    ) -> Bool {
        // `:path` is routed here, not through a closure (capturing the router retained and
        // released its tables for every header of every request).
        switch check(name: name, value: value) {
        case .use: return true
        case .usePath:
            routeIndex = router.lookup(value)
            httpRouteIndex = router.lookupHTTP(value)
            return true
        case .malformed: return false
        }
    }

    /// Records one request header field; false when it makes the request malformed. `route`
    /// maps a `:path` value to a route index (or -1).
    @discardableResult
    public mutating func accept(
        name: UnsafeRawBufferPointer,
        value: UnsafeRawBufferPointer,
        route: (UnsafeRawBufferPointer) -> Int
    ) -> Bool {
        switch check(name: name, value: value) {
        case .use: return true
        case .usePath:
            routeIndex = route(value)
            return true
        case .malformed: return false
        }
    }

    /// Checks one field of the request's trailers (a second HEADERS frame, which must end the
    /// stream): regular fields only, under the same rules; nothing in them is recorded. False
    /// when the field makes the request malformed.
    public mutating func acceptTrailer(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        if message & (Message.connect | Message.connectLengthCleared) == Message.connect {
            // A CONNECT's header block `content-length` does not count (nghttp2 clears it when
            // the headers end); one in its trailers does.
            contentLength = -1
            message |= Message.connectLengthCleared
        }
        guard name.count > 0, name[0] != UInt8(ascii: ":") else { return false }
        var kind = Self.kind(ofRegular: name)
        switch kind {
        case .contentType, .grpcEncoding, .grpcTimeout, .accept: kind = .known  // not recorded from trailers
        default: break
        }
        return regular(kind, name: name, value: value) == .use
    }

    /// Counts `count` bytes of request DATA; false once they exceed `content-length`.
    @inline(__always)
    public mutating func receivedBody(_ count: Int) -> Bool {
        bodyBytes &+= Int64(count)
        return contentLength < 0 || bodyBytes <= contentLength || ignoresContentLength
    }

    /// At END_STREAM: false when the DATA received does not match `content-length`.
    @inline(__always)
    public func bodyComplete() -> Bool {
        contentLength < 0 || bodyBytes == contentLength || ignoresContentLength
    }

    /// A CONNECT's header block `content-length` is not checked (trailers may set one).
    private var ignoresContentLength: Bool {
        message & (Message.connect | Message.connectLengthCleared) == Message.connect
    }

    /// The decision for a complete header block (`endingStream`: its HEADERS frame also ends
    /// the request, so the DATA must already match `content-length`). Checks run in a fixed
    /// order so that a request with several problems always gets the same answer.
    public func verdict(endingStream: Bool = false) -> Verdict {
        if !isWellFormedRequest || (endingStream && !bodyComplete()) { return .malformed }
        if headerListBytes > maxHeaderListBytes {
            return .reject(
                httpStatus: 431,
                status: GRPCStatus(.resourceExhausted, static: "request header list exceeds the server's limit"))
        }
        if isGet && httpRouteIndex >= 0 { return .http(routeIndex: httpRouteIndex) }
        if !isPost {
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
        if routeIndex < 0 {
            return .reject(httpStatus: 200, status: GRPCStatus(.unimplemented, static: "unknown gRPC method"))
        }
        if timeoutMalformed {
            return .reject(
                httpStatus: 200, status: GRPCStatus(.invalidArgument, static: "malformed grpc-timeout header"))
        }
        return .accept(routeIndex: routeIndex, timeoutNanos: timeoutNanos)
    }

    /// RFC 9113 §8.3.1 and §8.5: a request has `:method`, `:scheme` and `:path` (a CONNECT only
    /// `:authority`), names its authority, and an `http` or `https` `:path` is absolute (or `*`
    /// for OPTIONS).
    private var isWellFormedRequest: Bool {
        if message & Message.connect != 0 {
            return message & (Message.scheme | Message.path) == 0 && message & Message.authority != 0
        }
        guard message & Message.required == Message.required,
            message & (Message.authority | Message.host) != 0
        else { return false }
        return message & Message.httpScheme == 0 || message & Message.regularPath != 0
            || (message & Message.options != 0 && message & Message.asteriskPath != 0)
    }

    // MARK: Field rules

    /// A field's check: well formed (and `:path`, to be routed), or malformed.
    private enum Checked {
        case use, usePath, malformed
    }

    /// The regular fields the rules or the server name.
    private enum Kind {
        case other, known, contentType, grpcEncoding, grpcTimeout, accept, te, contentLength, host, connectionSpecific
    }

    @inline(__always)
    private mutating func check(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Checked {
        guard name.count > 0 else { return .malformed }
        if name[0] == UInt8(ascii: ":") { return pseudo(name: name, value: value) }
        return regular(Self.kind(ofRegular: name), name: name, value: value)
    }

    /// A pseudo-header field: one of the four request ones, before any regular field, once,
    /// with a valid non-empty value (§8.3).
    private mutating func pseudo(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Checked {
        if message & Message.regularSeen != 0 { return .malformed }
        // Each case validates the value and records what it says; a malformed field ends the
        // request, so flags set before the duplicate and empty checks below do not matter.
        let bit: UInt16
        switch name.count {
        case 5:
            guard Self.equals(name, ":path"), Self.isValidPath(value) else { return .malformed }
            bit = Message.path
            if value.first == UInt8(ascii: "/") {
                message |= Message.regularPath
            } else if value.count == 1 && value[0] == UInt8(ascii: "*") {
                message |= Message.asteriskPath
            }
        case 7:
            if Self.equals(name, ":method") {
                bit = Message.method
                if Self.equals(value, "POST") {
                    isPost = true
                } else {
                    guard Self.all(value, in: Self.methodClass) else { return .malformed }
                    if Self.equals(value, "GET") {
                        isGet = true
                    } else if Self.equals(value, "CONNECT") {
                        message |= Message.connect
                    } else if Self.equals(value, "OPTIONS") {
                        message |= Message.options
                    }
                }
            } else if Self.equals(name, ":scheme") {
                bit = Message.scheme
                if Self.equalsIgnoringCase(value, "http") || Self.equalsIgnoringCase(value, "https") {
                    message |= Message.httpScheme
                } else if !Self.isValidScheme(value) {
                    return .malformed
                }
            } else {
                return .malformed
            }
        case 10:
            guard Self.equals(name, ":authority"), Self.all(value, in: Self.authorityClass) else { return .malformed }
            bit = Message.authority
        default:
            return .malformed
        }
        if message & bit != 0 || value.count == 0 { return .malformed }
        message |= bit
        return counted(name: name, value: value) && bit == Message.path ? .usePath : .use
    }

    /// A regular field (of the request or of its trailers).
    @inline(__always)
    private mutating func regular(_ kind: Kind, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)
        -> Checked
    {
        message |= Message.regularSeen
        if kind == .other && !Self.all(name, in: Self.nameClass) { return .malformed }
        if kind == .host {
            guard Self.all(value, in: Self.authorityClass) else { return .malformed }
        } else if !Self.isValidValue(value) {
            return .malformed
        }
        switch kind {
        case .connectionSpecific:
            return .malformed  // §8.2.2
        case .te:
            guard Self.equalsIgnoringCase(value, "trailers") else { return .malformed }
        case .contentLength:
            guard contentLength < 0, let length = Self.parseLength(value) else { return .malformed }
            contentLength = length
        case .host:
            if message & Message.host != 0 || value.count == 0 { return .malformed }
            message |= Message.host
        default:
            break
        }
        guard counted(name: name, value: value) else { return .use }
        switch kind {
        case .contentType:
            sawContentType = true
            contentTypeOK = Self.isGRPCContentType(value)
        case .grpcEncoding:
            compressedEncoding = !Self.equals(value, "identity")
        case .grpcTimeout:
            if let nanos = GRPCTimeout.parseNanos(value) {
                timeoutNanos = nanos
            } else {
                timeoutMalformed = true
            }
        case .accept:
            wantsOpenMetrics = Self.contains(value, "application/openmetrics-text")
        default:
            break
        }
        return .use
    }

    /// Adds the field to the header-list size; false once the list is over the limit (the
    /// field is then not recorded, and `verdict` answers 431).
    @inline(__always)
    private mutating func counted(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        headerListBytes += name.count + value.count + 32
        return headerListBytes <= maxHeaderListBytes
    }

    /// Which regular field `name` is (names the rules or the server use are known to be valid).
    @inline(__always)
    private static func kind(ofRegular name: UnsafeRawBufferPointer) -> Kind {
        switch name.count {
        case 2: return equals(name, "te") ? .te : .other
        case 4: return equals(name, "host") ? .host : .other
        case 6: return equals(name, "accept") ? .accept : .other
        case 7: return equals(name, "upgrade") ? .connectionSpecific : .other
        case 10:
            if equals(name, "user-agent") { return .known }
            return equals(name, "connection") || equals(name, "keep-alive") ? .connectionSpecific : .other
        case 12:
            if equals(name, "content-type") { return .contentType }
            return equals(name, "grpc-timeout") ? .grpcTimeout : .other
        case 13:
            if equals(name, "grpc-encoding") { return .grpcEncoding }
            return equals(name, "authorization") ? .known : .other
        case 14: return equals(name, "content-length") ? .contentLength : .other
        case 16: return equals(name, "proxy-connection") ? .connectionSpecific : .other
        case 17:
            if equals(name, "x-encore-customer") { return .known }
            return equals(name, "transfer-encoding") ? .connectionSpecific : .other
        case 20: return equals(name, "grpc-accept-encoding") ? .known : .other
        default: return .other
        }
    }

    // MARK: Character classes (RFC 9110 §5.6.2 tokens; RFC 9113 §8.2.1 values; nghttp2's tables)

    /// A set of byte values: a mask of bytes 0-63, one of 64-127, and whether 128-255 belong.
    struct ByteClass {
        let low: UInt64
        let high: UInt64
        let upperHalf: Bool

        @inline(__always)
        func contains(_ c: UInt8) -> Bool {
            if c >= 0x80 { return upperHalf }
            return ((c < 64 ? low : high) >> UInt64(c & 63)) & 1 != 0
        }
    }

    /// Field names: lower-case tokens (`!#$%&'*+-.^_\`|~`, digits, `a`-`z`).
    static var nameClass: ByteClass {
        ByteClass(low: 0x03FF_6CFA_0000_0000, high: 0x57FF_FFFF_C000_0000, upperHalf: false)
    }
    /// `:method`: tokens, either case.
    static var methodClass: ByteClass {
        ByteClass(low: 0x03FF_6CFA_0000_0000, high: 0x57FF_FFFF_C7FF_FFFE, upperHalf: false)
    }
    /// `:authority` and `host`: unreserved, sub-delims, `:`, `@`, `[`, `]`, `%` (RFC 3986).
    static var authorityClass: ByteClass {
        ByteClass(low: 0x2FFF_7FF2_0000_0000, high: 0x47FF_FFFE_AFFF_FFFF, upperHalf: false)
    }
    /// Field values: HTAB, SP, visible ASCII and bytes 0x80-0xFF (no NUL, CR, LF, other
    /// controls or DEL).
    static var valueClass: ByteClass {
        ByteClass(low: 0xFFFF_FFFF_0000_0200, high: 0x7FFF_FFFF_FFFF_FFFF, upperHalf: true)
    }

    @inline(__always)
    static func all(_ bytes: UnsafeRawBufferPointer, in set: ByteClass) -> Bool {
        for c in bytes where !set.contains(c) { return false }
        return true
    }

    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// Whether some byte of `x` is below `n` (n <= 128; exact, from "Bit Twiddling Hacks").
    @inline(__always)
    private static func hasByte(below n: UInt64, _ x: UInt64) -> Bool {
        (x &- ones &* n) & ~x & highs != 0
    }

    /// Whether some byte of `x` equals `b`.
    @inline(__always)
    private static func hasByte(equalTo b: UInt64, _ x: UInt64) -> Bool {
        let y = x ^ (ones &* b)
        return (y &- ones) & ~y & highs != 0
    }

    /// True when every byte is in `lowest...0x7E` or 0x80-0xFF (none below `lowest`, no DEL),
    /// read eight bytes at a time (the last word overlapping the one before); a string shorter
    /// than a word, or a word holding another byte, is left to `slow`, which decides.
    @inline(__always)
    private static func words(
        _ bytes: UnsafeRawBufferPointer, allAtLeast lowest: UInt64, orElse slow: (UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        let n = bytes.count
        guard n >= 8 else { return slow(bytes) }
        let base = bytes.baseAddress!
        var i = 0
        while true {
            let x = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            if hasByte(below: lowest, x) || hasByte(equalTo: 0x7F, x) { return slow(bytes) }
            if i == n - 8 { return true }
            i = min(i + 8, n - 8)
        }
    }

    /// §8.2.1: a field value holds only `valueClass` bytes and does not start or end with SP
    /// or HTAB.
    @inline(__always)
    static func isValidValue(_ value: UnsafeRawBufferPointer) -> Bool {
        let n = value.count
        guard n > 0 else { return true }
        let first = value[0]
        let last = value[n - 1]
        if first == 0x20 || first == 0x09 || last == 0x20 || last == 0x09 { return false }
        return words(value, allAtLeast: 0x20) { all($0, in: valueClass) }
    }

    /// `:path`: visible ASCII and bytes 0x80-0xFF (nghttp2's path class).
    @inline(__always)
    static func isValidPath(_ value: UnsafeRawBufferPointer) -> Bool {
        words(value, allAtLeast: 0x21) { bytes in
            for c in bytes where c < 0x21 || c == 0x7F { return false }
            return true
        }
    }

    /// `:scheme`: RFC 3986 §3.1, `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
    static func isValidScheme(_ value: UnsafeRawBufferPointer) -> Bool {
        guard let first = value.first, asciiLower(first) >= UInt8(ascii: "a"), asciiLower(first) <= UInt8(ascii: "z")
        else { return false }
        for c in value.dropFirst() {
            let l = asciiLower(c)
            let ok =
                (l >= UInt8(ascii: "a") && l <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
            if !ok { return false }
        }
        return true
    }

    /// A `content-length` value: decimal digits, at most `Int64.max`.
    static func parseLength(_ value: UnsafeRawBufferPointer) -> Int64? {
        guard value.count > 0 else { return nil }
        var n: Int64 = 0
        for c in value {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            let (times10, o1) = n.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(c - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            n = sum
        }
        return n
    }

    /// ASCII case-insensitive `equals` (an exact match, the common case, is tried first).
    @inline(__always)
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard bytes.count == n else { return false }
        if equals(bytes, literal) { return true }
        for i in 0..<n where asciiLower(bytes[i]) != asciiLower(literal.utf8Start[i]) { return false }
        return true
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

    /// Whether `bytes` are `literal`. Up to 16 bytes are compared as two overlapping words
    /// (the literal's length is a constant once inlined), not through a call to `memcmp`.
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard bytes.count == n else { return false }
        let a = bytes.baseAddress!
        let b = UnsafeRawPointer(literal.utf8Start)
        switch n {
        case 0:
            return true
        case 1...3:
            for i in 0..<n where a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self)
            {
                return false
            }
            return true
        case 4...7:
            return a.loadUnaligned(as: UInt32.self) == b.loadUnaligned(as: UInt32.self)
                && a.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
                    == b.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
        case 8...16:
            return a.loadUnaligned(as: UInt64.self) == b.loadUnaligned(as: UInt64.self)
                && a.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
                    == b.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
        default:
            return memcmp(a, b, n) == 0
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
