import Testing

@testable import EncoreTransport

/// Records what the session reports; answers every stream with `responseBody`.
private final class RecordingDelegate: HTTP2SessionDelegate {
    var events: [String] = []
    var headers: [(String, String)] = []
    var data: [UInt8] = []
    var responseBody: [UInt8] = []
    var responseOffset = 0
    var refuse = false
    /// Refuse streams once this many were accepted (the connection's stream limit).
    var acceptAtMost = Int.max
    var accepted = 0

    func streamBegan(streamID: Int32) -> Int {
        events.append("began \(streamID)")
        if refuse || accepted >= acceptAtMost { return -1 }
        accepted += 1
        return 7
    }

    func streamHeader(slot: Int, isTrailer: Bool, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        return true
    }

    func streamHeadersComplete(slot: Int, isTrailer: Bool, endStream: Bool) -> Bool {
        events.append(isTrailer ? "trailers \(slot)" : "headers \(slot)")
        return true
    }
    func streamData(slot: Int, bytes: UnsafeRawBufferPointer) -> Bool {
        data.append(contentsOf: bytes)
        return true
    }
    func streamEnded(slot: Int) -> Bool {
        events.append("ended \(slot)")
        return true
    }
    func streamReset(slot: Int) { events.append("reset \(slot)") }
    func streamClosed(slot: Int, errorCode: UInt32) { events.append("closed \(slot) \(errorCode)") }

    func readResponseBody(slot: Int, into buffer: UnsafeMutableRawBufferPointer) -> (Int, HTTP2BodyEnd) {
        let count = min(buffer.count, responseBody.count - responseOffset)
        for i in 0..<count { buffer[i] = responseBody[responseOffset + i] }
        responseOffset += count
        return (count, responseOffset == responseBody.count ? .okTrailers : .more)
    }

    func withTrailerStatus(slot: Int, _ body: (Int, UnsafeRawBufferPointer) -> Void) {
        body(0, UnsafeRawBufferPointer(start: nil, count: 0))
    }
}

/// Client bytes built by hand (RFC 9113 framing, HPACK literals without Huffman coding), so
/// the test depends on nothing but the spec.
enum ClientBytes {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags]
            + [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)]
            + payload
    }

    /// HPACK "literal header field without indexing, new name" (RFC 7541 6.2.2).
    static func headerBlock(_ fields: [(String, String)]) -> [UInt8] {
        var block: [UInt8] = []
        for (name, value) in fields {
            block.append(0)
            block.append(UInt8(name.utf8.count))
            block += Array(name.utf8)
            block.append(UInt8(value.utf8.count))
            block += Array(value.utf8)
        }
        return block
    }

    static let settings = frame(type: 4, flags: 0, stream: 0, [])
    static let settingsAck = frame(type: 4, flags: 1, stream: 0, [])

    static func request(stream: UInt32, message: [UInt8]) -> [UInt8] {
        let head = headerBlock([
            (":method", "POST"), (":scheme", "http"), (":path", "/encore.v1.Decisions/Decide"),
            (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers"),
        ])
        let prefixed = [0, 0, 0, 0, UInt8(message.count)] + message
        return frame(type: 1, flags: 0x4, stream: stream, head) + frame(type: 0, flags: 0x1, stream: stream, prefixed)
    }
}

/// One parsed server frame.
struct Frame {
    var type: UInt8
    var flags: UInt8
    var stream: UInt32
    var payload: [UInt8]
}

func parseFrames(_ bytes: [UInt8]) -> [Frame] {
    var frames: [Frame] = []
    var i = 0
    while i + 9 <= bytes.count {
        let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
        let stream =
            UInt32(bytes[i + 5] & 0x7F) << 24 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 8
            | UInt32(bytes[i + 8])
        frames.append(
            Frame(type: bytes[i + 3], flags: bytes[i + 4], stream: stream, payload: Array(bytes[(i + 9)..<(i + 9 + n)]))
        )
        i += 9 + n
    }
    #expect(i == bytes.count, "output ends with a partial frame")
    return frames
}

/// The value of SETTINGS entry `id` in a SETTINGS frame.
private func settingValue(_ frame: Frame?, id: UInt16) -> UInt32? {
    guard let frame, frame.type == 4 else { return nil }
    var i = 0
    while i + 6 <= frame.payload.count {
        let p = frame.payload
        if UInt16(p[i]) << 8 | UInt16(p[i + 1]) == id {
            return UInt32(p[i + 2]) << 24 | UInt32(p[i + 3]) << 16 | UInt32(p[i + 4]) << 8 | UInt32(p[i + 5])
        }
        i += 6
    }
    return nil
}

/// A block pool and session template, as a reactor owns them in the server. A session retains
/// neither and frees its memory into the pool when it goes, so each test creates its session
/// after the harness and keeps the harness alive past the session (`withExtendedLifetime`).
private struct SessionHarness {
    let pool = BlockPool()
    let template: HTTP2SessionTemplate

    init() throws { template = try HTTP2SessionTemplate(pool: pool) }

    func session(_ delegate: RecordingDelegate, settings: HTTP2Settings) throws -> HTTP2Session {
        try HTTP2Session(delegate: delegate, settings: settings, template: template)
    }
}

@Suite struct HTTP2SessionTests {
    static let settings = HTTP2Settings(maxConcurrentStreams: 128, maxHeaderListBytes: 16 << 10)

    private func drain(_ session: HTTP2Session) -> [UInt8] {
        var out: [UInt8] = []
        let ok = session.drainOutput {
            out += $0; return true
        }
        #expect(ok)
        return out
    }

    private func feed(_ session: HTTP2Session, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { session.receive($0) }
    }

    @Test func servesARequestFromInMemoryBytesThroughTheDelegate() throws {
        let delegate = RecordingDelegate()
        let harness = try SessionHarness()
        let session = try harness.session(delegate, settings: Self.settings)
        defer { withExtendedLifetime(harness) {} }

        // The server speaks first: its SETTINGS (max concurrent streams 128, push off).
        let greeting = parseFrames(session.takeGreeting())
        #expect(greeting.first?.type == 4 && greeting.first?.flags == 0)
        #expect(settingValue(greeting.first, id: 3) == 128, "the configured limit is what the client is told")

        let message: [UInt8] = [0x0A, 0x04, 0x63, 0x61, 0x72, 0x74]  // field 1 = "cart"
        #expect(
            feed(
                session,
                ClientBytes.preface + ClientBytes.settings + ClientBytes.settingsAck
                    + ClientBytes.request(stream: 1, message: message)))
        #expect(delegate.events == ["began 1", "headers 7", "ended 7"])
        #expect(delegate.headers.first { $0.0 == ":path" }?.1 == "/encore.v1.Decisions/Decide")
        #expect(delegate.headers.count == 6)
        #expect(delegate.data == [0, 0, 0, 0, 6] + message)

        // Answer it: HEADERS, the DATA the delegate supplies, then trailers with END_STREAM.
        delegate.responseBody = [0, 0, 0, 0, 2, 0x08, 0x01]
        #expect(session.submitResponse(streamID: 1))
        let frames = parseFrames(drain(session)).filter { $0.stream == 1 }
        #expect(frames.map(\.type) == [1, 0, 1])
        #expect(frames[1].payload == delegate.responseBody)
        #expect(frames[2].flags & 0x1 != 0, "trailers end the stream")
        #expect(delegate.events.last == "closed 7 0")
        #expect(session.isAlive)
    }

    @Test func refusedStreamIsResetAndTheConnectionLives() throws {
        let delegate = RecordingDelegate()
        delegate.refuse = true
        let harness = try SessionHarness()
        let session = try harness.session(delegate, settings: Self.settings)
        defer { withExtendedLifetime(harness) {} }
        _ = session.takeGreeting()
        #expect(
            feed(session, ClientBytes.preface + ClientBytes.settings + ClientBytes.request(stream: 1, message: [])))
        #expect(delegate.events == ["began 1"])
        let frames = parseFrames(drain(session))
        #expect(frames.contains { $0.type == 3 && $0.stream == 1 }, "RST_STREAM for the refused stream")
        #expect(!frames.contains { $0.type == 7 }, "no GOAWAY")
    }

    /// Over the acknowledged SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2 alone would send GOAWAY
    /// PROTOCOL_ERROR for the whole connection): only the extra stream is refused, with
    /// REFUSED_STREAM, and the streams in flight are still answered.
    @Test func streamOverTheAcknowledgedLimitIsRefusedNotTheConnection() throws {
        let delegate = RecordingDelegate()
        delegate.acceptAtMost = 2
        let settings = HTTP2Settings(maxConcurrentStreams: 2, maxHeaderListBytes: 16 << 10)
        let harness = try SessionHarness()
        let session = try harness.session(delegate, settings: settings)
        defer { withExtendedLifetime(harness) {} }
        #expect(settingValue(parseFrames(session.takeGreeting()).first, id: 3) == 2)
        #expect(
            feed(
                session,
                ClientBytes.preface + ClientBytes.settings + ClientBytes.settingsAck
                    + ClientBytes.request(stream: 1, message: []) + ClientBytes.request(stream: 3, message: [])
                    + ClientBytes.request(stream: 5, message: [])))
        let frames = parseFrames(drain(session))
        #expect(!frames.contains { $0.type == 7 }, "no GOAWAY")
        let resets = frames.filter { $0.type == 3 }
        #expect(resets.map(\.stream) == [5], "only the third stream is reset")
        #expect(resets.first?.payload == [0, 0, 0, 7], "REFUSED_STREAM")
        // The two streams in flight are still served.
        delegate.responseBody = [0, 0, 0, 0, 0]
        #expect(session.submitResponse(streamID: 1))
        #expect(parseFrames(drain(session)).filter { $0.stream == 1 }.map(\.type) == [1, 0, 1])
        #expect(session.isAlive)
    }

    /// A long-lived connection's finished calls are forgotten: nghttp2 would keep every closed
    /// stream for the RFC 7540 priority tree (as many as its MAX_CONCURRENT_STREAMS, which the
    /// session sets unbounded), so memory grew with every call. 600 sequential calls on one
    /// session leave the pool holding what it held after the first 100.
    @Test func finishedStreamsAreNotRetained() throws {
        let delegate = RecordingDelegate()
        let harness = try SessionHarness()
        let session = try harness.session(delegate, settings: Self.settings)
        defer { withExtendedLifetime(harness) {} }
        _ = session.takeGreeting()
        #expect(feed(session, ClientBytes.preface + ClientBytes.settings + ClientBytes.settingsAck))
        _ = drain(session)
        delegate.responseBody = [0, 0, 0, 0, 0]
        var heldAfter100 = 0
        for i in 0..<600 {
            let stream = UInt32(2 * i + 1)
            delegate.responseOffset = 0
            #expect(feed(session, ClientBytes.request(stream: stream, message: [])))
            #expect(session.submitResponse(streamID: Int32(stream)))
            _ = drain(session)
            if i == 99 { heldAfter100 = harness.pool.liveBlocks }
        }
        #expect(delegate.events.filter { $0.hasPrefix("closed") }.count == 600, "every call finished")
        #expect(heldAfter100 > 0)
        #expect(
            harness.pool.liveBlocks <= heldAfter100,
            "\(harness.pool.liveBlocks) blocks held after 600 calls, \(heldAfter100) after 100"
        )
    }

    @Test func badPrefaceIsRejected() throws {
        let delegate = RecordingDelegate()
        let harness = try SessionHarness()
        let session = try harness.session(delegate, settings: Self.settings)
        defer { withExtendedLifetime(harness) {} }
        _ = session.takeGreeting()
        #expect(!feed(session, Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)))
        #expect(delegate.events.isEmpty)
    }
}
