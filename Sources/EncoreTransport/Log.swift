import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Encore's operational log: one line per event on stderr, `encore: ` prefixed.
/// Never called per request on a hot path; rate-limited helpers guard lines that a client can
/// provoke (failed handshakes, refused connections).
public enum Log {
    private static let lock = Mutex<Void>(())
    /// Lines suppressed by `rateLimited` since the last emitted one.
    private static let suppressed = Atomic<Int>(0)
    private static let windowStartNanos = Atomic<UInt64>(0)
    private static let windowCount = Atomic<Int>(0)
    /// At most this many rate-limited lines per second.
    public static let rateLimitPerSecond = 20

    /// Writes one line to stderr.
    public static func info(_ message: String) {
        write("encore: " + message + "\n")
    }

    /// Writes one warning line to stderr.
    public static func warning(_ message: String) {
        write("encore: warning: " + message + "\n")
    }

    /// Writes an error line to stderr.
    public static func error(_ message: String) {
        write("encore: error: " + message + "\n")
    }

    /// Like `warning`, but at most `rateLimitPerSecond` lines per second across the process;
    /// the number of suppressed lines is reported with the next emitted one.
    public static func rateLimited(_ message: @autoclosure () -> String) {
        let now = MonotonicClock.nowNanos
        let start = windowStartNanos.load(ordering: .relaxed)
        if now &- start > 1_000_000_000 {
            windowStartNanos.store(now, ordering: .relaxed)
            windowCount.store(0, ordering: .relaxed)
        }
        if windowCount.add(1, ordering: .relaxed).newValue > rateLimitPerSecond {
            suppressed.add(1, ordering: .relaxed)
            return
        }
        let dropped = suppressed.exchange(0, ordering: .relaxed)
        warning(message() + (dropped > 0 ? " (\(dropped) similar lines suppressed)" : ""))
    }

    private static func write(_ line: String) {
        lock.withLock { _ in
            var copy = line
            copy.withUTF8 { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Glibc.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
    }
}
