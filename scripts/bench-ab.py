#!/usr/bin/env python3
"""Decide throughput of two encore binaries, measured in one run, interleaved and pinned.

    scripts/bench-ab.py --a OLD/encore --b NEW/encore [--rounds 6] [-n 60000] [--json]

Both servers serve the embedded demo (holdout off, one reactor thread) pinned to CPU 0 with
taskset; h2load (-c 16 -m 8 -t 1, the request of scripts/bench-decide.py: cart, 2 slots, one
line item) is pinned to CPU 1. Rounds alternate A B / B A so drift in the machine's load hits
both alike. Prints req/s and the server's CPU time per request (utime + stime from /proc, less
sensitive than req/s to other processes on a shared machine) per round, the medians and the
ratios B/A; --json prints one JSON line.
Used to show that metrics cost Decide less than 2% (docs/operations.md).
Only stdlib Python; needs h2load and taskset.
"""
import argparse, importlib.util, json, os, re, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("bench_decide", os.path.join(ROOT, "scripts", "bench-decide.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="baseline encore binary")
    ap.add_argument("--b", required=True, help="candidate encore binary")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("-n", type=int, default=60000)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="encore-bench-ab-")
    body = os.path.join(work, "decide.bin")
    open(body, "wb").write(bench.decide_request())
    procs = {}
    log = open(os.path.join(work, "servers.log"), "w")
    try:
        ports = {}
        for name, binary in (("a", args.a), ("b", args.b)):
            ports[name] = bench.free_port()
            procs[name] = subprocess.Popen(
                ["taskset", "-c", args.server_cpu, binary, "serve", "--port", str(ports[name]), "--admin-port", "0",
                 "--holdout-share", "0", "--threads", "1"], stderr=log)
        for name in ports:
            if not bench.wait_port(ports[name]):
                raise SystemExit(f"server {name} did not start (see {work}/servers.log)")
        raw = open(os.path.join(work, "h2load.log"), "w")

        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_seconds(name):
            fields = open(f"/proc/{procs[name].pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

        def run(name, n):
            cmd_port = ports[name]
            # The command line of bench-decide.py, with h2load pinned to its own CPU.
            out = subprocess.run(
                ["taskset", "-c", args.client_cpu, "h2load", "-n", str(n), "-c", "16", "-m", "8", "-t", "1", "-d", body,
                 "-H", "content-type: application/grpc", "-H", "te: trailers",
                 f"http://127.0.0.1:{cmd_port}/encore.v1.Decisions/Decide"],
                capture_output=True, timeout=600).stdout.decode("utf-8", "replace")
            raw.write(out)
            m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
            ok = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
            if not m or not ok or int(ok.group(2)) or int(ok.group(3)):
                raise SystemExit(f"h2load against {name} failed:\n{out}")
            return float(m.group(1))

        for name in ports:
            run(name, 6000)  # warm-up
        results = {"a": [], "b": []}
        cpu = {"a": [], "b": []}
        for r in range(args.rounds):
            order = ("a", "b") if r % 2 == 0 else ("b", "a")
            for name in order:
                before = cpu_seconds(name)
                results[name].append(run(name, args.n))
                cpu[name].append((cpu_seconds(name) - before) / args.n * 1e6)
            print(f"round {r + 1}: a {results['a'][-1]:.0f} req/s ({cpu['a'][-1]:.2f} us CPU/req), "
                  f"b {results['b'][-1]:.0f} req/s ({cpu['b'][-1]:.2f} us CPU/req)", file=sys.stderr)
        ma, mb = statistics.median(results["a"]), statistics.median(results["b"])
        ca, cb = statistics.median(cpu["a"]), statistics.median(cpu["b"])
        ratios = [b / a for a, b in zip(results["a"], results["b"])]
        summary = {"a_rps": ma, "b_rps": mb, "ratio": mb / ma, "round_ratios": ratios, "rounds": args.rounds,
                   "n": args.n, "a_cpu_us_per_request": ca, "b_cpu_us_per_request": cb, "cpu_ratio": cb / ca}
        print(f"median a {ma:.0f} req/s, b {mb:.0f} req/s, ratio b/a {mb / ma:.3f} "
              f"(per round: {', '.join(f'{x:.3f}' for x in ratios)}); server CPU per request "
              f"a {ca:.2f} us, b {cb:.2f} us, ratio b/a {cb / ca:.3f}")
        if args.json:
            print(json.dumps(summary))
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
