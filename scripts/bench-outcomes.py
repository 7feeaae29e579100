#!/usr/bin/env python3
"""ReportOutcome throughput with --durable-outcomes against the default mode, in one run.

    .venv/bin/python scripts/bench-outcomes.py [--seconds 10] [--rounds 3] [--procs 4] [--inflight 256] [--json]

Starts two servers from ENCORE_BIN (default .build/release/encore) with the same decision key
(--decision-key-file), --state-file and --log-dir in a temporary directory; one of them with
--durable-outcomes. Decision ids come from Decide calls; every outcome sent is distinct (decision
id x offer id x outcome), so none is a repeat. The load is `--procs` processes, each a grpc.aio
channel keeping `--inflight` calls in flight with pre-serialized requests. Rounds alternate
default, durable, default, ... (drift cancels); the result is the ratio of the medians of OK
calls per second, and of server CPU seconds per 1,000 outcomes (from /proc/PID/stat), which does
not depend on whether the client or the server is the bottleneck. Needs the interop venv
(scripts/interop-tests.sh creates .venv) for grpcio and the stubs.
"""
import argparse, asyncio, json, multiprocessing, os, re, secrets, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "interop"))


def start(encore, directory, key, durable):
    args = [encore, "serve", "--host", "127.0.0.1", "--port", "0", "--admin-port", "0", "--holdout-share", "0",
            "--decision-key-file", key, "--state-file", os.path.join(directory, "state"),
            "--log-dir", os.path.join(directory, "logs"), "--drain-timeout", "5"]
    if durable:
        args.append("--durable-outcomes")
    p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    lines = []
    while True:
        line = p.stderr.readline()
        if not line:
            raise SystemExit("encore exited before listening:\n" + "".join(lines))
        lines.append(line)
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            break
    # Keep draining stderr so the server never blocks on it.
    import threading
    threading.Thread(target=lambda: [lines.append(l) for l in p.stderr], daemon=True).start()
    p.lines = lines
    return p, int(m.group(1))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def decision_ids(port, n):
    import gen_stubs
    import grpc
    s = gen_stubs.import_stubs()
    D = s.decisions_pb2
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = s.decisions_pb2_grpc.DecisionsStub(ch)
        return [stub.Decide(D.DecideRequest(surface="thank_you", customer_id=f"bench-{i}"), timeout=10).decision_id
                for i in range(n)]


def worker(port, requests, seconds, inflight, out):
    import grpc

    async def run():
        ok = errors = 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary("/encore.v1.Decisions/ReportOutcome")  # bytes in, bytes out
            deadline = time.monotonic() + seconds
            index = 0

            async def one():
                nonlocal ok, errors, index
                while time.monotonic() < deadline and index < len(requests):
                    body = requests[index]
                    index += 1
                    try:
                        await call(body, timeout=10)
                        ok += 1
                    except grpc.RpcError:
                        errors += 1
            await asyncio.gather(*(one() for _ in range(inflight)))
        return ok, errors

    out.put(asyncio.run(run()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    encore = os.environ.get("ENCORE_BIN", os.path.join(ROOT, ".build/release/encore"))
    import gen_stubs
    D = gen_stubs.import_stubs().decisions_pb2
    with tempfile.TemporaryDirectory(prefix="encore-bench-outcomes-") as tmp:
        key = os.path.join(tmp, "key")
        with open(key, "w") as f:
            f.write(secrets.token_hex(16) + "\n")
        os.chmod(key, 0o600)
        servers = {}
        for mode in ("default", "durable"):
            d = os.path.join(tmp, mode)
            os.makedirs(d)
            servers[mode] = start(encore, d, key, mode == "durable")
        ids = decision_ids(servers["default"][1], 500)
        # Distinct outcomes: id x offer x outcome; each round takes a fresh slice.
        def requests(round_index, proc):
            out = []
            offer_base = (round_index * args.procs + proc) * 50
            for o in range(offer_base, offer_base + 50):
                for i in ids:
                    for outcome in (1, 2, 3, 4):
                        out.append(D.OutcomeRequest(decision_id=i, offer_id=f"offer-{o}", outcome=outcome,
                                                    revenue_cents=100).SerializeToString())
            return out
        results = {"default": [], "durable": []}
        for r in range(args.rounds):
            for mode in ("default", "durable"):
                p, port = servers[mode]
                queue = multiprocessing.Queue()
                procs = [multiprocessing.Process(target=worker, args=(port, requests(r, k), args.seconds,
                                                                       args.inflight, queue))
                         for k in range(args.procs)]
                cpu0 = cpu_seconds(p.pid)
                t0 = time.monotonic()
                for q in procs:
                    q.start()
                got = [queue.get() for _ in procs]
                elapsed = time.monotonic() - t0
                for q in procs:
                    q.join()
                cpu = cpu_seconds(p.pid) - cpu0
                ok = sum(g[0] for g in got)
                errors = sum(g[1] for g in got)
                results[mode].append({"rps": ok / elapsed, "errors": errors,
                                      "cpu_ms_per_1000": 1e6 * cpu / max(ok, 1)})
                if not args.json:
                    print(f"round {r + 1} {mode:8s}: {ok / elapsed:9.0f} OK/s, {errors} errors, "
                          f"server CPU {1e6 * cpu / max(ok, 1):.1f} ms per 1,000 outcomes", file=sys.stderr)
        for mode, (p, _) in servers.items():
            p.send_signal(signal.SIGTERM)
            p.wait(30)
    med = {m: statistics.median(x["rps"] for x in v) for m, v in results.items()}
    cpu = {m: statistics.median(x["cpu_ms_per_1000"] for x in v) for m, v in results.items()}
    summary = {"default_rps": round(med["default"]), "durable_rps": round(med["durable"]),
               "throughput_ratio": round(med["durable"] / med["default"], 3),
               "default_cpu_ms_per_1000": round(cpu["default"], 2), "durable_cpu_ms_per_1000": round(cpu["durable"], 2),
               "cpu_ratio": round(cpu["durable"] / cpu["default"], 3), "rounds": results}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"ReportOutcome: default {summary['default_rps']}/s, durable {summary['durable_rps']}/s: "
              f"ratio {summary['throughput_ratio']}; server CPU per 1,000 outcomes {summary['default_cpu_ms_per_1000']} "
              f"vs {summary['durable_cpu_ms_per_1000']} ms (ratio {summary['cpu_ratio']})")


if __name__ == "__main__":
    main()
