"""The fleet test: three Encore replicas, each in its own network namespace, behind haproxy
(deploy/haproxy/haproxy.cfg with its server lines replaced), under a grpcio load of Decide +
ReportOutcome calls, through a rollout, a refused rollout, a SIGKILL and a SIGTERM drain.

What is asserted are counts, never timings of the machine:
  - affinity: in every steady period, every customer's decisions come from one replica (decision
    ids carry the replica's --instance-id), the one consistent hashing gives it;
  - `encore fleet push --activate`: exit 0, 0 failed calls, every replica on the new version when
    the command returns (checked within 1 s), and no Decide started after it answers with the old;
  - a rollout in which one replica receives a corrupt copy: exit 1, every replica still on the
    old version, no Decide ever answered with the refused version, 0 failed calls;
  - SIGKILL of one replica: failed calls at most the calls that can be in flight (the load's
    concurrency); its customers move to the survivors, the others stay; after its restart with
    --state-file (counters loaded) they move back;
  - SIGTERM of one replica (--drain-notice): 0 failed calls; haproxy marked it DOWN before the
    process exited.
Figures (throughput through haproxy vs direct, the p50/p99 it adds, the failed-call counts) go
to the report file (FLEET_REPORT, default .build/fleet-report.json) printed by scripts/fleet-tests.sh.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import fleet_net as fn  # noqa: E402

REPLICAS = 3
INSTANCE = {i: f"0000000000a{i}" for i in range(1, REPLICAS + 1)}  # decision-id prefix per replica
TOKEN = "fleet-test-token-0123456789abcdef"
LOAD_PROCESSES = 2  # grpcio load generators, each with its own customers
LOAD_CONCURRENCY = 12  # calls in flight per load generator at most
LOAD_RATE = 1200  # orders/s in all (a Decide and a ReportOutcome each): up to 2,400 calls/s
CUSTOMERS = 1500  # in all
SETTLE = 0.5  # seconds after haproxy changed a server's state before a steady period starts


def replica_of(decision_id: str) -> int | None:
    for i, prefix in INSTANCE.items():
        if decision_id.startswith(prefix):
            return i
    return None


def percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


class Run:
    """Everything one fleet test starts, torn down in reverse order by `close`."""

    def __init__(self, tmp: pathlib.Path):
        self.tmp = tmp
        self.fleet = fn.Fleet(REPLICAS, str(os.getpid() % 10000))
        self.replicas: dict[int, fn.Proc] = {}
        self.haproxy: fn.Proc | None = None
        self.relay: fn.CorruptingRelay | None = None
        self.loads: list[fn.Proc] = []
        self.events: dict[str, float] = {}
        token_sha = hashlib.sha256(TOKEN.encode()).hexdigest()
        (tmp / "encore.json").write_text(json.dumps({
            "admin": {"tokens": [{"name": "fleet", "sha256": token_sha,
                                  "roles": ["models.push", "models.activate", "read"]}]},
            "counters": {"save_interval_seconds": 1},
        }))
        (tmp / "token").write_text(TOKEN + "\n")
        key = tmp / "decision.key"
        key.write_text("00112233445566778899aabbccddeeff\n")
        key.chmod(0o600)
        # The fleet's current snapshot, as the operator keeps it: a replica that restarts takes it
        # from here (--snapshot-dir) instead of coming back on its initial one.
        (tmp / "snapshots").mkdir()

    def address(self, i: int) -> str:
        return self.fleet.addresses[i - 1]

    def admin(self, i: int) -> str:
        return f"{self.address(i)}:50052"

    def start_replica(self, i: int) -> fn.Proc:
        cmd = ["ip", "netns", "exec", self.fleet.names[i - 1], fn.encore_bin(), "serve",
               "--host", self.address(i), "--port", "50051", "--admin-host", self.address(i), "--admin-port", "50052",
               "--threads", "1", "--instance-id", INSTANCE[i], "--replica-name", f"r{i}",
               "--config", str(self.tmp / "encore.json"), "--state-file", str(self.tmp / f"r{i}.state"),
               "--decision-key-file", str(self.tmp / "decision.key"), "--log-dir", str(self.tmp / f"logs-r{i}"),
               "--drain-notice", "2", "--drain-timeout", "5",
               "--snapshot-dir", str(self.tmp / "snapshots"), "--snapshot-dir-interval", "0.5"]
        p = fn.Proc(cmd, self.tmp / f"r{i}.log")
        self.replicas[i] = p
        return p

    def start_haproxy(self) -> int:
        with socket_port() as port:
            pass
        deploy = (fn.REPO / "deploy" / "haproxy" / "haproxy.cfg").read_text()
        self.stats = str(self.tmp / "haproxy.sock")
        cfg = fn.haproxy_config(deploy, port, [(f"r{i}", f"{self.address(i)}:50051") for i in self.replicas],
                                self.stats)
        (self.tmp / "haproxy.cfg").write_text(cfg)
        fn.run("haproxy", "-c", "-f", str(self.tmp / "haproxy.cfg"))
        self.haproxy = fn.Proc(["haproxy", "-db", "-f", str(self.tmp / "haproxy.cfg")], self.tmp / "haproxy.log")
        self.haproxy_port = port
        time.sleep(0.3)
        assert self.haproxy.p.poll() is None, f"haproxy exited:\n{self.haproxy.text()[-3000:]}"
        for i in self.replicas:
            fn.wait_status(self.stats, f"r{i}", "UP", 15)
        return port

    def fleet_cli(self, sub: str, *args: str, targets: list[str] | None = None) -> subprocess.CompletedProcess:
        t = ",".join(targets or [self.admin(i) for i in range(1, REPLICAS + 1)])
        return subprocess.run([fn.encore_bin(), "fleet", sub, "--targets", t, "--token-file", str(self.tmp / "token"),
                               "--json", *args], capture_output=True, text=True, timeout=60)

    def active_versions(self) -> dict[int, str]:
        """Each replica's active version, by `encore fleet status`."""
        r = self.fleet_cli("status")
        doc = json.loads(r.stdout)
        return {i + 1: row.get("active_version", "") for i, row in enumerate(doc["replicas"])}

    def open_admin_channels(self) -> None:
        """grpcio channels to every admin plane, opened ahead so `listed_versions` is quick."""
        import grpc
        sys.path.insert(0, str(fn.REPO / "Tests" / "interop" / "_gen"))
        from encore.v1 import models_pb2
        self.models_pb2 = models_pb2
        self.admin_channels = {i: grpc.insecure_channel(self.admin(i)) for i in range(1, REPLICAS + 1)}
        self.list_calls = {i: ch.unary_unary("/encore.v1.Models/List",
                                             request_serializer=models_pb2.ListModelsRequest.SerializeToString,
                                             response_deserializer=models_pb2.ListModelsResponse.FromString)
                           for i, ch in self.admin_channels.items()}
        self.listed_versions()

    def listed_versions(self) -> dict[int, str]:
        """Each replica's active version, by Models/List over grpcio (quicker than a CLI run)."""
        md = (("authorization", f"Bearer {TOKEN}"),)
        return {i: call(self.models_pb2.ListModelsRequest(), timeout=5, metadata=md).active_version
                for i, call in self.list_calls.items()}

    def load(self, name: str, targets: list[str], seconds: float, rate: float,
             hash_targets: bool = False) -> list[fn.Proc]:
        """LOAD_PROCESSES load generators (each rate / LOAD_PROCESSES, its own customers), started
        and connected when this returns; they stop after `seconds` or at `<name>.stop`."""
        procs = []
        per = CUSTOMERS // LOAD_PROCESSES
        for k in range(LOAD_PROCESSES):
            part = f"{name}-{k}"
            cmd = [sys.executable, str(fn.HERE / "load.py"), "--seconds", str(seconds),
                   "--rate", str(rate / LOAD_PROCESSES), "--concurrency", str(LOAD_CONCURRENCY),
                   "--customers", str(per), "--first-customer", str(1 + k * per),
                   "--out", str(self.tmp / f"{part}.jsonl"), "--stop-file", str(self.tmp / f"{name}.stop"),
                   "--ready-file", str(self.tmp / f"{part}.ready")]
            for t in targets:
                cmd += ["--target", t]
            if hash_targets:
                cmd.append("--hash-targets")
            p = fn.Proc(cmd, self.tmp / f"{part}.log")
            self.loads.append(p)
            procs.append(p)
        end = time.monotonic() + 30
        for k, p in enumerate(procs):
            while not (self.tmp / f"{name}-{k}.ready").exists():
                if p.p.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"load {name} did not start:\n{p.text()[-2000:]}")
                time.sleep(0.05)
        return procs

    def calls(self, name: str, procs: list[fn.Proc], timeout: float = 120) -> tuple[dict, list[list]]:
        """({"elapsed": longest run in s}, every call of every generator in start order)."""
        elapsed, calls = 0.0, []
        for k, p in enumerate(procs):
            p.wait(timeout)
            lines = (self.tmp / f"{name}-{k}.jsonl").read_text().splitlines()
            elapsed = max(elapsed, json.loads(lines[0])["elapsed"])
            calls += [json.loads(x) for x in lines[1:]]
        calls.sort(key=lambda c: c[0])
        return {"elapsed": elapsed}, calls

    def close(self) -> None:
        for p in self.loads:
            p.stop()
        if self.haproxy:
            self.haproxy.stop()
        for p in self.replicas.values():
            p.stop()
        if self.relay:
            self.relay.close()
        for ch in getattr(self, "admin_channels", {}).values():
            ch.close()
        self.fleet.close()


class socket_port:
    """A free TCP port on 127.0.0.1 (bound and released)."""

    def __enter__(self) -> int:
        import socket
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return self.s.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.s.close()


@pytest.fixture
def run(tmp_path):
    why = fn.netns_unavailable()
    if why:
        pytest.skip(f"fleet test needs network namespaces: {why}")
    for tool in ("haproxy", "ip"):
        assert subprocess.run(["which", tool], capture_output=True).returncode == 0, \
            f"{tool} missing: scripts/install-deps.sh --test installs it"
    r = Run(tmp_path)
    try:
        r.fleet.create()
        yield r
    finally:
        r.close()
        leftovers = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert not any(n in leftovers for n in r.fleet.names), f"namespaces left behind: {leftovers}"


def steady_homes(calls: list[list], start: float, end: float) -> dict[str, set[int]]:
    """customer -> replicas that answered its Decide calls started at or after `start` and
    answered before `end` (a call in flight at an event may have been retried elsewhere)."""
    homes: dict[str, set[int]] = {}
    for t0, t1, method, customer, status, did, _ in calls:
        if method == "decide" and status == "OK" and start <= t0 and t1 < end:
            homes.setdefault(customer, set()).add(replica_of(did))
    return homes


def failures(calls: list[list], start: float = 0, end: float = float("inf")) -> list[list]:
    return [c for c in calls if c[4] != "OK" and start <= c[0] < end]


def test_fleet_behind_haproxy(run: Run):
    e = fn.encore_bin()
    snaps = {}
    for seed in (31, 32, 33):
        path = run.tmp / f"s{seed}.snap"
        fn.run(e, "snapshot", "demo", "--seed", str(seed), "--out", str(path))
        snaps[seed] = path
    for i in range(1, REPLICAS + 1):
        run.start_replica(i)
    for i in range(1, REPLICAS + 1):
        run.replicas[i].wait_for(r"listening on", 60)
    port = run.start_haproxy()
    via = f"127.0.0.1:{port}"
    direct = [f"{run.address(i)}:50051" for i in range(1, REPLICAS + 1)]
    report: dict = {"replicas": REPLICAS, "encore": fn.encore_bin(),
                    "load": {"processes": LOAD_PROCESSES, "concurrency_each": LOAD_CONCURRENCY,
                             "rate_orders_per_s": LOAD_RATE}}

    # -- haproxy's cost: the same closed-loop load direct (client-side hash) and through haproxy.
    overhead = {}
    for name, targets, hashed in (("direct", direct, True), ("haproxy", [via], False)):
        p = run.load(f"bench-{name}", targets, 4, 0, hash_targets=hashed)
        meta, calls = run.calls(f"bench-{name}", p)
        ok = [c for c in calls if c[4] == "OK"]
        assert not failures(calls), (name, failures(calls)[:5])
        lat = [(c[1] - c[0]) * 1000 for c in ok if c[2] == "decide"]
        overhead[name] = {"calls_per_s": len(ok) / meta["elapsed"], "decide_p50_ms": percentile(lat, 0.5),
                          "decide_p99_ms": percentile(lat, 0.99), "calls": len(ok)}
    overhead["throughput_ratio_haproxy_vs_direct"] = (overhead["haproxy"]["calls_per_s"]
                                                      / overhead["direct"]["calls_per_s"])
    overhead["added_p50_ms"] = overhead["haproxy"]["decide_p50_ms"] - overhead["direct"]["decide_p50_ms"]
    overhead["added_p99_ms"] = overhead["haproxy"]["decide_p99_ms"] - overhead["direct"]["decide_p99_ms"]
    report["haproxy_overhead"] = overhead

    run.open_admin_channels()

    # -- the main load through haproxy, with the events placed on the shared monotonic clock.
    load = run.load("main", [via], 60, LOAD_RATE)
    ev = run.events
    ev["load_start"] = time.monotonic()
    time.sleep(3)

    # Rollout: every replica switches, 0 failed calls.
    ev["push_start"] = time.monotonic()
    r = run.fleet_cli("push", "--activate", str(snaps[31]))
    ev["push_end"] = time.monotonic()
    assert r.returncode == 0, r.stdout + r.stderr
    pushed = json.loads(r.stdout)
    v31 = pushed["replicas"][0]["pushed_version"]
    assert all(row["active_version"] == v31 for row in pushed["replicas"]), pushed
    while True:
        asked = time.monotonic()
        if (seen := run.listed_versions()) == {i: v31 for i in range(1, REPLICAS + 1)}:
            break
        assert asked - ev["push_end"] <= 1.0, f"not every replica on {v31} within 1 s: {seen}"
    ev["all_on_v31"] = asked  # when the List calls that saw every replica on v31 were sent
    report["rollout_all_active_after_s"] = round(asked - ev["push_end"], 4)
    assert run.active_versions() == {i: v31 for i in range(1, REPLICAS + 1)}  # fleet status agrees
    (run.tmp / "snapshots" / ".s31.snap.tmp").write_bytes(snaps[31].read_bytes())
    os.rename(run.tmp / "snapshots" / ".s31.snap.tmp", run.tmp / "snapshots" / "fleet-current.snap")
    time.sleep(2)

    # A rollout where replica 2 receives a corrupt copy: refused there, so activated nowhere.
    run.relay = fn.CorruptingRelay((run.address(2), 50052))
    run.relay.corrupt = True
    ev["bad_push_start"] = time.monotonic()
    r = run.fleet_cli("push", "--activate", str(snaps[32]),
                      targets=[run.admin(1), f"127.0.0.1:{run.relay.port}", run.admin(3)])
    ev["bad_push_end"] = time.monotonic()
    run.relay.corrupt = False
    assert r.returncode == 1, r.stdout + r.stderr
    bad = json.loads(r.stdout)
    assert run.relay.corrupted >= 1
    assert "upload refused" in bad["replicas"][1].get("error", ""), bad
    assert "error" not in bad["replicas"][0] and "error" not in bad["replicas"][2], bad
    assert run.active_versions() == {i: v31 for i in range(1, REPLICAS + 1)}, "a refused rollout switched a replica"
    v32 = bad["replicas"][0]["pushed_version"]
    time.sleep(2)

    # SIGKILL replica 3: only calls in flight may fail; its customers move, then move back.
    ev["kill"] = time.monotonic()
    run.replicas[3].signal(signal.SIGKILL)
    run.replicas[3].wait(10)
    ev["r3_down"] = fn.wait_status(run.stats, "r3", "DOWN", 10)
    time.sleep(3)
    ev["restart"] = time.monotonic()
    old_log = len(run.replicas[3].text())
    p3 = run.start_replica(3)
    p3.wait_for(r"listening on", 60, start=old_log)
    restored = p3.wait_for(r"rule state: loaded (\d+) customers", 1, start=old_log)
    report["sigkill_restart_state_customers"] = int(restored.group(1))
    ev["r3_up"] = fn.wait_status(run.stats, "r3", "UP", 15)
    time.sleep(3)

    # SIGTERM replica 1: health NOT_SERVING first (--drain-notice), haproxy takes it out, then it
    # drains; 0 failed calls.
    ev["term"] = time.monotonic()
    run.replicas[1].signal(signal.SIGTERM)
    ev["r1_down"] = fn.wait_status(run.stats, "r1", "DOWN", 10)
    assert run.replicas[1].wait(20) == 0, run.replicas[1].text()[-2000:]
    ev["r1_exit"] = time.monotonic()
    assert ev["r1_down"] < ev["r1_exit"], "haproxy saw replica 1 leave only after it exited"
    time.sleep(3)
    (run.tmp / "main.stop").write_text("stop\n")
    meta, calls = run.calls("main", load)
    ev["load_end"] = time.monotonic()

    # -- what the load saw.
    ok = [c for c in calls if c[4] == "OK"]
    report["main_load"] = {"calls": len(calls), "ok": len(ok), "seconds": meta["elapsed"],
                           "calls_per_s": len(calls) / meta["elapsed"]}
    assert len(ok) > 10_000, report["main_load"]
    # Failed calls by event window; outside the SIGKILL window there must be none at all.
    kill_window = (ev["kill"] - 0.05, ev["r3_down"] + 1.0)
    failed = failures(calls)
    in_kill = failures(calls, *kill_window)
    report["failed_calls"] = {
        "rollout": len(failures(calls, ev["push_start"], ev["push_end"] + 1.0)),
        "refused_rollout": len(failures(calls, ev["bad_push_start"], ev["bad_push_end"] + 1.0)),
        "sigkill": len(in_kill),
        "sigterm_drain": len(failures(calls, ev["term"], ev["r1_exit"] + 3.0)),
        "total": len(failed),
        "examples": failed[:5],
    }
    in_flight = LOAD_PROCESSES * LOAD_CONCURRENCY  # calls in flight at any moment, at most
    report["sigkill_in_flight_bound"] = in_flight
    assert len(failed) == len(in_kill), ("calls failed outside the SIGKILL window", failed[:10])
    assert len(in_kill) <= in_flight, ("more failures than calls in flight at the kill", in_kill[:10])

    # Versions: nothing started after the rollout returned got the old model, none ever got v32.
    decides = [c for c in ok if c[2] == "decide"]
    assert not [c for c in decides if c[0] > ev["push_end"] and c[6] != v31], "old version after the rollout"
    assert not [c for c in decides if c[6] == v32], "the refused snapshot served a decision"

    # Affinity in each steady period.
    base = steady_homes(calls, ev["load_start"] + 0.5, ev["kill"])
    split = {c: r for c, r in base.items() if len(r) != 1}
    assert not split, f"customers on several replicas in a steady period: {list(split.items())[:5]}"
    home = {c: next(iter(r)) for c, r in base.items()}
    report["affinity"] = {"customers": len(home),
                          "per_replica": {f"r{i}": sum(1 for h in home.values() if h == i) for i in INSTANCE}}
    assert all(report["affinity"]["per_replica"][f"r{i}"] > 0 for i in INSTANCE), report["affinity"]
    during_kill = steady_homes(calls, ev["r3_down"] + SETTLE, ev["restart"])
    for c, rs in during_kill.items():
        assert len(rs) == 1, (c, rs)
        if home.get(c) == 3:
            assert rs <= {1, 2}, (c, rs)
        elif c in home:
            assert rs == {home[c]}, ("a survivor's customer moved", c, rs, home[c])
    moved = sum(1 for c in during_kill if home.get(c) == 3)
    assert moved > 0, "no customer of the killed replica was served during its absence"
    after = steady_homes(calls, ev["r3_up"] + SETTLE, ev["term"])
    back = [c for c in after if c in home and after[c] != {home[c]}]
    assert not back, f"customers not back on their replica after the restart: {back[:5]}"
    report["sigkill_customers_moved_and_back"] = moved
    during_drain = steady_homes(calls, ev["r1_down"] + SETTLE, ev["load_end"])
    for c, rs in during_drain.items():
        if home.get(c) == 1:
            assert rs <= {2, 3}, (c, rs)
        elif c in home:
            assert rs == {home[c]}, ("a survivor's customer moved during the drain", c, rs)

    # Logs: every record names its replica; outcomes join their decisions across the replicas'
    # directories (encore-learn's join is tested on such directories in python/tests/test_logs.py).
    decisions: dict[str, str] = {}
    outcomes: list[tuple[str, str]] = []
    for i in INSTANCE:
        log_dir = run.tmp / f"logs-r{i}"
        for f in sorted([*log_dir.glob("decisions-*.jsonl"), *log_dir.glob("outcomes-*.jsonl")]):
            for line in f.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:  # the last line of a SIGKILLed replica's file may be cut
                    continue
                assert rec.get("replica") == f"r{i}", (f.name, rec.get("replica"))
                if rec["type"] == "decision":
                    decisions[rec["decision_id"]] = rec["replica"]
                elif rec["type"] == "outcome":
                    outcomes.append((rec["decision_id"], rec["replica"]))
    joined = [(d, r) for d, r in outcomes if d in decisions]
    report["logs"] = {"decisions": len(decisions), "outcomes": len(outcomes), "joined": len(joined),
                      "cross_replica_outcomes": sum(1 for d, r in joined if decisions[d] != r)}
    assert all(replica_of(d) == int(decisions[d][1:]) for d in list(decisions)[:1000])
    assert len(joined) > 0.9 * len(outcomes), report["logs"]
    report["events_s"] = {k: round(v - ev["load_start"], 3) for k, v in ev.items()}
    out = pathlib.Path(os.environ.get("FLEET_REPORT") or (fn.REPO / ".build" / "fleet-report.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
