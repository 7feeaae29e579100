import EncoreProtocol
import EncoreTransport
import Synchronization

/// `grpc.health.v1.Health`: Check answers SERVING for "" and "encore.v1.Decisions" while the
/// server serves, NOT_SERVING once it drains, NOT_FOUND for other names (inline on the reactor,
/// allocation-free). Watch is a server stream: the current status at once, then every change
/// (SERVING to NOT_SERVING when the drain begins, after which the stream ends with UNAVAILABLE
/// so the drain can finish); an unknown name gets SERVICE_UNKNOWN and the stream stays open, as
/// the health protocol says.
public struct HealthService: Sendable {
    /// Service names this server reports on.
    public static let services: [String] = ["", "encore.v1.Decisions"]

    /// Whether the server drains (true → NOT_SERVING); read lock-free per check.
    private let serving: ServingState

    /// The open Watch calls of this plane.
    private let watchers: HealthWatchers

    public init(serving: ServingState) {
        self.serving = serving
        let watchers = HealthWatchers()
        self.watchers = watchers
        serving.onDrain { watchers.drain() }
    }

    public func register(in router: inout GRPCRouter) {
        let serving = self.serving
        router.register(
            "/grpc.health.v1.Health/Check",
            .inline { request, response, _ in
                HealthService.check(request, &response, draining: serving.isDraining)
            })
        let watchers = self.watchers
        router.register(
            "/grpc.health.v1.Health/Watch",
            .serverStreaming { _, stream in HealthWatch(stream: stream, watchers: watchers) })
    }

    /// HealthCheckResponse.ServingStatus values.
    enum ServingStatus: UInt8 {
        case serving = 1, notServing = 2, serviceUnknown = 3
    }

    /// A serialized HealthCheckResponse { status }.
    static func response(_ status: ServingStatus) -> [UInt8] { [0x08, status.rawValue] }

    /// The `service` of a HealthCheckRequest: nil when the message does not decode.
    static func serviceName(_ request: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        var service = UnsafeRawBufferPointer(start: nil, count: 0)
        guard request.count > 0 else { return service }
        var cursor = WireCursor(wholeOf: request)
        do {
            while !cursor.isAtEnd {
                let (number, wire) = try cursor.readMessageKey("HealthCheckRequest")
                if number == 1 && wire == WireCursor.Wire.lengthDelimited {
                    service = try cursor.readBytes("HealthCheckRequest.service")
                } else {
                    try cursor.skipValue(
                        number: number, wire: wire, depthBudget: WireCursor.depthLimit - 1, "HealthCheckRequest")
                }
            }
        } catch {
            return nil
        }
        return service
    }

    static func isKnown(_ service: UnsafeRawBufferPointer) -> Bool {
        service.count == 0 || equals(service, "encore.v1.Decisions")
    }

    /// Decodes a HealthCheckRequest and writes the HealthCheckResponse.
    static func check(_ request: UnsafeRawBufferPointer, _ response: inout GRPCResponseBuffer, draining: Bool)
        -> GRPCStatus
    {
        guard let service = serviceName(request) else {
            return GRPCStatus(.invalidArgument, static: "HealthCheckRequest could not be decoded")
        }
        guard isKnown(service) else {
            return GRPCStatus(.notFound, static: "unknown service name in HealthCheckRequest.service")
        }
        // HealthCheckResponse { status = 1 (SERVING) | 2 (NOT_SERVING) }
        response.append(0x08)
        response.append(draining ? 2 : 1)
        return .ok
    }

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        for i in 0..<bytes.count where bytes[i] != literal.utf8Start[i] { return false }
        return true
    }
}

/// The open Watch calls of one plane. Who writes: Watch handlers (reactor thread) add and
/// remove themselves; `drain` runs once on the thread that begins the drain. Sends happen under
/// the lock, so a watcher never gets SERVING after NOT_SERVING.
final class HealthWatchers: Sendable {
    private struct State {
        var draining = false
        var open: [ObjectIdentifier: (stream: GRPCServerStream, known: Bool)] = [:]
    }
    private let state = Mutex<State>(State())

    /// Sends the current status to a new watcher and keeps it for the changes.
    func add(_ watch: HealthWatch, known: Bool) {
        state.withLock { state in
            if !known {
                watch.stream.send(HealthService.response(.serviceUnknown))
            } else {
                watch.stream.send(HealthService.response(state.draining ? .notServing : .serving))
            }
            if state.draining {
                watch.stream.finish(HealthWatchers.drained)
            } else {
                state.open[ObjectIdentifier(watch)] = (watch.stream, known)
            }
        }
    }

    func remove(_ watch: HealthWatch) {
        _ = state.withLock { $0.open.removeValue(forKey: ObjectIdentifier(watch)) }
    }

    /// The drain began: NOT_SERVING to every watcher of a known service, then each stream ends.
    func drain() {
        state.withLock { state in
            state.draining = true
            for (_, watcher) in state.open {
                if watcher.known { watcher.stream.send(HealthService.response(.notServing)) }
                watcher.stream.finish(HealthWatchers.drained)
            }
            state.open = [:]
        }
    }

    /// Open watchers (for tests).
    var count: Int { state.withLock { $0.open.count } }

    static let drained = GRPCStatus(
        .unavailable, static: "the server is draining (SIGTERM): connect to another instance or retry later")
}

/// One Watch call: registers with the plane's watchers once its request arrived.
final class HealthWatch: GRPCStreamHandler {
    let stream: GRPCServerStream
    private let watchers: HealthWatchers

    init(stream: GRPCServerStream, watchers: HealthWatchers) {
        self.stream = stream
        self.watchers = watchers
    }

    func receive(_ message: UnsafeRawBufferPointer) -> GRPCStatus? {
        guard let service = HealthService.serviceName(message) else {
            return GRPCStatus(.invalidArgument, static: "HealthCheckRequest could not be decoded")
        }
        watchers.add(self, known: HealthService.isKnown(service))
        return nil
    }

    func requestsEnded() {}

    func cancel() {
        watchers.remove(self)
    }
}
