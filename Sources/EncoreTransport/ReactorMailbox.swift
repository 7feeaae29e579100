internal import CEncoreLinux
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Work posted to a reactor from other threads.
enum ReactorMessage: Sendable {
    /// An off-reactor call finished: send its answer if the stream is still open.
    case complete(StreamAddress, Result<[UInt8], GRPCStatus>)
    /// A streaming call's handler sent one response message.
    case streamSend(StreamAddress, [UInt8])
    /// A streaming call's handler ended its stream.
    case streamFinish(StreamAddress, GRPCStatus)
    /// A plain HTTP GET (`GRPCRouter.registerHTTP`) was answered off the reactor.
    case completeHTTP(StreamAddress, GRPCHTTPResponse)
    /// Begin a graceful drain: stop accepting, GOAWAY every connection, finish in-flight streams.
    case drain
    /// Close every connection now and leave the loop (the drain deadline passed).
    case stop
}

/// A reactor's inbox: a mutex-guarded queue plus an eventfd that wakes the reactor's epoll.
/// Written by any thread (admin work, signal handling), drained only by the owning reactor.
final class ReactorMailbox: Sendable {
    let eventFD: Int32
    private let queue = Mutex<[ReactorMessage]>([])

    init() throws(TransportError) {
        let fd = cencore_eventfd()
        guard fd >= 0 else { throw TransportError("eventfd: \(Socket.errnoText())") }
        eventFD = fd
    }

    deinit {
        close(eventFD)
    }

    func post(_ message: ReactorMessage) {
        queue.withLock { $0.append(message) }
        var one: UInt64 = 1
        _ = write(eventFD, &one, 8)
    }

    /// Posts several messages with one lock and one wake-up.
    func post<S: Sequence>(contentsOf messages: S) where S.Element == ReactorMessage {
        queue.withLock { $0.append(contentsOf: messages) }
        var one: UInt64 = 1
        _ = write(eventFD, &one, 8)
    }

    /// Moves every queued message into `into` (whose capacity is reused).
    func take(into: inout [ReactorMessage]) {
        var counter: UInt64 = 0
        _ = read(eventFD, &counter, 8)
        queue.withLock { queued in
            swap(&queued, &into)
        }
    }
}
