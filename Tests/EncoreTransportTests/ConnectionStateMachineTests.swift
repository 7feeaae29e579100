import Testing

@testable import EncoreTransport

/// Checks the actions one event returned (a mutating call cannot sit inside `#expect`).
private func expectActions(
    _ actions: ConnectionStateMachine.Actions, _ expected: ConnectionStateMachine.Actions,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actions == expected, sourceLocation: sourceLocation)
}

/// Checks a Bool a mutating call returned (such a call cannot sit inside `#expect`).
private func expectTrue(_ value: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(value, sourceLocation: sourceLocation)
}

@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine
    static let second: UInt64 = 1_000_000_000
    static let limits = Machine.Limits(
        maxPendingOutputBytes: 1000, idleTimeoutNanos: 30 * second, rapidResetLimitPerSecond: 10)

    func active(now: UInt64 = 1) -> Machine {
        var m = Machine(tls: false, now: now, limits: Self.limits)
        expectActions(m.started(), [.startSession])
        return m
    }

    // MARK: Stream limit

    @Test func streamsOverTheLimitAreRefusedAndTheConnectionGoesOn() {
        var limits = Self.limits
        limits.maxConcurrentStreams = 3
        var m = Machine(tls: false, now: 1, limits: limits)
        expectActions(m.started(), [.startSession])
        for _ in 0..<3 {
            #expect(m.admitsStream())
            m.streamOpened(now: 2)
        }
        #expect(!m.admitsStream())
        // Many refusals, more than the rapid-reset limit (10) in one second: not an attack by
        // themselves, the connection stays active.
        for _ in 0..<50 { expectActions(m.streamRefused(), [.flush]) }
        #expect(m.state == .active)
        #expect(m.refusedStreams == 50)
        m.streamClosed()
        #expect(m.admitsStream())
    }

    // MARK: Eviction at the connection limit

    @Test func onlyAServingConnectionIdleLongEnoughMayBeEvicted() {
        var m = active(now: 0)
        #expect(m.evictionIdleNanos(now: Self.second / 2, minIdleNanos: Self.second) == nil)
        #expect(m.evictionIdleNanos(now: 3 * Self.second, minIdleNanos: Self.second) == 3 * Self.second)
        m.bytesRead(now: 3 * Self.second)
        #expect(m.evictionIdleNanos(now: 3 * Self.second, minIdleNanos: Self.second) == nil)
        // A connection with an open stream but no input counts as idle (it holds a slot).
        m.streamOpened(now: 4 * Self.second)
        #expect(m.evictionIdleNanos(now: 9 * Self.second, minIdleNanos: Self.second) == 5 * Self.second)
        // Draining or closing connections are on their way out already.
        expectActions(m.drainRequested(now: 9 * Self.second), [.submitFirstGoaway, .armTimer, .flush])
        #expect(m.evictionIdleNanos(now: 20 * Self.second, minIdleNanos: Self.second) == nil)
    }

    @Test func aTLSCloseWithoutCloseNotifyIsNormalOnlyWhenIdle() {
        var m = active()
        #expect(m.closeWithoutNotifyIsNormal)
        m.streamOpened(now: 2)
        #expect(!m.closeWithoutNotifyIsNormal, "a stream in flight was cut short")
        m.streamClosed()
        #expect(m.closeWithoutNotifyIsNormal)
    }

    // MARK: Start and handshake

    @Test func h2cStartsItsSessionAtOnce() {
        let m = active()
        #expect(m.state == .active)
        #expect(m.hasSession)
        #expect(m.wantsInput)
    }

    @Test func tlsWaitsForTheHandshakeThenStartsTheSessionAndReads() {
        var m = Machine(tls: true, now: 0, limits: Self.limits)
        expectActions(m.started(), [])
        #expect(!m.hasSession)
        expectActions(m.handshakeProgressed(.wantsWrite), [.flush])
        #expect(m.wantsOutput(pendingOutputBytes: 0))
        expectActions(m.handshakeProgressed(.wantsRead), [.flush])
        #expect(!m.wantsOutput(pendingOutputBytes: 0))
        expectActions(m.handshakeProgressed(.complete(negotiatedH2: true)), [.startSession, .read, .flush])
        #expect(m.state == .active)
    }

    @Test func handshakeThatFailsClosesTheConnection() {
        var m = Machine(tls: true, now: 0, limits: Self.limits)
        expectActions(m.handshakeProgressed(.failed), [.close])
        #expect(m.state == .closed)
        #expect(!m.isOpen)
        // Nothing revives it.
        expectActions(m.handshakeProgressed(.complete(negotiatedH2: true)), [])
        expectActions(m.outputFlushed(pendingOutputBytes: 0, sessionAlive: true), [.close])
    }

    @Test func handshakeWithoutALPNh2Closes() {
        var m = Machine(tls: true, now: 0, limits: Self.limits)
        expectActions(m.handshakeProgressed(.complete(negotiatedH2: false)), [.close])
        #expect(m.state == .closed)
    }

    @Test func sessionThatCannotStartCloses() {
        var m = active()
        expectActions(m.sessionFailed(), [.close])
        #expect(m.state == .closed)
    }

    // MARK: Reading

    @Test func readableSocketIsRead() {
        var m = active()
        expectActions(m.socketReady(readable: true, writable: false, hangUp: false), [.read])
        expectActions(m.socketReady(readable: false, writable: true, hangUp: false), [])
    }

    @Test func hangUpIsReadWhileReadingAndClosesWhilePaused() {
        var reading = active()
        expectActions(reading.socketReady(readable: false, writable: false, hangUp: true), [.read])
        var paused = active()
        expectActions(paused.outputFlushed(pendingOutputBytes: 1001, sessionAlive: true), [.pauseReading])
        expectActions(paused.socketReady(readable: false, writable: false, hangUp: true), [.close])
        #expect(paused.state == .closed)
    }

    @Test func tlsWantWriteReadsAgainOnceWritable() {
        var m = active()
        m.tlsWantsWrite()
        #expect(m.wantsOutput(pendingOutputBytes: 0))
        expectActions(m.socketReady(readable: false, writable: true, hangUp: false), [.read])
        #expect(!m.wantsOutput(pendingOutputBytes: 0))
    }

    @Test func protocolErrorFlushesThenClosesWithoutReading() {
        var m = active()
        expectActions(m.protocolError(), [.flush])
        #expect(m.state == .closing(.protocolError))
        #expect(!m.wantsInput)
        expectActions(m.outputFlushed(pendingOutputBytes: 10, sessionAlive: true), [])
        expectActions(m.outputFlushed(pendingOutputBytes: 0, sessionAlive: true), [.close])
        #expect(m.state == .closed)
    }

    @Test func peerCloseOrIOErrorClosesAtOnce() {
        var m = active()
        expectActions(m.transportFailed(), [.close])
        #expect(m.state == .closed)
        expectActions(m.transportFailed(), [])
    }

    @Test func sessionThatEndedClosesOnceOutputIsWritten() {
        var m = active()
        expectActions(m.outputFlushed(pendingOutputBytes: 5, sessionAlive: false), [])
        expectActions(m.outputFlushed(pendingOutputBytes: 0, sessionAlive: false), [.close])
    }

    // MARK: Backpressure

    @Test func backpressurePausesAboveTheLimitAndResumesAtHalf() {
        var m = active()
        expectActions(m.outputFlushed(pendingOutputBytes: 1000, sessionAlive: true), [])
        expectActions(m.outputFlushed(pendingOutputBytes: 1001, sessionAlive: true), [.pauseReading])
        #expect(m.input == .pausedForBackpressure)
        #expect(!m.wantsInput)
        expectActions(m.socketReady(readable: true, writable: false, hangUp: false), [.read])
        expectActions(m.outputFlushed(pendingOutputBytes: 2000, sessionAlive: true), [])
        expectActions(m.outputFlushed(pendingOutputBytes: 501, sessionAlive: true), [])
        expectActions(m.outputFlushed(pendingOutputBytes: 500, sessionAlive: true), [.resumeReading])
        #expect(m.wantsInput)
        expectActions(m.outputFlushed(pendingOutputBytes: 0, sessionAlive: true), [])
    }

    @Test func closingConnectionNeverResumesReading() {
        var m = active()
        expectActions(m.outputFlushed(pendingOutputBytes: 1001, sessionAlive: true), [.pauseReading])
        expectActions(m.protocolError(), [.flush])
        expectActions(m.outputFlushed(pendingOutputBytes: 100, sessionAlive: true), [])
        #expect(!m.wantsInput)
    }

    // MARK: Idle timeout

    @Test func idleConnectionGetsFinalGoawayAndCloses() {
        var m = active(now: 0)
        expectActions(m.timerTick(now: 29 * Self.second, checkIdle: true), [])
        expectActions(m.timerTick(now: 31 * Self.second, checkIdle: false), [])
        expectActions(m.timerTick(now: 31 * Self.second, checkIdle: true), [.submitFinalGoaway, .flush])
        #expect(m.state == .closing(.idle))
        expectActions(m.timerTick(now: 62 * Self.second, checkIdle: true), [])
        expectActions(m.outputFlushed(pendingOutputBytes: 0, sessionAlive: true), [.close])
    }

    @Test func openStreamOrInputKeepsTheConnectionFromIdling() {
        var m = active(now: 0)
        m.streamOpened(now: 0)
        expectActions(m.timerTick(now: 40 * Self.second, checkIdle: true), [])
        m.streamClosed()
        m.bytesRead(now: 35 * Self.second)
        expectActions(m.timerTick(now: 40 * Self.second, checkIdle: true), [])
        expectActions(m.timerTick(now: 65 * Self.second, checkIdle: true), [.submitFinalGoaway, .flush])
    }

    @Test func idleHandshakeClosesWithoutGoaway() {
        var m = Machine(tls: true, now: 0, limits: Self.limits)
        expectActions(m.timerTick(now: 31 * Self.second, checkIdle: true), [.flush])
        #expect(m.state == .closing(.idle))
        expectActions(m.outputFlushed(pendingOutputBytes: 0, sessionAlive: false), [.close])
    }

    // MARK: Drain

    @Test func drainSendsFirstGoawayThenFinalGoawayAfterTheDelay() {
        var m = active(now: 0)
        m.streamOpened(now: 0)
        let start = 5 * Self.second
        expectActions(m.drainRequested(now: start), [.submitFirstGoaway, .armTimer, .flush])
        #expect(m.state == .draining(.firstGoawaySent(finalAtNanos: start + 300_000_000)))
        #expect(m.timerDeadlineNanos == start + 300_000_000)
        #expect(m.wantsInput)
        expectActions(m.drainRequested(now: start + 1), [])
        expectActions(m.timerTick(now: start + 299_999_999, checkIdle: true), [])
        expectActions(m.timerTick(now: start + 300_000_000, checkIdle: false), [.submitFinalGoaway, .flush])
        #expect(m.state == .draining(.finalGoawaySent))
        #expect(m.timerDeadlineNanos == nil)
        expectActions(m.timerTick(now: start + Self.second, checkIdle: true), [])
        // Open streams are still served; the session ends when they finish.
        expectActions(m.outputFlushed(pendingOutputBytes: 0, sessionAlive: true), [])
        m.streamClosed()
        expectActions(m.outputFlushed(pendingOutputBytes: 0, sessionAlive: false), [.close])
    }

    @Test func drainDuringHandshakeClosesAtOnce() {
        var m = Machine(tls: true, now: 0, limits: Self.limits)
        expectActions(m.drainRequested(now: 1), [.close])
        #expect(m.state == .closed)
    }

    @Test func drainOfAClosingConnectionChangesNothing() {
        var m = active()
        _ = m.protocolError()
        expectActions(m.drainRequested(now: 1), [])
        #expect(m.state == .closing(.protocolError))
    }

    // MARK: Rapid reset

    @Test func resetFloodGetsEnhanceYourCalm() {
        var m = active(now: 0)
        var actions: Machine.Actions = []
        for i in 0..<11 {
            m.streamOpened(now: UInt64(i))
            actions = m.resetReceived(inFlight: true, now: UInt64(i))
            if i < 10 { #expect(actions == []) }
        }
        #expect(actions == [.enhanceYourCalm, .flush])
        #expect(m.state == .closing(.calmDown))
        #expect(m.resetsInWindow == 11)
        #expect(!m.wantsInput)
        // Only once.
        expectActions(m.resetReceived(inFlight: true, now: 20), [])
    }

    @Test func cancellingAMinorityOfCallsIsNotAnAttack() {
        var m = active(now: 0)
        for i in 0..<100 {
            m.streamOpened(now: UInt64(i))
            m.streamClosed()
        }
        for i in 0..<40 { expectActions(m.resetReceived(inFlight: true, now: UInt64(100 + i)), []) }
        #expect(m.state == .active)
    }

    /// Sequential calls with a short deadline against a slow handler: each is cancelled by the
    /// client once its deadline passed. Not an attack.
    @Test func cancelsAfterTheDeadlineDoNotCountAsRapidResets() {
        var m = active(now: 0)
        for i in 0..<90 {
            m.streamOpened(now: UInt64(i))
            expectActions(m.resetReceived(inFlight: true, afterDeadline: true, now: UInt64(i)), [])
            m.streamClosed()
        }
        #expect(m.state == .active)
        #expect(m.resetsInWindow == 0)
        #expect(m.deadlineResetsInWindow == 90)
        // The same cancels without their deadlines having passed are a flood (limit 10).
        var n = active(now: 0)
        var actions: Machine.Actions = []
        for i in 0..<11 {
            n.streamOpened(now: UInt64(i))
            actions = n.resetReceived(inFlight: true, now: UInt64(i))
        }
        #expect(actions == [.enhanceYourCalm, .flush])
    }

    /// A flood of streams with tiny deadlines, each reset once it has expired, is still stopped:
    /// all resets together may not pass ten times the limit in one second.
    @Test func aFloodOfDeadlineCancelsIsStillStopped() {
        var m = active(now: 0)
        var actions: Machine.Actions = []
        var count = 0
        while actions.isEmpty && count < 1000 {
            m.streamOpened(now: UInt64(count))
            actions = m.resetReceived(inFlight: true, afterDeadline: true, now: UInt64(count))
            count += 1
        }
        #expect(actions == [.enhanceYourCalm, .flush])
        #expect(count == 101)
    }

    /// Resets mixed with as many completed calls never pass the ratio; the absolute bound
    /// (ten times the limit per second) stops them.
    @Test func aFloodMixedWithCompletedCallsIsStopped() {
        var m = active(now: 0)
        var actions: Machine.Actions = []
        var resets = 0
        while actions.isEmpty && resets < 1000 {
            m.streamOpened(now: UInt64(resets))
            m.streamClosed()
            m.streamOpened(now: UInt64(resets))
            actions = m.resetReceived(inFlight: true, now: UInt64(resets))
            resets += 1
        }
        #expect(actions == [.enhanceYourCalm, .flush])
        #expect(resets == 101)
    }

    @Test func headerListsOverTheLimitAgainAndAgainCalmTheConnectionDown() {
        var m = active(now: 0)  // 3 per second allowed (the default)
        for i in 0..<3 { expectActions(m.headerListTooLarge(now: UInt64(i)), []) }
        // A new window: the count starts again.
        for i in 0..<3 { expectActions(m.headerListTooLarge(now: 2 * Self.second + UInt64(i)), []) }
        #expect(m.state == .active)
        expectActions(m.headerListTooLarge(now: 2 * Self.second + 10), [.enhanceYourCalm, .flush])
        #expect(m.state == .closing(.headerAbuse))
        expectActions(m.headerListTooLarge(now: 2 * Self.second + 11), [])
    }

    // MARK: Decoded header bytes

    func withHeaderBound(_ bytes: Int, now: UInt64 = 1) -> Machine {
        var limits = Self.limits
        limits.maxHeaderBytesPerSecond = bytes
        var m = Machine(tls: false, now: now, limits: limits)
        expectActions(m.started(), [.startSession])
        return m
    }

    @Test func headerBytesOverTheBoundWithinOneSecondCalmTheConnectionDown() {
        var m = withHeaderBound(10_000, now: 5)
        // Under the bound: nothing to check, not even the clock.
        for _ in 0..<9 { expectTrue(!m.headerDecoded(bytes: 1_000)) }
        #expect(m.headerBytesInWindow == 9_000)
        // Over it within one second of the count's start: GOAWAY ENHANCE_YOUR_CALM.
        expectTrue(m.headerDecoded(bytes: 4_032))
        expectActions(m.headerBytesOverBound(now: 5 + Self.second / 2), [.enhanceYourCalm, .flush])
        #expect(m.state == .closing(.headerBytes))
        #expect(!m.acceptsHeaders)
        // The rest of the bomb's header block: no further actions.
        expectTrue(m.headerDecoded(bytes: 4_032))
        expectActions(m.headerBytesOverBound(now: 5 + Self.second / 2 + 1), [])
        #expect(m.state == .closing(.headerBytes))
    }

    @Test func headerBytesOverTheBoundAfterASecondStartTheCountAgain() {
        var m = withHeaderBound(10_000, now: 5)
        for _ in 0..<10 { expectTrue(!m.headerDecoded(bytes: 1_000)) }
        expectTrue(m.headerDecoded(bytes: 1))
        // 10,001 bytes in 1.5 s: under the rate; the count starts again at that moment.
        expectActions(m.headerBytesOverBound(now: 5 + 3 * Self.second / 2), [])
        #expect(m.state == .active && m.acceptsHeaders)
        #expect(m.headerBytesInWindow == 0)
        for _ in 0..<10 { expectTrue(!m.headerDecoded(bytes: 1_000)) }
        // The next 10,001 within one second of that restart are over it.
        expectTrue(m.headerDecoded(bytes: 1))
        expectActions(m.headerBytesOverBound(now: 5 + 2 * Self.second), [.enhanceYourCalm, .flush])
        #expect(m.state == .closing(.headerBytes))
    }

    @Test func headerBytesOfAClosingConnectionDoNotActAgain() {
        var m = withHeaderBound(100)
        expectActions(m.drainRequested(now: 2), [.submitFirstGoaway, .armTimer, .flush])
        #expect(m.acceptsHeaders)  // a draining connection still serves its streams
        expectTrue(m.headerDecoded(bytes: 101))
        expectActions(m.headerBytesOverBound(now: 3), [.enhanceYourCalm, .flush])
        #expect(m.state == .closing(.headerBytes))
        var idle = withHeaderBound(100)
        _ = idle.timerTick(now: 31 * Self.second, checkIdle: true)
        #expect(idle.state == .closing(.idle))
        expectTrue(idle.headerDecoded(bytes: 101))
        expectActions(idle.headerBytesOverBound(now: 31 * Self.second), [])
        #expect(idle.state == .closing(.idle))
    }

    // MARK: Buffered request bytes

    @Test func bufferedRequestBytesAreBoundedPerConnectionAndGivenBack() {
        var limits = Self.limits
        limits.maxBufferedRequestBytes = 1_000
        var m = Machine(tls: false, now: 1, limits: limits)
        expectTrue(m.requestBytesHeld(600))
        expectTrue(m.requestBytesHeld(400))
        #expect(m.bufferedRequestBytes == 1_000)
        // One byte more: refused (the caller gives that stream's bytes back)...
        expectTrue(!m.requestBytesHeld(1))
        expectTrue(m.requestBytesHeld(-401))
        #expect(m.bufferedRequestBytes == 600)
        // ...and the connection goes on: its state is untouched, new bytes fit again.
        #expect(m.state == .active)
        expectTrue(m.requestBytesHeld(400))
        // Giving back never fails, even while over the bound.
        expectTrue(!m.requestBytesHeld(500))
        expectTrue(m.requestBytesHeld(-1_500))
        #expect(m.bufferedRequestBytes == 0)
    }

    @Test func resetsOfFinishedStreamsAndOldWindowsDoNotCount() {
        var m = active(now: 0)
        for _ in 0..<50 { expectActions(m.resetReceived(inFlight: false, now: 1), []) }
        for i in 0..<10 { _ = m.resetReceived(inFlight: true, now: 2 + UInt64(i)) }
        // A new window starts after one second: the count starts again.
        expectActions(m.resetReceived(inFlight: true, now: 2 * Self.second), [])
        #expect(m.resetsInWindow == 1)
        #expect(m.state == .active)
    }

    // MARK: Flush scheduling

    @Test func flushIsScheduledOncePerTurn() {
        var m = active()
        let first = m.scheduleFlush()
        let second = m.scheduleFlush()
        m.flushBegan()
        let afterFlush = m.scheduleFlush()
        #expect(first && !second && afterFlush)
    }
}
