"""Two-slot slates: the server's slot-1 rule, exact slate distributions, and slate estimators.

The server (Sources/EncoreEngine/DecisionWorkspace.swift) draws slot 1 with the same exploration
as slot 0, from the candidates left once slot 0's offer is removed. It removes it by moving the
last candidate into slot 0's position (so the order, which decides SquareCB's first maximum among
equal scores, is that one), and logs slot 1's propensity conditional on slot 0's offer. Without
a slot-1 model in the snapshot, slot 1's scores are slot 0's; with one (the SLOT1 section),
each remaining candidate's raw score gets its slot-1 bias and its pair term with slot 0's offer
added (float32) before the link. `slate_policy` mirrors that exactly.

Estimators of a target policy's slate value from two-slot logs (docs/learning.md, "Two-slot
slates"), for decision i with logged slate (a0, a1), logged propensities p0 = mu(a0|x) and
p1 = mu(a1|x, a0) (conditional), rewards r0, r1, target pi:

- per slot 0: IPS/SNIPS/DR with w0 = pi(a0|x) / p0 (as in estimators.py);
- per slot 1: the weight of the whole slate, w01 = w0 * pi(a1|x, a0) / p1, since slot 1's reward
  may depend on what sits in slot 0: IPS1 = w01 r1; DR1 = sum_a pi(a) sum_b pi(b|a) q1(x,a,b)
  + w01 (r1 - q1(x,a0,a1)) (the two-step doubly robust estimator; unbiased with the logged
  conditional propensities whatever q1 is), q1 a cross-fitted per-offer regression of slot-1
  rewards on the context and slot 0's offer;
- slate total: the sum of the per-slot terms (IPS, SNIPS, DR), and the pseudo-inverse estimator
  (Swaminathan et al., "Off-policy evaluation for slate recommendation", NeurIPS 2017):
  V = (1/n) sum_i (r0 + r1) theta_pi(x_i)^T Gamma_mu(x_i)^+ 1_{s_i}, with theta_pi the target's
  marginal probabilities of (slot, offer) and Gamma_mu = E_mu[1_s 1_s^T] the logging policy's; it
  uses only the slate's total reward and is unbiased when that total is additive over slots
  (each slot's reward depends on its own offer only). It needs the logging policy's whole
  distribution, so the snapshots that logged (by model version) must be given.

95% intervals: percentile bootstrap over decisions (seeded), reward models held fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .estimators import fold_of
from .features import vocabulary
from .logs import BanditData
from .models import fit_hierarchical
from .policy import Flat, flat_distribution, flat_scores, link, policy_distribution
from .snapshot import Exploration, Snapshot


@dataclass
class Pairs:
    """Slot 1's candidates after each possible slot-0 choice. Group g is the flattened candidate
    `group_entry[g]` of `flat` taken for slot 0; its pair entries starts[g]..starts[g]+counts[g]-1
    are the remaining candidates (flat indices `entry`) in the server's slot-1 order."""
    group_entry: np.ndarray
    group_of_entry: np.ndarray  # flat entry -> group (-1: its decision has a single candidate)
    entry: np.ndarray
    group_of_pair: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @classmethod
    def build(cls, flat: Flat) -> "Pairs":
        groups, entries, gof, starts, counts = [], [], [], [], []
        group_of_entry = np.full(len(flat.dec), -1, dtype=np.int64)
        k = 0
        for s, m in zip(flat.starts.tolist(), flat.counts.tolist()):
            if m < 2:
                continue
            base = np.arange(s, s + m - 1, dtype=np.int64)
            for j in range(m):
                row = base.copy()
                if j < m - 1:
                    row[j] = s + m - 1
                g = len(groups)
                group_of_entry[s + j] = g
                groups.append(s + j)
                entries.append(row)
                gof.append(np.full(m - 1, g, dtype=np.int64))
                starts.append(k)
                counts.append(m - 1)
                k += m - 1
        cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64))
        return cls(np.array(groups, dtype=np.int64), group_of_entry, cat(entries), cat(gof),
                   np.array(starts, dtype=np.int64), np.array(counts, dtype=np.int64))

    def logged_pair(self, flat: Flat, decision: int, a1_position: int) -> int:
        """The pair index of the logged slot-1 offer (candidate position `a1_position`) of
        `decision`, given its logged slot-0 offer."""
        e0 = int(flat.action_pos[decision])
        g = int(self.group_of_entry[e0])
        s, m = int(flat.starts[decision]), int(flat.counts[decision])
        j0 = e0 - s
        k = a1_position if a1_position < m - 1 else j0
        return int(self.starts[g]) + k


def slate_policy(snap: Snapshot | None, z: np.ndarray | None, flat: Flat, pairs: Pairs,
                 exploration: Exploration | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pi0 over the flattened candidates, pi1 over the pair entries: slot 1's probability given
    the group's slot-0 offer) of `snap` as the server draws them; None is the uniform policy."""
    if snap is None:
        pi0 = 1.0 / np.repeat(flat.counts, flat.counts).astype(np.float64)
        pi1 = 1.0 / np.repeat(pairs.counts, pairs.counts).astype(np.float64)
        return pi0, pi1
    scores = flat_scores(snap, z, flat)
    rewards = link(snap, scores)
    pi0 = flat_distribution(rewards, flat, exploration or snap.exploration)
    if not len(pairs.entry):
        return pi0, np.zeros(0)
    if not snap.has_slot1:
        return pi0, flat_distribution(rewards[pairs.entry], pairs, exploration or snap.exploration)
    r1 = link(snap, slot1_scores(snap, scores, flat, pairs))
    return pi0, flat_distribution(r1, pairs, exploration or snap.exploration)


def slot1_scores(snap: Snapshot, scores: np.ndarray, flat: Flat, pairs: Pairs) -> np.ndarray:
    """Slot-1 raw score of every pair entry under a snapshot with a slot-1 model, as the server
    computes it (DecisionWorkspace.conditionSlot1): in float32, (slot-0 score + slot-1 bias of
    the offer) + the pair term (slot-0 offer, offer); offers the snapshot does not list add
    nothing and take part in no pair term."""
    own = {o: i for i, o in enumerate(snap.offers)}
    row = np.array([own.get(o, -1) for o in flat.offers], dtype=np.int64)
    b_row = row[flat.offer[pairs.entry]]
    a_row = row[flat.offer[pairs.group_entry[pairs.group_of_pair]]]
    bias = np.where(b_row >= 0, snap.slot1_biases[np.maximum(b_row, 0)], np.float32(0)).astype(np.float32)
    both = (a_row >= 0) & (b_row >= 0)
    pair = np.where(both, snap.slot1_pairs[np.maximum(a_row, 0), np.maximum(b_row, 0)], np.float32(0)).astype(
        np.float32)
    s = scores[pairs.entry].astype(np.float32) + bias
    s = np.where(both, s + pair, s).astype(np.float32)
    return s.astype(np.float64)


def slot1_rewards(snap: Snapshot, z: np.ndarray, flat: Flat, pairs: Pairs) -> np.ndarray:
    """Predicted slot-1 reward of every pair entry (the server's slot-1 scores through the link)."""
    scores = flat_scores(snap, z, flat)
    if not snap.has_slot1:
        return link(snap, scores)[pairs.entry]
    return link(snap, slot1_scores(snap, scores, flat, pairs))


def slot1_marginals(pi0: np.ndarray, pi1: np.ndarray, pairs: Pairs, size: int) -> np.ndarray:
    """P(offer in slot 1) for every flattened candidate: sum over slot-0 offers a of pi0(a) pi1(.|a)."""
    out = np.zeros(size)
    if len(pairs.entry):
        np.add.at(out, pairs.entry, pi0[pairs.group_entry[pairs.group_of_pair]] * pi1)
    return out


def slot1_value(pi0: np.ndarray, pi1: np.ndarray, values: np.ndarray, flat: Flat, pairs: Pairs) -> np.ndarray:
    """Per decision: sum_a pi0(a) sum_b pi1(b|a) values(a, b), `values` over the pair entries."""
    per_group = np.add.reduceat(pi1 * values, pairs.starts) if len(pairs.starts) else np.zeros(0)
    per_entry = np.zeros(len(flat.dec))
    per_entry[pairs.group_entry] = per_group
    return flat.segment_sum(pi0 * per_entry)


@dataclass
class SlateData:
    """The logged slates of the decisions `rows` of a BanditData, in the shapes above."""
    rows: np.ndarray
    flat: Flat
    pairs: Pairs
    two: np.ndarray        # (n,) bool: a second offer was placed
    pair_pos: np.ndarray   # (n,) pair index of the logged slot-1 offer (-1 without one)
    a1_pos: np.ndarray     # (n,) candidate position of the logged slot-1 offer (-1 without one)
    p0: np.ndarray
    p1: np.ndarray
    r0: np.ndarray
    r1: np.ndarray

    @classmethod
    def build(cls, data: BanditData, rows: np.ndarray | None = None, flat: Flat | None = None) -> "SlateData":
        rows = np.arange(len(data)) if rows is None else np.asarray(rows)
        if flat is None:
            flat = Flat.build([data.candidates[i] for i in rows], [data.actions[i] for i in rows])
        pairs = Pairs.build(flat)
        n = len(rows)
        two = np.zeros(n, dtype=bool)
        pair_pos = np.full(n, -1, dtype=np.int64)
        a1_pos = np.full(n, -1, dtype=np.int64)
        for k, i in enumerate(rows):
            a1 = data.slot1_actions[i] if data.slot1_actions else None
            if a1 is None:
                continue
            pos = data.candidates[i].index(a1)
            two[k] = True
            a1_pos[k] = pos
            pair_pos[k] = pairs.logged_pair(flat, k, pos)
        p1 = data.slot1_propensities[rows] if len(data.slot1_propensities) else np.zeros(n)
        r1 = data.slot1_rewards[rows] if len(data.slot1_rewards) else np.zeros(n)
        return cls(rows, flat, pairs, two, pair_pos, a1_pos, data.propensities[rows], np.where(two, p1, 1.0),
                   data.rewards[rows], np.where(two, r1, 0.0))


def slot1_reward_model(data: BanditData, sd: SlateData, folds: int = 2, min_count: int = 5,
                       lam_shared: float = 1.0, lam_offer: float = 10.0) -> tuple[np.ndarray, dict[str, Any]]:
    """Cross-fitted q1(x, a, b) for every pair entry: a per-offer regression (shared + per-offer,
    as the server's scorer) of slot-1 rewards on the context and a one-hot of slot 0's offer, so
    that the reward of b can depend on what sits above it. Zeros when no slate has two offers."""
    flat, pairs = sd.flat, sd.pairs
    q1 = np.zeros(len(pairs.entry))
    family = "logistic" if data.reward_kind == "conversion" else "gaussian"
    two_rows = sd.rows[sd.two]
    info = {"kind": "per-offer regression of slot-1 rewards on the context and slot 0's offer (one-hot), "
                    f"{folds}-fold cross-fitted", "slates": int(len(two_rows))}
    if len(two_rows) == 0 or len(pairs.entry) == 0:
        return q1, info
    features = vocabulary(data.contexts, two_rows, min_count=min_count)
    z = data.contexts.dense(features, rows=sd.rows).astype(np.float64)
    width, k_off = z.shape[1], len(flat.offers)
    local = np.flatnonzero(sd.two)
    a0 = flat.offer[flat.action_pos[local]]
    b = flat.offer[flat.starts[local] + sd.a1_pos[local]]
    x = np.zeros((len(local), width + k_off))
    x[:, :width] = z[local]
    x[np.arange(len(local)), width + a0] = 1.0
    ids = [data.decision_ids[i] for i in two_rows]
    fold = fold_of(ids, folds) if folds > 1 and len(local) >= 2 * folds else np.zeros(len(local), dtype=np.int64)
    dec_fold = np.full(len(sd.rows), -1, dtype=np.int64)
    dec_fold[local] = fold
    if folds > 1:  # decisions without a second offer: their fold by id too (they are only predicted for)
        rest = np.flatnonzero(~sd.two)
        if len(rest):
            dec_fold[rest] = fold_of([data.decision_ids[sd.rows[i]] for i in rest], folds)
    nfolds = max(int(fold.max()) + 1, 1)
    if nfolds == 1:
        dec_fold[:] = 0
    pair_dec = flat.dec[pairs.group_entry[pairs.group_of_pair]]
    pair_a = flat.offer[pairs.group_entry[pairs.group_of_pair]]
    pair_b = flat.offer[pairs.entry]
    for f in range(nfolds):
        test = fold == f
        train = ~test if nfolds > 1 else test
        m = fit_hierarchical(x[train], b[train], sd.r1[local][train], k_off, family=family,
                             lam_shared=lam_shared, lam_offer=lam_offer)
        # The context part of b's score once per flattened candidate (not per pair: that would
        # gather the context m-1 times per candidate), then slot 0's term per pair.
        ent = np.flatnonzero(dec_fold[flat.dec] == f)
        base = np.zeros(len(flat.dec))
        for lo in range(0, len(ent), 65536):
            e = ent[lo:lo + 65536]
            base[e] = np.einsum("ij,ij->i", z[flat.dec[e]], m.shared[None, :width] + m.offer_weights[flat.offer[e], :width]) \
                + m.offer_biases[flat.offer[e]]
        sel = dec_fold[pair_dec] == f
        a, bb = pair_a[sel], pair_b[sel]
        s = base[pairs.entry[sel]] + m.shared[width + a] + m.offer_weights[bb, width + a]
        q1[sel] = 1.0 / (1.0 + np.exp(-s)) if family == "logistic" else s
    info["features"] = len(features)
    return q1, info


def pseudo_inverse_weights(pi0: np.ndarray, pi1: np.ndarray, mu0: np.ndarray, mu1: np.ndarray,
                           sd: SlateData) -> np.ndarray:
    """Per decision, theta_pi^T Gamma_mu^+ 1_s of the logged slate s (Swaminathan et al. 2017),
    exactly, from the target's (pi) and the logging policy's (mu) whole slate distributions.
    One-offer decisions reduce to pi0(a0) / mu0(a0)."""
    flat, pairs = sd.flat, sd.pairs
    n = len(sd.rows)
    out = np.zeros(n)
    marg_pi = slot1_marginals(pi0, pi1, pairs, len(flat.dec))
    one = np.flatnonzero(~sd.two)
    out[one] = pi0[flat.action_pos[one]] / mu0[flat.action_pos[one]]
    two = np.flatnonzero(sd.two)
    by_m: dict[int, list[int]] = {}
    for i in two:
        by_m.setdefault(int(flat.counts[i]), []).append(int(i))
    for m, idx in by_m.items():
        idx_a = np.array(idx, dtype=np.int64)
        k = len(idx_a)
        starts = flat.starts[idx_a]
        gamma = np.zeros((k, 2 * m, 2 * m))
        theta = np.zeros((k, 2 * m))
        cand = starts[:, None] + np.arange(m)[None, :]
        theta[:, :m] = pi0[cand]
        theta[:, m:] = marg_pi[cand]
        mu0c = mu0[cand]
        joint = np.zeros((k, m, m))  # joint[a, b] = mu0(a) mu1(b | a)
        for j in range(m):
            g = pairs.group_of_entry[cand[:, j]]
            ps = pairs.starts[g][:, None] + np.arange(m - 1)[None, :]
            b_pos = pairs.entry[ps] - starts[:, None]
            np.put_along_axis(joint[:, j, :], b_pos, mu0c[:, j:j + 1] * mu1[ps], axis=1)
        rng = np.arange(m)
        gamma[:, rng, rng] = mu0c
        gamma[:, m + rng, m + rng] = joint.sum(axis=1)
        gamma[:, :m, m:] = joint
        gamma[:, m:, :m] = np.transpose(joint, (0, 2, 1))
        q = np.einsum("kij,kj->ki", np.linalg.pinv(gamma, hermitian=True), theta)
        j0 = flat.action_pos[idx_a] - starts
        out[idx_a] = q[np.arange(k), j0] + q[np.arange(k), m + sd.a1_pos[idx_a]]
    return out


def _bootstrap(mat: np.ndarray, bootstrap: int, seed: int) -> np.ndarray:
    n = mat.shape[0]
    rng = np.random.default_rng(seed)
    boots = np.empty((bootstrap, mat.shape[1]))
    for b in range(bootstrap):
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        boots[b] = counts @ mat / n
    return boots


def _summary(value: float, col: np.ndarray | None) -> dict[str, Any]:
    if col is None or len(col) == 0:
        return {"value": float(value), "ci95": None, "stderr": None}
    lo, hi = np.nanpercentile(col, [2.5, 97.5])
    return {"value": float(value), "ci95": [float(lo), float(hi)],
            "stderr": float(np.nanstd(col, ddof=1)) if len(col) > 1 else None}


def logging_distributions(data: BanditData, sd: SlateData, policies: Mapping[str, Snapshot | None]
                          ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """(mu0, mu1) of the policies that logged the decisions, rebuilt from their snapshots
    (`policies`: model version -> Snapshot, None for the uniform policy of a server without one),
    or None when a decision's logging policy is not given. The check compares the rebuilt
    probabilities with the logged propensities."""
    flat, pairs = sd.flat, sd.pairs
    versions = [data.logging_versions[i] for i in sd.rows]
    missing = sorted({v for v in versions if v not in policies})
    if missing:
        return None
    mu0 = np.zeros(len(flat.dec))
    mu1 = np.zeros(len(pairs.entry))
    fallback = data.uniform_fallback[sd.rows] if len(data.uniform_fallback) else np.zeros(len(sd.rows), dtype=bool)
    keys = [None if fb else v for v, fb in zip(versions, fallback)]
    for key in dict.fromkeys(keys):
        local = np.array([k for k, v in enumerate(keys) if v == key], dtype=np.int64)
        sub = Flat.build([data.candidates[sd.rows[k]] for k in local], [data.actions[sd.rows[k]] for k in local],
                         offers=flat.offers)
        sub_pairs = Pairs.build(sub)
        snap = policies[key] if key is not None else None
        z = data.contexts.dense(snap.features, snap.interactions, rows=sd.rows[local]) if snap is not None else None
        m0, m1 = slate_policy(snap, z, sub, sub_pairs)
        # Scatter back: entry t of decision local[d] in sub is entry starts[local[d]] + t in flat.
        offs = (flat.starts[local] - sub.starts)
        mu0[np.arange(len(sub.dec)) + np.repeat(offs, sub.counts)] = m0
        if len(sub_pairs.entry):
            sub_group_dec = sub.dec[sub_pairs.group_entry]
            full_group = pairs.group_of_entry[sub_pairs.group_entry + offs[sub_group_dec]]
            shift = pairs.starts[full_group] - sub_pairs.starts
            mu1[np.arange(len(sub_pairs.entry)) + np.repeat(shift, sub_pairs.counts)] = m1
    logged0 = mu0[flat.action_pos]
    two = np.flatnonzero(sd.two)
    logged1 = mu1[sd.pair_pos[two]]
    diff = max(float(np.max(np.abs(logged0 - sd.p0), initial=0.0)),
               float(np.max(np.abs(logged1 - sd.p1[two]), initial=0.0)))
    check = {"policies": sorted(k or "uniform (fallback)" for k in dict.fromkeys(keys)),
             "max_abs_diff_vs_logged_propensities": diff}
    return mu0, mu1, check


def slate_terms(pi0: np.ndarray, pi1: np.ndarray, sd: SlateData, q0: np.ndarray | None, q1: np.ndarray | None,
                logging: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Each decision's term of every estimator (their means are the estimates; SNIPS are ratios
    of means): ips0/ips1, dr0/dr1, dm0/dm1, the weights w0 and w01, and pi_total (the
    pseudo-inverse term) when the logging distributions are given."""
    flat, pairs = sd.flat, sd.pairs
    n = len(sd.rows)
    w0 = pi0[flat.action_pos] / sd.p0
    w1c = np.zeros(n)
    two = np.flatnonzero(sd.two)
    w1c[two] = pi1[sd.pair_pos[two]] / sd.p1[two]
    w01 = w0 * w1c
    cols: dict[str, np.ndarray] = {
        "ips0": w0 * sd.r0, "ips1": w01 * sd.r1, "w0": w0, "w01": w01, "two": sd.two.astype(np.float64),
        "logging0": sd.r0, "logging1": sd.r1,
    }
    if q0 is not None:
        dm0 = flat.segment_sum(pi0 * q0)
        cols["dm0"] = dm0
        cols["dr0"] = dm0 + w0 * (sd.r0 - q0[flat.action_pos])
    if q1 is not None:
        dm1 = slot1_value(pi0, pi1, q1, flat, pairs) if len(pairs.entry) else np.zeros(n)
        # Decisions that placed one offer asked for one: no slot 1 for the target either.
        dm1 = np.where(sd.two, dm1, 0.0)
        resid = np.zeros(n)
        resid[two] = sd.r1[two] - q1[sd.pair_pos[two]]
        cols["dm1"] = dm1
        cols["dr1"] = dm1 + w01 * resid
    if logging is not None:
        cols["pi_total"] = pseudo_inverse_weights(pi0, pi1, logging[0], logging[1], sd) * (sd.r0 + sd.r1)
    return cols


def slate_estimates(pi0: np.ndarray, pi1: np.ndarray, sd: SlateData, q0: np.ndarray | None, q1: np.ndarray | None,
                    *, logging: tuple[np.ndarray, np.ndarray] | None = None, bootstrap: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """Per-slot and slate-total IPS, SNIPS, DR (and DM, logging) with bootstrap 95% intervals, and
    the pseudo-inverse estimate of the total when the logging distributions are given."""
    n = len(sd.rows)
    if n == 0:
        raise ValueError("no logged decisions to evaluate")
    cols = slate_terms(pi0, pi1, sd, q0, q1, logging)
    two = np.flatnonzero(sd.two)
    w01 = cols["w01"]
    names = list(cols)
    mat = np.stack([cols[k] for k in names], axis=1)
    boots = _bootstrap(mat, bootstrap, seed) if bootstrap else None
    point = mat.mean(axis=0)
    j = {k: i for i, k in enumerate(names)}

    def ratio(num: str, den: str, scale: str | None = None):
        p = point[j[num]] / point[j[den]] * (point[j[scale]] if scale else 1.0) if point[j[den]] > 0 else np.nan
        if boots is None:
            return p, None
        with np.errstate(invalid="ignore", divide="ignore"):
            b = boots[:, j[num]] / boots[:, j[den]] * (boots[:, j[scale]] if scale else 1.0)
        return p, b

    def col(name):
        return point[j[name]], (boots[:, j[name]] if boots is not None else None)

    s0, s0b = ratio("ips0", "w0")
    # SNIPS for slot 1: self-normalised over the two-offer decisions, times their share.
    s1, s1b = ratio("ips1", "w01", "two") if len(two) else (0.0, np.zeros(bootstrap) if boots is not None else None)
    slot0 = {"ips": _summary(*col("ips0")), "snips": _summary(s0, s0b), "logging": _summary(*col("logging0"))}
    slot1 = {"ips": _summary(*col("ips1")), "snips": _summary(s1, s1b), "logging": _summary(*col("logging1"))}
    total: dict[str, Any] = {}

    def add(a, b):
        pa, ba = a
        pb, bb = b
        return pa + pb, (ba + bb if ba is not None else None)

    total["ips"] = _summary(*add(col("ips0"), col("ips1")))
    total["snips"] = _summary(*add((s0, s0b), (s1, s1b)))
    if "dr0" in cols:
        slot0["dr"] = _summary(*col("dr0"))
        slot0["dm"] = _summary(*col("dm0"))
    if "dr1" in cols:
        slot1["dr"] = _summary(*col("dr1"))
        slot1["dm"] = _summary(*col("dm1"))
    if "dr0" in cols and "dr1" in cols:
        total["dr"] = _summary(*add(col("dr0"), col("dr1")))
    if "pi_total" in cols:
        total["pseudo_inverse"] = _summary(*col("pi_total"))
    total["logging"] = _summary(*add(col("logging0"), col("logging1")))
    return {"slot0": slot0, "slot1": slot1, "total": total,
            "decisions": int(n), "two_offer_decisions": int(len(two)),
            "diagnostics": {"mean_slate_weight": float(w01[two].mean()) if len(two) else None,
                            "max_slate_weight": float(w01[two].max()) if len(two) else None}}


def slate_report(snap: Snapshot | None, data: BanditData, rows: np.ndarray | None = None, *,
                 flat: Flat | None = None, q0: np.ndarray | None = None, exploration: Exploration | None = None,
                 logging_policies: Mapping[str, Snapshot | None] | None = None, bootstrap: int = 1000,
                 seed: int = 0, folds: int = 2, sd: SlateData | None = None,
                 q1: np.ndarray | None = None) -> dict[str, Any]:
    """The slate section of an OPE report (see the module doc)."""
    sd = sd or SlateData.build(data, rows, flat)
    if q0 is None:
        from .estimators import reward_model

        q0, _ = reward_model(data, sd.flat, sd.rows, folds=folds)
    if q1 is None:
        q1, info = slot1_reward_model(data, sd, folds=folds)
    else:
        info = None
    z = data.contexts.dense(snap.features, snap.interactions, rows=sd.rows) if snap is not None else None
    pi0, pi1 = slate_policy(snap, z, sd.flat, sd.pairs, exploration)
    logging = None
    check = None
    if logging_policies is not None:
        got = logging_distributions(data, sd, logging_policies)
        if got is not None:
            logging = (got[0], got[1])
            check = got[2]
    out = slate_estimates(pi0, pi1, sd, q0, q1, logging=logging, bootstrap=bootstrap, seed=seed)
    out["estimand"] = ("expected total reward of the slate (slot 0 + slot 1) per treated decision; decisions that "
                       "placed one offer count slot 0 only")
    if info is not None:
        out["slot1_reward_model"] = info
    if logging is None:
        have = sorted(logging_policies) if logging_policies is not None else []
        out["pseudo_inverse_note"] = ("not computed: it needs the snapshot of every policy that logged these decisions "
                                      f"(given: {have or 'none'})")
    else:
        out["logging_policy_check"] = check
    return out
