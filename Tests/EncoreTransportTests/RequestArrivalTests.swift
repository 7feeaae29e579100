import Testing

@testable import EncoreTransport

@Suite struct RequestArrivalTests {
    static let second: UInt64 = 1_000_000_000
    static let limits = RequestArrivalLimits(
        headerTimeoutNanos: 10 * second, minBytesPerSecond: 32 << 10, progressWindowNanos: 5 * second)

    typealias Sample = RequestArrivalWatch.Sample

    func sample(
        headers: Bool = true, receiving: Bool = true, partial: Int = 0, messages: Int = 0, streams: Bool = false
    ) -> Sample {
        Sample(
            openedNanos: 0, headersComplete: headers, receiving: receiving, partialMessageBytes: partial,
            messages: messages, streamsRequests: streams)
    }

    @Test func headersIncompleteAfterTheHeaderTimeoutAreTooSlow() {
        var watch = RequestArrivalWatch()
        #expect(
            watch.check(generation: 1, sample(headers: false), now: 9 * Self.second, limits: Self.limits) == .onTime)
        #expect(
            watch.check(generation: 1, sample(headers: false), now: 10 * Self.second, limits: Self.limits)
                == .headersTooSlow)
    }

    @Test func headersWithoutABodyAreCutOffAfterOneWindow() {
        var watch = RequestArrivalWatch()
        #expect(watch.check(generation: 1, sample(), now: 1 * Self.second, limits: Self.limits) == .onTime)
        #expect(watch.check(generation: 1, sample(), now: 5 * Self.second, limits: Self.limits) == .onTime)
        #expect(watch.check(generation: 1, sample(), now: 6 * Self.second, limits: Self.limits) == .bodyTooSlow)
    }

    /// The attack of issue 13: a 4 MiB prefix at once, then 1 KiB every 100 ms (10 KiB/s).
    @Test func aTrickleAfterALargePrefixIsCutOff() {
        var watch = RequestArrivalWatch()
        var now = Self.second
        var partial = 4 << 20
        #expect(watch.check(generation: 1, sample(partial: partial), now: now, limits: Self.limits) == .onTime)
        var verdict = RequestArrivalWatch.Verdict.onTime
        var checks = 0
        while verdict == .onTime && checks < 100 {
            now += Self.second / 4
            partial += 10 << 10 / 4
            verdict = watch.check(generation: 1, sample(partial: partial), now: now, limits: Self.limits)
            checks += 1
        }
        #expect(verdict == .bodyTooSlow)
        #expect(checks == 20, "cut off at the end of the first window")
    }

    @Test func aBodyAtTheMinimumRateOrAboveGoesOn() {
        var watch = RequestArrivalWatch()
        var now: UInt64 = 0
        var partial = 0
        for _ in 0..<100 {
            now += Self.second / 4
            partial += 40 << 10 / 4
            #expect(watch.check(generation: 1, sample(partial: partial), now: now, limits: Self.limits) == .onTime)
        }
    }

    @Test func aStreamOfRequestsMayPauseBetweenMessages() {
        var watch = RequestArrivalWatch()
        for i in 0..<100 {
            let now = UInt64(i) * Self.second
            #expect(
                watch.check(generation: 1, sample(messages: 3, streams: true), now: now, limits: Self.limits) == .onTime
            )
        }
        // ...but not stall inside one.
        #expect(
            watch.check(
                generation: 1, sample(partial: 10, messages: 3, streams: true), now: 100 * Self.second,
                limits: Self.limits)
                == .onTime)
        #expect(
            watch.check(
                generation: 1, sample(partial: 10, messages: 3, streams: true), now: 105 * Self.second,
                limits: Self.limits)
                == .bodyTooSlow)
    }

    @Test func aCompletedMessageIsProgressAndAnAnsweredCallIsNotWatched() {
        var watch = RequestArrivalWatch()
        #expect(watch.check(generation: 1, sample(), now: 0, limits: Self.limits) == .onTime)
        #expect(watch.check(generation: 1, sample(messages: 1), now: 5 * Self.second, limits: Self.limits) == .onTime)
        // The one message came but END_STREAM never does: cut off after the next window.
        #expect(
            watch.check(generation: 1, sample(messages: 1), now: 10 * Self.second, limits: Self.limits) == .bodyTooSlow)
        #expect(
            watch.check(generation: 1, sample(receiving: false), now: 100 * Self.second, limits: Self.limits) == .onTime
        )
    }

    @Test func aNewStreamInTheSlotStartsANewWindow() {
        var watch = RequestArrivalWatch()
        #expect(watch.check(generation: 1, sample(), now: 0, limits: Self.limits) == .onTime)
        #expect(watch.check(generation: 2, sample(), now: 6 * Self.second, limits: Self.limits) == .onTime)
        #expect(watch.check(generation: 2, sample(), now: 11 * Self.second, limits: Self.limits) == .bodyTooSlow)
    }

    @Test func zeroDisablesTheRules() {
        var watch = RequestArrivalWatch()
        let off = RequestArrivalLimits(headerTimeoutNanos: 0, minBytesPerSecond: 0, progressWindowNanos: Self.second)
        #expect(watch.check(generation: 1, sample(headers: false), now: 1000 * Self.second, limits: off) == .onTime)
        #expect(watch.check(generation: 1, sample(), now: 2000 * Self.second, limits: off) == .onTime)
    }
}

@Suite struct ResponseWriteWatchTests {
    static let second: UInt64 = 1_000_000_000

    @Test func aResponseWithoutProgressIsStuckAfterTheTimeout() {
        var stuck: Bool
        var watch = ResponseWriteWatch()
        stuck = watch.isStuck(generation: 1, pending: true, progress: 0, now: 0, timeoutNanos: 2 * Self.second)
        #expect(!stuck)
        stuck = watch.isStuck(
            generation: 1, pending: true, progress: 0, now: Self.second, timeoutNanos: 2 * Self.second)
        #expect(!stuck)
        stuck = watch.isStuck(
            generation: 1, pending: true, progress: 0, now: 2 * Self.second, timeoutNanos: 2 * Self.second)
        #expect(stuck)
    }

    @Test func progressNothingPendingOrANewStreamRestartTheClock() {
        var stuck: Bool
        var watch = ResponseWriteWatch()
        let t = 2 * Self.second
        _ = watch.isStuck(generation: 1, pending: true, progress: 0, now: 0, timeoutNanos: t)
        stuck = watch.isStuck(generation: 1, pending: true, progress: 10, now: 3 * Self.second, timeoutNanos: t)
        #expect(!stuck)
        stuck = watch.isStuck(generation: 1, pending: true, progress: 10, now: 4 * Self.second, timeoutNanos: t)
        #expect(!stuck)
        stuck = watch.isStuck(generation: 1, pending: false, progress: 10, now: 6 * Self.second, timeoutNanos: t)
        #expect(!stuck)
        stuck = watch.isStuck(generation: 2, pending: true, progress: 10, now: 9 * Self.second, timeoutNanos: t)
        #expect(!stuck)
        stuck = watch.isStuck(generation: 2, pending: true, progress: 10, now: 11 * Self.second, timeoutNanos: t)
        #expect(stuck)
        // 0 disables the rule.
        var off = ResponseWriteWatch()
        _ = off.isStuck(generation: 1, pending: true, progress: 0, now: 0, timeoutNanos: 0)
        stuck = off.isStuck(generation: 1, pending: true, progress: 0, now: 1000 * Self.second, timeoutNanos: 0)
        #expect(!stuck)
    }
}
