import Testing

@testable import EncoreTransport

/// Drives a state machine with DATA pieces and END_STREAM; returns every action taken.
func run(
    _ kind: GRPCStreamStateMachine.Kind, _ pieces: [[UInt8]], endStream: Bool = true, compressedEncoding: Bool = false,
    max: Int = 1 << 20
) -> (actions: [GRPCStreamStateMachine.Action], messages: [[UInt8]]) {
    var machine = GRPCStreamStateMachine(maxMessageBytes: max)
    machine.start(kind: kind, compressedEncoding: compressedEncoding)
    var actions: [GRPCStreamStateMachine.Action] = []
    var messages: [[UInt8]] = []
    func drain() {
        while true {
            let action = machine.nextAction()
            if action == .none { return }
            actions.append(action)
            switch action {
            case .unaryRequest(let m), .streamMessage(let m):
                messages.append(machine.decoder.withBytes(of: m) { Array($0) })
            default: break
            }
            if case .fail = action { return }
            if case .unaryRequest = action { return }
            if case .streamFinished = action { return }
        }
    }
    for piece in pieces {
        let action = piece.withUnsafeBytes { machine.receive($0) }
        if action != .none {
            actions.append(action)
            return (actions, messages)
        }
        drain()
    }
    if endStream {
        machine.receiveEndOfStream()
        drain()
    }
    return (actions, messages)
}

func failureCode(_ actions: [GRPCStreamStateMachine.Action]) -> GRPCStatus.Code? {
    for case .fail(let status) in actions { return status.code }
    return nil
}

@Suite struct GRPCStreamStateMachineTests {
    @Test func unaryDispatchesOnlyAtEndOfStream() {
        let wire = frame([1, 2, 3])
        let withoutEnd = run(.unary, [wire], endStream: false)
        #expect(withoutEnd.actions.isEmpty)
        let complete = run(.unary, [wire])
        #expect(complete.messages == [[1, 2, 3]])
        #expect(complete.actions.count == 1)
    }

    @Test func unaryMessageSurvivesEmptyDataFrameBeforeEndStream() {
        // Clients often send the message, then an empty DATA frame carrying END_STREAM.
        let result = run(.unary, [frame([4, 5]), []])
        #expect(result.messages == [[4, 5]])
    }

    @Test func unaryZeroLengthMessageIsValid() {
        let result = run(.unary, [frame([])])
        #expect(result.messages == [[]])
        #expect(failureCode(result.actions) == nil)
    }

    @Test func unaryRejectsSecondMessage() {
        #expect(failureCode(run(.unary, [frame([1]) + frame([2])]).actions) == .invalidArgument)
    }

    @Test func unaryRejectsMissingMessage() {
        #expect(failureCode(run(.unary, []).actions) == .invalidArgument)
    }

    @Test func unaryRejectsTruncatedMessageAtEndOfStream() {
        #expect(failureCode(run(.unary, [Array(frame([1, 2, 3]).dropLast())]).actions) == .invalidArgument)
    }

    @Test func oversizedMessageIsResourceExhausted() {
        #expect(
            failureCode(run(.unary, [frame([UInt8](repeating: 0, count: 11))], max: 10).actions) == .resourceExhausted)
    }

    @Test func compressedMessageIsUnimplemented() {
        #expect(
            failureCode(run(.unary, [frame([1], compressed: true)], compressedEncoding: true).actions) == .unimplemented
        )
        #expect(failureCode(run(.unary, [frame([1], compressed: true)]).actions) == .unimplemented)
    }

    @Test func identityMessagesPassWithAnyAdvertisedEncoding() {
        #expect(run(.unary, [frame([1])], compressedEncoding: true).messages == [[1]])
    }

    @Test func streamingDeliversEachMessageThenFinishes() {
        let bodies: [[UInt8]] = [[1], [], [2, 2], Array(repeating: 3, count: 500)]
        let wire = bodies.flatMap { frame($0) }
        for split in [1, 4, 5, 9, wire.count] {
            var pieces: [[UInt8]] = []
            var i = 0
            while i < wire.count {
                pieces.append(Array(wire[i..<min(wire.count, i + split)]))
                i += split
            }
            let result = run(.clientStreaming, pieces)
            #expect(result.messages == bodies, "split \(split)")
            #expect(result.actions.last == .streamFinished)
        }
    }

    @Test func serverStreamingTakesExactlyOneRequestLikeUnary() {
        let one = run(.serverStreaming, [frame([7, 7])])
        #expect(one.messages == [[7, 7]] && one.actions.count == 1)
        #expect(run(.serverStreaming, [frame([7])], endStream: false).actions.isEmpty)
        #expect(failureCode(run(.serverStreaming, [frame([1]) + frame([2])]).actions) == .invalidArgument)
        #expect(failureCode(run(.serverStreaming, []).actions) == .invalidArgument)
    }

    @Test func bidirectionalDeliversMessagesBeforeTheClientHalfCloses() {
        let open = run(.bidirectionalStreaming, [frame([1]), frame([2, 3])], endStream: false)
        #expect(open.messages == [[1], [2, 3]])
        #expect(!open.actions.contains(.streamFinished))
        let closed = run(.bidirectionalStreaming, [frame([1])])
        #expect(closed.actions.last == .streamFinished)
    }

    @Test func streamingWithNoMessagesStillFinishes() {
        #expect(run(.clientStreaming, []).actions == [.streamFinished])
    }

    @Test func streamingRejectsTruncatedTail() {
        #expect(failureCode(run(.clientStreaming, [frame([1]) + [0, 0]]).actions) == .invalidArgument)
    }

    @Test func ignoresInputAfterFinishing() {
        var machine = GRPCStreamStateMachine(maxMessageBytes: 10)
        machine.start(kind: .unary, compressedEncoding: false)
        machine.finish()
        let action = frame([1]).withUnsafeBytes { machine.receive($0) }
        #expect(action == .none)
        machine.receiveEndOfStream()
        #expect(machine.nextAction() == .none)
    }
}
