#if canImport(Glibc)
    import Glibc
#endif

/// SIGTERM / SIGINT (and SIGHUP: reload) handling without async-signal hazards: the signals are blocked in every
/// thread (call `blockTerminationSignals` before starting threads) and one thread takes them
/// synchronously with `sigwait`.
public enum SignalWaiter {
    /// Blocks SIGTERM and SIGINT in the calling thread (threads started later inherit the mask)
    /// and ignores SIGPIPE (writes to closed sockets report EPIPE instead).
    public static func blockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// Waits for SIGTERM or SIGINT and returns its number; each SIGHUP meanwhile runs
    /// `onHangUp` (on this thread) and keeps waiting.
    public static func waitForTermination(onHangUp: () -> Void = {}) -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        while true {
            var received: Int32 = 0
            while sigwait(&set, &received) != 0 {}
            if received == SIGHUP {
                onHangUp()
                continue
            }
            return received
        }
    }

    /// Name for log lines.
    public static func name(_ signal: Int32) -> String {
        signal == SIGTERM ? "SIGTERM" : signal == SIGINT ? "SIGINT" : "signal \(signal)"
    }
}
