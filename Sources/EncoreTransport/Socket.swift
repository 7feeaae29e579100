internal import CEncoreLinux

#if canImport(Glibc)
    import Glibc
#endif

/// A transport error with a message that names what failed (`bind 127.0.0.1:50051: Address in use`).
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Thin wrappers over the socket syscalls the reactor uses (and, for `connect`, EncoreClient).
package enum Socket {
    package static func errnoText(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }

    /// Binds a non-blocking TCP socket (SO_REUSEADDR, SO_REUSEPORT) without listening yet, so a
    /// port is reserved (and its errors reported) before a slow start-up; `startListening` turns
    /// it into a listener. Returns the fd and the bound port (useful with port 0).
    ///
    /// `exclusive` binds *before* setting SO_REUSEPORT: the bind then fails with EADDRINUSE if any
    /// other socket holds the port, even one of another process that set SO_REUSEPORT itself (two
    /// `encore serve` on one port would otherwise split its connections). Setting SO_REUSEPORT
    /// right after the bind lets this process's further sockets (one per reactor) share the port.
    static func bind(host: String, port: Int, exclusive: Bool) throws(TransportError) -> (fd: Int32, port: Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let rv = getaddrinfo(host, String(port), &hints, &result)
        guard rv == 0, let info = result else {
            throw TransportError("cannot resolve listen address \(host): \(String(cString: gai_strerror(rv)))")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(
            info.pointee.ai_family,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TransportError("socket: \(errnoText())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if !exclusive { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        guard Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let code = errno
            close(fd)
            let shown = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            if code == EADDRINUSE {
                throw TransportError(
                    "cannot listen on \(shown): address already in use (port \(port) is held by another process, perhaps another encore serve)"
                )
            }
            throw TransportError("bind \(shown): \(errnoText(code))")
        }
        if exclusive {
            guard setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                let text = errnoText()
                close(fd)
                throw TransportError("setsockopt SO_REUSEPORT on \(host):\(port): \(text)")
            }
        }
        return (fd, boundPort(fd))
    }

    /// Starts listening on a socket from `bind`.
    static func startListening(_ fd: Int32, host: String, port: Int, backlog: Int32 = 4096) throws(TransportError) {
        guard Glibc.listen(fd, backlog) == 0 else {
            throw TransportError("listen \(host):\(port): \(errnoText())")
        }
    }

    /// The local port of a bound socket.
    static func boundPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let boundPort = withUnsafeMutablePointer(to: &storage) { pointer -> Int in
            _ = pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            if Int32(pointer.pointee.ss_family) == AF_INET6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    Int(UInt16(bigEndian: $0.pointee.sin6_port))
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                Int(UInt16(bigEndian: $0.pointee.sin_port))
            }
        }
        return boundPort
    }

    /// Accepts one connection (non-blocking, close-on-exec) or returns -1 with errno set.
    @inline(__always)
    static func accept(_ listener: Int32) -> Int32 {
        cencore_accept(listener)
    }

    /// A blocking TCP connection to `host:port` (close-on-exec, TCP_NODELAY; the connect is
    /// bounded by `timeoutSeconds` through SO_SNDTIMEO), for EncoreClient's
    /// `HTTP2ClientConnection`. Throws naming the host and the OS reason.
    package static func connect(host: String, port: Int, timeoutSeconds: Double) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rv = getaddrinfo(host, String(port), &hints, &result)
        guard rv == 0, let info = result else {
            throw TransportError("cannot resolve \(host): \(String(cString: gai_strerror(rv)))")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TransportError("socket: \(errnoText())") }
        var tv = timeval(tv_sec: Int(timeoutSeconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let text = errnoText()
            close(fd)
            throw TransportError("cannot connect to \(host):\(port): \(text)")
        }
        setNoDelay(fd)
        return fd
    }

    /// Closes a descriptor this module opened (a listener or a client socket).
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// "ip:port" of the peer, for log lines.
    static func peerName(_ fd: Int32) -> String {
        PeerAddress(fd: fd).description
    }
}

/// A connection's peer address, read once at accept (so it can still be named after the peer
/// left) and kept as plain bytes: copying it into a call's context costs no allocation or
/// reference counting.
public struct PeerAddress: Sendable, CustomStringConvertible {
    /// A `sockaddr_in6` is large enough for IPv4 and IPv6 peers.
    private var address = sockaddr_in6()
    private var length: socklen_t = 0

    /// No address (tests, in-memory sessions).
    public static let unknown = PeerAddress()

    private init() {}

    /// The peer of a connected socket (`unknown` if getpeername fails).
    public init(fd: Int32) {
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let rv = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        self.length = rv == 0 ? length : 0
    }

    /// True when every address `host` resolves to is a loopback address (127.0.0.0/8, ::1, or
    /// ::ffff:127.x.y.z); false when it does not resolve. For the admin plane's exposure check.
    public static func isLoopback(host: String) -> Bool {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return false }
        defer { freeaddrinfo(result) }
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let info = node {
            switch info.pointee.ai_family {
            case AF_INET:
                let ok = info.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    UInt32(bigEndian: $0.pointee.sin_addr.s_addr) >> 24 == 127
                }
                if !ok { return false }
            case AF_INET6:
                let ok = info.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p -> Bool in
                    var a = p.pointee.sin6_addr
                    return withUnsafeBytes(of: &a) { b in
                        let loopback = b.prefix(15).allSatisfy { $0 == 0 } && b[15] == 1
                        let mapped =
                            b.prefix(10).allSatisfy { $0 == 0 } && b[10] == 0xff && b[11] == 0xff && b[12] == 127
                        return loopback || mapped
                    }
                }
                if !ok { return false }
            default:
                return false
            }
            node = info.pointee.ai_next
        }
        return true
    }

    /// "ip:port" ("[ip]:port" for IPv6), or "unknown peer".
    public var description: String {
        guard length > 0 else { return "unknown peer" }
        var storage = address
        let length = self.length
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let gai = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo(
                    $0, length, &host, socklen_t(host.count), &service, socklen_t(service.count),
                    NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard gai == 0 else { return "unknown peer" }
        let h = String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let s = String(decoding: service.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return h.contains(":") ? "[\(h)]:\(s)" : "\(h):\(s)"
    }
}
