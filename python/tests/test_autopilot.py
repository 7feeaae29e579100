"""`encore-learn autopilot` against the real server (`encore serve --require-ope`), driven by the
simulator's shoppers (encore.sim.loop): a cycle trains on the logs, compares with the active
policy on the same decisions and pushes through the gate; a deliberately worse candidate
(uniform exploration) is refused, by the autopilot's own check and, when that is off, by the
server's gate; cycles that fail (no logs yet, the server down) write an error line and the next
cycle works again after the server restarts.

Reproducible like the simulated loop: one reactor, fixed --instance-id and --decision-key-file,
sequential Decide calls, seeded shoppers, fixed created-at times; skipped without a binary."""
import json
import os
import socket
import subprocess
import sys

import grpc
import numpy as np
import pytest

from encore import Client
from encore._proto.encore.v1 import decisions_pb2 as pb, decisions_pb2_grpc
from encore.learn.autopilot import AutopilotConfig, parse_duration, run, run_cycle
from encore.learn.snapshot import decode_snapshot
from encore.sim import loop

TRAIN = {"weighting": "none", "bootstrap": 100, "seed": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Shop:
    """A simulated shop served by a real `encore serve` on fixed ports (so it can restart)."""

    def __init__(self, binary, work, seed=7):
        self.binary, self.work, self.seed = binary, work, seed
        self.customers = loop.make_customers(3000, seed)
        self.catalog, self.csv = loop.write_data(str(work), self.customers)
        self.log_dir = str(work / "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.key = loop.write_decision_key(str(work), seed)
        self.port, self.admin = free_port(), free_port()
        self.rng = np.random.default_rng([seed, 3])
        self.proc = None
        self.starts = 0
        self.decided = self.reported = 0

    def start(self):
        self.starts += 1
        # A restarted server is another instance: its decision ids must not repeat the first one's.
        self.proc, _, _ = loop.start_server(
            self.binary, ["--host", "127.0.0.1", "--port", str(self.port), "--admin-port", str(self.admin),
                          "--require-ope", "--holdout-share", "0", "--threads", "1",
                          "--instance-id", f"a070{self.starts:08x}", "--decision-key-file", self.key,
                          "--log-dir", self.log_dir, "--catalog", self.catalog, "--customers", self.csv],
            str(self.work / f"server-{self.starts}.log"))

    def stop(self):
        loop.stop_server(self.proc)
        self.proc = None

    def active(self):
        with Client("127.0.0.1", self.port, admin_port=self.admin) as c:
            got = c.get_snapshot()
        return decode_snapshot(got[1]) if got is not None else None

    def traffic(self, n, slots=1):
        contexts = loop.make_contexts(n, self.rng, self.customers)
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
            stats = loop.simulate_round(decisions_pb2_grpc.DecisionsStub(channel), pb, contexts, self.rng,
                                        self.active(), slots=slots)
        finally:
            channel.close()
        self.decided += n
        self.reported += 2 * stats["placed"]
        loop.wait_for_logs(self.log_dir, self.decided, self.reported)
        return stats

    def config(self, **kw):
        return AutopilotConfig(server=f"127.0.0.1:{self.admin}", decisions=[os.path.join(self.log_dir, "decisions-*")],
                               outcomes=[os.path.join(self.log_dir, "outcomes-*")], state_dir=str(self.work / "state"),
                               every_s=0, train={**TRAIN, **kw.pop("train", {})}, **kw)


@pytest.fixture
def shop(tmp_path):
    from conftest import encore_binary

    binary = encore_binary()
    if binary is None:
        pytest.skip("the encore binary is absent (.build/{release,debug}/encore); live-server checks skipped")
    s = Shop(binary, tmp_path)
    yield s
    s.stop()


def test_durations():
    assert parse_duration("10m") == 600 and parse_duration("7d") == 604800 and parse_duration("90") == 90
    with pytest.raises(ValueError):
        parse_duration("ten minutes")


def test_autopilot_pushes_a_better_policy_and_refuses_a_worse_one(shop):
    """Two-slot traffic: the comparison is of slate values, which the server's gate reads too."""
    shop.start()
    shop.traffic(3000, slots=2)
    first = run_cycle(shop.config(), 1, created_at_ms=1_767_225_660_000)
    assert first["status"] == "ok", first
    assert first["trained_on"]["decisions"] == 3000 and first["active"]["version"] == "uniform"
    assert first["estimand"] == "slate" and first["trained_on"]["two_offer_decisions"] == 3000
    # The autopilot kept its candidate, and uniform is known: the pseudo-inverse estimate is made.
    assert "pseudo_inverse" in first["candidate"]["estimates"], first["candidate"]
    assert first["decision"] == "activated" and first["pushed"], first
    assert first["active_after"] == first["candidate"]["version"]
    assert first["candidate_dr_lower_minus_active_dr"] > 0
    good = first["candidate"]["version"]
    assert os.path.isfile(shop.work / "state" / f"{good}.snap")
    shop.traffic(1500, slots=2)

    # A deliberately worse candidate: uniform exploration, no better than chance. The autopilot's
    # own check refuses it and does not push; the active policy stays.
    worse = run_cycle(shop.config(train={"exploration": "uniform"}), 2, created_at_ms=1_767_225_720_000)
    assert worse["status"] == "ok", worse
    assert worse["trained_on"]["decisions"] == 4500 and worse["active"]["version"] == good
    assert worse["pushed"] is False and worse["decision"] == "refused", worse
    assert "below the active policy's DR" in worse["reason"]
    assert worse["candidate_dr_lower_minus_active_dr"] < 0
    assert worse["active_after"] == good

    # With its own check off, the server's --require-ope gate refuses it (FAILED_PRECONDITION).
    pushed = run_cycle(shop.config(train={"exploration": "uniform"}, local_check=False), 3,
                       created_at_ms=1_767_225_780_000)
    assert pushed["status"] == "ok" and pushed["pushed"] and pushed["decision"] == "refused", pushed
    assert pushed["reason"].startswith("refused by the server's gate") and "below" in pushed["reason"], pushed
    assert pushed["active_after"] == good


def test_autopilot_survives_failing_cycles_and_a_server_restart(shop):
    shop.start()
    events = []

    def after(line):
        events.append(line["status"])
        if len(events) == 1:      # no logs yet: the cycle failed; now traffic, then the server goes down
            shop.traffic(2500)
            shop.stop()
        elif len(events) == 2:    # the server was down: restart it (same ports, same log directory)
            shop.start()

    out = open(shop.work / "autopilot.jsonl", "w")
    lines = run(shop.config(cycles=3), out=out, after_cycle=after, sleep=lambda s: None)
    out.close()
    assert [ln["status"] for ln in lines] == ["error", "error", "ok"], lines
    # No decisions yet (the server has opened empty log files, or none at all).
    assert "no usable decisions" in lines[0]["error"] or "no decisions files" in lines[0]["error"], lines[0]
    assert "UNAVAILABLE" in lines[1]["error"], lines[1]
    assert lines[2]["decision"] == "activated" and lines[2]["trained_on"]["decisions"] == 2500, lines[2]
    written = [json.loads(x) for x in open(shop.work / "autopilot.jsonl")]
    assert [w["cycle"] for w in written] == [1, 2, 3]

    # The command line: one more cycle, one JSON line on stdout. The new policy was just
    # activated and no new logs arrived, so the next candidate does not beat it clearly: the
    # line says what happened either way.
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "encore.learn.cli", "autopilot", "--server", f"127.0.0.1:{shop.admin}",
                           "--decisions", os.path.join(shop.log_dir, "decisions-*"),
                           "--outcomes", os.path.join(shop.log_dir, "outcomes-*"), "--every", "1s",
                           "--window", "7d", "--cycles", "1", "--weighting", "none", "--bootstrap", "100",
                           "--state-dir", str(shop.work / "state")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out_lines = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    assert len(out_lines) == 1 and out_lines[0]["status"] == "ok", out_lines
    line = out_lines[0]
    assert line["outside_window"] == 0 and line["active"]["version"] == lines[2]["candidate"]["version"]
    assert line["decision"] in ("activated", "refused") and line["reason"]
