internal import CEncoreLinux

/// A fixed set of client sockets (`HTTP2ClientConnection.fd`) polled with a nanosecond timeout
/// (ppoll), for the load generator's per-thread loops, which wake at scheduled send times well
/// under a millisecond apart. Used by one thread; its buffer is allocated once.
public final class LoadPoller {
    private let entries: UnsafeMutablePointer<cencore_pollfd>
    /// Sockets in the set, in the order given.
    public let count: Int

    /// Polls `fds` (readability always; writability per `setWantsWrite`).
    public init(fds: [Int32]) {
        count = fds.count
        entries = .allocate(capacity: max(1, fds.count))
        for (i, fd) in fds.enumerated() {
            (entries + i).initialize(to: cencore_pollfd(fd: fd, events: Int16(CENCORE_POLLIN), revents: 0))
        }
    }

    deinit { entries.deallocate() }

    /// Also wait for socket `index` to become writable (after a short write), or stop doing so.
    @inline(__always)
    public func setWantsWrite(_ index: Int, _ wants: Bool) {
        entries[index].events = Int16(CENCORE_POLLIN) | (wants ? Int16(CENCORE_POLLOUT) : 0)
    }

    /// Waits up to `timeoutNanos` (0: do not wait) for any socket to be ready. Returns the
    /// number of ready sockets (0 on timeout or interruption).
    @inline(__always)
    public func wait(timeoutNanos: Int64) -> Int {
        let n = cencore_poll_ns(entries, UInt(count), timeoutNanos)
        return n < 0 ? 0 : Int(n)
    }

    /// True if socket `index` was readable (or hung up / failed: reading tells which) in the last `wait`.
    @inline(__always)
    public func isReadable(_ index: Int) -> Bool {
        entries[index].revents & Int16(CENCORE_POLLIN | CENCORE_POLLERR | CENCORE_POLLHUP) != 0
    }

    /// True if socket `index` was writable in the last `wait`.
    @inline(__always)
    public func isWritable(_ index: Int) -> Bool {
        entries[index].revents & Int16(CENCORE_POLLOUT) != 0
    }

    /// Lowers the calling thread's timer slack (default 50 us) so sub-millisecond waits end on
    /// time; the load generator's threads call it once.
    public static func useFineTimers(slackNanos: UInt = 1_000) {
        _ = cencore_set_timer_slack_ns(slackNanos)
    }
}
