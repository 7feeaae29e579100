import EncoreSupport
import Logging
import Synchronization

/// Encore's operational log, through swift-log: one line per event on stderr, in the format and
/// from the level `encore serve --log-format` / `--log-level` chose (`Log.bootstrap`).
/// Never called per request on a hot path (nothing logs on the Decide path); the rate-limited
/// helper guards lines that a client can provoke (failed handshakes, refused connections).
///
/// `Log.logger` is a plain swift-log `Logger`: code that wants its own label or metadata can
/// use it (or `Logger(label:)` after `bootstrap`, which routes every swift-log logger of the
/// process through `EncoreLogHandler`).
public enum Log {
    /// Lines suppressed by `rateLimited` since the last emitted one.
    private static let suppressed = Atomic<Int>(0)
    private static let windowStartNanos = Atomic<UInt64>(0)
    private static let windowCount = Atomic<Int>(0)
    /// Whether `LoggingSystem.bootstrap` was called (it may be called once per process).
    private static let bootstrapped = Atomic<Bool>(false)
    /// At most this many rate-limited lines per second.
    public static let rateLimitPerSecond = 20

    /// The logger behind `info`/`warning`/`error`. Built with an explicit factory, so it writes
    /// Encore's format even when `bootstrap` was not called (tests, tools).
    public static let logger = Logger(label: "encore", factory: { EncoreLogHandler(label: $0) })

    /// Sets the format and the lowest level written, and makes `EncoreLogHandler` the backend
    /// of every swift-log `Logger` in the process. Call once, before serving.
    public static func bootstrap(format: EncoreLogHandler.Format, level: Logger.Level) {
        EncoreLogHandler.configure(format: format, level: level)
        if !bootstrapped.exchange(true, ordering: .relaxed) {
            LoggingSystem.bootstrap { EncoreLogHandler(label: $0) }
        }
    }

    /// One debug line (written only with `--log-level debug` or `trace`).
    public static func debug(_ message: @autoclosure () -> String, _ metadata: Logger.Metadata? = nil) {
        logger.debug("\(message())", metadata: metadata)
    }

    /// One info line.
    public static func info(_ message: @autoclosure () -> String, _ metadata: Logger.Metadata? = nil) {
        logger.info("\(message())", metadata: metadata)
    }

    /// One notice line: normal but significant (the start-up lines naming the ports, drain and
    /// stop), written unless `--log-level` is warning or above.
    public static func notice(_ message: @autoclosure () -> String, _ metadata: Logger.Metadata? = nil) {
        logger.notice("\(message())", metadata: metadata)
    }

    /// One warning line.
    public static func warning(_ message: @autoclosure () -> String, _ metadata: Logger.Metadata? = nil) {
        logger.warning("\(message())", metadata: metadata)
    }

    /// One error line.
    public static func error(_ message: @autoclosure () -> String, _ metadata: Logger.Metadata? = nil) {
        logger.error("\(message())", metadata: metadata)
    }

    /// Like `warning`, but at most `rateLimitPerSecond` lines per second across the process;
    /// the number of suppressed lines is reported with the next emitted one (in the text and as
    /// the `suppressed` metadata value).
    public static func rateLimited(_ message: @autoclosure () -> String, _ metadata: Logger.Metadata? = nil) {
        guard logger.logLevel <= .warning else { return }
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
        var fields = metadata
        if dropped > 0 { fields = (fields ?? [:]).merging(["suppressed": "\(dropped)"]) { $1 } }
        logger.warning(
            "\(message() + (dropped > 0 ? " (\(dropped) similar lines suppressed)" : ""))", metadata: fields)
    }
}
