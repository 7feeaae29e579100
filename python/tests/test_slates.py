"""Two-slot slate estimators with known answers (encore.learn.slates).

Every logged slate of one context is enumerated with its exact logging probability, so the
expectation of each estimator is computed exactly (no sampling) and compared with the target's
true slate value: per-slot IPS and DR with the conditional propensities are unbiased for any
slot-1 reward (interactions included) and any reward model; the pseudo-inverse estimator is
unbiased when the slate reward is additive over slots and biased when it is not."""
import itertools

import numpy as np
import pytest

from encore.learn.logs import bandit_data, join_records
from encore.learn.policy import Flat, distribution
from encore.learn.slates import Pairs, SlateData, logging_distributions, slate_policy, slate_report, slate_terms
from encore.learn.snapshot import Exploration, Snapshot

CANDS = ["a", "b", "c", "d", "e"]


def policy(biases, exploration):
    return Snapshot(model_version="p", created_at_millis=0, features=["bias"], interactions=[], offers=list(CANDS),
                    shared_weights=[0.0], offer_weights=np.zeros((len(CANDS), 1)), offer_biases=biases,
                    exploration=exploration)


LOGGING = policy([0.2, -0.4, 0.9, 0.0, -1.0], Exploration("softmax", temperature=0.7))
TARGET = policy([1.5, 0.3, -0.2, 0.8, -0.5], Exploration("squarecb", gamma=8.0))


def server_slot1(rewards, exploration, j):
    """The server's slot-1 draw, scalar: swap slot 0's position with the last, drop the last."""
    order = list(range(len(rewards)))
    order[j], order[-1] = order[-1], order[j]
    order = order[:-1]
    return order, distribution([rewards[k] for k in order], exploration)


def test_pairs_follow_the_servers_slot1_order_and_probabilities():
    flat = Flat.build([CANDS], [CANDS[0]])
    pairs = Pairs.build(flat)
    z = np.ones((1, 1), dtype=np.float32)
    pi0, pi1 = slate_policy(TARGET, z, flat, pairs)
    rewards = 1 / (1 + np.exp(-np.array(TARGET.offer_biases, dtype=np.float64)))
    assert pi0 == pytest.approx(distribution(rewards, TARGET.exploration), abs=1e-6)
    for j in range(len(CANDS)):
        order, p = server_slot1(rewards, TARGET.exploration, j)
        g = pairs.group_of_entry[j]
        s, c = pairs.starts[g], pairs.counts[g]
        assert list(pairs.entry[s:s + c]) == order
        assert pi1[s:s + c] == pytest.approx(p, abs=1e-6)
        assert pi1[s:s + c].sum() == pytest.approx(1.0)


def enumerate_slates():
    """Every ordered slate of the one context, with its logging and target probabilities."""
    slates = list(itertools.permutations(range(len(CANDS)), 2))
    flat = Flat.build([CANDS] * len(slates), [CANDS[a] for a, _ in slates])
    pairs = Pairs.build(flat)
    z = np.ones((len(slates), 1), dtype=np.float32)
    mu0, mu1 = slate_policy(LOGGING, z, flat, pairs)
    pi0, pi1 = slate_policy(TARGET, z, flat, pairs)
    n = len(slates)
    pair_pos = np.array([pairs.logged_pair(flat, i, b) for i, (_, b) in enumerate(slates)])
    p0 = mu0[flat.action_pos]
    p1 = mu1[pair_pos]
    prob_mu = p0 * p1
    prob_pi = pi0[flat.action_pos] * pi1[pair_pos]
    assert prob_mu.sum() == pytest.approx(1.0) and prob_pi.sum() == pytest.approx(1.0)
    return slates, flat, pairs, (mu0, mu1), (pi0, pi1), pair_pos, p0, p1, prob_mu, prob_pi, n


def slate_data(flat, pairs, pair_pos, slates, p0, p1, r0, r1):
    n = len(slates)
    return SlateData(np.arange(n), flat, pairs, np.ones(n, dtype=bool), pair_pos,
                     np.array([b for _, b in slates]), p0, p1, r0, r1)


RNG = np.random.default_rng(4)
PHI0 = RNG.uniform(0.05, 0.6, len(CANDS))     # slot-0 reward of each offer
PHI1 = RNG.uniform(0.02, 0.3, len(CANDS))     # slot-1 reward of each offer (position effect: lower)
INTERACTION = np.zeros((len(CANDS), len(CANDS)))
INTERACTION[0, 1] = 0.25   # b beside a sells better
INTERACTION[2, 3] = -0.15  # d beside c cannibalised


@pytest.mark.parametrize("additive", [True, False])
def test_expectations_of_the_slate_estimators_are_exact(additive):
    slates, flat, pairs, mu, pi, pair_pos, p0, p1, prob_mu, prob_pi, n = enumerate_slates()
    r0 = np.array([PHI0[a] for a, _ in slates])
    r1 = np.array([PHI1[b] + (0.0 if additive else INTERACTION[a, b]) for a, b in slates])
    true_value = float(prob_pi @ (r0 + r1))
    true_slot1 = float(prob_pi @ r1)
    sd = slate_data(flat, pairs, pair_pos, slates, p0, p1, r0, r1)
    # Any reward models (functions of the context, here one, and the offers): DR stays unbiased
    # (here deliberately wrong ones).
    q0 = RNG.uniform(0, 1, len(CANDS))[flat.offer]
    q1 = RNG.uniform(0, 1, (len(CANDS), len(CANDS)))[flat.offer[pairs.group_entry[pairs.group_of_pair]],
                                                      flat.offer[pairs.entry]]
    terms = slate_terms(pi[0], pi[1], sd, q0, q1, logging=mu)
    expect = {k: float(prob_mu @ v) for k, v in terms.items()}
    assert expect["ips0"] + expect["ips1"] == pytest.approx(true_value, rel=1e-9)
    assert expect["ips1"] == pytest.approx(true_slot1, rel=1e-9)
    assert expect["dr0"] + expect["dr1"] == pytest.approx(true_value, rel=1e-9)
    assert expect["w01"] == pytest.approx(1.0, rel=1e-9)  # the slate weights average to one
    if additive:
        assert expect["pi_total"] == pytest.approx(true_value, rel=1e-9)
    else:
        # Not additive: the pseudo-inverse estimator, which sees only the total, is biased.
        assert abs(expect["pi_total"] - true_value) > 1e-4
    # The target evaluated on its own logs: every slate weight is one, PI's term is the reward.
    own = slate_data(flat, pairs, pair_pos, slates, pi[0][flat.action_pos], pi[1][pair_pos], r0, r1)
    t = slate_terms(pi[0], pi[1], own, None, None, logging=pi)
    assert t["w01"] == pytest.approx(np.ones(n)) and float(prob_pi @ t["pi_total"]) == pytest.approx(true_value)


def records_for(slates, p0, p1, r0_accept, r1_accept, prefix="d"):
    decisions, outcomes = [], []
    for i, ((a, b), q0, q1) in enumerate(zip(slates, p0, p1)):
        did = f"{prefix}{i}"
        decisions.append({"type": "decision", "decision_id": did, "time_ms": 1000 + i, "surface": "cart",
                          "model_version": "logger", "exploration": "softmax(temperature=0.7)", "holdout": False,
                          "order": {"total_cents": 1000}, "candidates": CANDS,
                          "placements": [{"offer_id": CANDS[a], "slot": 0, "propensity": float(q0)},
                                         {"offer_id": CANDS[b], "slot": 1, "propensity": float(q1)}]})
        for offer, ok in ((CANDS[a], r0_accept[i]), (CANDS[b], r1_accept[i])):
            if ok:
                outcomes.append({"type": "outcome", "decision_id": did, "offer_id": offer, "outcome": "accepted"})
    return decisions, outcomes


def test_report_on_sampled_logs_rebuilds_the_logging_policy_and_covers_the_truth():
    """Sampled two-slot logs (conditional propensities) through bandit_data: the logging
    distribution rebuilt from its snapshot matches every logged propensity, and the 95%
    intervals of the per-slot DR total and of PI (additive rewards) hold the true value."""
    slates, flat, pairs, mu, pi, pair_pos, p0, p1, prob_mu, prob_pi, _ = enumerate_slates()
    rng = np.random.default_rng(11)
    n = 6000
    pick = rng.choice(len(slates), size=n, p=prob_mu / prob_mu.sum())
    drawn = [slates[k] for k in pick]
    acc0 = rng.random(n) < np.array([PHI0[a] for a, _ in drawn])
    acc1 = rng.random(n) < np.array([PHI1[b] for _, b in drawn])
    decisions, outcomes = records_for(drawn, p0[pick], p1[pick], acc0, acc1)
    data = bandit_data(join_records(decisions, outcomes))
    assert data.two_slot().all() and data.slot1_propensities == pytest.approx(p1[pick])
    logger = Snapshot(**{**LOGGING.__dict__, "model_version": "logger"})
    rep = slate_report(TARGET, data, bootstrap=300, seed=1, logging_policies={"logger": logger})
    assert rep["logging_policy_check"]["max_abs_diff_vs_logged_propensities"] < 1e-6
    truth = float(prob_pi @ np.array([PHI0[a] + PHI1[b] for a, b in slates]))
    for name in ("ips", "dr", "pseudo_inverse"):
        lo, hi = rep["total"][name]["ci95"]
        assert lo <= truth <= hi, (name, rep["total"][name], truth)
    # Without the logging snapshot, PI is not computed and the report says why.
    rep2 = slate_report(TARGET, data, bootstrap=50, seed=1)
    assert "pseudo_inverse" not in rep2["total"] and "pseudo_inverse_note" in rep2
    assert logging_distributions(data, SlateData.build(data), {}) is None


def test_training_on_two_slot_logs_uses_slot1_and_compares_slates():
    """The trainer on two-slot logs: slot-1 placements join the fit (pool), gamma is chosen on the
    slate, the report carries the slate section, the comparison's estimand is the slate, and
    `auto` keeps whichever of pool and ignore has the better slate DR lower bound."""
    from encore.learn.synthetic import generate
    from encore.learn.train import TrainConfig, train

    logs = generate(3000, 5, customers=500, slots=2, holdout_share=0.0)
    data = bandit_data(join_records(logs.decisions, logs.outcomes))
    assert data.two_slot().mean() > 0.9
    snaps = {}
    for mode in ("model", "pool", "ignore", "auto"):
        cfg = TrainConfig(bootstrap=50, seed=1, weighting="none", slot1=mode, created_at_millis=1_767_225_600_000,
                          active=None, active_version="uniform")
        snap = snaps[mode] = train(data, cfg)
        assert all(g["estimand"] == "slate" for g in snap.ope["gamma_search"])
        assert "slate" in snap.ope and snap.ope["comparison"]["estimand"] == "slate"
        comp = snap.ope["comparison"]
        assert comp["candidate_estimates"]["dr"] == snap.ope["slate"]["total"]["dr"]
        assert "candidate_estimates_slot0" in comp
    assert snaps["pool"].ope["training"]["slot1_placements"] > 1000
    assert snaps["model"].ope["training"]["slot1_placements"] == snaps["pool"].ope["training"]["slot1_placements"]
    assert snaps["ignore"].ope["training"]["slot1_placements"] == 0
    assert snaps["model"].has_slot1 and not snaps["pool"].has_slot1 and not snaps["ignore"].has_slot1
    chosen = snaps["auto"].ope["training"]["slot1"]
    assert chosen.startswith("auto (chose ")

    def lower(s):
        g = [x for x in s.ope["gamma_search"] if x["gamma"] == s.exploration.gamma][0]
        return g["dr_ci95"][0]

    better = None
    for mode in ("model", "pool", "ignore"):  # the first of the best, in auto's order
        if better is None or lower(snaps[mode]) > lower(snaps[better]) + 1e-12:
            better = mode
    assert chosen == f"auto (chose {better} by the slate DR lower bound)"
    assert snaps["auto"].model_version == snaps[better].model_version


def test_slate_policy_applies_the_slot1_model_like_the_server():
    """With a slot-1 model, slot 1's scores are (slot-0 score + slot-1 bias) + pair term in
    float32, then the link and the exploration over the server's slot-1 order; slot 0 is as
    without it."""
    k = len(CANDS)
    rng = np.random.default_rng(4)
    b1 = rng.normal(-0.5, 0.3, k).astype(np.float32)
    table = rng.normal(0, 1.0, (k, k)).astype(np.float32)
    snap = policy(TARGET.offer_biases, TARGET.exploration)
    snap.slot1_biases, snap.slot1_pairs = b1, table
    flat = Flat.build([CANDS], [CANDS[0]])
    pairs = Pairs.build(flat)
    z = np.ones((1, 1), dtype=np.float32)
    pi0, pi1 = slate_policy(snap, z, flat, pairs)
    plain0, plain1 = slate_policy(TARGET, z, flat, pairs)
    assert np.array_equal(pi0, plain0)
    raw = np.array(TARGET.offer_biases, dtype=np.float32)
    for j in range(k):
        order, _ = server_slot1(list(range(k)), TARGET.exploration, j)
        scores = [float(np.float32(np.float32(raw[b] + b1[b]) + table[j, b])) for b in order]
        want = distribution([1 / (1 + np.exp(-s)) for s in scores], TARGET.exploration)
        g = pairs.group_of_entry[j]
        s, c = pairs.starts[g], pairs.counts[g]
        assert pi1[s:s + c] == pytest.approx(want, abs=1e-12)
    assert not np.allclose(pi1, plain1)
    # Candidates the snapshot does not list take no slot-1 terms.
    flat2 = Flat.build([CANDS + ["zz"]], [CANDS[0]])
    pairs2 = Pairs.build(flat2)
    from encore.learn.slates import slot1_scores
    from encore.learn.policy import flat_scores

    s1 = slot1_scores(snap, flat_scores(snap, z, flat2), flat2, pairs2)
    zz = flat2.offers.index("zz")
    mask = flat2.offer[pairs2.entry] == zz
    assert mask.any() and np.all(s1[mask] == 0.0)  # shared weight 0, bias 0, no terms


def test_trainer_learns_the_pair_terms_of_synthetic_slates():
    """Slot-1 acceptance of shipping_protection beside gift_box x3, gift_box beside
    shipping_protection x0.2: the slot-1 model's pair terms take those signs, and its slot-1
    biases carry the position effect (slot 1 accepted at half slot 0's rate: negative)."""
    from encore.learn.synthetic import generate
    from encore.learn.train import TrainConfig, train

    logs = generate(6000, 9, customers=800, slots=2, holdout_share=0.0,
                    slot1_pairs={("gift_box", "shipping_protection"): 3.0, ("shipping_protection", "gift_box"): 0.2})
    data = bandit_data(join_records(logs.decisions, logs.outcomes))
    snap = train(data, TrainConfig(bootstrap=50, seed=1, weighting="none", gamma=100.0,
                                   created_at_millis=1_767_225_600_000))
    assert snap.has_slot1 and snap.ope["training"]["slot1_model"].startswith("per-offer slot-1 bias")
    i, j = snap.offers.index("gift_box"), snap.offers.index("shipping_protection")
    assert snap.slot1_pairs[i, j] > 0.5, snap.slot1_pairs[i, j]
    assert snap.slot1_pairs[j, i] < -0.5, snap.slot1_pairs[j, i]
    assert np.median(snap.slot1_biases) < -0.2, snap.slot1_biases
    # Pairs with no effect stay near 0.
    others = [snap.slot1_pairs[a, b] for a in range(len(snap.offers)) for b in range(len(snap.offers))
              if a != b and {a, b} != {i, j}]
    assert np.median(np.abs(others)) < 0.3
    # The slate estimates account for it: the snapshot's slot-1 model is part of the evaluated
    # policy, so dropping it changes the slate estimate and not slot 0's.
    from encore.learn.estimators import evaluate

    plain = Snapshot(**{**snap.__dict__, "slot1_biases": None, "slot1_pairs": None})
    with_model = evaluate(snap, data, bootstrap=20)
    without = evaluate(plain, data, bootstrap=20)
    assert with_model["estimates"]["dr"]["value"] == pytest.approx(without["estimates"]["dr"]["value"])
    assert with_model["slate"]["slot1"]["dr"]["value"] != pytest.approx(without["slate"]["slot1"]["dr"]["value"])

