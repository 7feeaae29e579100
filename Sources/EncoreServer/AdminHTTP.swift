import EncoreLogging
import EncoreMetrics
import EncoreTransport
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The admin plane's plain HTTP endpoints: `GET /metrics` (Prometheus text format, or
/// OpenMetrics when `Accept` asks for it), `GET /status` (the status page), `GET /status.json`
/// (its data). Served over HTTP/2 by the admin transport (h2c and TLS) and over HTTP/1.1 by
/// `AdminHTTP1Server`, with the same answers. With admin tokens configured, a request needs a
/// bearer token with role `read` (401 without one, 403 without the role).
public final class AdminHTTP: Sendable {
    public static let paths = ["/metrics", "/status", "/status.json"]
    let authorizer: AdminAuthorizer
    /// Set once the servers exist (the collector reads both planes, which are built after the
    /// admin router that serves these endpoints).
    private let collector = Mutex<ServerMetrics?>(nil)

    init(authorizer: AdminAuthorizer) {
        self.authorizer = authorizer
    }

    func attach(_ metrics: ServerMetrics) { collector.withLock { $0 = metrics } }

    /// Registers the endpoints on the admin router (served over HTTP/2).
    func register(in router: inout GRPCRouter) {
        for path in AdminHTTP.paths {
            router.registerHTTP(path) { [self] request in
                respond(path: request.path, accept: request.accept, principal: request.principal, protocol: "HTTP/2")
            }
        }
    }

    /// The answer to `GET path` (any thread).
    func respond(path: String, accept: String?, principal: Int32, protocol proto: String) -> GRPCHTTPResponse {
        guard AdminHTTP.paths.contains(path), let metrics = collector.withLock({ $0 }) else {
            return Self.text(404, "not found: the admin plane serves GET \(AdminHTTP.paths.joined(separator: ", "))\n")
        }
        if let refusal = authorizer.check(
            GRPCCallContext(reactorIndex: 0, deadlineNanos: nil, principal: principal), .read, method: "GET \(path)")
        {
            var response = Self.text(refusal.code == .permissionDenied ? 403 : 401, refusal.message.string + "\n")
            if refusal.code != .permissionDenied { response.wwwAuthenticate = "Bearer realm=\"encore-admin\"" }
            return response
        }
        switch path {
        case "/metrics":
            let format = MetricsExposition.Format.negotiate(accept: accept)
            metrics.countRequest(path: path, protocol: proto, format: format == .openMetrics ? "openmetrics" : "text")
            return GRPCHTTPResponse(
                status: 200, contentType: format.contentType, body: Array(metrics.exposition(format).utf8))
        case "/status.json":
            metrics.countRequest(path: path, protocol: proto, format: "json")
            return GRPCHTTPResponse(status: 200, contentType: "application/json", body: metrics.statusJSON())
        default:
            metrics.countRequest(path: path, protocol: proto, format: "html")
            return GRPCHTTPResponse(status: 200, contentType: "text/html; charset=utf-8", body: metrics.statusHTML())
        }
    }

    static func text(_ status: Int, _ message: String) -> GRPCHTTPResponse {
        GRPCHTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array(message.utf8))
    }
}

/// Serves the admin endpoints over HTTP/1.1 with SwiftNIO's HTTP/1 server pipeline, on its own
/// event loop thread. The admin reactor peeks at each plaintext connection's first bytes and
/// hands over the sockets that do not start with the HTTP/2 preface
/// (`GRPCServerConfiguration.http1Handoff`): Prometheus scrapes HTTP/1.1 on the same port as the
/// admin gRPC services. Cold path: nothing here runs on a data-plane reactor.
final class AdminHTTP1Server: Sendable {
    let group: MultiThreadedEventLoopGroup
    let endpoints: AdminHTTP
    /// Connections handed over so far (for tests and the log).
    let adopted = Atomic<Int>(0)

    init(endpoints: AdminHTTP) {
        self.endpoints = endpoints
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Takes a connected socket (the HTTP/1.1 server owns and closes it from now on).
    func adopt(_ fd: Int32) {
        adopted.add(1, ordering: .relaxed)
        let endpoints = self.endpoints
        ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHTTP1Handler(endpoints: endpoints))
                }
            }
            .withConnectedSocket(fd)
            .whenFailure { error in
                Log.rateLimited("admin HTTP/1.1: cannot serve a connection: \(error)")
                close(fd)
            }
    }

    func shutdown() {
        try? group.syncShutdownGracefully()
    }
}

/// One HTTP/1.1 connection's requests: GET of the admin endpoints, keep-alive as the client asks.
final class AdminHTTP1Handler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let endpoints: AdminHTTP
    private var head: HTTPRequestHead?

    init(endpoints: AdminHTTP) {
        self.endpoints = endpoints
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break
        case .end:
            guard let request = head else { return }
            head = nil
            respond(to: request, context: context)
        }
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = String(request.uri.prefix { $0 != "?" })
        let response: GRPCHTTPResponse
        if request.method != .GET && request.method != .HEAD {
            response = AdminHTTP.text(405, "method not allowed: the admin endpoints answer GET\n")
        } else {
            var principal = AdminAuthorizer.anonymous
            if let authorization = request.headers.first(name: "authorization") {
                principal = Array(authorization.utf8).withUnsafeBytes {
                    endpoints.authorizer.principal(authorization: $0)
                }
            }
            response = endpoints.respond(
                path: path, accept: request.headers.first(name: "accept"), principal: principal, protocol: "HTTP/1.1")
        }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.count))
        headers.add(name: "cache-control", value: "no-store")
        if let authenticate = response.wwwAuthenticate { headers.add(name: "www-authenticate", value: authenticate) }
        if response.status == 405 { headers.add(name: "allow", value: "GET") }
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(
            version: request.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if request.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
