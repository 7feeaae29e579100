/// The life of one gRPC call's request side, as a pure state machine: DATA bytes and
/// end-of-stream in, actions out. The connection performs the actions (dispatch a handler,
/// deliver a streamed message, answer with an error); this type decides them.
///
/// Unary and server-streaming calls must carry exactly one message followed by END_STREAM;
/// client-streaming and bidirectional calls deliver each message as soon as it is complete.
/// Storage is reused across calls.
public struct GRPCStreamStateMachine: Sendable {
    /// The method's shape.
    public enum Kind: Sendable {
        case unary, clientStreaming, serverStreaming, bidirectionalStreaming

        /// True when the client sends a stream of messages (each delivered as it completes).
        public var streamsRequests: Bool { self == .clientStreaming || self == .bidirectionalStreaming }
    }

    public enum State: Equatable, Sendable {
        /// No call in progress.
        case idle
        /// Headers accepted; request messages arriving.
        case receiving
        /// The request is complete or has failed; a response is pending or sent.
        case finished
    }

    /// What the connection must do next.
    public enum Action: Equatable, Sendable {
        /// Nothing yet: more bytes are needed.
        case none
        /// Answer the call with this error and ignore the rest of the request.
        case fail(GRPCStatus)
        /// A unary (or server-streaming) request is complete: run the handler on this message.
        case unaryRequest(GRPCFrameDecoder.Message)
        /// A client-streaming or bidirectional message is complete: deliver it (before the next
        /// `nextAction`).
        case streamMessage(GRPCFrameDecoder.Message)
        /// The client half-closed a client-streaming or bidirectional call: tell the handler.
        case streamFinished
    }

    public private(set) var state: State = .idle
    public private(set) var kind: Kind = .unary
    public private(set) var messageCount = 0
    /// The decoder holding request bytes; message ranges in actions index into it.
    public private(set) var decoder: GRPCFrameDecoder
    private var compressedEncoding = false
    private var unaryMessage: GRPCFrameDecoder.Message? = nil
    private var endOfStream = false

    public init(maxMessageBytes: Int) {
        decoder = GRPCFrameDecoder(maxMessageBytes: maxMessageBytes)
    }

    /// Starts a call after its headers were accepted.
    /// `compressedEncoding` is true when the request's `grpc-encoding` is not identity.
    public mutating func start(kind: Kind, compressedEncoding: Bool) {
        decoder.reset()
        self.kind = kind
        self.compressedEncoding = compressedEncoding
        messageCount = 0
        unaryMessage = nil
        endOfStream = false
        state = .receiving
    }

    /// Marks the call finished (answered early, cancelled or done); later input is ignored.
    public mutating func finish() {
        state = .finished
    }

    /// Marks the call finished and drops the bytes received so far (the call was refused while
    /// its request was arriving); later input is ignored.
    public mutating func finishDiscardingInput() {
        state = .finished
        decoder.reset()
        unaryMessage = nil
    }

    /// Returns to idle, keeping the decoder's storage for the next call.
    public mutating func reset() {
        decoder.reset()
        unaryMessage = nil
        state = .idle
    }

    /// Appends a DATA payload. Follow with `nextAction()` until it returns `.none`.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer) -> Action {
        guard state == .receiving else { return .none }
        if kind.streamsRequests { decoder.compact() }
        do {
            try decoder.append(bytes)
        } catch {
            state = .finished
            return .fail(error.status)
        }
        return .none
    }

    /// Records END_STREAM from the client. Follow with `nextAction()`.
    public mutating func receiveEndOfStream() {
        endOfStream = true
    }

    /// The next thing to do with the bytes received so far.
    public mutating func nextAction() -> Action {
        guard state == .receiving else { return .none }
        do {
            while let message = try decoder.nextMessage() {
                messageCount += 1
                if message.compressed {
                    state = .finished
                    return .fail(
                        compressedEncoding
                            ? GRPCStatus(
                                .unimplemented,
                                static: "message compression is not supported (use grpc-encoding identity)")
                            : GRPCStatus(.unimplemented, static: "compressed message without a supported grpc-encoding")
                    )
                }
                if kind.streamsRequests { return .streamMessage(message) }
                if unaryMessage != nil {
                    state = .finished
                    return .fail(
                        GRPCStatus(
                            .invalidArgument,
                            static: kind == .unary
                                ? "unary method received more than one request message"
                                : "server-streaming method received more than one request message"))
                }
                unaryMessage = message
            }
            guard endOfStream else { return .none }
            try decoder.finish()
        } catch {
            state = .finished
            return .fail(error.status)
        }
        state = .finished
        if kind.streamsRequests { return .streamFinished }
        guard let message = unaryMessage else {
            return .fail(
                GRPCStatus(
                    .invalidArgument,
                    static: kind == .unary
                        ? "unary method received no request message"
                        : "server-streaming method received no request message"))
        }
        return .unaryRequest(message)
    }
}
