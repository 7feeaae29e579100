"""The offline gate on the same logs, end to end against the real server (`encore serve
--require-ope`): Models/GetSnapshot, `encore-learn train --server` comparing a candidate with the
policy the server serves on the same decisions, and the server refusing a snapshot whose report
only speaks of itself, or of another active version, or loses to the active policy.

Skipped when no encore binary is built. Deterministic: the server runs one reactor with a fixed
--instance-id and --decision-key-file and the calls go one at a time, so its draws (seeded from decision id and model
version) and the simulated outcomes (numpy, seeded) repeat on every run."""
import time

import grpc
import numpy as np
import pytest

from encore import Client
from encore._proto.encore.v1 import models_pb2
from encore.learn.cli import main
from encore.learn.logs import load_logs
from encore.learn.snapshot import decode_snapshot, read_snapshot


def _serve(binary, args, log_path):
    """Starts `encore serve` with one reactor; returns (process, data port, admin port)."""
    from conftest import start_encore

    return start_encore(binary, ["--threads", "1", *args], log_path)


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    from conftest import encore_binary

    binary = encore_binary()
    if binary is None:
        pytest.skip("the encore binary is absent (.build/{release,debug}/encore); live-server checks skipped")
    work = tmp_path_factory.mktemp("gate")
    log_dir = work / "logs"
    # A fixed decision key too: the trainer's validation split is hashed from the whole id (MAC included).
    key = work / "decision.key"
    key.write_text("9a7e0000000100000000000000000000\n")
    key.chmod(0o600)
    proc, port, admin = _serve(binary, ["--require-ope", "--holdout-share", "0", "--instance-id", "9a7e00000001",
                                        "--decision-key-file", str(key), "--log-dir", str(log_dir)],
                               work / "server.log")
    yield (port, admin), log_dir, work
    proc.terminate()
    proc.wait(timeout=20)


def test_get_snapshot_returns_the_active_snapshot_part_by_part(gated):
    (port, admin), _, _ = gated
    with Client("127.0.0.1", port, admin_port=admin) as c:
        active = c.list_models().active_version
        version, data = c.get_snapshot()
        assert version == active
        snap = decode_snapshot(data)
        assert snap.model_version == active and snap.offers
        raw = models_pb2_grpc_stub(c)
        part = raw.GetSnapshot(models_pb2.GetSnapshotRequest(offset=len(data) // 2), timeout=10)
        assert part.offset == len(data) // 2 and part.data == data[len(data) // 2:] and part.total_bytes == len(data)
        for request, code in ((models_pb2.GetSnapshotRequest(version="no-such-version"), grpc.StatusCode.NOT_FOUND),
                              (models_pb2.GetSnapshotRequest(offset=len(data) + 1), grpc.StatusCode.OUT_OF_RANGE)):
            with pytest.raises(grpc.RpcError) as e:
                raw.GetSnapshot(request, timeout=10)
            assert e.value.code() == code, e.value.details()


def models_pb2_grpc_stub(client):
    from encore._proto.encore.v1 import models_pb2_grpc

    return models_pb2_grpc.ModelsStub(client.admin_channel)


def test_get_snapshot_without_a_snapshot_means_uniform(tmp_path):
    from conftest import encore_binary

    binary = encore_binary()
    if binary is None:
        pytest.skip("the encore binary is absent")
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text('{"offer_id": "a"}\n{"offer_id": "b"}\n')
    proc, port, admin = _serve(binary, ["--catalog", str(catalog)], tmp_path / "server.log")
    try:
        with Client("127.0.0.1", port, admin_port=admin) as c:
            assert c.get_snapshot() is None
            assert c.list_models().active_version == "uniform"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _drive(ports, n, rng):
    """n cart decisions (one slot) with outcomes from a known rule: gift_box converts at 0.6, every
    other offer at 0.02, so a policy that learns to show gift_box beats the demo policy."""
    with Client("127.0.0.1", ports[0], admin_port=ports[1]) as c:
        for i in range(n):
            order = {"total_cents": 2000 + 13 * i, "is_gift": i % 4 == 0, "items": [
                {"sku": f"s{i % 50}", "category": ("home", "toys", "apparel")[i % 3], "price_cents": 2000,
                 "quantity": 1}]}
            r = c.decide("cart", f"c{(i * 7919) % 100000:06d}", order=order, slots=1)
            if not r.placements:
                continue
            offer = r.placements[0].offer_id
            c.report_outcome(r.decision_id, offer, "shown")
            p = 0.6 if offer == "gift_box" else 0.02
            c.report_outcome(r.decision_id, offer, "accepted" if rng.random() < p else "ignored")


def _wait_for(log_dir, decisions, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if len(load_logs([str(log_dir)], [str(log_dir)]).decisions) >= decisions:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not write {decisions} decisions in {timeout}s")


def _push(ports, path, activate=True):
    with Client("127.0.0.1", ports[0], admin_port=ports[1]) as c:
        return c.push_snapshot(str(path), activate=activate)


def test_gate_compares_candidate_and_active_on_the_same_logs(gated, capsys):
    ports, log_dir, work = gated
    with Client("127.0.0.1", ports[0], admin_port=ports[1]) as c:
        demo = c.list_models().active_version
    _drive(ports, 2500, np.random.default_rng(17))
    _wait_for(log_dir, 2500)

    # The trick: a snapshot trained on unrelated synthetic logs. Its own report is excellent on
    # those logs, but it says nothing of the active policy on them: refused.
    synth = work / "synth"
    assert main(["synth", "--out-dir", str(synth), "--n", "3000", "--seed", "5", "--holdout-share", "0"]) == 0
    trick = work / "trick.snap"
    assert main(["train", "--decisions", str(synth), "--outcomes", str(synth), "--out", str(trick),
                 "--bootstrap", "200", "--created-at-ms", "1767225600000"]) == 0
    with pytest.raises(grpc.RpcError) as e:
        _push(ports, trick)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "comparison" in e.value.details() and demo in e.value.details(), e.value.details()

    # The honest path: trained on the server's own logs and compared, on the same held-out
    # decisions, with the policy the server serves (fetched with --server). The candidate that
    # learned gift_box beats the demo policy by a margin the report shows; the gate agrees.
    good = work / "good.snap"
    assert main(["train", "--decisions", str(log_dir), "--outcomes", str(log_dir), "--out", str(good),
                 "--bootstrap", "200", "--server", f"127.0.0.1:{ports[1]}", "--created-at-ms", "1767225660000"]) == 0
    comparison = read_snapshot(str(good)).ope["comparison"]
    assert comparison["active_version"] == demo
    assert comparison["log_window"]["decisions"] > 500 and len(comparison["log_window"]["sha256_of_decision_ids"]) == 64
    assert comparison["candidate_dr_lower_minus_active_dr"] > 0, comparison
    reply = _push(ports, good)
    assert reply.activated

    # A deliberately worse candidate (uniform exploration: no better than chance) compared with
    # the new active policy on the same logs: refused with the numbers.
    worse = work / "worse.snap"
    assert main(["train", "--decisions", str(log_dir), "--outcomes", str(log_dir), "--out", str(worse),
                 "--bootstrap", "200", "--exploration", "uniform", "--server", f"127.0.0.1:{ports[1]}",
                 "--created-at-ms", "1767225720000"]) == 0
    comparison = read_snapshot(str(worse)).ope["comparison"]
    assert comparison["active_version"] == reply.model.version
    assert comparison["candidate_dr_lower_minus_active_dr"] < 0, comparison
    with pytest.raises(grpc.RpcError) as e:
        _push(ports, worse)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "below" in e.value.details(), e.value.details()
    # Force (models.force) still activates it: the gate is for ordinary activations.
    with Client("127.0.0.1", ports[0], admin_port=ports[1]) as c:
        c.push_snapshot(str(worse))  # loading without activation is allowed
        version = read_snapshot(str(worse)).model_version
        with pytest.raises(grpc.RpcError) as e:
            c.activate(version)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert c.activate(version, force=True).version == version
        assert c.list_models().active_version == version
