#!/usr/bin/env python3
"""Throughput agreement: `encore bench --max` against h2load on the same server, same load shape.

    scripts/bench-agreement.py [--rounds 5] [--duration 2] [--warmup 1] [-c 4] [-m 8] [--check] [--json]

Starts `encore serve --holdout-share 0 --threads 1` (one reactor: the server, not the load
generators, is the bottleneck, and each tool gets the other core), then runs, interleaved and
alternating which goes first, `encore bench --max --connections C --streams M --threads 1` and
`h2load -c C -m M -t 1 -D S --warm-up-time W`, both sending the same gRPC-framed Decide body
(`encore bench --body-file`, `h2load -d`). The best run of each tool (the one least disturbed by
other work on the machine) is compared; from the second round on it stops as soon as the bests
agree within 15% (issue 8's bar). Prints every round and the verdict; `--check` exits 1 when they
disagree; `--json` makes the last stdout line one JSON object.

This is a benchmark, not a test: two wall-clock measurements on a shared machine can disagree by
chance, so CI does not run it. `Tests/interop/test_bench.py` checks what does not depend on
timing (both tools' counts against the server's decision log).

Environment: ENCORE_BIN (default <repo>/.build/release/encore; built with `swift build -c release`
when missing). Needs h2load (scripts/install-deps.sh --test). Only stdlib Python.
"""
import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Request builder and port helpers shared with bench-decide.py.
_spec = importlib.util.spec_from_file_location("bench_decide", os.path.join(ROOT, "scripts", "bench-decide.py"))
bench_decide = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_decide)

DECIDE_PATH = "/encore.v1.Decisions/Decide"
H2LOAD_RPS_RE = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
H2LOAD_REQ_RE = re.compile(r"(\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored")
BAR = 0.15


def run_bench(encore, port, body, args):
    cmd = [encore, "bench", "--host", "127.0.0.1", "--port", str(port), "--max", "--connections", str(args.c),
           "--streams", str(args.m), "--threads", "1", "--duration", str(args.duration), "--warmup",
           str(args.warmup), "--body-file", body, "--json", "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + args.warmup + 60)
    if out.returncode != 0:
        raise SystemExit(f"encore bench failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["errors"] != 0 or r["ok"] == 0:
        raise SystemExit(f"encore bench had errors: {r}")
    return r["throughput_rps"]


def run_h2load(port, body, args):
    cmd = ["h2load", "-c", str(args.c), "-m", str(args.m), "-t", "1", "-D", str(args.duration), "--warm-up-time",
           str(args.warmup), "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers",
           f"http://127.0.0.1:{port}{DECIDE_PATH}"]
    out = subprocess.run(cmd, capture_output=True, timeout=args.duration + args.warmup + 60)
    text = out.stdout.decode("utf-8", "replace") + out.stderr.decode("utf-8", "replace")
    m, r = H2LOAD_RPS_RE.search(text), H2LOAD_REQ_RE.search(text)
    if not m or not r:
        raise SystemExit(f"could not parse h2load output:\n{text}")
    done, succeeded, failed, errored = map(int, r.groups())
    if failed or errored or succeeded != done or done == 0:
        raise SystemExit(f"h2load: requests failed:\n{text}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="most rounds (default 5; at least 2 are run)")
    ap.add_argument("--duration", type=int, default=2, help="measured seconds per run (default 2; whole seconds, as h2load -D takes)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up seconds per run (default 1; whole seconds)")
    ap.add_argument("-c", type=int, default=4, help="connections (default 4)")
    ap.add_argument("-m", type=int, default=8, help="streams per connection (default 8)")
    ap.add_argument("--check", action="store_true", help="exit 1 unless the bests agree within 15%%")
    ap.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    args = ap.parse_args()
    if not shutil.which("h2load"):
        raise SystemExit("h2load not found (scripts/install-deps.sh --test)")
    encore = os.environ.get("ENCORE_BIN", os.path.join(ROOT, ".build/release/encore"))
    if not os.path.exists(encore):
        subprocess.run(["swift", "build", "-c", "release", "--product", "encore"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="encore-bench-agreement-")
    port = bench_decide.free_port()
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([encore, "serve", "--port", str(port), "--holdout-share", "0", "--threads", "1"],
                              stdin=subprocess.DEVNULL, stderr=log)

    def stop():
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(1)))
    try:
        if not bench_decide.wait_port(port):
            raise SystemExit("encore serve did not start")
        body = os.path.join(work, "decide.bin")
        with open(body, "wb") as f:
            f.write(bench_decide.decide_request())
        ours, theirs, ratio = [], [], 0.0
        for round_ in range(max(2, args.rounds)):
            order = ("bench", "h2load") if round_ % 2 == 0 else ("h2load", "bench")
            for tool in order:
                if tool == "bench":
                    ours.append(run_bench(encore, port, body, args))
                else:
                    theirs.append(run_h2load(port, body, args))
            ratio = max(ours) / max(theirs)
            print(f"round {round_ + 1}: encore bench {ours[-1]:,.0f} req/s, h2load {theirs[-1]:,.0f} req/s, "
                  f"best ratio {ratio:.3f}", file=sys.stderr)
            if round_ >= 1 and abs(ratio - 1) <= BAR:
                break
        agree = abs(ratio - 1) <= BAR
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        print(f"encore bench --max best {max(ours):,.0f} req/s, h2load best {max(theirs):,.0f} req/s "
              f"(-c {args.c} -m {args.m}, {args.duration:g} s after {args.warmup:g} s, load average {load}): "
              f"ratio {ratio:.3f}, {'AGREE' if agree else 'DISAGREE'} within {BAR:.0%}")
        if args.json:
            print(json.dumps({"bench_rps": ours, "h2load_rps": theirs, "best_ratio": round(ratio, 4),
                              "agree": agree, "bar": BAR, "load_average": float(load)}))
        if args.check and not agree:
            sys.exit(1)
    finally:
        stop()


if __name__ == "__main__":
    main()
