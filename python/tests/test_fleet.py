"""A fleet of replicas as the Python package sees it: encore.Client sends the routing key
(x-encore-customer) on Decide and ReportOutcome, and encore-learn joins the logs of several
replica directories, including an outcome reported through another replica than its decision."""
import json
import subprocess
from concurrent import futures

import grpc
import pytest

from encore import Client
from encore._proto.encore.v1 import decisions_pb2, decisions_pb2_grpc
from encore.learn.cli import main
from encore.learn.frames import read_logs
from encore.learn.logs import load_logs

from conftest import start_encore


class RecordingDecisions(decisions_pb2_grpc.DecisionsServicer):
    """Answers every Decide with a new decision id and records each call's routing key."""

    def __init__(self):
        self.seen = []  # (method, customer in the body or "", x-encore-customer metadata or None)

    def Decide(self, request, context):
        self.seen.append(("decide", request.customer_id, dict(context.invocation_metadata()).get("x-encore-customer")))
        return decisions_pb2.DecideResponse(decision_id=f"d{len(self.seen)}", placements=[
            decisions_pb2.Placement(offer_id="gift_box", slot=0, propensity=1.0)])

    def ReportOutcome(self, request, context):
        self.seen.append(("report", request.decision_id,
                          dict(context.invocation_metadata()).get("x-encore-customer")))
        return decisions_pb2.OutcomeResponse()


def test_client_sends_the_routing_key():
    servicer = RecordingDecisions()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    decisions_pb2_grpc.add_DecisionsServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with Client("127.0.0.1", port, token="t") as c:
            r = c.decide("cart", "c000042")
            c.report_outcome(r.decision_id, "gift_box", "shown")  # remembered from decide
            c.report_outcome("d-elsewhere", "gift_box", "shown", customer_id="c000007")  # given
            c.report_outcome("d-unknown", "gift_box", "shown")  # neither: no header (balancer falls back)
            c.decide("cart", "")  # no customer: no header
            c.decide("cart", "kunde-\u00e9")  # not printable ASCII: no header rather than a failed call
    finally:
        server.stop(0)
    assert servicer.seen == [
        ("decide", "c000042", "c000042"), ("report", "d1", "c000042"), ("report", "d-elsewhere", "c000007"),
        ("report", "d-unknown", None), ("decide", "", None), ("decide", "kunde-\u00e9", None)]


@pytest.fixture
def two_replicas(encore_bin, tmp_path):
    """Two servers sharing one decision key, each logging to its own directory."""
    key = tmp_path / "decision.key"
    key.write_text("8899aabbccddeeff0011223344556677\n")
    key.chmod(0o600)
    procs = []
    try:
        for name in ("r1", "r2"):
            proc, port, admin = start_encore(
                encore_bin, ["--threads", "1", "--holdout-share", "0", "--decision-key-file", str(key),
                             "--replica-name", name, "--log-dir", str(tmp_path / f"logs-{name}")],
                tmp_path / f"{name}.log")
            procs.append((proc, port))
        yield procs, [tmp_path / "logs-r1", tmp_path / "logs-r2"]
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=20)


def test_outcome_through_another_replica_joins(two_replicas, encore_bin, tmp_path):
    procs, dirs = two_replicas
    (_, p1), (_, p2) = procs
    decided = []
    with Client("127.0.0.1", p1) as on1, Client("127.0.0.1", p2) as on2:
        for i in range(40):
            r = on1.decide("cart", f"c{i + 1:06d}", order={"total_cents": 5000})
            assert r.placements, r
            decided.append(r)
            # half the outcomes reach the other replica (as after a failover): it verifies the id
            # under the shared key and logs the outcome with its own replica name
            (on2 if i % 2 else on1).report_outcome(r.decision_id, r.placements[0].offer_id, "accepted",
                                                   revenue_cents=300)
    for proc, _ in procs:  # SIGTERM: every record is on disk once they exit
        proc.terminate()
        assert proc.wait(timeout=20) == 0

    logs = load_logs([str(d) for d in dirs], [str(d) for d in dirs])
    st = logs.stats
    assert sorted(st.replicas) == ["r1"]  # every decision was made by r1
    assert st.outcome_records == 40 and st.unknown_decision_outcomes == 0
    assert st.decisions_with_outcomes == 40 and st.cross_replica_outcomes == 20
    df = read_logs([str(d) for d in dirs])
    assert set(df["replica"]) == {"r1"} and len(df) == 40
    assert all(len(a) == 1 for a in df["accepted"])
    outcome_replicas = {o["replica"] for js in df["outcomes_json"] for o in json.loads(js)}
    assert outcome_replicas == {"r1", "r2"}
    # the CLI reads the same directories with --log-dir
    snap = tmp_path / "demo.snap"
    subprocess.run([encore_bin, "snapshot", "demo", "--seed", "11", "--out", str(snap)], check=True,
                   capture_output=True)
    assert main(["evaluate", "--log-dir", *map(str, dirs), "--snapshot", str(snap), "--json"]) == 0
    with pytest.raises(SystemExit):
        main(["evaluate", "--snapshot", str(snap), "--json"])  # no logs given: a clear error
