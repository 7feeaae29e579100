"""Two-slot logs: the slot-0 propensity, not the joint, is what training and OPE weight by.

In one-slot logs the joint propensity and slot 0's are the same number, so a learner that read the
joint would pass every one-slot test. Here the logging policy is evaluated on its own two-slot
logs, where every importance weight pi(a0|x) / p0 must be exactly 1 (up to float32 scores), while
the joint is well below p0 (a weight of pi/joint would be 1/p1 > 1)."""
import json
import os
import tempfile
import time

import numpy as np
import pytest

from encore import Client
from encore.learn.estimators import evaluate
from encore.learn.logs import bandit_data, join_records, load_logs
from encore.learn.snapshot import Exploration, Snapshot, encode_snapshot
from encore.learn.synthetic import generate

from conftest import true_snapshot


def _check_unit_weights(report):
    diag = report["diagnostics"]
    assert diag["mean_weight"] == pytest.approx(1.0, abs=1e-5), diag
    assert diag["max_weight"] == pytest.approx(1.0, abs=1e-5), diag
    est = report["estimates"]
    assert est["ips"]["value"] == pytest.approx(est["logging"]["value"], abs=1e-5)


def _joint_well_below_slot0(decisions):
    two = [d for d in decisions if len(d.get("placements") or []) == 2]
    assert len(two) >= 0.9 * len(decisions), "expected two placements in almost every decision"
    below = [d for d in two if d["joint_propensity"] < 0.9 * d["placements"][0]["propensity"]]
    assert len(below) >= 0.5 * len(two), "the joint must differ from slot 0's propensity for this test to mean anything"
    for d in two:
        p = sorted(d["placements"], key=lambda pl: pl["slot"])
        assert d["joint_propensity"] == pytest.approx(p[0]["propensity"] * p[1]["propensity"], rel=1e-12)


def test_logging_policy_on_its_own_synthetic_two_slot_logs_has_unit_weights():
    policy = true_snapshot(Exploration("softmax", temperature=1.0), noise=0.2, seed=3)
    logs = generate(2000, 12, customers=400, slots=2, holdout_share=0.0, logging=policy)
    _joint_well_below_slot0(logs.decisions)
    data = bandit_data(join_records(logs.decisions, logs.outcomes))
    _check_unit_weights(evaluate(policy, data, bootstrap=50))


SHOP = ["gift_box", "rush_shipping", "shipping_protection", "extended_warranty"]


@pytest.fixture(scope="module")
def logging_server():
    from conftest import encore_binary

    binary = encore_binary()
    if binary is None:
        pytest.skip("the encore binary is absent (.build/{release,debug}/encore); live-server checks skipped")
    work = tempfile.mkdtemp(prefix="encore-two-slot-")
    # The demo with its holdout and relevance threshold off, so every decision places two offers
    # from the whole restricted candidate set.
    config = os.path.join(work, "config.json")
    with open(config, "w") as f:
        json.dump({"rules": {"min_expected_value": -1000000}, "holdout": {"share": 0}}, f)
    log_dir = os.path.join(work, "logs")
    from conftest import start_encore

    proc, port, admin = start_encore(binary, ["--threads", "1", "--config", config, "--log-dir", log_dir],
                                     os.path.join(work, "server.log"))
    yield (port, admin), log_dir
    proc.terminate()
    proc.wait(timeout=20)


def test_logging_policy_on_the_servers_own_two_slot_logs_has_unit_weights(logging_server):
    (port, admin), log_dir = logging_server
    features = ["bias", "order.total_log", "order.items_log", "order.is_gift", "order.category=electronics"]
    rng = np.random.default_rng(8)
    snap = Snapshot(model_version="pytest-two-slot", created_at_millis=1_764_000_000_000, features=features,
                    interactions=[], offers=SHOP, shared_weights=rng.normal(0, 0.3, 5),
                    offer_weights=rng.normal(0, 0.6, (4, 5)), offer_biases=rng.normal(0, 0.5, 4),
                    exploration=Exploration("softmax", temperature=0.1))
    n = 400
    with Client("127.0.0.1", port, admin_port=admin) as c:
        assert c.push_snapshot(encode_snapshot(snap), activate=True).activated
        for i in range(n):
            order = {"total_cents": 1000 + 97 * i, "is_gift": i % 3 == 0, "items": [
                {"sku": f"s{i}", "category": ("electronics", "home")[i % 2], "price_cents": 1000, "quantity": 1 + i % 4}]}
            r = c.decide("cart", f"two-slot-{i}", order=order, slots=2, candidates=SHOP)
            assert r.model_version == snap.model_version and len(r.placements) == 2
    deadline = time.time() + 20
    while True:  # the server writes its logs within a second
        logs = load_logs([log_dir])
        mine = [d for d in logs.decisions if d.get("model_version") == snap.model_version]
        if len(mine) >= n or time.time() > deadline:
            break
        time.sleep(0.2)
    assert len(mine) == n
    _joint_well_below_slot0(mine)
    data = bandit_data(join_records(mine, []))
    _check_unit_weights(evaluate(snap, data, bootstrap=50))
