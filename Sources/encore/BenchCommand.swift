import ArgumentParser
import EncoreBench
import EncoreTransport
import Foundation

/// `encore bench`: the gRPC load generator (docs/bench-command.md).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test a running Encore server with varied Decide calls and report latency percentiles.",
        discussion: """
            --max runs a closed loop (each connection keeps --streams calls in flight). --rate R runs an open \
            loop: R calls per second at fixed intervals, latency measured from each call's intended send time \
            (corrected for coordinated omission) into an HDR histogram. --sweep measures max, then runs the \
            open loop at the given percentages of it, prints a table and (with --plot) writes an SVG. \
            A progress line goes to stderr each second; with --json the last stdout line is one JSON object.
            """
    )

    @Option(help: "Server address.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port = 50051
    @OptionGroup var tlsOptions: TLSOptions
    @Flag(help: "Closed loop: as fast as the server allows.") var max = false
    @Option(help: "Open loop: calls per second (latency from the intended send time).") var rate: Double?
    @Option(help: "Comma-separated percentages of max for an open-loop sweep, e.g. 10,30,50,70,90.")
    var sweep: String?
    @Option(help: "With --sweep: write a latency-vs-load SVG plot to this file.") var plot: String?
    @Option(help: "Measured seconds (per run).") var duration = 10.0
    @Option(help: "Warm-up seconds before measuring (per run).") var warmup = 2.0
    @Option(help: "Connections in total.") var connections = 4
    @Option(help: "Most calls in flight per connection.") var streams = 8
    @Option(help: "Load threads, each with its own poll loop over its share of the connections.") var threads = 1
    @Flag(help: "Print one JSON object as the last stdout line.") var json = false
    @Flag(
        name: .customLong("no-co-correction"),
        help: "Open loop: measure latency from the actual send time (hides stalls; for comparison only).")
    var noCoCorrection = false
    @Option(
        name: .customLong("body-file"),
        help: "Send this gRPC-framed request body (as h2load -d takes) for every call instead of the varied pool.")
    var bodyFile: String?
    @Option(help: "Distinct Decide requests in the varied pool.") var poolSize = 1024
    @Option(help: "Seed of the varied pool.") var seed: UInt64 = 1
    @Option(help: "Seconds to wait for unfinished calls after the end (then they count as timed out).")
    var drain = 2.0
    @Flag(help: "No progress lines on stderr.") var quiet = false

    func validate() throws {
        let modes = (max ? 1 : 0) + (rate != nil ? 1 : 0) + (sweep != nil ? 1 : 0)
        guard modes == 1 else { throw ValidationError("give exactly one of --max, --rate R or --sweep P,P,...") }
        if let rate, !(rate > 0 && rate.isFinite) { throw ValidationError("--rate must be a positive number") }
        if let sweep, LoadSweep.parsePercentages(sweep) == nil {
            throw ValidationError("--sweep takes percentages of max in (0, 200], e.g. 10,30,50,70,90")
        }
        if plot != nil && sweep == nil { throw ValidationError("--plot needs --sweep") }
        guard duration > 0, duration.isFinite else { throw ValidationError("--duration must be positive") }
        guard warmup >= 0, warmup.isFinite else { throw ValidationError("--warmup must be zero or more") }
        guard drain >= 0, drain.isFinite else { throw ValidationError("--drain must be zero or more") }
        guard connections > 0, streams > 0, threads > 0 else {
            throw ValidationError("--connections, --streams and --threads must be positive")
        }
        guard poolSize > 0 else { throw ValidationError("--pool-size must be positive") }
    }

    func run() throws {
        // Ports and files are checked before connecting (and before any load), each error naming its flag.
        try TLSOptions.checkPort(port)
        if let bodyFile { try TLSOptions.checkReadable(bodyFile, flag: "--body-file") }
        if let plot {
            let directory = URL(fileURLWithPath: plot).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue
            else { throw CLIError("--plot \(plot): directory \(directory) does not exist") }
        }
        var options = BenchOptions()
        options.host = host
        options.port = port
        options.tls = try tlsOptions.context()
        options.durationSeconds = duration
        options.warmupSeconds = warmup
        options.connections = connections
        options.streams = streams
        options.threads = threads
        options.coCorrection = !noCoCorrection
        options.drainSeconds = drain
        options.progress = !quiet
        if let rate { options.mode = .rate(perSecond: rate) }
        let pool: RequestPool
        if let bodyFile {
            guard let data = FileManager.default.contents(atPath: bodyFile), data.count >= 5 else {
                throw CLIError("--body-file \(bodyFile): not a gRPC-framed body (at least 5 bytes)")
            }
            pool = RequestPool(framedBodies: [[UInt8](data)])
        } else {
            pool = try RequestPool(decideRequests: poolSize, seed: seed)
        }
        let log: @Sendable (String) -> Void = { line in
            FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
        }
        do {
            if let sweep {
                let result = try LoadSweep.run(
                    options, percentages: LoadSweep.parsePercentages(sweep)!, pool: pool, log: log)
                print(result.table)
                if let plot {
                    let title =
                        "encore bench sweep: \(host):\(port), \(connections)x\(streams) streams, \(threads) thread(s)"
                    do {
                        try LatencyPlot.svg(result, title: title).write(toFile: plot, atomically: true, encoding: .utf8)
                    } catch {
                        throw CLIError(
                            "--plot \(plot): cannot write the file (\((error as NSError).localizedDescription))")
                    }
                    log("bench: wrote \(plot)")
                }
                if json { print(result.json) }
            } else {
                let result = try BenchRunner.run(options, pool: pool, log: log)
                print(result.summary)
                if json { print(result.json) }
            }
        } catch let error as CLIError {
            throw error
        } catch let error as TransportError {
            throw CLIError("bench: \(error.description)")
        } catch let error as TLSError {
            throw CLIError("bench: \(error.description)")
        }
    }
}
