import Synchronization

/// Answers one call whose work runs off the reactor thread. Thread-safe; the first answer wins
/// and later ones are ignored. The answer is posted to the owning reactor, which sends it if the
/// call is still open (a call reset or timed out meanwhile is silently dropped).
public final class GRPCResponder: Sendable {
    private let mailbox: ReactorMailbox
    private let target: StreamAddress
    private let answered = Atomic<Bool>(false)
    /// Told about the answer before it is posted (audit), if set.
    private let recorder: (any GRPCCallRecorder)?

    init(mailbox: ReactorMailbox, target: StreamAddress, recorder: (any GRPCCallRecorder)? = nil) {
        self.mailbox = mailbox
        self.target = target
        self.recorder = recorder
    }

    /// A responder for the same call that tells `recorder` the answer before sending it. Give
    /// it to the handler instead of this one (this one must then not be used).
    public func recording(to recorder: any GRPCCallRecorder) -> GRPCResponder {
        GRPCResponder(mailbox: mailbox, target: target, recorder: recorder)
    }

    /// Sends `message` (a serialized protobuf message, without the gRPC prefix) with status OK.
    public func succeed(_ message: [UInt8]) {
        guard answered.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        recorder?.answered(.ok, response: message)
        mailbox.post(.complete(target, .success(message)))
    }

    /// Ends the call with `status` (must not be OK).
    public func fail(_ status: GRPCStatus) {
        guard answered.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        let status = status.isOK ? GRPCStatus(.internal, "handler failed with OK") : status
        recorder?.answered(status, response: nil)
        mailbox.post(.complete(target, .failure(status)))
    }

    /// Whether an answer has been given.
    public var isAnswered: Bool { answered.load(ordering: .acquiring) }
}

/// A call a `GRPCDeferrableHandler` chose to answer later. Answer it exactly once, from any
/// thread, with `answer` (a call reset or timed out meanwhile is silently dropped).
public struct GRPCDeferredCall: Sendable {
    let mailbox: ReactorMailbox
    let target: StreamAddress

    /// Answers every call of `calls` with `status` (OK: an empty response message): one post
    /// (one lock, one eventfd write) per reactor among them, however many calls.
    public static func answer(_ calls: UnsafeBufferPointer<GRPCDeferredCall>, with status: GRPCStatus) {
        guard !calls.isEmpty else { return }
        let result: Result<[UInt8], GRPCStatus> = status.isOK ? .success([]) : .failure(status)
        var start = 0
        while start < calls.count {
            let mailbox = calls[start].mailbox
            var end = start + 1
            while end < calls.count && calls[end].mailbox === mailbox { end += 1 }
            mailbox.post(contentsOf: calls[start..<end].lazy.map { ReactorMessage.complete($0.target, result) })
            start = end
        }
    }
}

/// Sends the response messages of one streaming call and ends it. Thread-safe: every send and
/// the finish are posted, in order, to the reactor that owns the call, which writes them as
/// flow control allows. The first `finish` wins; sends after it, or after the call ended
/// (client cancel, deadline, connection closed), are dropped.
public final class GRPCServerStream: Sendable {
    private let mailbox: ReactorMailbox
    private let target: StreamAddress
    private let finished = Atomic<Bool>(false)

    init(mailbox: ReactorMailbox, target: StreamAddress) {
        self.mailbox = mailbox
        self.target = target
    }

    /// Sends one response message (serialized protobuf, without the gRPC prefix). The response
    /// headers go out with the first message.
    public func send(_ message: [UInt8]) {
        guard !finished.load(ordering: .acquiring) else { return }
        mailbox.post(.streamSend(target, message))
    }

    /// Ends the call with `status` (OK or an error) after the messages sent before.
    public func finish(_ status: GRPCStatus = .ok) {
        guard finished.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        mailbox.post(.streamFinish(target, status))
    }

    /// Whether `finish` has been called.
    public var isFinished: Bool { finished.load(ordering: .acquiring) }
}

/// Identifies one call on one connection of one reactor, robust to slot reuse.
struct StreamAddress: Sendable {
    var connectionIndex: Int
    var connectionGeneration: UInt64
    var slotIndex: Int
    var slotGeneration: UInt64
}

extension GRPCStatus: Error {}
