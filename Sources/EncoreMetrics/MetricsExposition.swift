/// Writes metrics in the Prometheus text exposition format (version 0.0.4) or in OpenMetrics
/// 1.0.0, the two formats Prometheus negotiates with `Accept`.
///
/// Why not swift-prometheus: its counters and histograms are the writers (each increment goes
/// through a lock or an atomic read-modify-write of the library's own storage), while Encore's
/// hot path keeps its own per-thread cells (`CounterBlock`) and the scrape merges them. Feeding
/// merged totals into the library would mean resetting counters to absolute values, which its
/// API (rightly) does not offer, or keeping a second copy of every value. This writer only
/// formats values the caller has read: families in the order given, one HELP and TYPE each,
/// escaped label values, cumulative histogram buckets with `+Inf`, `# EOF` for OpenMetrics.
public struct MetricsExposition {
    /// The two formats.
    public enum Format: Sendable {
        case prometheus
        case openMetrics

        /// The `Content-Type` of a response in this format.
        public var contentType: String {
            switch self {
            case .prometheus: "text/plain; version=0.0.4; charset=utf-8"
            case .openMetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }

        /// OpenMetrics when an `Accept` header value asks for it, else the text format.
        public static func negotiate(accept: String?) -> Format {
            guard let accept else { return .prometheus }
            return accept.contains("application/openmetrics-text") ? .openMetrics : .prometheus
        }
    }

    /// A metric family's type.
    public enum Kind: String, Sendable {
        case counter, gauge, histogram, info
    }

    public let format: Format
    public private(set) var text = ""
    private var current: (name: String, kind: Kind)? = nil

    public init(format: Format) {
        self.format = format
        text.reserveCapacity(64 << 10)
    }

    /// Starts a family. `name` is the full sample name for gauges and histograms, ends in
    /// `_total` for counters and in `_info` for info metrics (the writer strips the suffix where
    /// OpenMetrics wants the bare family name). `help` is one line.
    public mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        var familyName = name
        var typeName = kind.rawValue
        switch (format, kind) {
        case (.openMetrics, .counter) where name.hasSuffix("_total"):
            familyName = String(name.dropLast(6))
        case (.openMetrics, .info) where name.hasSuffix("_info"):
            familyName = String(name.dropLast(5))
        case (.prometheus, .info):
            typeName = "gauge"
        default:
            break
        }
        text += "# HELP \(familyName) \(Self.escapeHelp(help))\n# TYPE \(familyName) \(typeName)\n"
        current = (name, kind)
    }

    /// One sample of the current family (counters, gauges, info: value 1).
    public mutating func sample(_ labels: [(String, String)] = [], _ value: Double) {
        guard let current else { preconditionFailure("sample before family") }
        line(current.name, labels, value)
    }

    public mutating func sample(_ labels: [(String, String)] = [], _ value: UInt64) {
        sample(labels, Double(value))
    }

    /// The samples of one histogram of the current family: `buckets` are per bucket (not
    /// cumulative), for `upperBounds` and a last +Inf bucket; a bound divided by `divisor` is in
    /// the exposed unit (1e9 for nanoseconds to seconds); `sum` is already in that unit.
    public mutating func histogram(
        _ labels: [(String, String)], buckets: [UInt64], upperBounds: [UInt64], divisor: Double, sum: Double
    ) {
        guard let current else { preconditionFailure("histogram before family") }
        var cumulative: UInt64 = 0
        for (i, n) in buckets.enumerated() {
            cumulative &+= n
            let le = i < upperBounds.count ? Self.number(Double(upperBounds[i]) / divisor) : "+Inf"
            line(current.name + "_bucket", labels + [("le", le)], Double(cumulative))
        }
        line(current.name + "_sum", labels, sum)
        line(current.name + "_count", labels, Double(cumulative))
    }

    /// The finished exposition (OpenMetrics: with its `# EOF` line).
    public func finish() -> String {
        format == .openMetrics ? text + "# EOF\n" : text
    }

    private mutating func line(_ name: String, _ labels: [(String, String)], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{"
            for (i, (key, value)) in labels.enumerated() {
                if i > 0 { text += "," }
                text += key
                text += "=\""
                text += Self.escapeLabel(value)
                text += "\""
            }
            text += "}"
        }
        text += " "
        text += Self.number(value)
        text += "\n"
    }

    /// A sample value: integers without a fraction, `+Inf`/`-Inf`/`NaN` spelled as both formats
    /// require.
    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func escapeLabel(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func escapeHelp(_ value: String) -> String {
        value.replacingOccurrences("\\", "\\\\").replacingOccurrences("\n", "\\n")
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: Character, _ replacement: String) -> String {
        guard contains(target) else { return self }
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
