"""The Python policy math against hand-computed values (the server's Exploration.swift formulas)."""
import math

import numpy as np
import pytest

from encore.learn.features import ContextMatrix, record_features
from encore.learn.policy import Flat, distribution, flat_distribution, policy_distribution
from encore.learn.snapshot import Exploration, Snapshot


def test_squarecb_hand_values():
    p = distribution([0.2, 0.5, 0.4], Exploration("squarecb", gamma=10))
    # best is index 1; others 1/(3 + 10 (0.5 - r))
    assert p == pytest.approx([1 / 6, 1 - 1 / 6 - 1 / 4, 1 / 4], abs=1e-12)


def test_squarecb_ties_go_to_the_first_max():
    p = distribution([0.5, 0.5, 0.1], Exploration("squarecb", gamma=10))
    assert p == pytest.approx([1 - 1 / 3 - 1 / 7, 1 / 3, 1 / 7], abs=1e-12)


def test_squarecb_gamma_zero_is_uniform_and_single_candidate_is_certain():
    assert distribution([0.9, 0.1, 0.3, 0.2], Exploration("squarecb", gamma=0)) == pytest.approx([0.25] * 4)
    assert distribution([0.3], Exploration("squarecb", gamma=100)) == pytest.approx([1.0])


def test_epsilon_greedy_hand_values_with_ties():
    p = distribution([0.2, 0.5, 0.5], Exploration("epsilon_greedy", epsilon=0.1))
    assert p == pytest.approx([0.1 / 3, 0.1 / 3 + 0.45, 0.1 / 3 + 0.45], abs=1e-12)


def test_softmax_hand_values():
    t = 0.5
    p = distribution([0.0, t * math.log(2), t * math.log(4)], Exploration("softmax", temperature=t))
    assert p == pytest.approx([1 / 7, 2 / 7, 4 / 7], abs=1e-12)


def test_uniform():
    assert distribution([3.0, 1.0, 2.0, 0.0], Exploration("uniform")) == pytest.approx([0.25] * 4)


@pytest.mark.parametrize("e", [Exploration("squarecb", gamma=37.0), Exploration("epsilon_greedy", epsilon=0.2),
                               Exploration("softmax", temperature=0.3), Exploration("uniform")])
def test_vectorised_matches_reference(e):
    rng = np.random.default_rng(5)
    cands, rewards = [], []
    for i in range(200):
        k = int(rng.integers(1, 7))
        r = np.round(rng.random(k), 1)  # rounding makes ties common
        cands.append([f"o{j}" for j in range(k)])
        rewards.append(r)
    flat = Flat.build(cands, [c[0] for c in cands])
    got = flat_distribution(np.concatenate(rewards), flat, e)
    want = np.concatenate([distribution(r, e) for r in rewards])
    assert got == pytest.approx(want, abs=1e-12)
    assert flat.segment_sum(got) == pytest.approx(np.ones(len(cands)))


def test_scores_follow_the_server():
    # z = [bias, total_log, is_gift, total_log*is_gift]; offer A has its own row; B uses shared only.
    snap = Snapshot(model_version="t", created_at_millis=0,
                    features=["bias", "order.total_log", "order.is_gift"], interactions=[(1, 2)],
                    offers=["A"], shared_weights=[-1.0, 0.5, 0.0, 0.0], offer_weights=[[0.0, 0.0, 1.0, 0.25]],
                    offer_biases=[0.5], exploration=Exploration("squarecb", gamma=10))
    rec = {"surface": "cart", "order": {"total_cents": 9900, "is_gift": True, "items": []}}
    feats = record_features(rec)
    assert feats["order.total_log"] == pytest.approx(math.log(100), rel=1e-6)
    ctx = ContextMatrix()
    ctx.add(feats)
    z = ctx.dense(snap.features, snap.interactions)
    flat = Flat.build([["A", "B"]], ["A"])
    p, r = policy_distribution(snap, z, flat)
    tl = math.log(100)
    score_a, score_b = 0.5 + 0.75 * tl, -1 + 0.5 * tl
    sig = lambda s: 1 / (1 + math.exp(-s))
    assert r == pytest.approx([sig(score_a), sig(score_b)], rel=1e-6)
    # SquareCB: B gets 1/(2 + 10 (r_A - r_B)), A the rest.
    pb = 1 / (2 + 10 * (sig(score_a) - sig(score_b)))
    assert p == pytest.approx([1 - pb, pb], rel=1e-6)


def test_record_features_names_and_values():
    rec = {"surface": "payment", "known_customer": True,
           "order": {"total_cents": -5, "is_gift": False, "shipping_method": "express", "channel": "app",
                     "device": "mobile", "country": "DE",
                     "items": [{"category": "electronics", "quantity": 2}, {"category": "home", "quantity": 1},
                               {"category": "", "quantity": 0}]},
           "customer": {"segments": ["vip"], "features": {"orders_log": 1.5, "zero": 0.0}},
           "request_features": {"session_minutes": 4.0}}
    f = record_features(rec)
    assert f["bias"] == 1 and f["order.total_log"] == 0.0  # max(total, 0)
    assert f["order.items_log"] == pytest.approx(math.log(4), rel=1e-6)
    assert "order.is_gift" not in f
    for name in ("order.category=electronics", "order.category=home", "order.shipping=express", "order.channel=app",
                 "order.device=mobile", "order.country=DE", "surface=payment", "customer.known", "segment=vip"):
        assert f[name] == 1.0, name
    assert f["customer.orders_log"] == 1.5 and f["request.session_minutes"] == 4.0
    assert "order.category=" not in f and "customer.zero" not in f
