#!/usr/bin/env python3
"""Decision-log benchmark: Decide throughput with --log-dir vs without (same h2load command,
interleaved rounds), and a sustained run at a fixed rate checking that no record is dropped.

    scripts/bench-logging.py [--rounds 3] [-n 60000] [--rate 50000] [--seconds 60] [--json]

The rate run uses h2load's rate mode (-r connections per second is not a request rate, so the
request rate is set with --rps on each of -c connections) for --seconds; the server's shutdown
line reports records written and dropped. Needs h2load (nghttp2-client). Stdlib Python only.
"""
import argparse, json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import importlib.util

spec = importlib.util.spec_from_file_location("bench_decide", os.path.join(ROOT, "scripts", "bench-decide.py"))
bench_decide = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_decide)


def start(encore, port, log_dir, stderr):
    args = [encore, "serve", "--port", str(port), "--admin-port", "0", "--holdout-share", "0"]
    if log_dir:
        args += ["--log-dir", log_dir]
    p = subprocess.Popen(args, stderr=stderr)
    if not bench_decide.wait_port(port):
        raise SystemExit("encore did not start")
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=60000)
    ap.add_argument("--rate", type=int, default=50000, help="requests per second for the sustained run (0: skip)")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    encore = os.environ.get("ENCORE_BIN", os.path.join(ROOT, ".build/release/encore"))
    if not os.path.exists(encore):
        subprocess.run(["swift", "build", "-c", "release", "--product", "encore"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="encore-bench-logging-")
    procs = []
    try:
        body = os.path.join(work, "decide.bin")
        open(body, "wb").write(bench_decide.decide_request())
        logs = os.path.join(work, "logs")
        ports = {"off": bench_decide.free_port(), "on": bench_decide.free_port()}
        err_on = open(os.path.join(work, "on.log"), "w")
        procs.append(start(encore, ports["off"], None, subprocess.DEVNULL))
        procs.append(start(encore, ports["on"], logs, err_on))
        raw = open(os.path.join(work, "h2load.log"), "w")
        path = "/encore.v1.Decisions/Decide"
        for name in ("off", "on"):
            bench_decide.h2load(ports[name], path, body, 6000, raw)
        rounds = []
        for r in range(args.rounds):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            row = {name: bench_decide.h2load(ports[name], path, body, args.n, raw) for name in order}
            rounds.append(row)
            print(f"round {r + 1}: logging off {row['off']:,.0f} req/s, on {row['on']:,.0f} req/s", file=sys.stderr)
        ratio = statistics.median(row["on"] / row["off"] for row in rounds)
        result = {"ratio_on_vs_off": round(ratio, 3), "bar": 0.9, "rounds": rounds}
        if args.rate > 0:
            conns = 16
            total = args.rate * args.seconds
            cmd = ["h2load", "-n", str(total), "-c", str(conns), "-m", "8", "-t", "1", "--rps", str(args.rate // conns),
                   "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers",
                   f"http://127.0.0.1:{ports['on']}{path}"]
            out = subprocess.run(cmd, capture_output=True, timeout=args.seconds * 3 + 60).stdout.decode("utf-8", "replace")
            m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
            ok = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
            result.update({"sustained_requests": total, "sustained_rps": float(m.group(3)) if m else None,
                           "sustained_succeeded": int(ok.group(1)) if ok else None})
        procs[1].send_signal(signal.SIGTERM)
        procs[1].wait(30)
        err_on.close()
        text = open(os.path.join(work, "on.log")).read()
        m = re.search(r"(\d+) records written to .*, (\d+) dropped", text)
        if m:
            result.update({"records_written": int(m.group(1)), "records_dropped": int(m.group(2))})
        lines = 0
        for f in os.listdir(logs):
            if f.startswith("decisions-"):
                with open(os.path.join(logs, f)) as fh:
                    lines += sum(1 for _ in fh)
        result["decision_lines_in_files"] = lines
        print(f"Decide with --log-dir vs without (h2load -n {args.n} -c 16 -m 8 -t 1, median of {args.rounds}): "
              f"{ratio:.3f}x (bar >= 0.9x: {'PASS' if ratio >= 0.9 else 'FAIL'})")
        if args.rate > 0:
            print(f"sustained: {result.get('sustained_succeeded')} of {total} requests at target {args.rate}/s "
                  f"(achieved {result.get('sustained_rps')}/s); records written {result.get('records_written')}, "
                  f"dropped {result.get('records_dropped')}; decision lines in files {lines}")
        if args.json:
            print(json.dumps(result))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
