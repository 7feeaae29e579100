import Foundation

/// Draws a sweep as a standalone SVG: offered load (% of max, with req/s) across, latency
/// (microseconds, log scale) up, one line each for p50, p99 and p99.9, and the 1 ms / 2 ms
/// target lines. No dependencies: any browser opens it.
public enum LatencyPlot {
    /// The SVG document for `sweep`; `title` goes on top (e.g. host, date).
    public static func svg(_ sweep: LoadSweep, title: String) -> String {
        let width = 760.0
        let height = 460.0
        let left = 80.0
        let right = 150.0
        let top = 50.0
        let bottom = 60.0
        let plotW = width - left - right
        let plotH = height - top - bottom
        let points = sweep.points.sorted { $0.percent < $1.percent }
        let maxPercent = Swift.max(100, points.map(\.percent).max() ?? 100)
        let values = points.flatMap { [$0.result.p50Micros, $0.result.p99Micros, $0.result.p999Micros] }.filter {
            $0 > 0
        }
        // Log scale from a power of ten below the smallest value to one above the largest (and 2 ms).
        var lowDecade = 1.0
        while lowDecade * 10 <= (values.min() ?? 10) { lowDecade *= 10 }
        var highDecade = lowDecade * 10
        while highDecade < Swift.max(values.max() ?? 1, 2_000) { highDecade *= 10 }
        func x(_ percent: Double) -> Double { left + plotW * percent / maxPercent }
        func y(_ micros: Double) -> Double {
            let v = Swift.max(micros, lowDecade)
            return top + plotH * (1 - (log10(v) - log10(lowDecade)) / (log10(highDecade) - log10(lowDecade)))
        }
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(width / 2))" y="24" text-anchor="middle" font-size="15">\(escape(title))</text>

            """
        // Grid: decades and 2x/5x minor lines; x every 10%.
        var decade = lowDecade
        while decade <= highDecade {
            for m in [1.0, 2.0, 5.0] where decade * m <= highDecade {
                let yy = y(decade * m)
                let major = m == 1
                s += line(left, yy, left + plotW, yy, major ? "#ccc" : "#eee")
                s += text(left - 6, yy + 4, label(decade * m), anchor: "end", color: major ? "#333" : "#888")
            }
            decade *= 10
        }
        var p = 0.0
        while p <= maxPercent + 0.001 {
            s += line(x(p), top, x(p), top + plotH, "#eee")
            s += text(x(p), top + plotH + 16, "\(Int(p))%", anchor: "middle", color: "#333")
            p += 10
        }
        s += line(left, top, left, top + plotH, "#333") + line(left, top + plotH, left + plotW, top + plotH, "#333")
        s += text(
            left + plotW / 2, height - 18, "offered load, % of max (\(fmt(sweep.max.throughputRPS, 0)) req/s)",
            anchor: "middle", color: "#000")
        s +=
            "<text transform=\"translate(18,\(Int(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">latency, us (log scale)</text>\n"
        // Targets.
        for (v, name) in [(1_000.0, "p99 target 1 ms"), (2_000.0, "p99.9 target 2 ms")] where v <= highDecade {
            s +=
                "<line x1=\"\(f(left))\" y1=\"\(f(y(v)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y(v)))\" stroke=\"#999\" stroke-dasharray=\"6,4\"/>\n"
            s += text(left + plotW + 6, y(v) + 4, name, anchor: "start", color: "#666")
        }
        // Series.
        let series: [(String, String, (BenchResult) -> Double)] = [
            ("p50", "#1f77b4", { $0.p50Micros }), ("p99", "#ff7f0e", { $0.p99Micros }),
            ("p99.9", "#d62728", { $0.p999Micros }),
        ]
        for (i, (name, color, value)) in series.enumerated() {
            let pts = points.map { "\(f(x($0.percent))),\(f(y(value($0.result))))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(pts)\"/>\n"
            for pt in points {
                s +=
                    "<circle cx=\"\(f(x(pt.percent)))\" cy=\"\(f(y(value(pt.result))))\" r=\"3\" fill=\"\(color)\">"
                    + "<title>\(name) at \(fmt(pt.percent, 0))% (\(fmt(pt.result.throughputRPS, 0)) req/s): \(fmt(value(pt.result), 1)) us</title></circle>\n"
            }
            let ly = top + 20 + Double(i) * 18
            s += line(left + plotW + 10, ly, left + plotW + 30, ly, color, width: 2)
            s += text(left + plotW + 36, ly + 4, name, anchor: "start", color: "#000")
        }
        s += "</svg>\n"
        return s
    }

    private static func f(_ v: Double) -> String { fmt(v, 1) }

    private static func line(
        _ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, _ color: String, width: Double = 1
    ) -> String {
        "<line x1=\"\(f(x1))\" y1=\"\(f(y1))\" x2=\"\(f(x2))\" y2=\"\(f(y2))\" stroke=\"\(color)\" stroke-width=\"\(fmt(width, 0))\"/>\n"
    }

    private static func text(_ x: Double, _ y: Double, _ t: String, anchor: String, color: String) -> String {
        "<text x=\"\(f(x))\" y=\"\(f(y))\" text-anchor=\"\(anchor)\" fill=\"\(color)\">\(escape(t))</text>\n"
    }

    private static func label(_ micros: Double) -> String {
        micros >= 1_000
            ? "\(fmt(micros / 1_000, micros >= 10_000 ? 0 : (micros.truncatingRemainder(dividingBy: 1_000) == 0 ? 0 : 1))) ms"
            : "\(Int(micros)) us"
    }

    static func escape(_ t: String) -> String {
        var out = ""
        for c in t {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
