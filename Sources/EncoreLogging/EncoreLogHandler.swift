import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The swift-log backend of `encore serve`: one line per record on stderr, written whole under
/// a lock (lines of several threads never interleave).
///
/// - `text` (default): `2026-12-01T12:06:43.123Z encore: warning: message key=value`: a UTC
///   timestamp with milliseconds, the label, the level as a word (none for `info` and `notice`,
///   so those lines read as they always did: `encore: listening on 127.0.0.1:50051 ...`), the
///   message, then the metadata as `key=value` pairs sorted by key.
/// - `json`: one JSON object per line: `{"ts":"...","level":"warning","logger":"encore",
///   "msg":"...", <metadata keys>}`. Metadata values keep their shape (strings, arrays,
///   objects); a metadata key that clashes with the four fixed ones is written with a `meta_`
///   prefix.
///
/// Format and level are process-wide (`configure`), read lock-free per record: every handler
/// follows `encore serve --log-format/--log-level` whenever it was created.
public struct EncoreLogHandler: LogHandler {
    /// How records are written.
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    /// The process-wide format (0 text, 1 json) and level (`Logger.Level` ordinal), written by
    /// `configure` (start-up), read by every record.
    private static let formatCode = Atomic<Int>(0)
    private static let levelCode = Atomic<Int>(Self.ordinal(.info))
    private static let writeLock = Mutex<Void>(())

    /// Sets the format and the lowest level written, for every handler.
    public static func configure(format: Format, level: Logger.Level) {
        formatCode.store(format == .json ? 1 : 0, ordering: .relaxed)
        levelCode.store(ordinal(level), ordering: .relaxed)
    }

    /// The format records are written in now.
    public static var format: Format { formatCode.load(ordering: .relaxed) == 1 ? .json : .text }

    public let label: String
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// A level set on one logger overrides the process-wide one for that logger only.
    private var levelOverride: Logger.Level?

    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    public var logLevel: Logger.Level {
        get { levelOverride ?? Logger.Level.allCases[EncoreLogHandler.levelCode.load(ordering: .relaxed)] }
        set { levelOverride = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        let line = EncoreLogHandler.format(
            level: event.level, label: label, message: event.message.description, metadata: merged,
            format: EncoreLogHandler.format, nowNanos: EncoreLogHandler.wallClockNanos())
        EncoreLogHandler.write(line)
    }

    // MARK: Formatting (pure, tested)

    /// One complete line, newline included.
    public static func format(
        level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, format: Format,
        nowNanos: Int64
    ) -> String {
        let ts = timestamp(nowNanos)
        switch format {
        case .text:
            var line = ts + " " + label + ": "
            if level != .info && level != .notice { line += level.rawValue + ": " }
            line += message
            for key in metadata.keys.sorted() {
                line += " " + key + "=" + textValue(metadata[key]!)
            }
            return line + "\n"
        case .json:
            var line = "{\"ts\":\"" + ts + "\",\"level\":\"" + level.rawValue + "\",\"logger\":"
            appendJSONString(label, to: &line)
            line += ",\"msg\":"
            appendJSONString(message, to: &line)
            for key in metadata.keys.sorted() {
                line += ","
                appendJSONString(["ts", "level", "logger", "msg"].contains(key) ? "meta_" + key : key, to: &line)
                line += ":"
                appendJSON(metadata[key]!, to: &line)
            }
            return line + "}\n"
        }
    }

    /// `2026-12-01T12:06:43.123Z` for nanoseconds since the Unix epoch.
    public static func timestamp(_ nanos: Int64) -> String {
        var seconds = time_t(nanos / 1_000_000_000)
        let millis = Int((nanos % 1_000_000_000) / 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2) + "T"
            + pad(parts.tm_hour, 2) + ":" + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2) + "."
            + pad(Int32(millis), 3) + "Z"
    }

    /// Parses a `--log-level` value (trace, debug, info, notice, warning, error, critical).
    public static func level(named name: String) -> Logger.Level? {
        Logger.Level(rawValue: name.lowercased())
    }

    private static func textValue(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s):
            return s.isEmpty || s.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline })
                ? quoted(s) : s
        case .stringConvertible(let c): return textValue(.string(c.description))
        case .array(let items): return "[" + items.map(textValue).joined(separator: ",") + "]"
        case .dictionary(let d):
            return "{" + d.keys.sorted().map { "\($0)=" + textValue(d[$0]!) }.joined(separator: ",") + "}"
        }
    }

    private static func quoted(_ s: String) -> String {
        var out = ""
        appendJSONString(s, to: &out)
        return out
    }

    private static func appendJSON(_ value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let s): appendJSONString(s, to: &out)
        case .stringConvertible(let c): appendJSONString(c.description, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                appendJSON(item, to: &out)
            }
            out += "]"
        case .dictionary(let d):
            out += "{"
            for (i, key) in d.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                appendJSONString(key, to: &out)
                out += ":"
                appendJSON(d[key]!, to: &out)
            }
            out += "}"
        }
    }

    /// A JSON string literal (RFC 8259): quotes, backslashes and control characters escaped;
    /// everything else is written as UTF-8.
    static func appendJSONString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _
            where scalar.value < 0x20 || scalar.value == 0x7f || scalar.value == 0x2028 || scalar.value == 0x2029:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    private static func ordinal(_ level: Logger.Level) -> Int {
        Logger.Level.allCases.firstIndex(of: level)!
    }

    private static func wallClockNanos() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    private static func write(_ line: String) {
        writeLock.withLock { _ in
            var copy = line
            copy.withUTF8 { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Glibc.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
    }
}
