import Foundation
import Histogram
import Testing

@testable import EncoreBench

@Suite struct BenchResultTests {
    func result(mode: BenchOptions.Mode, latenciesMicros: [UInt64], counts: WindowCounts) -> BenchResult {
        var options = BenchOptions()
        options.mode = mode
        options.durationSeconds = 2
        var h = Histogram<UInt64>(
            lowestDiscernibleValue: 1_000, highestTrackableValue: 120_000_000_000,
            numberOfSignificantValueDigits: .three)
        for v in latenciesMicros { _ = h.record(v * 1_000) }
        return BenchResult(options: options, threads: 1, histogram: h, counts: counts, failures: [])
    }

    @Test func jsonHasTheDocumentedKeysAndParses() throws {
        var counts = WindowCounts()
        counts.sent = 1_000
        counts.ok = 997
        counts.completedInWindow = 990
        counts.errors[3] = 2
        counts.errors[WindowCounts.timeoutKind] = 1
        let r = result(mode: .rate(perSecond: 500), latenciesMicros: Array(1...1000), counts: counts)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(r.json.utf8)) as? [String: Any])
        for key in [
            "throughput_rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "errors", "ok", "sent", "rate",
        ] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(object["throughput_rps"] as? Double == 495)
        #expect(object["errors"] as? Int == 3)
        #expect(object["rate_ratio"] as? Double == 0.99)
        #expect((object["error_kinds"] as? [String: Int]) == ["grpc_3": 2, "timeout": 1])
        #expect(object["co_corrected"] as? Bool == true)
        let p50 = try #require(object["p50_us"] as? Double)
        let p999 = try #require(object["p999_us"] as? Double)
        #expect(abs(p50 - 500) <= 1)
        #expect(abs(p999 - 999) <= 1)
        #expect(!r.json.contains("\n"))
    }

    @Test func maxModeHasNoRateAndIsNotCorrected() throws {
        let r = result(mode: .max, latenciesMicros: [100], counts: WindowCounts())
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.json.utf8)) as? [String: Any])
        #expect(object["rate"] is NSNull)
        #expect(object["co_corrected"] as? Bool == false)
        #expect(r.summary.contains("closed loop"))
    }

    @Test func statusesMapToErrorKinds() {
        #expect(WindowCounts.kindNames[WindowCounts.kind(14)] == "grpc_14")
        #expect(WindowCounts.kindNames[WindowCounts.kind(-1)] == "http")
        #expect(WindowCounts.kindNames[WindowCounts.kind(-2)] == "reset")
        #expect(WindowCounts.kindNames[WindowCounts.kind(-3)] == "connection_lost")
        #expect(WindowCounts.kindNames[WindowCounts.kind(-4)] == "missing_status")
        #expect(WindowCounts.kindNames[WindowCounts.timeoutKind] == "timeout")
    }

    @Test func formatsNumbersWithoutLocale() {
        #expect(fmt(1234.5678, 1) == "1234.6")
        #expect(fmt(0.05, 2) == "0.05")
        #expect(fmt(-2.5, 0) == "-3")
        #expect(fmt(7, 3) == "7.000")
        #expect(fmt(.infinity, 1) == "null")
    }
}

@Suite struct LoadSweepTests {
    @Test func parsesPercentages() {
        #expect(LoadSweep.parsePercentages("10,30, 50,70,90") == [10, 30, 50, 70, 90])
        #expect(LoadSweep.parsePercentages("0,50") == nil)
        #expect(LoadSweep.parsePercentages("x") == nil)
        #expect(LoadSweep.parsePercentages("") == nil)
    }

    @Test func plotHasALineForEachPercentileAndTheTargets() {
        func run(_ rate: Double?, _ base: UInt64) -> BenchResult {
            var options = BenchOptions()
            options.mode = rate.map { .rate(perSecond: $0) } ?? .max
            var h = Histogram<UInt64>(
                lowestDiscernibleValue: 1_000, highestTrackableValue: 120_000_000_000,
                numberOfSignificantValueDigits: .three)
            for v in 1...1000 { _ = h.record(UInt64(v) * base) }
            var counts = WindowCounts()
            counts.completedInWindow = 10_000
            return BenchResult(options: options, threads: 1, histogram: h, counts: counts, failures: [])
        }
        let sweep = LoadSweep(
            max: run(nil, 500),
            points: [.init(percent: 10, result: run(500, 100)), .init(percent: 90, result: run(4500, 2_000))])
        let svg = LatencyPlot.svg(sweep, title: "t & <u>")
        #expect(svg.hasPrefix("<svg"))
        #expect(svg.components(separatedBy: "<polyline").count == 4)
        #expect(svg.contains("p99.9 target 2 ms"))
        #expect(svg.contains("t &amp; &lt;u&gt;"))
        #expect(sweep.table.split(separator: "\n").count == 4)
        let json = try? JSONSerialization.jsonObject(with: Data(sweep.json.utf8)) as? [String: Any]
        #expect((json?["sweep"] as? [Any])?.count == 2)
        #expect(json?["max_rps"] as? Double == 1000)  // 10,000 OK responses in the default 10 s
    }
}
