import EncoreEngine
import EncoreMetrics
import EncoreTransport
import Foundation
import Synchronization

/// Reads every counter of a running server (both planes' transports, the Decide and outcome
/// cells of each reactor thread, the engine's, the registry's, the log writer's, the admin
/// plane's) and writes them as a Prometheus exposition (`/metrics`, docs/operations.md lists
/// each metric) or feeds the status page.
///
/// Hot-path cells are read with relaxed loads while the reactors keep counting (see
/// `CounterBlock`): a scrape is exact per cell, not an atomic snapshot across cells. Everything
/// here runs on the scrape's thread (the admin HTTP server or a dispatch queue), never on a
/// reactor.
public final class ServerMetrics: Sendable {
    let dataServer: GRPCServer
    let adminServer: GRPCServer
    let decisions: DecisionsService
    let engine: DecisionEngine
    let registry: ModelRegistry
    let logWriter: LogWriter?
    let authorizer: AdminAuthorizer
    /// Unix time the process started serving (seconds).
    public let startTimeSeconds: Double
    /// Requests to the admin HTTP endpoints by "path protocol format".
    let httpRequests = Mutex<[String: UInt64]>([:])
    /// Recent readings for the status page's plots (`StatusHistory`).
    let history = StatusHistory()

    /// The version `encore_build_info` reports.
    public static let version = "0.1.0"

    init(
        dataServer: GRPCServer, adminServer: GRPCServer, decisions: DecisionsService, engine: DecisionEngine,
        registry: ModelRegistry, logWriter: LogWriter?, authorizer: AdminAuthorizer
    ) {
        self.dataServer = dataServer
        self.adminServer = adminServer
        self.decisions = decisions
        self.engine = engine
        self.registry = registry
        self.logWriter = logWriter
        self.authorizer = authorizer
        startTimeSeconds = ServerMetrics.processStartTime() ?? Date().timeIntervalSince1970
    }

    func countRequest(path: String, protocol proto: String, format: String) {
        httpRequests.withLock { $0["\(path) \(proto) \(format)", default: 0] += 1 }
    }

    // MARK: Readings

    /// The Decide and outcome cells summed over the reactor threads.
    struct DecisionTotals {
        /// [surface][group]: group 0 treated, 1 holdout.
        var decisions = Array(repeating: [UInt64](repeating: 0, count: 2), count: DecideMetrics.surfaces)
        var empty = [UInt64](repeating: 0, count: DecideMetrics.surfaces)
        var orderValueCents: [UInt64] = [0, 0]
        var orderValueSquares: [Double] = [0, 0]
        /// Per offer row (`offerMetricsCapacity` + 1).
        var placements = [UInt64](repeating: 0, count: OutcomeMetrics.rows)
        var budgetExhausted = [UInt64](repeating: 0, count: OutcomeMetrics.rows)
        /// Per offer row: shown, accepted, declined, ignored, revenue cents (flat: one allocation,
        /// so the status sampler stays cheap).
        var outcomes = [UInt64](repeating: 0, count: OutcomeMetrics.rows * OutcomeMetrics.rowCells)

        /// Outcome `k` (0 shown ... 3 ignored, 4 revenue) of offer row `r`.
        func outcome(_ r: Int, _ k: Int) -> UInt64 { outcomes[r * OutcomeMetrics.rowCells + k] }
        /// Outcome `k` over every offer.
        func outcomeSum(_ k: Int) -> UInt64 {
            stride(from: k, to: outcomes.count, by: OutcomeMetrics.rowCells).reduce(0) { $0 &+ outcomes[$1] }
        }
        var unknownOfferOutcomes: UInt64 = 0

        var treated: UInt64 { decisions.reduce(0) { $0 + $1[0] } }
        var holdout: UInt64 { decisions.reduce(0) { $0 + $1[1] } }
    }

    func decisionTotals() -> DecisionTotals {
        var t = DecisionTotals()
        for block in decisions.decideBlocks {
            for s in 0..<DecideMetrics.surfaces {
                t.decisions[s][0] &+= block.load(DecideMetrics.decisions(surface: s, holdout: false))
                t.decisions[s][1] &+= block.load(DecideMetrics.decisions(surface: s, holdout: true))
                t.empty[s] &+= block.load(DecideMetrics.empty(surface: s))
            }
            for g in 0..<2 {
                t.orderValueCents[g] &+= block.load(DecideMetrics.orderValueCents(holdout: g == 1))
                t.orderValueSquares[g] += block.cells.loadDouble(DecideMetrics.orderValueSquares(holdout: g == 1))
            }
            for r in 0..<OutcomeMetrics.rows { t.placements[r] &+= block.load(DecideMetrics.placementBase + r) }
        }
        for block in decisions.budgetBlocks {
            for r in 0..<OutcomeMetrics.rows { t.budgetExhausted[r] &+= block.load(r) }
        }
        for block in decisions.outcomes.metrics {
            for r in 0..<OutcomeMetrics.rows {
                for k in 0..<5 {
                    t.outcomes[r * OutcomeMetrics.rowCells + k] &+= block.load(r * OutcomeMetrics.rowCells + k)
                }
            }
            t.unknownOfferOutcomes &+= block.load(OutcomeMetrics.unknownOffer)
        }
        return t
    }

    /// Offer ids by metric row (the active catalog's; the last row is every offer past the
    /// per-offer capacity).
    func offerLabels() -> [String] {
        let catalog = engine.active.value.catalog
        let n = min(catalog.count, DecisionWorkspace.offerMetricsCapacity)
        return (0..<n).map { catalog.offers[$0].id }
    }

    /// Decide latency over every surface.
    func decideLatency(_ reading: TransportMetricsReading) -> LatencyBuckets.Reading {
        var all = LatencyBuckets.Reading()
        for entry in reading.latency where entry.path == "/encore.v1.Decisions/Decide" { all.add(entry.histogram) }
        return all
    }

    // MARK: Exposition

    /// The `/metrics` body in `format`.
    public func exposition(_ format: MetricsExposition.Format) -> String {
        var w = MetricsExposition(format: format)
        let data = dataServer.metricsReading()
        let admin = adminServer.metricsReading()
        let totals = decisionTotals()
        let offers = offerLabels()
        let overflow = "_other"
        func offerLabel(_ row: Int) -> String { row < offers.count ? offers[row] : overflow }
        func offerRows(_ values: [UInt64]) -> [Int] {
            (0..<OutcomeMetrics.rows).filter { $0 < offers.count || values[$0] > 0 }
        }

        w.family("encore_build_info", .info, "Build of this Encore process (value 1).")
        w.sample([("version", ServerMetrics.version)], 1.0)
        processMetrics(&w)

        // gRPC calls, both planes.
        w.family("encore_grpc_calls_total", .counter, "gRPC calls answered, by plane, service, method and status code.")
        for (plane, reading) in [("data", data), ("admin", admin)] {
            for call in reading.calls {
                let (service, method) = ServerMetrics.split(call.path)
                w.sample(
                    [
                        ("plane", plane), ("service", service), ("method", method),
                        ("code", GRPCStatus.Code(rawValue: call.status).description),
                    ], call.count)
            }
        }
        w.family("encore_grpc_calls_in_flight", .gauge, "gRPC calls started and not yet answered.")
        for (plane, reading) in [("data", data), ("admin", admin)] {
            for entry in reading.inFlight {
                let (service, method) = ServerMetrics.split(entry.path)
                w.sample([("plane", plane), ("service", service), ("method", method)], entry.count)
            }
        }
        w.family(
            "encore_decide_latency_seconds", .histogram,
            "Server-side Decide latency, from the request's first byte read to the response handed to the socket, by surface (successful calls)."
        )
        for entry in data.latency where entry.path == "/encore.v1.Decisions/Decide" {
            w.histogram(
                [("surface", entry.label)], buckets: entry.histogram.buckets,
                upperBounds: LatencyBuckets.upperBoundsNanos, divisor: 1e9, sum: Double(entry.histogram.sumNanos) / 1e9)
        }

        // Decisions.
        w.family("encore_decisions_total", .counter, "Decisions made, by surface and group (treated or holdout).")
        for (s, surface) in DecisionsService.surfaceLabels.enumerated() {
            w.sample([("surface", surface), ("group", "treated")], totals.decisions[s][0])
            w.sample([("surface", surface), ("group", "holdout")], totals.decisions[s][1])
        }
        w.family("encore_decisions_empty_total", .counter, "Treated decisions with no offer eligible, by surface.")
        for (s, surface) in DecisionsService.surfaceLabels.enumerated() {
            w.sample([("surface", surface)], totals.empty[s])
        }
        w.family(
            "encore_decision_order_value_cents_total", .counter,
            "Sum of the order totals (total_cents, minor currency units) of decided orders, by group.")
        w.sample([("group", "treated")], totals.orderValueCents[0])
        w.sample([("group", "holdout")], totals.orderValueCents[1])

        // Offers.
        w.family("encore_offer_placements_total", .counter, "Offers placed in Decide responses, by offer.")
        for r in offerRows(totals.placements) { w.sample([("offer", offerLabel(r))], totals.placements[r]) }
        w.family(
            "encore_offer_outcomes_total", .counter, "Outcomes reported (first report of each), by offer and outcome.")
        let kinds = ["shown", "accepted", "declined", "ignored"]
        let outcomeRows = (0..<OutcomeMetrics.rows).filter { r in
            r < offers.count || (0..<5).contains { totals.outcome(r, $0) > 0 }
        }
        for r in outcomeRows {
            for (k, kind) in kinds.enumerated() {
                w.sample([("offer", offerLabel(r)), ("outcome", kind)], totals.outcome(r, k))
            }
        }
        w.family(
            "encore_offer_revenue_cents_total", .counter,
            "Revenue reported with outcomes (revenue_cents, minor currency units), by offer.")
        for r in outcomeRows { w.sample([("offer", offerLabel(r))], totals.outcome(r, 4)) }
        w.family(
            "encore_offer_budget_exhausted_total", .counter,
            "Candidates left out of a decision because the offer's paced daily budget was spent, by offer.")
        for r in offerRows(totals.budgetExhausted) where r < offers.count || totals.budgetExhausted[r] > 0 {
            w.sample([("offer", offerLabel(r))], totals.budgetExhausted[r])
        }
        w.family("encore_offers", .gauge, "Offers in the active catalog.")
        w.sample([], Double(engine.active.value.catalog.count))
        w.family("encore_customers", .gauge, "Customers in the active feature store.")
        w.sample([], Double(engine.active.value.customers.customerCount))

        // Outcomes and engine health.
        w.family("encore_outcomes_unknown_offer_total", .counter, "Outcomes whose offer_id is not in the catalog.")
        w.sample([], totals.unknownOfferOutcomes)
        w.family("encore_outcomes_repeated_total", .counter, "Outcomes acknowledged as repeats (not counted again).")
        w.sample([], UInt64(decisions.outcomes.repeats.repeats.load(ordering: .relaxed)))
        w.family(
            "encore_outcomes_unverified_total", .counter,
            "Outcomes refused because their decision id's MAC did not verify (not a decision of this fleet's key).")
        w.sample([], UInt64(engine.unverifiedOutcomes.load(ordering: .relaxed)))
        w.family(
            "encore_outcomes_foreign_decision_id_total", .counter,
            "Outcomes whose decision id names no customer of this engine's id format (no rule counter updated).")
        w.sample([], UInt64(engine.unattributedOutcomes.load(ordering: .relaxed)))
        w.family("encore_unknown_candidates_total", .counter, "Unknown candidate_offer_ids ignored in Decide requests.")
        w.sample([], UInt64(engine.unknownCandidatesIgnored.load(ordering: .relaxed)))
        w.family(
            "encore_uniform_fallbacks_total", .counter,
            "Decisions that fell back to the uniform policy because scores were not finite.")
        w.sample([], UInt64(engine.nonFiniteScoreFallbacks.load(ordering: .relaxed)))
        w.family(
            "encore_rule_customers_evicted_total", .counter,
            "Customers evicted from the rule counters (caps, suppression) for lack of room.")
        w.sample([], UInt64(engine.counters.evictions.load(ordering: .relaxed)))

        modelMetrics(&w)
        logMetrics(&w)

        // Connections.
        w.family("encore_connections_open", .gauge, "HTTP/2 connections open, by plane.")
        w.sample([("plane", "data")], Double(data.connectionsOpen))
        w.sample([("plane", "admin")], Double(admin.connectionsOpen))
        w.family("encore_connections_accepted_total", .counter, "TCP connections accepted, by plane.")
        w.sample([("plane", "data")], data.connectionsAccepted)
        w.sample([("plane", "admin")], admin.connectionsAccepted)
        w.family("encore_connections_closed_total", .counter, "Connections closed, by plane and reason.")
        for (plane, reading) in [("data", data), ("admin", admin)] {
            for (reason, count) in reading.connectionsClosed {
                w.sample([("plane", plane), ("reason", reason.label)], count)
            }
        }
        w.family("encore_admin_auth_failures_total", .counter, "Admin calls refused by authentication, by reason.")
        for reason in AdminAuthorizer.FailureReason.allCases {
            w.sample([("reason", reason.label)], authorizer.failureCount(reason))
        }
        w.family(
            "encore_admin_http_requests_total", .counter,
            "Admin HTTP requests answered (/metrics, /status, /status.json), by path, protocol and format.")
        for (key, count) in httpRequests.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: " ").map(String.init)
            guard parts.count == 3 else { continue }
            w.sample([("path", parts[0]), ("protocol", parts[1]), ("format", parts[2])], count)
        }
        return w.finish()
    }

    private func modelMetrics(_ w: inout MetricsExposition) {
        let active = engine.active.value
        let (counts, _, lastActivation) = registry.events.snapshot()
        w.family("encore_model_info", .info, "The active model (value 1).")
        w.sample([("version", active.version), ("exploration", ModelRegistry.describe(active.exploration))], 1.0)
        let families: [(String, ModelEvents.Kind, String)] = [
            ("encore_model_pushes_total", .pushed, "Snapshots accepted by PushSnapshot."),
            (
                "encore_model_push_refusals_total", .pushRefused,
                "Snapshots refused by PushSnapshot (validation, binding)."
            ),
            ("encore_model_activations_total", .activated, "Snapshots activated."),
            ("encore_model_rollbacks_total", .rolledBack, "Rollbacks to the previous snapshot."),
            (
                "encore_model_gate_refusals_total", .gateRefused,
                "Activations refused by the offline gate (--require-ope)."
            ),
        ]
        for (name, kind, help) in families {
            w.family(name, .counter, help)
            w.sample([], counts[kind, default: 0])
        }
        w.family(
            "encore_model_last_activation_timestamp_seconds", .gauge,
            "Unix time the active model last changed (start, activation or rollback).")
        w.sample([], Double(lastActivation) / 1000)
        w.family("encore_model_seconds_since_activation", .gauge, "Seconds since the active model last changed.")
        w.sample([], max(0, Date().timeIntervalSince1970 - Double(lastActivation) / 1000))
    }

    private func logMetrics(_ w: inout MetricsExposition) {
        guard let logWriter else { return }
        let m = logWriter.metrics()
        w.family("encore_log_records_written_total", .counter, "Decision and outcome log records appended.")
        w.sample([], UInt64(m.recordsWritten))
        w.family("encore_log_records_dropped_total", .counter, "Log records dropped (ring full or record too large).")
        w.sample([], UInt64(m.recordsDropped))
        w.family("encore_log_bytes_written_total", .counter, "Bytes written to decision and outcome log files.")
        w.sample([], m.bytesWritten)
        w.family("encore_log_rotations_total", .counter, "Log files rotated (by size or age).")
        w.sample([], m.rotations)
        w.family("encore_log_ring_pending_bytes", .gauge, "Bytes of log records waiting in the rings for the writer.")
        w.sample([], Double(m.pendingBytes))
        w.family("encore_log_ring_capacity_bytes", .gauge, "Capacity of the log rings together.")
        w.sample([], Double(m.ringBytes))
    }

    private func processMetrics(_ w: inout MetricsExposition) {
        w.family("process_start_time_seconds", .gauge, "Start time of the process since the Unix epoch in seconds.")
        w.sample([], startTimeSeconds)
        if let rss = ServerMetrics.residentBytes() {
            w.family("process_resident_memory_bytes", .gauge, "Resident memory size in bytes.")
            w.sample([], Double(rss))
        }
        if let fds = ServerMetrics.openFileDescriptors() {
            w.family("process_open_fds", .gauge, "Number of open file descriptors.")
            w.sample([], Double(fds))
        }
        w.family("process_max_fds", .gauge, "Maximum number of open file descriptors.")
        w.sample([], Double(FileDescriptorLimit.current().soft))
        var usage = rusage()
        if getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 {
            let cpu =
                Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
                + Double(usage.ru_stime.tv_usec) / 1e6
            w.family("process_cpu_seconds_total", .counter, "Total user and system CPU time spent in seconds.")
            w.sample([], cpu)
        }
    }

    // MARK: Process

    /// ("encore.v1.Decisions", "Decide") from "/encore.v1.Decisions/Decide"; ("", "") for "".
    static func split(_ path: String) -> (String, String) {
        let parts = path.dropFirst().split(separator: "/", maxSplits: 1).map(String.init)
        return parts.count == 2 ? (parts[0], parts[1]) : ("", "")
    }

    /// Resident set size from /proc/self/statm (pages times the page size).
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func openFileDescriptors() -> Int? { FileDescriptorLimit.openDescriptors() }

    /// The process start time from /proc (boot time + start ticks), or nil.
    static func processStartTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")"),
            let boot = try? String(contentsOfFile: "/proc/stat", encoding: .utf8)
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, starttime is field 22.
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        guard let line = boot.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let btime = Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        else { return nil }
        return btime + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
