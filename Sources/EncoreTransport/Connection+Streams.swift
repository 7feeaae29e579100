import Dispatch
import EncoreLogging
import EncoreMetrics

#if canImport(Glibc)
    import Glibc
#endif

/// One gRPC call's state inside a connection. Slots are reused across calls (their buffers
/// keep their capacity), so serving a call allocates nothing on the inline path.
final class StreamSlot {
    var streamID: Int32 = 0
    /// This slot's index in its connection's slot table (fixed for its life).
    let index: Int
    /// Bumped whenever the slot is taken or released: stale off-reactor answers are dropped.
    var generation: UInt64 = 0
    var inUse = false
    var head: GRPCRequestHead
    var machine: GRPCStreamStateMachine
    var routeIndex = -1
    var deadlineNanos: UInt64 = 0
    /// From the `authorization` header through `configuration.credentials`.
    var principal = GRPCCallContext.anonymous
    /// From the `x-encore-customer` header (`GRPCCallContext.affinityKeyHash`).
    var affinityKeyHash: UInt64? = nil
    /// A response (success or error) has been submitted to nghttp2.
    var responded = false
    /// Waiting for an off-reactor answer.
    var awaiting = false
    var response = GRPCResponseBuffer()
    var responseOffset = 0
    var streamHandler: (any GRPCClientStreamHandler)?
    /// A server-streaming or bidirectional call's handler (until the call ends).
    var responseStreamHandler: (any GRPCStreamHandler)?
    /// The call answers with a stream of messages (`GRPCServerStream`).
    var streaming = false
    /// Streaming: the response HEADERS were submitted (the first message was sent).
    var headersSent = false
    /// Streaming: the body read returned `.deferred`; new bytes need `resumeData`.
    var dataDeferred = false
    /// Streaming: the status the trailers carry once the buffered messages are sent.
    var finalStatus: GRPCStatus? = nil
    /// The reactor's loop-turn time when the stream's first frame was read (latency start).
    var startNanos: UInt64 = 0
    /// The metrics row of the call (its route, or -1 for none) once its headers were complete
    /// and it was counted as started; nil before.
    var metricsRoute: Int? = nil
    /// A plain HTTP GET route (`GRPCRouter.registerHTTP`), or -1 for a gRPC call.
    var httpRoute = -1
    /// Whether the request arrives fast enough (checked on idle ticks; keyed by `generation`,
    /// so nothing is reset per stream).
    var arrival = RequestArrivalWatch()
    /// Whether the response reaches the client (checked on idle ticks, keyed by `generation`).
    var writeWatch = ResponseWriteWatch()
    /// Request bytes this stream's decoder holds, as counted in the connection's and the
    /// server's budgets (given back when the stream closes).
    var heldRequestBytes = 0

    init(index: Int, maxHeaderListBytes: Int, maxMessageBytes: Int) {
        self.index = index
        head = GRPCRequestHead(maxHeaderListBytes: maxHeaderListBytes)
        machine = GRPCStreamStateMachine(maxMessageBytes: maxMessageBytes)
    }
}

extension Connection: HTTP2SessionDelegate {
    /// Runs `body` with the slot at `index`, borrowed without reference counting (the slot
    /// array owns every slot for the connection's life).
    @inline(__always)
    func withSlot<R>(_ index: Int, _ body: (StreamSlot) -> R) -> R {
        slotRefs[index]._withUnsafeGuaranteedRef(body)
    }

    // MARK: Called by HTTP2Session (nghttp2 callbacks)

    /// A new request stream: returns its slot index, or -1 to refuse it (RST_STREAM
    /// REFUSED_STREAM). There is one slot per allowed concurrent stream and a slot is free
    /// exactly while its stream is closed, so no free slot means the client is over the limit.
    func streamBegan(streamID: Int32) -> Int {
        let limits = streamLimits
        let index: Int
        if let free = freeSlots.popLast() {
            index = free
        } else if machine.admitsStream() {
            index = slots.count
            let slot = StreamSlot(
                index: index, maxHeaderListBytes: limits.maxHeaderListBytes, maxMessageBytes: limits.maxMessageBytes)
            slots.append(slot)
            slotRefs.append(Unmanaged.passUnretained(slot))
        } else {
            perform(machine.streamRefused())
            return -1
        }
        return withSlot(index) { slot in
            slot.inUse = true
            slot.generation &+= 1
            slot.streamID = streamID
            slot.head = GRPCRequestHead(maxHeaderListBytes: limits.maxHeaderListBytes)
            slot.machine.reset()
            slot.routeIndex = -1
            slot.deadlineNanos = 0
            slot.principal = certificatePrincipal
            slot.affinityKeyHash = nil
            slot.responded = false
            slot.awaiting = false
            slot.responseOffset = 0
            slot.streaming = false
            slot.headersSent = false
            slot.dataDeferred = false
            slot.finalStatus = nil
            slot.startNanos = reactor.now
            slot.metricsRoute = nil
            slot.httpRoute = -1
            slot.response.metricsLabel = -1
            machine.streamOpened(now: reactor.now)
            return index
        }
    }

    func streamHeader(slot index: Int, isTrailer: Bool, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)
        -> Bool
    {
        // Closing for the header-byte bound (ENHANCE_YOUR_CALM): nothing more is processed.
        guard machine.acceptsHeaders else { return true }
        return withSlot(index) { slot in
            let wellFormed =
                isTrailer
                ? slot.head.acceptTrailer(name: name, value: value)
                : slot.head.accept(name: name, value: value, router: router)
            guard wellFormed else {
                malformed(slot)
                return false
            }
            // Well-formed fields count toward the bound (the one that crosses it is kept).
            if machine.headerDecoded(bytes: name.count &+ value.count &+ 32) {
                perform(machine.headerBytesOverBound(now: reactor.now))
            }
            if isTrailer { return true }
            if GRPCRequestHead.equals(name, "authorization"), let credentials = reactor.shared.configuration.credentials
            {
                slot.principal = principal(authorization: value, credentials)
            } else if GRPCRequestHead.equals(name, "x-encore-customer") {
                slot.affinityKeyHash = GRPCCallContext.affinityHash(value)
            }
            return true
        }
    }

    /// The request broke an HTTP/2 message rule: the session resets the stream with
    /// PROTOCOL_ERROR, and nothing more of it is processed until it closes.
    private func malformed(_ slot: StreamSlot) {
        slot.machine.finishDiscardingInput()
        if slot.heldRequestBytes != 0 { releaseRequestBytes(slot) }
        if slot.metricsRoute == nil && slot.httpRoute < 0 { slot.responded = true }
    }

    func streamHeadersComplete(slot index: Int, isTrailer: Bool, endStream: Bool) -> Bool {
        return withSlot(index) { slot in
            // Trailers must end the stream (RFC 9113 §8.1).
            if isTrailer {
                if !endStream { malformed(slot) }
                return endStream
            }
            let verdict = slot.head.verdict(endingStream: endStream)
            if verdict == .malformed {
                malformed(slot)
                return false
            }
            if case .http(let route) = verdict {
                slot.httpRoute = route
                return true
            }
            let route = slot.head.routeIndex
            slot.metricsRoute = route
            metricsCells.add(metricsOffsets.startedBase + (route < 0 ? metricsOffsets.unknownRoute : route))
            switch verdict {
            case .http, .malformed:
                break
            case .reject(let httpStatus, let status):
                respondError(slot, status, httpStatus: httpStatus)
                if httpStatus == 431 { perform(machine.headerListTooLarge(now: reactor.now)) }
            case .accept(let routeIndex, let timeoutNanos):
                slot.routeIndex = routeIndex
                let handler = router.handler(at: routeIndex)
                slot.machine.start(kind: handler.kind, compressedEncoding: slot.head.compressedEncoding)
                if let timeoutNanos {
                    let (deadline, overflow) = reactor.now.addingReportingOverflow(timeoutNanos)
                    slot.deadlineNanos = overflow ? UInt64.max : max(deadline, 1)
                    adjustDeadlineStreams(1)
                }
                switch handler {
                case .clientStreaming(let factory):
                    slot.streamHandler = factory(context(for: slot))
                case .serverStreaming(let factory), .bidirectionalStreaming(let factory):
                    slot.streaming = true
                    slot.responseStreamHandler = factory(context(for: slot), serverStream(for: slot))
                case .inline, .offloaded, .deferrable:
                    break
                }
            }
            return true
        }
    }

    func streamData(slot index: Int, bytes: UnsafeRawBufferPointer) -> Bool {
        return withSlot(index) { slot in
            guard slot.head.receivedBody(bytes.count) else {
                malformed(slot)
                return false
            }
            if slot.httpRoute >= 0 { return true }
            let action = slot.machine.receive(bytes)
            let stored = slot.machine.decoder.storedBytes
            if stored != slot.heldRequestBytes && !holdRequestBytes(slot, stored) { return true }
            if case .fail(let status) = action {
                respondError(slot, status)
                return true
            }
            advance(slot)
            return true
        }
    }

    /// Accounts a stream's decoder now holding `stored` bytes (once per DATA chunk that changes
    /// it) in the connection's and the server's budgets. Past either bound the stream is
    /// answered RESOURCE_EXHAUSTED naming the limit and its bytes are given back; returns false
    /// then.
    private func holdRequestBytes(_ slot: StreamSlot, _ stored: Int) -> Bool {
        let delta = stored &- slot.heldRequestBytes
        slot.heldRequestBytes = stored
        guard delta > 0 else {
            _ = machine.requestBytesHeld(delta)
            withRequestBudget { $0.give(-delta) }
            return true
        }
        let connectionOK = machine.requestBytesHeld(delta)
        if connectionOK && withRequestBudget({ $0.take(delta, streamBytes: stored) }) { return true }
        let status: GRPCStatus
        if connectionOK {
            Log.rateLimited(
                "request bytes buffered by all connections over --max-buffered-bytes (\(withRequestBudget { $0.limit })); RESOURCE_EXHAUSTED for a stream of \(peer)"
            )
            status = GRPCStatus(
                .resourceExhausted,
                static: "request bytes buffered by the server over its limit (--max-buffered-bytes); retry later")
        } else {
            Log.rateLimited(
                "request bytes buffered on the connection from \(peer) over --max-connection-buffered-bytes (\(machine.limits.maxBufferedRequestBytes)); RESOURCE_EXHAUSTED"
            )
            status = GRPCStatus(
                .resourceExhausted,
                static:
                    "request bytes buffered on this connection over the server's limit (--max-connection-buffered-bytes)"
            )
        }
        slot.machine.finishDiscardingInput()
        releaseRequestBytes(slot)
        // No RST_STREAM after it: nghttp2 would send the reset first and drop the status. The
        // rest of the client's DATA is discarded as it arrives (nothing is buffered).
        respondError(slot, status)
        reactor.markDirty(self)
        return false
    }

    /// Gives back the request bytes a stream holds (it closed, or was refused).
    private func releaseRequestBytes(_ slot: StreamSlot) {
        let held = slot.heldRequestBytes
        slot.heldRequestBytes = 0
        _ = machine.requestBytesHeld(-held)
        withRequestBudget { $0.give(held) }
    }

    func streamEnded(slot index: Int) -> Bool {
        return withSlot(index) { slot in
            guard slot.head.bodyComplete() else {
                malformed(slot)
                return false
            }
            if slot.httpRoute >= 0 {
                dispatchHTTP(slot)
                return true
            }
            slot.machine.receiveEndOfStream()
            advance(slot)
            return true
        }
    }

    /// The client sent RST_STREAM for a stream (slot index, or -1 if it is not a request stream).
    func streamReset(slot index: Int) {
        guard index >= 0 else {
            perform(machine.resetReceived(inFlight: false, now: reactor.now))
            return
        }
        let slot = slots[index]
        // A cancel because the call's deadline expired: the server answered DEADLINE_EXCEEDED
        // already, or at least half of the grpc-timeout has passed by the server's clock (the
        // client's clock started earlier, so its deadline comes first).
        let now = reactor.now
        let afterDeadline =
            slot.finalStatus?.code == .deadlineExceeded
            || (slot.deadlineNanos != 0 && now >= slot.startNanos
                && 2 * (now - slot.startNanos) >= slot.deadlineNanos - min(slot.deadlineNanos, slot.startNanos))
        perform(machine.resetReceived(inFlight: slot.inUse, afterDeadline: afterDeadline, now: now))
    }

    func streamClosed(slot index: Int, errorCode: UInt32) {
        return withSlot(index) { slot in
            cancelHandlers(slot)
            clearDeadline(slot)
            countUnanswered(slot)
            slot.inUse = false
            slot.awaiting = false
            slot.generation &+= 1
            slot.machine.reset()
            if slot.heldRequestBytes != 0 { releaseRequestBytes(slot) }
            machine.streamClosed()
            freeSlots.append(index)
        }
    }

    /// Copies the next part of the response for nghttp2's DATA frames: the one message of a
    /// unary call, or the messages a streaming call's handler sent so far.
    func readResponseBody(slot index: Int, into buffer: UnsafeMutableRawBufferPointer) -> (Int, HTTP2BodyEnd) {
        return withSlot(index) { slot in
            let total = slot.response.bytes.count
            let count = min(buffer.count, total - slot.responseOffset)
            if count > 0 {
                slot.response.bytes.withUnsafeBytes { source in
                    buffer.baseAddress!.copyMemory(from: source.baseAddress! + slot.responseOffset, byteCount: count)
                }
                slot.responseOffset += count
            }
            guard slot.responseOffset == total else { return (count, .more) }
            guard slot.streaming else { return (count, .okTrailers) }
            // Everything sent so far is copied: the buffer's storage is reused for what follows.
            slot.response.bytes.removeAll(keepingCapacity: true)
            slot.responseOffset = 0
            guard let status = slot.finalStatus else {
                slot.dataDeferred = true
                return (count, .deferred)
            }
            return (count, status.isOK ? .okTrailers : .statusTrailers)
        }
    }

    func withTrailerStatus(slot index: Int, _ body: (Int, UnsafeRawBufferPointer) -> Void) {
        return withSlot(index) { slot in
            let status = slot.finalStatus ?? GRPCStatus(.internal, static: "stream ended without a status")
            messageScratch.removeAll(keepingCapacity: true)
            status.message.withUTF8 { GRPCStatus.percentEncode($0, into: &messageScratch) }
            messageScratch.withUnsafeBytes { body(status.code.rawValue, $0) }
        }
    }

    // MARK: Driving a call

    private func context(for slot: StreamSlot) -> GRPCCallContext {
        GRPCCallContext(
            reactorIndex: reactor.index, deadlineNanos: slot.deadlineNanos == 0 ? nil : slot.deadlineNanos,
            principal: slot.principal, peer: peer, affinityKeyHash: slot.affinityKeyHash)
    }

    /// The principal for an `authorization` value, verified once per distinct value per
    /// connection: a repeated header is one compare against the cached one.
    private func principal(authorization value: UnsafeRawBufferPointer, _ credentials: any GRPCCredentials) -> Int32 {
        let generation = credentials.generation
        if generation == cachedAuthorizationGeneration && cachedAuthorization.count == value.count {
            let same = cachedAuthorization.withUnsafeBytes { cached in
                value.count == 0 || memcmp(cached.baseAddress!, value.baseAddress!, value.count) == 0
            }
            if same { return cachedAuthorizationPrincipal }
        }
        let principal = credentials.principal(authorization: value)
        // Values up to 512 bytes are cached (capacity reserved once, reused afterwards).
        if value.count <= 512 {
            cachedAuthorization.removeAll(keepingCapacity: true)
            cachedAuthorization.append(contentsOf: value)
            cachedAuthorizationGeneration = generation
            cachedAuthorizationPrincipal = principal
        }
        return principal
    }

    private func advance(_ slot: StreamSlot) {
        while true {
            switch slot.machine.nextAction() {
            case .none:
                return
            case .fail(let status):
                respondError(slot, status)
                return
            case .unaryRequest(let message):
                if slot.streaming {
                    // Server streaming: the one request, then the end of the requests.
                    guard let handler = slot.responseStreamHandler, !expired(slot) else { return }
                    if let status = slot.machine.decoder.withBytes(of: message, { handler.receive($0) }) {
                        respondError(slot, status)
                        return
                    }
                    handler.requestsEnded()
                } else {
                    dispatchUnary(slot, message)
                }
                return
            case .streamMessage(let message):
                let status: GRPCStatus?
                if let handler = slot.streamHandler {
                    status = slot.machine.decoder.withBytes(of: message) { handler.receive($0) }
                } else if let handler = slot.responseStreamHandler {
                    status = slot.machine.decoder.withBytes(of: message) { handler.receive($0) }
                } else {
                    return
                }
                if let status {
                    respondError(slot, status)
                    return
                }
            case .streamFinished:
                if let handler = slot.responseStreamHandler {
                    handler.requestsEnded()
                    return
                }
                guard let handler = slot.streamHandler else { return }
                slot.streamHandler = nil
                if expired(slot) { return }
                slot.awaiting = true
                handler.finish(responder(for: slot))
                return
            }
        }
    }

    private func expired(_ slot: StreamSlot) -> Bool {
        guard slot.deadlineNanos != 0, reactor.now >= slot.deadlineNanos else { return false }
        let status = GRPCStatus(.deadlineExceeded, static: "deadline exceeded before the call was handled")
        slot.finalStatus = status
        respondError(slot, status)
        return true
    }

    private func dispatchUnary(_ slot: StreamSlot, _ message: GRPCFrameDecoder.Message) {
        if expired(slot) { return }
        switch router.handler(at: slot.routeIndex) {
        case .inline(let handler):
            let context = context(for: slot)
            slot.response.beginMessage()
            let status = slot.machine.decoder.withBytes(of: message) { request in
                handler(request, &slot.response, context)
            }
            if status.isOK {
                slot.response.sealMessage()
                respondOK(slot)
            } else {
                respondError(slot, status)
            }
        case .deferrable(let handler):
            let context = context(for: slot)
            let call = GRPCDeferredCall(mailbox: reactor.mailbox, target: address(of: slot))
            slot.response.beginMessage()
            let result = slot.machine.decoder.withBytes(of: message) { request in
                handler(request, &slot.response, context, call)
            }
            switch result {
            case .now(let status):
                if status.isOK {
                    slot.response.sealMessage()
                    respondOK(slot)
                } else {
                    respondError(slot, status)
                }
            case .later:
                slot.awaiting = true
            }
        case .offloaded(let handler):
            let request = slot.machine.decoder.withBytes(of: message) { Array($0) }
            let context = context(for: slot)
            let responder = responder(for: slot)
            slot.awaiting = true
            DispatchQueue.global().async { handler(request, context, responder) }
        case .clientStreaming, .serverStreaming, .bidirectionalStreaming:
            respondError(slot, GRPCStatus(.internal, static: "route kind mismatch"))
        }
    }

    private func responder(for slot: StreamSlot) -> GRPCResponder {
        GRPCResponder(mailbox: reactor.mailbox, target: address(of: slot))
    }

    private func serverStream(for slot: StreamSlot) -> GRPCServerStream {
        GRPCServerStream(mailbox: reactor.mailbox, target: address(of: slot))
    }

    private func address(of slot: StreamSlot) -> StreamAddress {
        StreamAddress(
            connectionIndex: self.index, connectionGeneration: generation, slotIndex: slot.index,
            slotGeneration: slot.generation)
    }

    /// The open streaming call at `address`, if it is still the same call and not finished.
    private func openStream(_ address: StreamAddress) -> StreamSlot? {
        guard slots.indices.contains(address.slotIndex) else { return nil }
        let slot = slots[address.slotIndex]
        guard slot.inUse, slot.generation == address.slotGeneration, slot.streaming, !slot.responded else {
            return nil
        }
        return slot
    }

    /// A streaming call's handler sent a message (through the mailbox): frame it behind the
    /// messages not yet written; the first one goes out with the response HEADERS.
    func streamSend(_ address: StreamAddress, _ message: [UInt8]) {
        guard let slot = openStream(address) else { return }
        if slot.responseOffset == slot.response.bytes.count {
            slot.response.bytes.removeAll(keepingCapacity: true)
            slot.responseOffset = 0
        }
        GRPCFraming.append(message, to: &slot.response.bytes)
        if !slot.headersSent {
            slot.headersSent = true
            if !session.submitResponse(streamID: slot.streamID, slot: slot.index) {
                slot.responded = true
                session.resetStream(streamID: slot.streamID, cancel: false)
            }
        } else {
            resumeIfDeferred(slot)
        }
        reactor.markDirty(self)
    }

    /// A streaming call's handler finished its stream (through the mailbox).
    func streamFinish(_ address: StreamAddress, _ status: GRPCStatus) {
        guard let slot = openStream(address) else { return }
        // The handler ended the call itself: it is not cancelled.
        slot.responseStreamHandler = nil
        respondError(slot, status)
        reactor.markDirty(self)
    }

    private func resumeIfDeferred(_ slot: StreamSlot) {
        if slot.dataDeferred {
            slot.dataDeferred = false
            session.resumeData(streamID: slot.streamID)
        }
    }

    private func cancelHandlers(_ slot: StreamSlot) {
        if let handler = slot.streamHandler {
            slot.streamHandler = nil
            handler.cancel()
        }
        if let handler = slot.responseStreamHandler {
            slot.responseStreamHandler = nil
            handler.cancel()
        }
    }

    /// An off-reactor answer arrived through the mailbox.
    func complete(_ address: StreamAddress, _ result: Result<[UInt8], GRPCStatus>) {
        guard slots.indices.contains(address.slotIndex) else { return }
        return withSlot(address.slotIndex) { slot in
            guard slot.inUse, slot.generation == address.slotGeneration, slot.awaiting, !slot.responded else { return }
            slot.awaiting = false
            switch result {
            case .success(let message):
                slot.response.setMessage(message)
                respondOK(slot)
            case .failure(let status):
                respondError(slot, status)
            }
            reactor.markDirty(self)
        }
    }

    /// Counts a call that ends without an answer (reset by the client, connection closed) as
    /// CANCELLED, so started and finished calls balance.
    private func countUnanswered(_ slot: StreamSlot) {
        guard let route = slot.metricsRoute, !slot.responded else { return }
        slot.metricsRoute = nil
        metricsCells.add(metricsOffsets.callCell(route: route, status: GRPCStatus.Code.cancelled.rawValue))
    }

    // MARK: Plain HTTP GET (admin endpoints)

    private func dispatchHTTP(_ slot: StreamSlot) {
        guard !slot.awaiting, !slot.responded, let index = slots.firstIndex(where: { $0 === slot }) else { return }
        let handler = router.httpHandler(at: slot.httpRoute)
        let request = GRPCHTTPRequest(
            path: router.httpPath(at: slot.httpRoute),
            accept: slot.head.wantsOpenMetrics ? "application/openmetrics-text" : nil, principal: slot.principal)
        let target = StreamAddress(
            connectionIndex: self.index, connectionGeneration: generation, slotIndex: index,
            slotGeneration: slot.generation)
        let mailbox = reactor.mailbox
        slot.awaiting = true
        DispatchQueue.global().async { mailbox.post(.completeHTTP(target, handler(request))) }
    }

    /// The answer to a plain HTTP GET arrived through the mailbox.
    func completeHTTP(_ address: StreamAddress, _ response: GRPCHTTPResponse) {
        guard slots.indices.contains(address.slotIndex) else { return }
        return withSlot(address.slotIndex) { slot in
            guard slot.inUse, slot.generation == address.slotGeneration, slot.awaiting, !slot.responded else { return }
            slot.awaiting = false
            slot.responded = true
            slot.response.bytes = response.body
            slot.responseOffset = 0
            var contentType = response.contentType
            var authenticate = response.wwwAuthenticate ?? ""
            let ok = contentType.withUTF8 { type in
                authenticate.withUTF8 { auth in
                    session.submitPlainResponse(
                        streamID: slot.streamID, status: response.status, contentType: UnsafeRawBufferPointer(type),
                        wwwAuthenticate: auth.isEmpty ? nil : UnsafeRawBufferPointer(auth))
                }
            }
            if !ok { session.resetStream(streamID: slot.streamID, cancel: false) }
            reactor.markDirty(self)
        }
    }

    private func respondOK(_ slot: StreamSlot) {
        if let route = slot.metricsRoute {
            metricsCells.add(metricsOffsets.callCell(route: route, status: 0))
            let label = Int(slot.response.metricsLabel)
            if label >= 0, route >= 0, label < metricsOffsets.histogramLabelCount[route] {
                pendingLatency.append(
                    (metricsOffsets.histogramBase[route] + label * LatencyBuckets.cellCount, slot.startNanos))
            }
        }
        slot.machine.finish()
        slot.responded = true
        slot.responseOffset = 0
        clearDeadline(slot)
        withSession { session in
            if !session.submitResponse(streamID: slot.streamID, slot: slot.index) {
                session.resetStream(streamID: slot.streamID, cancel: false)
            }
        }
    }

    /// Ends the call with `status`: a trailers-only response when no response HEADERS were sent,
    /// else (a streaming call) trailers after the messages already sent. Any handler still
    /// attached is cancelled.
    func respondError(_ slot: StreamSlot, _ status: GRPCStatus, httpStatus: Int = 200) {
        guard !slot.responded else { return }
        if let route = slot.metricsRoute {
            metricsCells.add(metricsOffsets.callCell(route: route, status: status.code.rawValue))
        }
        slot.machine.finish()
        slot.responded = true
        slot.awaiting = false
        clearDeadline(slot)
        cancelHandlers(slot)
        if slot.headersSent {
            slot.finalStatus = status
            resumeIfDeferred(slot)
            return
        }
        messageScratch.removeAll(keepingCapacity: true)
        status.message.withUTF8 { GRPCStatus.percentEncode($0, into: &messageScratch) }
        let ok = messageScratch.withUnsafeBytes { encoded in
            session.submitTrailersOnly(
                streamID: slot.streamID, httpStatus: httpStatus, code: status.code.rawValue, message: encoded)
        }
        if !ok { session.resetStream(streamID: slot.streamID, cancel: false) }
    }

    private func clearDeadline(_ slot: StreamSlot) {
        if slot.deadlineNanos != 0 {
            slot.deadlineNanos = 0
            adjustDeadlineStreams(-1)
        }
    }

    // MARK: Timers and teardown

    /// Resets streams whose response has made no progress toward the client for the response
    /// write timeout (a zero flow-control window, a client that never ends its side after the
    /// answer): RST_STREAM CANCEL frees the slot and the response buffer.
    func checkResponseWrites(now: UInt64, timeoutNanos: UInt64) {
        var reset = 0
        for slot in slots where slot.inUse {
            let pending =
                slot.responded
                || (slot.streaming && slot.headersSent
                    && (slot.responseOffset < slot.response.bytes.count || slot.finalStatus != nil))
            let progress = slot.responseOffset &+ slot.response.bytes.count &* 31
            guard
                slot.writeWatch.isStuck(
                    generation: slot.generation, pending: pending, progress: progress, now: now,
                    timeoutNanos: timeoutNanos)
            else { continue }
            slot.machine.finish()
            session.resetStream(streamID: slot.streamID, cancel: true)
            // Not again before another timeout (the stream closes once the reset is sent).
            _ = slot.writeWatch.isStuck(
                generation: slot.generation, pending: false, progress: progress, now: now, timeoutNanos: timeoutNanos)
            reset += 1
        }
        guard reset > 0 else { return }
        // One line per connection and check, not per stream: 16 connections of 64 stuck streams
        // would otherwise spend the process's warning budget, and hide the connection closes.
        Log.rateLimited(
            "\(reset) response(s) to \(peer) made no progress for the response write timeout; RST_STREAM CANCEL")
        reactor.markDirty(self)
    }

    /// Cuts off streams whose request does not arrive in time (`RequestArrivalLimits`): headers
    /// incomplete after the header timeout (RST_STREAM ENHANCE_YOUR_CALM), or a body slower than
    /// the minimum rate (RESOURCE_EXHAUSTED, then RST_STREAM NO_ERROR so the client stops).
    func checkRequestArrival(now: UInt64) {
        let limits = arrivalLimits
        var any = false
        for slot in slots where slot.inUse && !slot.responded && !slot.awaiting {
            let headersComplete = slot.metricsRoute != nil || slot.httpRoute >= 0
            let receiving =
                slot.httpRoute >= 0 || (headersComplete && slot.machine.state == .receiving)
            guard !headersComplete || receiving else { continue }
            let sample = RequestArrivalWatch.Sample(
                openedNanos: slot.startNanos, headersComplete: headersComplete, receiving: receiving,
                partialMessageBytes: slot.machine.decoder.bufferedBytes, messages: slot.machine.messageCount,
                streamsRequests: slot.machine.kind.streamsRequests && slot.httpRoute < 0)
            switch slot.arrival.check(generation: slot.generation, sample, now: now, limits: limits) {
            case .onTime:
                continue
            case .headersTooSlow:
                Log.rateLimited(
                    "request headers from \(peer) not complete within the request header timeout; RST_STREAM ENHANCE_YOUR_CALM"
                )
                slot.machine.finish()
                session.resetStream(streamID: slot.streamID, code: .enhanceYourCalm)
            case .bodyTooSlow:
                Log.rateLimited(
                    "request body from \(peer) slower than \(limits.minBytesPerSecond) bytes/s; RESOURCE_EXHAUSTED"
                )
                if slot.httpRoute >= 0 {
                    slot.responded = true
                    session.resetStream(streamID: slot.streamID, code: .enhanceYourCalm)
                } else {
                    respondError(
                        slot,
                        GRPCStatus(
                            .resourceExhausted,
                            static:
                                "request body arrived slower than the server's minimum rate (--min-request-bytes-per-second)"
                        ))
                    session.resetStream(streamID: slot.streamID, code: .noError)
                }
            }
            any = true
        }
        if any { reactor.markDirty(self) }
    }

    func expireDeadlines(now: UInt64) {
        var any = false
        for slot in slots where slot.inUse && !slot.responded && slot.deadlineNanos != 0 && now >= slot.deadlineNanos {
            let status = GRPCStatus(.deadlineExceeded, static: "deadline exceeded")
            // Remembered (unused by a call without response HEADERS) so a cancel that follows
            // is known to be the client's deadline, not an attack (`streamReset`).
            slot.finalStatus = status
            respondError(slot, status)
            any = true
        }
        if any { reactor.markDirty(self) }
    }

    /// Cancels every call's handler (the connection is going away).
    func cancelAll() {
        for slot in slots where slot.inUse {
            countUnanswered(slot)
            cancelHandlers(slot)
            clearDeadline(slot)
            slot.machine.reset()
            if slot.heldRequestBytes != 0 { releaseRequestBytes(slot) }
            slot.awaiting = false
            slot.generation &+= 1
            slot.inUse = false
        }
    }
}
