"""Off-policy estimators of a target policy's slot-0 value from logged bandit data.

For decision i with context x_i, candidates C_i, logged slot-0 offer a_i chosen with logged
propensity p_i, observed reward r_i and target distribution π(·|x_i) over C_i:

- IPS    V = (1/n) Σ w_i r_i,                 w_i = π(a_i|x_i) / p_i        (unbiased)
- SNIPS  V = Σ w_i r_i / Σ w_i                (self-normalised: small bias, less variance)
- DR     V = (1/n) Σ [ Σ_a π(a|x_i) q(x_i,a) + w_i (r_i − q(x_i,a_i)) ]
         with q a reward model fitted per offer with K-fold cross-fitting (q for decision i
         never saw decision i), unbiased when either q or the propensities are right.
- logging: the logging policy's own (on-policy) value, the mean observed reward.

95% intervals: percentile bootstrap over decisions (seeded); the reward model is held fixed
across bootstrap samples (the usual approximation).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .features import vocabulary
from .logs import BanditData
from .models import fit_hierarchical
from .policy import Flat, policy_distribution
from .snapshot import Exploration, Snapshot


def fold_of(decision_ids: list[str], folds: int, salt: str = "encore-learn") -> np.ndarray:
    """Deterministic fold (0..folds-1) of each decision id."""
    out = np.empty(len(decision_ids), dtype=np.int64)
    for i, d in enumerate(decision_ids):
        h = hashlib.blake2b(f"{salt}:{d}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(h, "little") % folds
    return out


def reward_model(data: BanditData, flat: Flat, rows: np.ndarray | None = None, folds: int = 2,
                 min_count: int = 5, lam_shared: float = 1.0, lam_offer: float = 10.0) -> tuple[np.ndarray, dict]:
    """Cross-fitted predictions q(x_i, a) for every flattened candidate of the decisions in
    `rows` (default all; `flat` must be built from exactly those decisions)."""
    rows = np.arange(len(data)) if rows is None else np.asarray(rows)
    family = "logistic" if data.reward_kind == "conversion" else "gaussian"
    features = vocabulary(data.contexts, rows, min_count=min_count)
    z = data.contexts.dense(features, rows=rows)
    actions = flat.offer[flat.action_pos]
    rewards = data.rewards[rows]
    q = np.zeros(len(flat.dec))
    ids = [data.decision_ids[i] for i in rows]
    fold = fold_of(ids, folds) if folds > 1 and len(rows) >= 2 * folds else np.zeros(len(rows), dtype=np.int64)
    nfolds = int(fold.max()) + 1 if len(fold) else 0
    for f in range(nfolds):
        test = fold == f
        train = ~test if nfolds > 1 else test
        model = fit_hierarchical(z[train], actions[train], rewards[train], len(flat.offers), family=family,
                                 lam_shared=lam_shared, lam_offer=lam_offer)
        entries = test[flat.dec]
        q[entries] = model.predict(z[flat.dec[entries]], flat.offer[entries])
    info = {"kind": f"per-offer {'logistic' if family == 'logistic' else 'ridge'} regression, shared + per-offer "
                    f"weights, {max(nfolds, 1)}-fold cross-fitted", "features": len(features),
            "lambda_shared": lam_shared, "lambda_offer": lam_offer}
    return q, info


def _interval(samples: np.ndarray) -> list[float]:
    lo, hi = np.nanpercentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


def estimate(pi: np.ndarray, flat: Flat, propensities: np.ndarray, rewards: np.ndarray, q: np.ndarray | None,
             bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """IPS, SNIPS, DR (when q is given) and the logging value with bootstrap 95% intervals."""
    n = len(rewards)
    if n == 0:
        raise ValueError("no logged decisions to evaluate")
    w = pi[flat.action_pos] / propensities
    terms = {"ips": w * rewards, "logging": rewards.astype(np.float64)}
    if q is not None:
        direct = flat.segment_sum(pi * q)
        terms["dr"] = direct + w * (rewards - q[flat.action_pos])
        terms["dm"] = direct
    names = list(terms)
    mat = np.stack([terms[k] for k in names] + [w], axis=1)  # last column: weights (SNIPS)
    wr = terms["ips"]
    point = {k: float(terms[k].mean()) for k in names}
    point["snips"] = float(wr.sum() / w.sum()) if w.sum() > 0 else float("nan")
    rng = np.random.default_rng(seed)
    boots = np.empty((bootstrap, len(names) + 1))
    for b in range(bootstrap):
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        sums = counts @ mat
        boots[b, :len(names)] = sums[:len(names)] / n
        boots[b, len(names)] = sums[0] / sums[-1] if sums[-1] > 0 else np.nan
    out: dict[str, Any] = {}
    for j, k in enumerate(names + ["snips"]):
        col = boots[:, j] if bootstrap else np.array([np.nan])
        out[k] = {"value": point[k], "ci95": _interval(col) if bootstrap else None,
                  "stderr": float(np.nanstd(col, ddof=1)) if bootstrap > 1 else None}
    if "dr" in terms:
        diff = terms["dr"] - terms["logging"]
        col = boots[:, names.index("dr")] - boots[:, names.index("logging")]
        out["dr_minus_logging"] = {"value": float(diff.mean()), "ci95": _interval(col) if bootstrap else None}
    ordered = {k: out[k] for k in ("ips", "snips", "dr", "dm", "logging", "dr_minus_logging") if k in out}
    return ordered


def diagnostics(pi: np.ndarray, flat: Flat, propensities: np.ndarray) -> dict[str, Any]:
    w = pi[flat.action_pos] / propensities
    ess = float(w.sum() ** 2 / (w ** 2).sum()) if (w ** 2).sum() > 0 else 0.0
    return {"mean_weight": float(w.mean()), "max_weight": float(w.max()), "effective_sample_size": ess,
            "min_logged_propensity": float(propensities.min()),
            "note": "mean_weight far from 1 means the logging policy rarely chose what the target policy "
                    "chooses (weak support); trust DR/SNIPS over IPS then, and check the intervals"}


def evaluate(snap: Snapshot, data: BanditData, rows: np.ndarray | None = None, *, bootstrap: int = 1000,
             seed: int = 0, folds: int = 2, exploration: Exploration | None = None,
             q: np.ndarray | None = None, flat: Flat | None = None, logging_policies=None,
             slate_context=None) -> dict[str, Any]:
    """The full offline report of `snap` on the decisions `rows` of `data` (default all). With
    two-slot decisions among them the report gains `slate` (encore.learn.slates: per-slot and
    slate-total estimates; the pseudo-inverse one when `logging_policies`, model version ->
    snapshot, covers every logging policy). `slate_context` is (SlateData, q1) from
    `slate_context_for`, to reuse across evaluations of several policies on the same rows."""
    rows = np.arange(len(data)) if rows is None else np.asarray(rows)
    if len(rows) == 0:
        raise ValueError("no logged decisions to evaluate (every decision was a holdout, empty or too recent)")
    if flat is None:
        flat = Flat.build([data.candidates[i] for i in rows], [data.actions[i] for i in rows])
    model_info = None
    if q is None:
        q, model_info = reward_model(data, flat, rows, folds=folds)
    z = data.contexts.dense(snap.features, snap.interactions, rows=rows)
    pi, _ = policy_distribution(snap, z, flat, exploration)
    est = estimate(pi, flat, data.propensities[rows], data.rewards[rows], q, bootstrap=bootstrap, seed=seed)
    absent = [f for f in snap.features if f not in data.contexts.vocab]
    report = {
        "estimand": "slot0",
        "estimand_note": "expected reward of the slot-0 offer per treated decision (holdouts and decisions "
                         "with nothing eligible excluded); reward 0 when no accepted outcome was logged",
        "reward": data.reward_kind,
        "reward_unit": "conversions per decision" if data.reward_kind == "conversion"
        else "revenue per decision (revenue_cents / 100)",
        "policy": {"model_version": snap.model_version,
                   "exploration": (exploration or snap.exploration).describe(),
                   "slot1": ("slot-1 model (SLOT1): slot 1 rescored given slot 0's offer" if snap.has_slot1
                             else "slot 1 scored like slot 0")},
        "decisions": int(len(rows)),
        "estimates": est,
        "diagnostics": diagnostics(pi, flat, data.propensities[rows]),
        "bootstrap": {"samples": bootstrap, "seed": seed, "interval": "percentile 2.5-97.5"},
    }
    if model_info is not None:
        report["reward_model"] = model_info
    if slate_context is None and len(data.slot1_actions) and data.two_slot()[rows].any():
        slate_context = slate_context_for(data, rows, flat, folds=folds)
    if slate_context is not None:
        from .slates import slate_report

        sd, q1 = slate_context
        report["slate"] = slate_report(snap, data, rows, flat=flat, q0=q, exploration=exploration,
                                       logging_policies=logging_policies, bootstrap=bootstrap, seed=seed, folds=folds,
                                       sd=sd, q1=q1)
    if absent:
        report["features_absent_from_logs"] = absent
    return report


def slate_context_for(data: BanditData, rows: np.ndarray | None, flat: Flat, folds: int = 2):
    """(SlateData, cross-fitted slot-1 reward model) for `evaluate(..., slate_context=...)`, or
    None when none of the decisions `rows` placed two offers."""
    from .slates import SlateData, slot1_reward_model

    rows = np.arange(len(data)) if rows is None else np.asarray(rows)
    if not len(data.slot1_actions) or not data.two_slot()[rows].any():
        return None
    sd = SlateData.build(data, rows, flat)
    q1, _ = slot1_reward_model(data, sd, folds=folds)
    return sd, q1
