"""Decision and outcome logs (--log-dir) and ReportOutcome, through grpcio against the real server."""
from __future__ import annotations

import concurrent.futures
import json
import signal

import grpc
import pytest

import encore_interop as ei

TIMEOUT = 10


def _read(directory, prefix):
    records = []
    for path in sorted(directory.glob(f"{prefix}-*.jsonl")):
        for line in path.read_text().splitlines():
            records.append(json.loads(line))
    return records


def test_every_acknowledged_decision_and_outcome_is_logged_by_sigterm(stubs, server_factory, channel_for, tmp_path):
    """2,000 decisions and their outcomes (with repeats), then SIGTERM right away: every
    acknowledged decision and every distinct outcome is in the files, exactly once."""
    D = stubs.decisions_pb2
    logs = tmp_path / "logs"
    server = server_factory("--log-dir", str(logs), "--holdout-share", "0.05")
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(server))
    surfaces = ["cart", "payment", "thank_you", "confirmation"]

    def decide(i):
        req = D.DecideRequest(surface=surfaces[i % 4], customer_id=f"c{1 + i % 5000:06d}", slots=1 + i % 2,
                              request_id=f"r-{i}",
                              order=D.Order(order_id=f"o-{i}", total_cents=1000 + i, currency="USD", is_gift=i % 3 == 0,
                                            items=[D.LineItem(sku="s", category="apparel", price_cents=1000, quantity=2)]),
                              features={"session_minutes": float(i % 7)})
        return stub.Decide(req, timeout=TIMEOUT)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(decide, range(2000)))
    sent_outcomes = set()
    for r in responses[:300]:
        for p in r.placements:
            for outcome, name in ((D.SHOWN, "shown"), (D.ACCEPTED, "accepted"), (D.ACCEPTED, "accepted")):
                stub.ReportOutcome(D.OutcomeRequest(decision_id=r.decision_id, offer_id=p.offer_id, outcome=outcome,
                                                    revenue_cents=250), timeout=TIMEOUT)
                sent_outcomes.add((r.decision_id, p.offer_id, name))
    assert server.stop(grace=15) == 0

    decisions = _read(logs, "decisions")
    by_id = {d["decision_id"]: d for d in decisions}
    assert len(decisions) == len(by_id) == 2000, f"{len(decisions)} records, {len(by_id)} distinct ids"
    holdouts = 0
    for r in responses:
        d = by_id.get(r.decision_id)
        assert d is not None, f"acknowledged decision {r.decision_id} missing from the log"
        assert d["model_version"] == r.model_version and d["holdout"] == r.holdout
        assert [(p["offer_id"], p["slot"]) for p in d["placements"]] == [(p.offer_id, p.slot) for p in r.placements]
        for logged, answered in zip(d["placements"], r.placements):
            # Exact: the logged text must parse back to the very double the engine answered with.
            assert logged["propensity"] == answered.propensity
            assert logged["offer_id"] in d["candidates"]
        joint = 1.0
        for p in r.placements:
            joint *= p.propensity
        assert d["joint_propensity"] == pytest.approx(joint, rel=1e-12)
        if r.holdout:
            holdouts += 1
            assert d["placements"] == [] and d["candidates"] == []
        else:
            assert d["context"], "a decision by the demo snapshot must log its context"
            assert d["context"]["bias"] == 1.0
        assert d["order"]["items"][0]["category"] == "apparel" and d["order"]["items"][0]["quantity"] == 2
        assert d["request_features"] == {"session_minutes": float(int(d["request_id"][2:]) % 7)}
    assert 0 < holdouts < 250, holdouts
    outcomes = _read(logs, "outcomes")
    logged = {(o["decision_id"], o["offer_id"], o["outcome"]) for o in outcomes}
    assert len(outcomes) == len(logged), "a repeated outcome was logged twice"
    assert logged == sent_outcomes
    assert all(o["revenue_cents"] == 250 for o in outcomes)
    assert "0 dropped" in server.stderr, server.stderr[-500:]


@pytest.mark.parametrize("request_kwargs, field", [
    (dict(decision_id="", offer_id="a", outcome=1), "decision_id"),
    (dict(decision_id="d", offer_id="", outcome=1), "offer_id"),
    (dict(decision_id="d", offer_id="a", outcome=0), "outcome"),
    (dict(decision_id="d", offer_id="a", outcome=9), "outcome"),
    (dict(decision_id="d" * 300, offer_id="a", outcome=1), "decision_id"),
    (dict(decision_id="d", offer_id="a", outcome=1), "decision_id"),  # not an id this server issued
])
def test_report_outcome_invalid_argument(stubs, demo_server, channel_for, request_kwargs, field):
    D = stubs.decisions_pb2
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(demo_server))
    with pytest.raises(grpc.RpcError) as info:
        stub.ReportOutcome(D.OutcomeRequest(**request_kwargs), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in info.value.details()


def test_report_outcome_garbage_bytes(demo_server, channel_for):
    call = channel_for(demo_server).unary_unary("/encore.v1.Decisions/ReportOutcome")
    with pytest.raises(grpc.RpcError) as info:
        call(b"\xff\xff\xff", timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
