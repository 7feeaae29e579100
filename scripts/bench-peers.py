#!/usr/bin/env python3
"""Peer table: Encore and the peers of ../shared/peers under the same h2load command, in one run.

    scripts/bench-peers.py [--rounds 3] [--duration 10] [--peers-build DIR] [--peers-dir DIR]
                           [--only NAME,NAME] [--out docs/peers.md] [--json]

Normally started through scripts/bench-peers.sh, which installs the tools and builds Encore
(release) and the peers first. Every target gets exactly

    h2load -D <duration> -c 16 -m 8 -t 1 -d <its body> -H 'content-type: application/grpc' \\
        -H 'te: trailers' --log-file <log> http://127.0.0.1:<port><its path>

in interleaved rounds (the order rotates each round), after a 3-second warm-up run each. Targets:
  nghttpd          nghttpd --no-tls answering the POST with a static DecideResponse-sized gRPC frame
                   (the HTTP/2 ceiling of this machine; the reference of the ratio column)
  encore-health    Encore (release, embedded demo), grpc.health.v1.Health/Check
  encore-decide    Encore Decide: demo catalog and snapshot, 2 slots, holdout off
  grpc-swift-2     peer C: grpc-swift-2 + NIO, linear 20x32 scorer (its own 353-byte request)
  python-vw-sync   peer B-sync: Python grpcio thread pool (16) + Vowpal Wabbit cb_explore_adf
  python-vw-aio    peer B-aio: the same model behind grpc.aio
Per target it reports the median req/s over the rounds, the ratio to nghttpd's median, server
CPU per request (utime+stime of the server process from /proc/PID/stat, before/after each run,
divided by the requests h2load completed) and p50/p99 of h2load's per-request times (its
--log-file) at that load: latency under saturation, closed loop, not a latency-at-a-rate figure.
gRPC targets are checked for `grpc-status: 0` with nghttp before and after the runs (h2load only
sees the HTTP status). Only 127.0.0.1; each run is bounded by -D and a timeout.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Request builder and port helpers shared with bench-decide.py and bench-logging.py.
_spec = importlib.util.spec_from_file_location("bench_decide", os.path.join(ROOT, "scripts", "bench-decide.py"))
bench_decide = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_decide)

GRPC_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
DECIDE_PATH = "/encore.v1.Decisions/Decide"
HEALTH_PATH = "/grpc.health.v1.Health/Check"
PEER_PATH = "/offers.v1.Decisioner/Decide"
# HealthCheckRequest{service: "encore.v1.Decisions"} in a gRPC frame (as bench-transport.sh sends).
HEALTH_BODY = b"\x00\x00\x00\x00\x15\x0a\x13encore.v1.Decisions"


def h2load_command(duration, body, url, log_file):
    return (["h2load", "-D", str(duration), "-c", "16", "-m", "8", "-t", "1", "-d", body] + GRPC_HEADERS
            + ["--log-file", log_file, url])


def proc_cpu_seconds(pid):
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles_ms(log_path):
    """p50 and p99 of h2load --log-file's per-request durations (3rd column, microseconds)."""
    durations = []
    with open(log_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                durations.append(int(parts[2]))
    if not durations:
        return None, None
    durations.sort()

    def pct(p):
        return durations[min(len(durations) - 1, int(round(p / 100.0 * (len(durations) - 1))))] / 1000.0

    return pct(50), pct(99)


def run_h2load(target, duration, work, tag, raw):
    url = f"http://127.0.0.1:{target['port']}{target['path']}"
    log_file = os.path.join(work, f"{tag}.log")
    cmd = h2load_command(duration, target["body"], url, log_file)
    cpu0 = proc_cpu_seconds(target["proc"].pid)
    out = subprocess.run(cmd, capture_output=True, timeout=duration + 120).stdout.decode("utf-8", "replace")
    cpu1 = proc_cpu_seconds(target["proc"].pid)
    raw.write(f"== {tag}: {' '.join(cmd)}\n{out}\n")
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    ok = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not m or not ok:
        raise SystemExit(f"h2load against {target['name']} produced no result:\n{out[-2000:]}")
    done, succeeded = int(ok.group(2)), int(ok.group(3))
    if succeeded == 0 or int(ok.group(4)) or int(ok.group(5)):
        raise SystemExit(f"h2load against {target['name']}: requests failed:\n{out[-2000:]}")
    p50, p99 = percentiles_ms(log_file)
    os.remove(log_file)  # large (one line per request)
    return {"rps": float(m.group(1)), "requests": done, "succeeded": succeeded,
            "cpu_us_per_req": (cpu1 - cpu0) / done * 1e6, "p50_ms": p50, "p99_ms": p99}


def grpc_status(target):
    url = f"http://127.0.0.1:{target['port']}{target['path']}"
    out = subprocess.run(["nghttp", "-v", "-d", target["body"]] + GRPC_HEADERS + [url], capture_output=True,
                         timeout=30).stdout.decode("utf-8", "replace")
    m = re.search(r"grpc-status: (\d+)", out)
    return m.group(1) if m else "missing"


def machine_description():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(open("/proc/meminfo").readline().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    distro = ""
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip().strip('"') + ", "
    except OSError:
        pass
    return f"{distro}kernel {platform.release()}, {os.cpu_count()} vCPU ({cpu}){mem}"


def tool_version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, timeout=10).stdout.decode().split("\n")[0].strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per h2load run (h2load -D)")
    ap.add_argument("--peers-build", default=os.environ.get("PEERS_BUILD", "/tmp/peers-build"))
    ap.add_argument("--peers-dir", default=os.environ.get("PEERS_DIR", os.path.join(ROOT, "..", "shared", "peers")))
    ap.add_argument("--peers-venv", default=os.environ.get("PEERS_VENV", "/tmp/peers-venv"))
    ap.add_argument("--only", help="comma-separated subset of targets (nghttpd is always included)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "peers.md"))
    ap.add_argument("--json", action="store_true", help="print the medians as one JSON line at the end")
    args = ap.parse_args()
    encore = os.environ.get("ENCORE_BIN", os.path.join(ROOT, ".build/release/encore"))
    if not os.access(encore, os.X_OK):
        raise SystemExit(f"{encore} missing: run scripts/bench-peers.sh (it builds it)")
    peers_dir = os.path.abspath(args.peers_dir)
    peer_c = os.path.join(args.peers_build, "swiftgrpc/.build/release/DecideServer")
    peer_body = os.path.join(args.peers_build, "body.bin")
    venv_py = os.path.join(args.peers_venv, "bin/python")

    work = tempfile.mkdtemp(prefix="encore-bench-peers-")
    decide_body = os.path.join(work, "decide.bin")
    open(decide_body, "wb").write(bench_decide.decide_request())
    health_body = os.path.join(work, "health.bin")
    open(health_body, "wb").write(HEALTH_BODY)
    www = os.path.join(work, "www/encore.v1.Decisions")
    os.makedirs(www)
    # A DecideResponse-sized gRPC frame (2 placements, ids, version): what nghttpd sends back.
    open(os.path.join(www, "Decide"), "wb").write(b"\x00\x00\x00\x00\x8c" + b"x" * 140)

    def port():
        return bench_decide.free_port()

    targets = []
    encore_port = port()
    targets.append(dict(name="nghttpd", what="1 worker, answers with a static gRPC frame: the HTTP/2 ceiling",
                        port=port(), path=DECIDE_PATH, body=decide_body, grpc=False))
    targets[-1]["cmd"] = ["nghttpd", "--no-tls", "-a", "127.0.0.1", "-d", os.path.join(work, "www"),
                          str(targets[-1]["port"])]
    targets.append(dict(name="encore-health", what="release, Health/Check: transport and gRPC framing only", port=encore_port,
                        path=HEALTH_PATH, body=health_body, grpc=True, shares="encore-decide"))
    targets.append(dict(name="encore-decide", what="release, Decide on the embedded demo (catalog + snapshot), 2 slots, holdout off",
                        port=encore_port, path=DECIDE_PATH, body=decide_body, grpc=True,
                        cmd=[encore, "serve", "--host", "127.0.0.1", "--port", str(encore_port), "--admin-port", "0",
                             "--holdout-share", "0"]))
    missing = []
    if os.access(peer_c, os.X_OK) and os.path.exists(peer_body):
        p = port()
        targets.append(dict(name="grpc-swift-2", what="peer C: grpc-swift-2 + NIO transport, linear 20 offers x 32 features", port=p,
                            path=PEER_PATH, body=peer_body, grpc=True, cmd=[peer_c, "--port", str(p)]))
    else:
        missing.append(f"grpc-swift-2 ({peer_c} missing: ../shared/peers/build.sh)")
    vw_ok = (os.access(venv_py, os.X_OK) and os.path.exists(os.path.join(args.peers_build, "py/decide_pb2.py"))
             and os.path.exists(peer_body))
    if vw_ok:
        for mode in ("sync", "aio"):
            p = port()
            cmd = [venv_py, os.path.join(peers_dir, "py_vw_server.py"), "--mode", mode, "--port", str(p)]
            if mode == "sync":
                cmd += ["--workers", "16"]
            targets.append(dict(name=f"python-vw-{mode}", port=p, path=PEER_PATH, body=peer_body, grpc=True, cmd=cmd,
                                what=f"peer B-{mode}: Python grpcio{' thread pool (16)' if mode == 'sync' else '.aio'} + "
                                     "Vowpal Wabbit cb_explore_adf"))
    else:
        missing.append(f"python-vw (venv {args.peers_venv} or {args.peers_build}/py missing: ../shared/peers/build.sh)")
    if args.only:
        keep = set(args.only.split(",")) | {"nghttpd"}
        if "encore-health" in keep:
            keep.add("encore-decide")  # the process that serves it
        unknown = keep - {t["name"] for t in targets}
        if unknown:
            raise SystemExit(f"unknown or unavailable targets: {sorted(unknown)}")
        targets = [t for t in targets if t["name"] in keep]
    measured = [t for t in targets if not args.only or t["name"] in set(args.only.split(",")) | {"nghttpd"}]

    procs = []

    def stop():
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(args.peers_build, "py"), peers_dir]))
    started_at = datetime.datetime.now(datetime.timezone.utc)
    try:
        server_log = open(os.path.join(work, "servers.log"), "w")
        for t in targets:
            if "cmd" in t:
                t["proc"] = subprocess.Popen(t["cmd"], stdout=server_log, stderr=server_log, cwd=peers_dir, env=env)
                procs.append(t["proc"])
        for t in targets:
            if "shares" in t:
                t["proc"] = next(o["proc"] for o in targets if o["name"] == t["shares"])
        for t in targets:
            if not bench_decide.wait_port(t["port"], timeout=120):
                server_log.flush()
                raise SystemExit(f"{t['name']} did not open port {t['port']}:\n" +
                                 open(os.path.join(work, "servers.log")).read()[-3000:])
        for t in measured:
            if t["grpc"]:
                st = grpc_status(t)
                if st != "0":
                    raise SystemExit(f"{t['name']} answered grpc-status {st}, not 0")
        server_log.flush()
        listen = [ln.strip() for ln in open(os.path.join(work, "servers.log")) if "listening on" in ln][:1]
        raw = open(os.path.join(work, "h2load.txt"), "w")
        load_before = open("/proc/loadavg").read().split()[:3]
        for t in measured:
            print(f"bench-peers: warm-up {t['name']}", file=sys.stderr, flush=True)
            run_h2load(t, 3, work, f"warmup-{t['name']}", raw)
        results = {t["name"]: [] for t in measured}
        for r in range(args.rounds):
            order = measured[r % len(measured):] + measured[:r % len(measured)]
            for t in order:
                res = run_h2load(t, args.duration, work, f"r{r + 1}-{t['name']}", raw)
                results[t["name"]].append(res)
                print(f"bench-peers: round {r + 1} {t['name']:15s} {res['rps']:>10,.0f} req/s  "
                      f"cpu {res['cpu_us_per_req']:7.1f} us/req  p50 {res['p50_ms']:.3f} ms  p99 {res['p99_ms']:.3f} ms",
                      file=sys.stderr, flush=True)
        for t in measured:
            if t["grpc"]:
                st = grpc_status(t)
                if st != "0":
                    raise SystemExit(f"{t['name']} answered grpc-status {st} after the runs")
        load_after = open("/proc/loadavg").read().split()[:3]
    finally:
        stop()
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    summary = {}
    for t in measured:
        rs = results[t["name"]]
        summary[t["name"]] = {
            "what": t["what"], "rps": med(r["rps"] for r in rs), "rps_rounds": [round(r["rps"]) for r in rs],
            "cpu_us_per_req": med(r["cpu_us_per_req"] for r in rs), "p50_ms": med(r["p50_ms"] for r in rs),
            "p99_ms": med(r["p99_ms"] for r in rs), "succeeded": sum(r["succeeded"] for r in rs)}
    ref = summary["nghttpd"]["rps"]
    for s in summary.values():
        s["ratio_to_nghttpd"] = s["rps"] / ref

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True).stdout.decode().strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True).stdout.decode().strip()
    cmd_shown = ("h2load -D {d} -c 16 -m 8 -t 1 -d BODY -H 'content-type: application/grpc' -H 'te: trailers' "
                 "--log-file LOG http://127.0.0.1:PORT/PATH").format(d=args.duration)
    lines = [
        "# Peer table",
        "",
        "Written by `scripts/bench-peers.sh`; do not edit by hand (rerun it). How to read it:",
        "[benchmarking.md](benchmarking.md).",
        "",
        f"- date: {started_at.strftime('%Y-%m-%d %H:%M UTC')}, Encore commit {commit}{' (uncommitted changes)' if dirty else ''}",
        f"- machine: {machine_description()}; load average before/after: {' '.join(load_before)} / "
        f"{' '.join(load_after)} (the machine is shared; h2load and the server share its cores)",
        f"- tools: {tool_version(['h2load', '--version'])}; Encore's start-up line: "
        f"`{listen[0] if listen else 'not captured'}`",
        f"- every row: `{cmd_shown}`, median of {args.rounds} interleaved rounds (order rotated each round) "
        "after a 3 s warm-up run",
        "",
        "| server | request | req/s | ratio to nghttpd | server CPU per request | p50 | p99 | req/s per round |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, s in summary.items():
        t = next(x for x in measured if x["name"] == name)
        lines.append(f"| **{name}**: {s['what']} | `{t['path']}` | {s['rps']:,.0f} | {s['ratio_to_nghttpd']:.3f}x | "
                     f"{s['cpu_us_per_req']:.1f} us | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | "
                     f"{', '.join(f'{v:,}' for v in s['rps_rounds'])} |")
    lines += [
        "",
        "Columns: req/s is h2load's figure; ratio is the row's median over nghttpd's median from the same run; "
        "server CPU per request is the server process's utime+stime (/proc/PID/stat) over the run divided by "
        "the requests completed; p50/p99 come from h2load's per-request log at this saturating, closed-loop load "
        "(16 connections x 8 streams), so they measure queueing at full load, not latency at a given rate.",
        "",
        "Request bodies: nghttpd and encore-decide get the same Decide request (bench-decide.py's, 2 slots); "
        "encore-health a HealthCheckRequest; the grpc-swift-2 and Python peers their own 353-byte "
        "`offers.v1.DecideRequest` (20 offers x 32 features, 1 slot) from ../shared/peers. The peers do "
        "different model work (see ../shared/peers/README.md), so their rows compare whole servers.",
    ]
    if missing:
        lines += ["", "Not measured in this run: " + "; ".join(missing) + "."]
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    print(f"bench-peers: wrote {args.out}", file=sys.stderr)
    if args.json:
        print(json.dumps({"date": started_at.isoformat(), "rounds": args.rounds, "duration_s": args.duration,
                          "targets": summary}))


if __name__ == "__main__":
    main()
