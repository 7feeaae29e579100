import EncoreProtocol
import EncoreTransport

/// The gRPC framing and the HTTP/2 stream path, driven with in-memory bytes.
enum TransportTargets {
    /// `grpc-frames`: byte 0 picks a chunk size (0: the whole input at once) and byte 1 the
    /// message size limit; the rest is a DATA stream fed to `GRPCFrameDecoder` in chunks, as the
    /// stream state machine does (messages taken after each append, `compact()` after each
    /// chunk), then `finish()`. A reference parser reads the same stream in one pass; both must
    /// produce the same messages (flag and bytes) and stop with the same failure.
    static let grpcFrames: @Sendable () -> FuzzTarget.Check = {
        var decoder = GRPCFrameDecoder(maxMessageBytes: 0)
        return { input in
            guard input.count >= 2 else { return nil }
            let chunk = Int(input[0])
            let limit = Int(input[1]) * 16
            let stream = Array(input[2...])
            if decoder.maxMessageBytes != limit { decoder = GRPCFrameDecoder(maxMessageBytes: limit) }
            decoder.reset()

            // Reference: one pass over the whole stream.
            var expected: [(Bool, [UInt8])] = []
            var expectedFailure: GRPCFrameDecoder.Failure? = nil
            var at = 0
            while stream.count - at >= 5 {
                let flag = stream[at]
                guard flag <= 1 else {
                    expectedFailure = .invalidCompressedFlag(flag)
                    break
                }
                let length =
                    Int(stream[at + 1]) << 24 | Int(stream[at + 2]) << 16 | Int(stream[at + 3]) << 8
                    | Int(stream[at + 4])
                guard length <= limit else {
                    expectedFailure = .messageTooLarge(length: length, limit: limit)
                    break
                }
                guard stream.count - at - 5 >= length else { break }
                expected.append((flag == 1, Array(stream[(at + 5)..<(at + 5 + length)])))
                at += 5 + length
            }
            if expectedFailure == nil, at != stream.count {
                expectedFailure = .truncated(bufferedBytes: stream.count - at)
            }

            var got: [(Bool, [UInt8])] = []
            var failure: GRPCFrameDecoder.Failure? = nil
            var offset = 0
            stream.withUnsafeBytes { all in
                feeding: while offset < all.count {
                    let end = chunk == 0 ? all.count : min(all.count, offset + chunk)
                    do throws(GRPCFrameDecoder.Failure) {
                        try decoder.append(UnsafeRawBufferPointer(rebasing: all[offset..<end]))
                        while let message = try decoder.nextMessage() {
                            if message.range.count > limit { failure = .messageTooLarge(length: -1, limit: limit) }
                            let bytes: [UInt8] = decoder.withBytes(of: message) { Array($0) }
                            got.append((message.compressed, bytes))
                        }
                    } catch {
                        failure = error
                        break feeding
                    }
                    decoder.compact()
                    offset = end
                }
                if failure == nil {
                    do throws(GRPCFrameDecoder.Failure) { try decoder.finish() } catch { failure = error }
                }
            }
            if failure != expectedFailure {
                return "failure \(String(describing: failure)) != reference \(String(describing: expectedFailure))"
            }
            if got.count != expected.count { return "\(got.count) messages, reference \(expected.count)" }
            for (index, message) in got.enumerated()
            where message.0 != expected[index].0 || message.1 != expected[index].1 {
                return "message \(index) differs from the reference"
            }
            return nil
        }
    }

    /// `http2-stream`: the client preface and an empty SETTINGS frame, then the input (after
    /// byte 0, which picks the chunk size: 0 = all at once), fed to an `HTTP2Session` in chunks.
    /// A delegate does what `Connection` does with the callbacks: validates the header block with
    /// `GRPCRequestHead`, runs `GRPCStreamStateMachine` on DATA, decodes unary messages with the
    /// hot-path decoders and answers (a response, or trailers-only for an error). Checks: every
    /// callback names a slot the session was given and has not closed, a response body is read
    /// only from a stream that was answered, the server's output is whole, well-formed frames.
    static let http2Stream: @Sendable () -> FuzzTarget.Check = {
        let pool = BlockPool()
        let template: HTTP2SessionTemplate
        do { template = try HTTP2SessionTemplate(pool: pool) } catch { fatalError("HTTP2SessionTemplate: \(error)") }
        return { input in
            let delegate = FuzzStreamDelegate()
            let session: HTTP2Session
            do {
                session = try HTTP2Session(
                    delegate: delegate,
                    settings: HTTP2Settings(maxConcurrentStreams: 8, maxHeaderListBytes: 4096),
                    template: template)
            } catch { return "HTTP2Session: \(error)" }
            defer { withExtendedLifetime((pool, template)) {} }
            var output: [UInt8] = []
            func drain() -> Bool {
                session.drainOutput {
                    output.append(contentsOf: $0)
                    return true
                }
            }
            guard drain() else { return "drainOutput failed before any input" }
            let greeting: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
            var alive = greeting.withUnsafeBytes { session.receive($0) }
            if input.count > 1 {
                let chunk = Int(input[0])
                var offset = 1
                while alive, offset < input.count {
                    let end = chunk == 0 ? input.count : min(input.count, offset + chunk)
                    alive = session.receive(UnsafeRawBufferPointer(rebasing: input[offset..<end]))
                    offset = end
                    if let problem = delegate.problem { return problem }
                    delegate.submitPending(session)
                    if !drain() { alive = false }
                }
            }
            if let problem = delegate.problem { return problem }
            delegate.submitPending(session)
            _ = drain()
            if let problem = delegate.problem { return problem }
            return wellFramed(output)
        }
    }

    /// Nil when `bytes` is a sequence of whole HTTP/2 frames within the default frame size.
    static func wellFramed(_ bytes: [UInt8]) -> String? {
        var at = 0
        while at < bytes.count {
            guard bytes.count - at >= 9 else { return "server output ends inside a frame header" }
            let length = Int(bytes[at]) << 16 | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2])
            guard length <= 16_384 else { return "server frame of \(length) bytes exceeds SETTINGS_MAX_FRAME_SIZE" }
            guard bytes.count - at - 9 >= length else { return "server output ends inside a frame" }
            at += 9 + length
        }
        return nil
    }
}

/// The routes of the `http2-stream` target: one per kind, plus the two decoded unary methods.
private let fuzzRoutes: [(path: String, kind: GRPCStreamStateMachine.Kind)] = [
    ("/encore.v1.Decisions/Decide", .unary),
    ("/encore.v1.Decisions/ReportOutcome", .unary),
    ("/encore.v1.Catalog/UpsertOffers", .clientStreaming),
    ("/encore.v1.Models/Watch", .serverStreaming),
    ("/encore.v1.Diagnostics/Chat", .bidirectionalStreaming),
]

/// What `Connection` keeps per stream, reduced to what the fuzz target checks.
private final class FuzzStream {
    var inUse = false
    var streamID: Int32 = 0
    var head = GRPCRequestHead(maxHeaderListBytes: 4096)
    var machine = GRPCStreamStateMachine(maxMessageBytes: 4096)
    var route = -1
    /// The delegate called the request malformed (the session resets it).
    var malformed = false
    var answered = false
    var body: [UInt8] = []
    var bodyOffset = 0
    var status = 0
}

private final class FuzzStreamDelegate: HTTP2SessionDelegate {
    var slots: [FuzzStream] = []
    var pending: [Int] = []
    var problem: String? = nil
    var decide = DecideRequestDecoder()
    var outcome = OutcomeRequestDecoder()

    func fail(_ message: String) {
        if problem == nil { problem = message }
    }

    /// The slot at `index` if the session may name it now.
    func live(_ index: Int, _ callback: String) -> FuzzStream? {
        guard index >= 0, index < slots.count, slots[index].inUse else {
            fail("\(callback) for slot \(index), which is not open")
            return nil
        }
        return slots[index]
    }

    func streamBegan(streamID: Int32) -> Int {
        guard streamID > 0, streamID % 2 == 1 else {
            fail("streamBegan with stream id \(streamID), not a client-initiated one")
            return -1
        }
        if slots.contains(where: { $0.inUse && $0.streamID == streamID }) {
            fail("streamBegan for stream \(streamID), which is already open")
        }
        let index: Int
        if let free = slots.firstIndex(where: { !$0.inUse }) {
            index = free
        } else if slots.count < 16 {
            index = slots.count
            slots.append(FuzzStream())
        } else {
            return -1
        }
        let slot = slots[index]
        slot.inUse = true
        slot.streamID = streamID
        slot.head = GRPCRequestHead(maxHeaderListBytes: 4096)
        slot.machine.reset()
        slot.route = -1
        slot.malformed = false
        slot.answered = false
        slot.body = []
        slot.bodyOffset = 0
        slot.status = 0
        return index
    }

    /// Marks a request malformed, as `Connection` does; returns false for the session.
    private func malformed(_ slot: FuzzStream) -> Bool {
        slot.malformed = true
        slot.machine.finishDiscardingInput()
        return false
    }

    func streamHeader(slot index: Int, isTrailer: Bool, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)
        -> Bool
    {
        guard let slot = live(index, "streamHeader") else { return true }
        if slot.malformed { fail("streamHeader for stream \(slot.streamID) after it was called malformed") }
        let wellFormed =
            isTrailer
            ? slot.head.acceptTrailer(name: name, value: value)
            : slot.head.accept(name: name, value: value) { path in
                fuzzRoutes.firstIndex { Array($0.path.utf8).elementsEqual(path) } ?? -1
            }
        return wellFormed || malformed(slot)
    }

    func streamHeadersComplete(slot index: Int, isTrailer: Bool, endStream: Bool) -> Bool {
        guard let slot = live(index, "streamHeadersComplete") else { return true }
        if slot.malformed { fail("streamHeadersComplete for stream \(slot.streamID) after it was called malformed") }
        if isTrailer { return endStream || malformed(slot) }
        switch slot.head.verdict(endingStream: endStream) {
        case .accept(let route, _):
            guard route >= 0, route < fuzzRoutes.count else {
                fail("GRPCRequestHead accepted route \(route), which was never registered")
                return true
            }
            slot.route = route
            slot.machine.start(kind: fuzzRoutes[route].kind, compressedEncoding: slot.head.compressedEncoding)
        case .reject(_, let status):
            answer(index, slot, status: Int(status.code.rawValue))
        case .http:
            fail("GRPCRequestHead gave an HTTP route, and none is registered")
        case .malformed:
            return malformed(slot)
        }
        return true
    }

    func streamData(slot index: Int, bytes: UnsafeRawBufferPointer) -> Bool {
        guard let slot = live(index, "streamData") else { return true }
        guard slot.head.receivedBody(bytes.count) else { return malformed(slot) }
        if case .fail(let status) = slot.machine.receive(bytes) {
            answer(index, slot, status: Int(status.code.rawValue))
            return true
        }
        act(index, slot)
        return true
    }

    func streamEnded(slot index: Int) -> Bool {
        guard let slot = live(index, "streamEnded") else { return true }
        guard slot.head.bodyComplete() else { return malformed(slot) }
        slot.machine.receiveEndOfStream()
        act(index, slot)
        return true
    }

    func streamReset(slot index: Int) {
        if index == -1 { return }
        guard let slot = live(index, "streamReset") else { return }
        slot.machine.finish()
    }

    func streamClosed(slot index: Int, errorCode: UInt32) {
        guard let slot = live(index, "streamClosed") else { return }
        slot.inUse = false
        pending.removeAll { $0 == index }
    }

    func readResponseBody(slot index: Int, into buffer: UnsafeMutableRawBufferPointer) -> (Int, HTTP2BodyEnd) {
        guard let slot = live(index, "readResponseBody") else { return (0, .okTrailers) }
        if !slot.answered { fail("readResponseBody for stream \(slot.streamID), which was not answered") }
        let count = min(buffer.count, slot.body.count - slot.bodyOffset)
        slot.body.withUnsafeBytes { body in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: body[slot.bodyOffset..<(slot.bodyOffset + count)]))
        }
        slot.bodyOffset += count
        return (count, slot.bodyOffset == slot.body.count ? .okTrailers : .more)
    }

    func withTrailerStatus(slot index: Int, _ body: (Int, UnsafeRawBufferPointer) -> Void) {
        guard let slot = live(index, "withTrailerStatus") else { return }
        body(slot.status, UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Runs the state machine's actions, as `Connection` does after DATA or END_STREAM.
    private func act(_ index: Int, _ slot: FuzzStream) {
        while true {
            switch slot.machine.nextAction() {
            case .none:
                return
            case .fail(let status):
                answer(index, slot, status: Int(status.code.rawValue))
                return
            case .unaryRequest(let message):
                guard message.range.count <= slot.machine.decoder.maxMessageBytes else {
                    fail(
                        "a \(message.range.count)-byte message passed the \(slot.machine.decoder.maxMessageBytes)-byte limit"
                    )
                    return
                }
                let ok: Bool = slot.machine.decoder.withBytes(of: message) { bytes in
                    switch slot.route {
                    case 0: return (try? decide.decode(bytes)) != nil
                    case 1: return (try? outcome.decode(bytes)) != nil
                    default: return true
                    }
                }
                slot.body = ok ? [0, 0, 0, 0, 2, 0x08, 0x01] : []
                answer(index, slot, status: ok ? 0 : 3)
            case .streamMessage(let message):
                if !fuzzRoutes[slot.route].kind.streamsRequests {
                    fail("a stream message on a \(fuzzRoutes[slot.route].kind) route")
                }
                _ = slot.machine.decoder.withBytes(of: message) { $0.count }
            case .streamFinished:
                slot.body = [0, 0, 0, 0, 0]
                answer(index, slot, status: 0)
            }
        }
    }

    private func answer(_ index: Int, _ slot: FuzzStream, status: Int) {
        slot.machine.finish()
        guard !slot.answered else {
            fail("stream \(slot.streamID) answered twice")
            return
        }
        slot.answered = true
        slot.status = status
        pending.append(index)
    }

    /// Submits the answers decided during `receive`, as the connection does after it.
    func submitPending(_ session: HTTP2Session) {
        for index in pending {
            let slot = slots[index]
            guard slot.inUse else { continue }
            if slot.status == 0 {
                _ = session.submitResponse(streamID: slot.streamID)
            } else {
                _ = session.submitTrailersOnly(
                    streamID: slot.streamID, httpStatus: 200, code: slot.status,
                    message: UnsafeRawBufferPointer(start: nil, count: 0))
            }
        }
        pending.removeAll()
    }
}
