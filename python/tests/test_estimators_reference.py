"""The vectorised estimators against a second, independent implementation written from the papers'
formulas with plain per-decision loops (no numpy, no shared code but the inputs):

- IPS (Horvitz-Thompson): V = (1/n) sum_i w_i r_i with w_i = pi(a_i|x_i) / p_i
- SNIPS (Swaminathan & Joachims 2015): V = sum_i w_i r_i / sum_i w_i
- DM: V = (1/n) sum_i sum_a pi(a|x_i) q(x_i, a)
- DR (Dudik, Langford & Li 2011): V = DM + (1/n) sum_i w_i (r_i - q(x_i, a_i))

on synthetic logs (seeded: the same numbers every run) logged by uniform and by a softmax policy,
evaluated for several target policies; agreement to 1e-12 (float64 summation order only).
(Open Bandit Pipeline would pull a deep-learning framework into the tests, so it is not used.)"""
import math

import numpy as np
import pytest

from conftest import true_snapshot
from encore.learn.estimators import estimate, reward_model
from encore.learn.logs import bandit_data, join_records
from encore.learn.policy import Flat, policy_distribution
from encore.learn.snapshot import Exploration
from encore.learn.synthetic import generate


def reference(candidates, actions, propensities, rewards, pi_of, q_of):
    """pi_of(i, offer) and q_of(i, offer): target probability and reward-model prediction."""
    n = len(actions)
    ips = dm = dr_correction = 0.0
    weight_sum = weighted_reward = 0.0
    for i in range(n):
        a, p, r = actions[i], propensities[i], rewards[i]
        w = pi_of(i, a) / p
        ips += w * r
        weighted_reward += w * r
        weight_sum += w
        direct = math.fsum(pi_of(i, c) * q_of(i, c) for c in candidates[i])
        dm += direct
        dr_correction += w * (r - q_of(i, a))
    return {"ips": ips / n, "snips": weighted_reward / weight_sum, "dm": dm / n, "dr": (dm + dr_correction) / n}


LOGGERS = {"uniform": None, "softmax": true_snapshot(Exploration("softmax", temperature=0.5), noise=0.3, seed=2)}
TARGETS = {"squarecb": Exploration("squarecb", gamma=30.0), "epsilon": Exploration("epsilon_greedy", epsilon=0.1),
           "softmax": Exploration("softmax", temperature=0.2)}


@pytest.mark.parametrize("logger", sorted(LOGGERS))
@pytest.mark.parametrize("target_kind", sorted(TARGETS))
def test_estimators_agree_with_an_independent_implementation(logger, target_kind):
    logs = generate(1500, 21, customers=300, holdout_share=0.0, logging=LOGGERS[logger])
    data = bandit_data(join_records(logs.decisions, logs.outcomes))
    target = true_snapshot(TARGETS[target_kind], noise=0.1, seed=5)
    flat = Flat.build(data.candidates, data.actions)
    z = data.contexts.dense(target.features, target.interactions)
    pi, _ = policy_distribution(target, z, flat)
    q, _ = reward_model(data, flat)
    got = estimate(pi, flat, data.propensities, data.rewards, q, bootstrap=0)

    # Per-decision lookups built from the flat arrays by plain loops.
    pi_table, q_table = [], []
    for i in range(len(data)):
        start, count = int(flat.starts[i]), int(flat.counts[i])
        names = [flat.offers[int(flat.offer[k])] for k in range(start, start + count)]
        pi_table.append({o: float(pi[k]) for o, k in zip(names, range(start, start + count))})
        q_table.append({o: float(q[k]) for o, k in zip(names, range(start, start + count))})
    want = reference([list(c) for c in data.candidates], list(data.actions), [float(p) for p in data.propensities],
                     [float(r) for r in data.rewards], lambda i, o: pi_table[i][o], lambda i, o: q_table[i][o])
    for name in ("ips", "snips", "dm", "dr"):
        assert got[name]["value"] == pytest.approx(want[name], abs=1e-12, rel=1e-12), name
    # And the target really differs from the logger (weights not all 1), so the check has teeth.
    w = [pi_table[i][a] / p for i, (a, p) in enumerate(zip(data.actions, data.propensities))]
    assert max(w) > 1.5 and min(w) < 0.5
