"""Idempotent retries: a Decide repeated with the same request_id (and customer) gets the same
decision id and placements, on any connection of the same server, and is logged once."""
from __future__ import annotations

import collections
import json

import encore_interop as ei


def _read(directory, prefix):
    return [json.loads(line) for path in sorted(directory.glob(f"{prefix}-*.jsonl"))
            for line in path.read_text().splitlines()]


def test_retried_requests_get_identical_answers_and_one_log_record(stubs, server_factory, channel_for, tmp_path):
    D = stubs.decisions_pb2
    logs = tmp_path / "logs"
    server = server_factory("--log-dir", str(logs))
    surfaces = ["cart", "payment", "thank_you", "confirmation"]
    reqs = [D.DecideRequest(surface=surfaces[i % 4], customer_id=f"c{1 + i * 37 % 90000:06d}", slots=1 + i % 2,
                            request_id=f"order-{i}-attempt",
                            order=D.Order(order_id=f"order-{i}", total_cents=2000 + 11 * i, currency="USD",
                                          items=[D.LineItem(sku="s", category="home", price_cents=2000, quantity=1)]))
            for i in range(1000)]
    # Three connections: the first attempt and two retries, each batch concurrent, so retries land
    # on other reactor threads than their first attempt.
    attempts = []
    for _ in range(3):
        stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(server, [("grpc.use_local_subchannel_pool", 1)]))
        responses, errors = ei.decide_many([stub], reqs)
        assert not any(errors), [e for e in errors if e][:3]
        attempts.append(responses)
    first = attempts[0]
    for again in attempts[1:]:
        for a, b in zip(first, again):
            assert a.decision_id == b.decision_id and a.model_version == b.model_version and a.holdout == b.holdout
            assert [(p.offer_id, p.slot, p.propensity, p.score) for p in a.placements] == \
                   [(p.offer_id, p.slot, p.propensity, p.score) for p in b.placements]
    assert len({r.decision_id for r in first}) == 1000
    # Different orders still explore: the slates are not all one.
    assert len({tuple(p.offer_id for p in r.placements) for r in first if r.placements}) > 20
    # A request without a request_id is a new decision every time.
    plain = D.DecideRequest(surface="cart", customer_id="c000001", slots=1)
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(server))
    ids = {stub.Decide(plain, timeout=10).decision_id for _ in range(5)}
    assert len(ids) == 5
    assert server.stop(grace=15) == 0

    decisions = _read(logs, "decisions")
    per_id = collections.Counter(d["decision_id"] for d in decisions)
    assert len(decisions) == 1005, f"{len(decisions)} decision records for 1000 retried requests and 5 plain ones"
    assert all(per_id[r.decision_id] == 1 for r in first)
    by_id = {d["decision_id"]: d for d in decisions}
    for r, req in zip(first, reqs):
        d = by_id[r.decision_id]
        assert d["request_id"] == req.request_id
        assert [(p["offer_id"], p["propensity"]) for p in d["placements"]] == \
               [(p.offer_id, p.propensity) for p in r.placements]
