/// `encore bench --sweep`: first a closed loop finds the maximum throughput, then an open loop
/// runs at each given percentage of it; the points make the latency-vs-load table and plot.
public struct LoadSweep: Sendable {
    /// One open-loop run of the sweep.
    public struct Point: Sendable {
        /// Offered load as a percentage of the measured maximum.
        public var percent: Double
        public var result: BenchResult
    }

    /// The closed-loop run that measured the maximum.
    public var max: BenchResult
    public var points: [Point]

    public init(max: BenchResult, points: [Point]) {
        self.max = max
        self.points = points
    }

    /// Parses "10,30,50,70,90" (percentages of max, each in (0, 200]).
    public static func parsePercentages(_ text: String) -> [Double]? {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: " ") }
        var out: [Double] = []
        for p in parts {
            guard let v = Double(p), v > 0, v <= 200 else { return nil }
            out.append(v)
        }
        return out.isEmpty ? nil : out
    }

    /// Runs the sweep: `options` (its mode is ignored) for the max run and for each point.
    /// `log` gets progress and a line per finished run.
    public static func run(
        _ options: BenchOptions, percentages: [Double], pool: RequestPool, log: @escaping @Sendable (String) -> Void
    ) throws -> LoadSweep {
        var maxOptions = options
        maxOptions.mode = .max
        log("bench: sweep: measuring max (closed loop)")
        let max = try BenchRunner.run(maxOptions, pool: pool, log: log)
        log("bench: sweep: max \(fmt(max.throughputRPS, 0)) req/s")
        guard max.throughputRPS > 0 else { return LoadSweep(max: max, points: []) }
        var points: [Point] = []
        for p in percentages {
            var o = options
            o.mode = .rate(perSecond: max.throughputRPS * p / 100)
            log("bench: sweep: \(fmt(p, 0))% of max = \(fmt(max.throughputRPS * p / 100, 0)) req/s")
            points.append(Point(percent: p, result: try BenchRunner.run(o, pool: pool, log: log)))
        }
        return LoadSweep(max: max, points: points)
    }

    /// A text table: one row per point.
    public var table: String {
        var rows = [
            ["load", "target req/s", "achieved req/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "errors"]
        ]
        rows.append([
            "max", "-", fmt(max.throughputRPS, 0), fmt(max.p50Micros, 1), fmt(max.p90Micros, 1),
            fmt(max.p99Micros, 1), fmt(max.p999Micros, 1), fmt(max.maxMicros, 1), "\(max.errors)",
        ])
        for p in points {
            let r = p.result
            rows.append([
                "\(fmt(p.percent, 0))%", fmt(r.targetRate ?? 0, 0), fmt(r.throughputRPS, 0), fmt(r.p50Micros, 1),
                fmt(r.p90Micros, 1), fmt(r.p99Micros, 1), fmt(r.p999Micros, 1), fmt(r.maxMicros, 1), "\(r.errors)",
            ])
        }
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
        return rows.map { row in
            row.enumerated().map { c, cell in
                String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// One line of JSON: the max run's fields (`throughput_rps`, percentiles, `errors`, ...),
    /// then `max_rps` and `sweep`, an array of the points.
    public var json: String {
        var fields = max.jsonFields.map { "\"\($0.0)\": \($0.1)" }
        fields.append("\"max_rps\": \(fmt(max.throughputRPS, 1))")
        let pts = points.map { p in
            "{\"percent\": \(fmt(p.percent, 1)), "
                + p.result.jsonFields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
        }
        fields.append("\"sweep\": [" + pts.joined(separator: ", ") + "]")
        return "{" + fields.joined(separator: ", ") + "}"
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}
