import EncoreMetrics

/// Why a connection was closed (the `reason` label of `encore_connections_closed_total`).
public enum ConnectionCloseReason: Int, CaseIterable, Sendable {
    /// The client closed the socket (or it failed under us) while the connection was serving.
    case peerClosed
    /// No stream and no input for the idle timeout (final GOAWAY sent).
    case idle
    /// Closed by a graceful drain (SIGTERM): GOAWAY, in-flight calls finished.
    case drain
    /// Rapid reset: GOAWAY ENHANCE_YOUR_CALM.
    case rapidReset
    /// The first bytes were not the HTTP/2 client preface.
    case badPreface
    /// nghttp2 refused the input after the preface (a protocol error).
    case protocolError
    /// The TLS handshake failed (or ALPN did not select h2).
    case tlsHandshake
    /// Accepted and closed at once: `maxConnections` were open.
    case maxConnections
    /// Closed to make room for a new connection at `maxConnections`: it had been idle the
    /// longest (GOAWAY NO_ERROR sent if the socket took it).
    case evicted

    /// The label value.
    public var label: String {
        switch self {
        case .peerClosed: "peer_closed"
        case .idle: "idle"
        case .drain: "drain"
        case .rapidReset: "rapid_reset"
        case .badPreface: "bad_preface"
        case .protocolError: "protocol_error"
        case .tlsHandshake: "tls_handshake_failed"
        case .maxConnections: "max_connections"
        case .evicted: "evicted"
        }
    }
}

/// Where each transport counter lives in a reactor's `CounterBlock` (the same layout for every
/// reactor of one server, derived from its router). Routes are the router's, plus one row
/// (`unknownRoute`) for requests that named no route.
///
/// Per reactor: calls finished by (route, gRPC status); calls started by route; connections
/// accepted and closed by reason; a latency histogram per (route, label) for routes registered
/// with latency labels (`GRPCRouter.register(_:_:latencyLabels:)`).
final class TransportMetricsLayout: @unchecked Sendable {
    static let statusCount = 17
    let paths: [String]
    let latencyLabels: [[String]]
    /// Row of requests without a route.
    let unknownRoute: Int
    let startedBase: Int
    let acceptedCell: Int
    let closedBase: Int
    /// Per route: the first cell of its first label's histogram, or -1 (no histogram).
    let histogramBase: UnsafeMutablePointer<Int>
    let histogramLabelCount: UnsafeMutablePointer<Int>
    let cellCount: Int

    init(router: GRPCRouter) {
        paths = router.paths
        latencyLabels = router.routes.map(\.latencyLabels)
        let rows = paths.count + 1
        unknownRoute = paths.count
        startedBase = rows * Self.statusCount
        acceptedCell = startedBase + rows
        closedBase = acceptedCell + 1
        var next = closedBase + ConnectionCloseReason.allCases.count
        histogramBase = .allocate(capacity: rows)
        histogramLabelCount = .allocate(capacity: rows)
        for r in 0..<rows {
            let labels = r < latencyLabels.count ? latencyLabels[r].count : 0
            histogramBase[r] = labels > 0 ? next : -1
            histogramLabelCount[r] = labels
            next += labels * LatencyBuckets.cellCount
        }
        cellCount = next
    }

    deinit {
        histogramBase.deallocate()
        histogramLabelCount.deallocate()
    }

    /// What the request path reads of the layout, as plain values: a connection keeps a copy,
    /// so counting a call touches no reference count (calling into the class through an
    /// unowned(unsafe) reference retained and released it every time). Valid while the layout
    /// lives (the server outlives its connections).
    var offsets: Offsets {
        Offsets(
            unknownRoute: unknownRoute, startedBase: startedBase, histogramBase: histogramBase,
            histogramLabelCount: histogramLabelCount)
    }

    struct Offsets {
        let unknownRoute: Int
        let startedBase: Int
        let histogramBase: UnsafeMutablePointer<Int>
        let histogramLabelCount: UnsafeMutablePointer<Int>

        @inline(__always)
        func callCell(route: Int, status: Int) -> Int {
            (route < 0 ? unknownRoute : route) * TransportMetricsLayout.statusCount
                + (status < TransportMetricsLayout.statusCount ? status : 2)
        }
    }
}

/// One reading of a server's transport counters, summed over its reactors (a relaxed read of
/// each reactor's cells while they keep counting: see `CounterBlock`).
public struct TransportMetricsReading: Sendable {
    /// A count per (method path, gRPC status code); path "" for requests that named no method.
    public var calls: [(path: String, status: Int, count: UInt64)] = []
    /// Calls started and not yet answered, per method path (never negative).
    public var inFlight: [(path: String, count: UInt64)] = []
    /// Latency histograms (first byte of the request to the response handed to the socket).
    public var latency: [(path: String, label: String, histogram: LatencyBuckets.Reading)] = []
    public var connectionsAccepted: UInt64 = 0
    public var connectionsClosed: [(reason: ConnectionCloseReason, count: UInt64)] = []
    /// Open right now (HTTP/2 connections; not those handed to the HTTP/1.1 server).
    public var connectionsOpen = 0
}

extension TransportMetricsLayout {
    func read(_ blocks: [CounterBlock], open: Int) -> TransportMetricsReading {
        var out = TransportMetricsReading()
        out.connectionsOpen = open
        func sum(_ cell: Int) -> UInt64 { blocks.reduce(0) { $0 &+ $1.load(cell) } }
        for r in 0...unknownRoute {
            let path = r < paths.count ? paths[r] : ""
            var finished: UInt64 = 0
            for s in 0..<Self.statusCount {
                let n = sum(r * Self.statusCount + s)
                finished &+= n
                if n > 0 { out.calls.append((path, s, n)) }
            }
            let started = sum(startedBase + r)
            if r < paths.count { out.inFlight.append((path, started > finished ? started - finished : 0)) }
            let base = histogramBase[r]
            if base >= 0 {
                for (l, label) in latencyLabels[r].enumerated() {
                    var reading = LatencyBuckets.Reading()
                    for block in blocks { reading.add(block.cells, at: base + l * LatencyBuckets.cellCount) }
                    out.latency.append((path, label, reading))
                }
            }
        }
        out.connectionsAccepted = sum(acceptedCell)
        for reason in ConnectionCloseReason.allCases {
            out.connectionsClosed.append((reason, sum(closedBase + reason.rawValue)))
        }
        return out
    }
}
