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

    # A fixed instance id fixes every decision id and with it every random draw, so the counts the
    # tests assert on are the same on every run (with a random one, a run could fall short by chance).
    proc, port, admin = start_encore(binary, ["--threads", "1", "--config", config, "--log-dir", log_dir,
                                              "--instance-id", "2510751"],
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


def test_slot1_model_propensities_agree_with_the_server(logging_server):
    """A snapshot with a slot-1 model (pair terms and slot-1 biases) pushed to the real server:
    every slot-1 propensity the server returns is the one `slate_policy` computes for the logged
    slot-0 offer, the slot-1 choices follow the pair terms, and on its own logs the slate
    estimates have unit slot-1 weights."""
    from encore.learn.policy import Flat
    from encore.learn.slates import Pairs, slate_policy

    (port, admin), log_dir = logging_server
    features = ["bias", "order.total_log", "order.items_log", "order.is_gift", "order.category=electronics"]
    rng = np.random.default_rng(9)
    table = np.zeros((4, 4), dtype=np.float32)
    table[0, 2] = 2.5   # shipping_protection beside gift_box
    table[0, 1] = -2.0  # rush_shipping beside gift_box
    table[2, 3] = -1.5
    snap = Snapshot(model_version="pytest-slot1-model", created_at_millis=1_764_000_000_000, features=features,
                    interactions=[], offers=SHOP, shared_weights=rng.normal(0, 0.3, 5),
                    offer_weights=rng.normal(0, 0.6, (4, 5)), offer_biases=rng.normal(0, 0.5, 4),
                    exploration=Exploration("squarecb", gamma=20.0),
                    slot1_biases=np.array([-0.8, -0.3, 0.1, -0.5], dtype=np.float32), slot1_pairs=table)
    n = 400
    replies = []
    with Client("127.0.0.1", port, admin_port=admin) as c:
        assert c.push_snapshot(encode_snapshot(snap), activate=True).activated
        for i in range(n):
            order = {"total_cents": 1000 + 97 * i, "is_gift": i % 3 == 0, "items": [
                {"sku": f"s{i}", "category": ("electronics", "home")[i % 2], "price_cents": 1000, "quantity": 1 + i % 4}]}
            r = c.decide("cart", f"slot1-model-{i}", order=order, slots=2, candidates=SHOP)
            assert r.model_version == snap.model_version and len(r.placements) == 2
            replies.append(r)
    deadline = time.time() + 20
    while True:
        logs = load_logs([log_dir])
        mine = [d for d in logs.decisions if d.get("model_version") == snap.model_version]
        if len(mine) >= n or time.time() > deadline:
            break
        time.sleep(0.2)
    assert len(mine) == n
    data = bandit_data(join_records(mine, []))
    # The exact slot-1 distribution of every logged decision, from its recomputed context.
    rows = np.arange(len(data))
    flat = Flat.build([data.candidates[i] for i in rows], [data.actions[i] for i in rows])
    pairs = Pairs.build(flat)
    z = data.contexts.dense(snap.features, snap.interactions, rows=rows)
    _, pi1 = slate_policy(snap, z, flat, pairs)
    _, plain1 = slate_policy(Snapshot(**{**snap.__dict__, "slot1_biases": None, "slot1_pairs": None}), z, flat, pairs)
    worst = 0.0
    differs = 0
    for k in rows:
        pos = data.candidates[k].index(data.slot1_actions[k])
        j = pairs.logged_pair(flat, int(k), pos)
        worst = max(worst, abs(pi1[j] - data.slot1_propensities[k]))
        differs += abs(plain1[j] - data.slot1_propensities[k]) > 1e-3
    assert worst < 1e-5, worst
    assert differs > n / 4, "the slot-1 model must change slot 1's propensities for this test to mean anything"
    # Beside gift_box, shipping_protection (+2.5) is slot 1 as often as the slot-1 model says
    # (the sampled count within 4 standard deviations of its expectation), well above what slot
    # 0's scores alone would give.
    sp = flat.offers.index("shipping_protection")
    want_model = want_plain = var = 0.0
    seen = 0
    for k in rows:
        if data.actions[k] != "gift_box" or "shipping_protection" not in data.candidates[k]:
            continue
        g = pairs.group_of_entry[flat.action_pos[k]]
        lo, hi = pairs.starts[g], pairs.starts[g] + pairs.counts[g]
        j = lo + int(np.flatnonzero(flat.offer[pairs.entry[lo:hi]] == sp)[0])
        want_model += pi1[j]
        want_plain += plain1[j]
        var += pi1[j] * (1 - pi1[j])
        seen += data.slot1_actions[k] == "shipping_protection"
    # Both are expectations over the same logged contexts (no sampling noise between them): the
    # pair term must raise shipping_protection's expected count beside gift_box severalfold.
    assert want_model > 3 * want_plain and want_model - want_plain > 5, (want_model, want_plain)
    assert abs(seen - want_model) <= 4 * np.sqrt(var) + 1, (seen, want_model, want_plain)
    rep = evaluate(snap, data, bootstrap=50)
    _check_unit_weights(rep)
    diag = rep["slate"]["diagnostics"]  # w01 = w0 * pi(a1|x, a0) / p1: 1 for the logging policy itself
    assert diag["mean_slate_weight"] == pytest.approx(1.0, abs=1e-5), diag
    assert diag["max_slate_weight"] == pytest.approx(1.0, abs=1e-5), diag
