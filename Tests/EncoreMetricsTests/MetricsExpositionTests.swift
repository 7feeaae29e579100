import EncoreMetrics
import Testing

@Suite struct MetricsExpositionTests {
    @Test func textFormatHasHelpTypeAndEscapedLabels() {
        var w = MetricsExposition(format: .prometheus)
        w.family("encore_things_total", .counter, "Things.\nSecond line")
        w.sample([("offer", "a\"b\\c\nd")], UInt64(3))
        w.family("encore_model_info", .info, "Model.")
        w.sample([("version", "v1")], 1.0)
        let text = w.finish()
        #expect(
            text == """
                # HELP encore_things_total Things.\\nSecond line
                # TYPE encore_things_total counter
                encore_things_total{offer="a\\"b\\\\c\\nd"} 3
                # HELP encore_model_info Model.
                # TYPE encore_model_info gauge
                encore_model_info{version="v1"} 1

                """)
    }

    @Test func openMetricsNamesFamiliesWithoutSuffixesAndEndsWithEOF() {
        var w = MetricsExposition(format: .openMetrics)
        w.family("encore_things_total", .counter, "Things.")
        w.sample([], UInt64(2))
        w.family("encore_model_info", .info, "Model.")
        w.sample([("version", "v1")], 1.0)
        let text = w.finish()
        #expect(text.contains("# TYPE encore_things counter\nencore_things_total 2\n"))
        #expect(text.contains("# TYPE encore_model info\nencore_model_info{version=\"v1\"} 1\n"))
        #expect(text.hasSuffix("# EOF\n"))
    }

    @Test func histogramBucketsAreCumulativeWithInfAndCount() {
        var w = MetricsExposition(format: .prometheus)
        w.family("encore_latency_seconds", .histogram, "Latency.")
        w.histogram([("surface", "cart")], buckets: [1, 0, 2], upperBounds: [5_000, 10_000], divisor: 1e9, sum: 0.5)
        let lines = w.finish().split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(
            lines == [
                "encore_latency_seconds_bucket{surface=\"cart\",le=\"5e-06\"} 1",
                "encore_latency_seconds_bucket{surface=\"cart\",le=\"1e-05\"} 1",
                "encore_latency_seconds_bucket{surface=\"cart\",le=\"+Inf\"} 3",
                "encore_latency_seconds_sum{surface=\"cart\"} 0.5",
                "encore_latency_seconds_count{surface=\"cart\"} 3",
            ])
    }

    @Test func negotiatesOpenMetricsFromAccept() {
        #expect(MetricsExposition.Format.negotiate(accept: nil) == .prometheus)
        #expect(MetricsExposition.Format.negotiate(accept: "text/plain;version=0.0.4") == .prometheus)
        #expect(
            MetricsExposition.Format.negotiate(
                accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5") == .openMetrics)
    }
}

@Suite struct CounterBlockTests {
    @Test func addsAndReadsCells() {
        let block = CounterBlock(count: 4)
        block.cells.add(1)
        block.cells.add(1, 41)
        block.cells.addDouble(2, 1.5)
        block.cells.addDouble(2, 2.25)
        #expect(block.load(0) == 0)
        #expect(block.load(1) == 42)
        #expect(block.cells.loadDouble(2) == 3.75)
    }

    @Test func latencyObservationsLandInTheirBucketsAndQuantilesInterpolate() {
        let block = CounterBlock(count: LatencyBuckets.cellCount)
        for _ in 0..<90 { LatencyBuckets.observe(7_000, into: block.cells, at: 0) }  // (5 µs, 10 µs]
        for _ in 0..<10 { LatencyBuckets.observe(2_000_000_000, into: block.cells, at: 0) }  // +Inf
        var reading = LatencyBuckets.Reading()
        reading.add(block.cells, at: 0)
        #expect(reading.count == 100)
        #expect(reading.buckets[1] == 90)
        #expect(reading.buckets[LatencyBuckets.bucketCount - 1] == 10)
        #expect(reading.sumNanos == 90 * 7_000 + 10 * 2_000_000_000)
        // The median sits inside (5 µs, 10 µs]: 50 of 90 observations in, linearly interpolated.
        let median = reading.quantileSeconds(0.5)!
        #expect(abs(median - (5e-6 + 5e-6 * 50 / 90)) < 1e-12)
        // Beyond the last bound a quantile reports that bound (as histogram_quantile does).
        #expect(reading.quantileSeconds(0.99) == 1.0)
        #expect(LatencyBuckets.Reading().quantileSeconds(0.5) == nil)
    }
}
