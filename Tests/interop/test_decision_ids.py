"""Decision ids that cannot be forged (issue 14, point 9), through grpcio against the real server:
an id carries a MAC under the server's decision key, so ReportOutcome refuses made-up ids (which
used to exhaust an offer's budget) and ids whose customer part was edited (which used to
suppress another customer's offers); genuine outcomes still work and join their decisions in the
logs; the key survives a restart through --state-file or --decision-key-file, and a rotation
keeps ids under the previous key verifying while it is listed."""
from __future__ import annotations

import json
import random
import re
import signal

import grpc
import pytest

TIMEOUT = 10
ID = re.compile(r"^[0-9a-f]{12}-[0-9a-f]{2}-[0-9a-f]{10}-[0-9a-f]{16}-[0-9a-f]{16}$")

# Two offers on every surface, no snapshot: the policy is uniform and a 2-slot decision places
# both, so the partner is in every slate until its budget (11,520 shows a day, paced: at most
# 11,520 by midnight, at least 240 at any time) runs out. 12,000 SHOWNs exhaust it at any hour.
CATALOG = [
    {"offer_id": "partner", "kind": "partner_offer", "value_cents": 500, "budget": {"daily_shows": 11520},
     "decline_suppression_days": 30},
    {"offer_id": "house", "kind": "gift_box", "value_cents": 300},
]


def _catalog(tmp_path):
    path = tmp_path / "catalog.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in CATALOG))
    return path


def _read(directory, prefix):
    return [json.loads(line) for path in sorted(directory.glob(f"{prefix}-*.jsonl"))
            for line in path.read_text().splitlines()]


def _decide(stubs, stub, customer, i=0):
    D = stubs.decisions_pb2
    return stub.Decide(D.DecideRequest(surface="cart", customer_id=customer, slots=2,
                                       order=D.Order(order_id=f"o-{i}", total_cents=4000, currency="USD")),
                       timeout=TIMEOUT)


def _report(stubs, stub, decision_id, offer_id, outcome):
    D = stubs.decisions_pb2
    return stub.ReportOutcome(D.OutcomeRequest(decision_id=decision_id, offer_id=offer_id,
                                               outcome=getattr(D, outcome)), timeout=TIMEOUT)


def _refused(stubs, stub, decision_id, offer_id="partner", outcome="SHOWN"):
    with pytest.raises(grpc.RpcError) as info:
        _report(stubs, stub, decision_id, offer_id, outcome)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert info.value.details().startswith("decision_id:"), info.value.details()


def _forge_many(stubs, stub, ids, outcome="SHOWN", window=128):
    """Sends a SHOWN for every id (futures, `window` in flight); returns the status codes."""
    D = stubs.decisions_pb2
    codes, pending = [], []

    def settle(f):
        try:
            f.result()
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            codes.append(e.code())

    for did in ids:
        pending.append(stub.ReportOutcome.future(
            D.OutcomeRequest(decision_id=did, offer_id="partner", outcome=getattr(D, outcome)), timeout=30))
        if len(pending) >= window:
            for f in pending[: window // 2]:
                settle(f)
            pending = pending[window // 2:]
    for f in pending:
        settle(f)
    return codes


@pytest.mark.watchdog(240)
def test_forged_shown_outcomes_are_refused_and_the_budgeted_offer_is_still_served(
        stubs, server_factory, channel_for, tmp_path):
    logs = tmp_path / "logs"
    server = server_factory("--catalog", str(_catalog(tmp_path)), "--log-dir", str(logs), "--drain-timeout", "5")
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(server))
    genuine = _decide(stubs, stub, "shopper-1")
    assert ID.match(genuine.decision_id), genuine.decision_id
    # 12,000 forged SHOWNs: ids in the old format, in the new format with made-up MACs, and the
    # genuine id's body with a made-up MAC.
    rng = random.Random(14)
    body = genuine.decision_id[:43]
    forged = []
    for i in range(12000):
        kind = i % 3
        if kind == 0:
            forged.append(f"{rng.getrandbits(48):012x}-01-{i:010x}-{rng.getrandbits(64):016x}")
        elif kind == 1:
            forged.append(f"{rng.getrandbits(48):012x}-00-{i:010x}-{rng.getrandbits(64):016x}-"
                          f"{rng.getrandbits(64):016x}")
        else:
            forged.append(f"{body}-{rng.getrandbits(64):016x}")
    codes = _forge_many(stubs, stub, forged)
    assert codes.count(grpc.StatusCode.INVALID_ARGUMENT) == 12000, {c: codes.count(c) for c in set(codes)}
    # The partner offer is still in every slate: no forged SHOWN touched its budget.
    placed = sum(any(p.offer_id == "partner" for p in _decide(stubs, stub, f"shopper-{i}", i).placements)
                 for i in range(200))
    assert placed == 200, f"partner placed in {placed} of 200 decisions after 12,000 forged SHOWNs"
    # A genuine outcome still works, and its record joins the decision in the logs.
    partner = next(p for p in genuine.placements if p.offer_id == "partner")
    assert _report(stubs, stub, genuine.decision_id, partner.offer_id, "ACCEPTED") == stubs.decisions_pb2.OutcomeResponse()
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0
    assert "12000 outcomes refused (decision id did not verify)" in server.stderr, server.stderr[-800:]
    decisions = {d["decision_id"]: d for d in _read(logs, "decisions")}
    outcomes = _read(logs, "outcomes")
    assert [(o["decision_id"], o["offer_id"], o["outcome"]) for o in outcomes] == \
           [(genuine.decision_id, "partner", "accepted")], "only the genuine outcome is logged"
    assert decisions[genuine.decision_id]["placements"][partner.slot]["offer_id"] == "partner"


def test_a_decline_with_another_customers_edited_id_is_refused(stubs, server_factory, channel_for, tmp_path):
    server = server_factory("--catalog", str(_catalog(tmp_path)))
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(server))
    mine = _decide(stubs, stub, "attacker").decision_id
    victim = _decide(stubs, stub, "victim").decision_id
    fields = mine.split("-")
    fields[3] = victim.split("-")[3]  # the victim's customer key, the attacker's MAC
    forged = "-".join(fields)
    assert forged != mine and forged[27:43] == victim[27:43]
    _refused(stubs, stub, forged, outcome="DECLINED")
    # The victim still gets the partner offer (a DECLINED would hide it for 30 days).
    for i in range(20):
        assert "partner" in {p.offer_id for p in _decide(stubs, stub, "victim", i).placements}
    # The victim's own decline is honoured.
    _report(stubs, stub, victim, "partner", "DECLINED")
    assert "partner" not in {p.offer_id for p in _decide(stubs, stub, "victim").placements}


def _restart_report(stubs, server_factory, channel_for, args, decision_id):
    """Starts a server with `args`, reports ACCEPTED for `decision_id`; returns the status code."""
    server = server_factory(*args)
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(server))
    try:
        _report(stubs, stub, decision_id, "partner", "ACCEPTED")
        code = grpc.StatusCode.OK
    except grpc.RpcError as e:
        code = e.code()
    server.stop(grace=5)
    return code, server


@pytest.mark.watchdog(180)
def test_a_restart_with_the_state_file_keeps_verifying_old_ids(stubs, server_factory, channel_for, tmp_path):
    catalog = str(_catalog(tmp_path))
    state = tmp_path / "encore.state"
    first = server_factory("--catalog", catalog, "--state-file", str(state), "--drain-timeout", "2")
    assert "new MAC key generated and kept in" in first.stderr
    assert state.exists(), "the generated key is saved before the first decision"
    assert state.stat().st_mode & 0o077 == 0, oct(state.stat().st_mode)
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(first))
    old = _decide(stubs, stub, "returning").decision_id
    first.signal(signal.SIGKILL)  # not even a final save: the key was on disk already
    first.wait(10)
    code, second = _restart_report(stubs, server_factory, channel_for,
                                   ["--catalog", catalog, "--state-file", str(state)], old)
    assert code == grpc.StatusCode.OK
    assert "MAC key kept in" in second.stderr
    # Without a state file the key is per process: the same id is refused (documented).
    code, third = _restart_report(stubs, server_factory, channel_for, ["--catalog", catalog], old)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "generated for this process only" in third.stderr


@pytest.mark.watchdog(180)
def test_key_files_are_shared_by_replicas_and_rotate_with_an_overlap(stubs, server_factory, channel_for, tmp_path):
    catalog = str(_catalog(tmp_path))
    old_key, new_key = tmp_path / "decision.key.old", tmp_path / "decision.key"
    old_key.write_text("00112233445566778899aabbccddeeff\n")
    new_key.write_text("f0e1d2c3b4a5968778695a4b3c2d1e0f\n")
    for k in (old_key, new_key):
        k.chmod(0o600)
    replica_a = server_factory("--catalog", catalog, "--decision-key-file", str(old_key))
    issued = _decide(stubs, stubs.decisions_pb2_grpc.DecisionsStub(channel_for(replica_a)), "c-1").decision_id
    # Another replica with the same key accepts the outcome.
    code, _ = _restart_report(stubs, server_factory, channel_for,
                              ["--catalog", catalog, "--decision-key-file", str(old_key)], issued)
    assert code == grpc.StatusCode.OK
    # Rotated: new key, the old one listed as previous: the old id still verifies...
    config = tmp_path / "rotated.json"
    config.write_text(json.dumps({"security": {"decision_key_file": str(new_key),
                                               "previous_decision_key_files": [str(old_key)]}}))
    code, rotated = _restart_report(stubs, server_factory, channel_for,
                                    ["--catalog", catalog, "--config", str(config)], issued)
    assert code == grpc.StatusCode.OK
    assert "1 previous key still verify" in rotated.stderr
    # ...and once the overlap window is over (the previous key dropped) it is refused.
    code, _ = _restart_report(stubs, server_factory, channel_for,
                              ["--catalog", catalog, "--decision-key-file", str(new_key)], issued)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("content, reason", [("too short", "32 hex digits"), (None, "No such file")])
def test_a_bad_key_file_stops_the_start_naming_it(tmp_path, content, reason):
    import encore_interop as ei

    path = tmp_path / "decision.key"
    if content is not None:
        path.write_text(content)
    out = ei.run_cli("serve", "--port", "0", "--admin-port", "0", "--decision-key-file", str(path), timeout=30)
    assert out.returncode != 0
    assert str(path) in out.stderr and reason in out.stderr, out.stderr
    assert "Fatal error" not in out.stderr, out.stderr
