"""Learning a new policy from logged bandit data.

The reduction is importance-weighted regression (IWR; Bietti, Agarwal & Langford, "A
contextual bandit bake-off", JMLR 2021): for each offer a, regress the observed slot-0 reward
on the context over the decisions where a was shown, weighting each by 1/p (the logged
propensity, clipped). Weighting by 1/p makes every offer's regression target the reward over
the whole context distribution rather than over the contexts in which the old policy happened
to pick that offer, so the offers' predictions are comparable and the greedy choice among them
is consistent. The model has the snapshot's shape: a pooled ("shared") logistic regression over
every (context, offer) pair, then per-offer deviations fitted with the pooled score as offset and
a stronger ridge penalty, so offers with little data stay close to the pooled model and catalog
offers absent from the logs are scored by the shared weights alone, exactly as the server does.

`weighting="none"` fits the same regressions unweighted (the direct method). It is consistent
only when the model family can represent the reward (the right features and interactions), but
it keeps its effective sample size when the logging policy was near-greedy, where 1/p weights
make each offer's fit rest on the few decisions in which it was explored (weights up to
max_weight): the situation of a closed loop after its first round (docs/learning.md, "Closed
loop").

Exploration is SquareCB (the server's default). Its gamma is chosen on a validation split of
the logs (decisions hashed by id, never used for fitting): for each gamma on a grid, the
resulting policy's value is estimated with DR, and the gamma with the best lower 95% bound wins,
a pessimistic rule that prefers greedier policies only when the logs support them. The OPE report
written into the snapshot is computed on that same validation split, for the exact policy
written (no refit afterwards).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from . import __version__
from .compare import compare
from .estimators import evaluate, fold_of, reward_model, slate_context_for
from .features import feature_name_error, vocabulary
from .logs import BanditData
from .models import fit_glm, fit_hierarchical
from .policy import Flat
from .snapshot import Exploration, Snapshot

DEFAULT_GAMMAS = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)


@dataclass
class TrainConfig:
    min_feature_count: int = 10
    min_offer_count: int = 1
    interactions: Sequence[tuple[str, str]] = ()
    max_weight: float = 50.0
    weighting: str = "ips"  # "ips": 1/p clipped at max_weight (IWR); "none": unweighted regression
    lam_shared: float = 1.0
    lam_offer: float = 10.0
    validation_fraction: float = 0.3
    exploration: str = "squarecb"
    gamma: float | None = None  # None: chosen on the validation split
    gammas: Sequence[float] = DEFAULT_GAMMAS
    epsilon: float = 0.05
    temperature: float = 0.1
    bootstrap: int = 1000
    seed: int = 0
    model_version: str | None = None
    created_at_millis: int | None = None
    # The policy the server serves now, for the gate's comparison on the same logs (compare.py):
    # active_version None makes no comparison; active None with a version is the uniform policy
    # of a server without a snapshot.
    active: Any = None
    active_version: str | None = None
    # Two-slot logs (docs/learning.md, "Two-slot slates"). slot1: "pool" also fits the scorer on
    # slot-1 placements (a slot-1 indicator column absorbs the position effect while fitting and
    # is dropped from the scorer), weighted by 1/(p0 * p1|0) under weighting "ips"; "model" (the
    # default) does the same and also writes a slot-1 model (the SLOT1 section: per offer a
    # slot-1 bias, per (slot-0 offer, slot-1 offer) a pair term, fitted on the slot-1 placements
    # with the scorer's prediction as offset), so the server scores slot 1 given slot 0's offer;
    # "ignore" fits on slot 0 only. The exploration is then chosen on the slate total's DR lower
    # bound, and the OPE report gains the slate estimates.
    slot1: str = "model"
    # L2 penalty of the slot-1 model's terms (on standardised one-hot columns).
    lam_slot1: float = 1.0
    # model version -> Snapshot (None: uniform) of the policies that logged, for the
    # pseudo-inverse slate estimate (optional).
    logging_policies: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class TrainError(ValueError):
    pass


def _version(snap: Snapshot, created_ms: int) -> str:
    h = hashlib.sha256()
    h.update("\n".join(snap.features).encode())
    h.update(repr(snap.interactions).encode())
    h.update("\n".join(snap.offers).encode())
    for arr in (snap.shared_weights, snap.offer_weights, snap.offer_biases):
        h.update(np.ascontiguousarray(arr, dtype="<f4").tobytes())
    if snap.has_slot1:
        for arr in (snap.slot1_biases, snap.slot1_pairs):
            h.update(np.ascontiguousarray(arr, dtype="<f4").tobytes())
    h.update(snap.exploration.describe().encode())
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(created_ms / 1000))
    return f"learned-{stamp}-{h.hexdigest()[:8]}"


def train(data: BanditData, config: TrainConfig | None = None, log=lambda msg: None) -> Snapshot:
    cfg = config or TrainConfig()
    if cfg.slot1 == "auto":
        if not (len(data.slot1_actions) and data.two_slot().any()):
            return train(data, replace(cfg, slot1="ignore"), log)
        # Both ways of using slot-1 placements, kept by the lower bound of the slate DR on the
        # validation split (the rule that picks gamma).
        best = None
        for mode in ("model", "pool", "ignore"):
            snap = train(data, replace(cfg, slot1=mode), log)
            chosen = [g for g in snap.ope["gamma_search"] if g["gamma"] == snap.exploration.gamma] or [None]
            g = chosen[0]
            lower = (g["dr_ci95"][0] if g and g["dr_ci95"] else (g["dr"] if g else
                     snap.ope["slate"]["total"]["dr"]["value"]))
            log(f"slot1 {mode}: slate DR lower bound {lower:.5f}")
            if best is None or lower > best[0] + 1e-12:
                best = (lower, mode, snap)
        best[2].ope["training"]["slot1"] = f"auto (chose {best[1]} by the slate DR lower bound)"
        return best[2]
    n = len(data)
    if n == 0:
        raise TrainError("no usable decisions: every decision was a holdout, had nothing eligible or is too recent")
    family = "logistic" if data.reward_kind == "conversion" else "gaussian"
    if cfg.validation_fraction > 0 and n >= 20:
        buckets = fold_of(data.decision_ids, 1000, salt="encore-learn-validation")
        is_val = buckets < int(round(cfg.validation_fraction * 1000))
    else:
        is_val = np.zeros(n, dtype=bool)
    train_rows = np.flatnonzero(~is_val)
    val_rows = np.flatnonzero(is_val)
    in_sample = len(val_rows) == 0
    if in_sample:
        val_rows = train_rows
    log(f"{n} decisions: {len(train_rows)} for fitting, "
        f"{'the same' if in_sample else len(val_rows)} for validation")

    # Features: every server-parsable name seen often enough in the training decisions.
    features = vocabulary(data.contexts, train_rows, min_count=cfg.min_feature_count)
    pairs: list[tuple[int, int]] = []
    for a, b in cfg.interactions:
        for name in (a, b):
            problem = feature_name_error(name)
            if problem:
                raise TrainError(f"interaction {a}*{b}: {problem}")
            if name not in features:
                features.append(name)
        pairs.append((features.index(a), features.index(b)))

    # Offers: those shown in slot 0 at least min_offer_count times in the training decisions.
    counts: dict[str, int] = {}
    for i in train_rows:
        counts[data.actions[i]] = counts.get(data.actions[i], 0) + 1
    offers = sorted(o for o, c in counts.items() if c >= cfg.min_offer_count)
    if not offers:
        raise TrainError("no offer was shown often enough to learn from (see --min-offer-count)")
    index = {o: k for k, o in enumerate(offers)}
    keep = np.array([data.actions[i] in index for i in train_rows], dtype=bool)
    rows = train_rows[keep]
    actions = np.array([index[data.actions[i]] for i in rows], dtype=np.int64)
    z = data.contexts.dense(features, pairs, rows=rows)
    if cfg.weighting not in ("ips", "none"):
        raise TrainError(f"unknown weighting {cfg.weighting!r} (expected ips or none)")
    if cfg.slot1 not in ("model", "pool", "ignore"):
        raise TrainError(f"unknown slot1 {cfg.slot1!r} (expected model, pool, ignore or auto)")
    raw_w = 1.0 / data.propensities[rows]
    rewards = data.rewards[rows]
    two_slot = len(data.slot1_actions) > 0 and bool(data.two_slot()[train_rows].any())
    slot1_rows = np.zeros(0, dtype=np.int64)
    if two_slot and cfg.slot1 in ("pool", "model"):
        slot1_rows = np.array([i for i in train_rows if data.slot1_actions[i] in index], dtype=np.int64)
    if len(slot1_rows):
        # Slot-1 placements as extra samples of their offer, with a slot-1 indicator column.
        z1 = data.contexts.dense(features, pairs, rows=slot1_rows)
        z = np.concatenate([np.concatenate([z, np.zeros((len(z), 1), dtype=z.dtype)], axis=1),
                            np.concatenate([z1, np.ones((len(z1), 1), dtype=z1.dtype)], axis=1)])
        actions = np.concatenate([actions, [index[data.slot1_actions[i]] for i in slot1_rows]]).astype(np.int64)
        rewards = np.concatenate([rewards, data.slot1_rewards[slot1_rows]])
        raw_w = np.concatenate([raw_w, 1.0 / (data.propensities[slot1_rows] * data.slot1_propensities[slot1_rows])])
    if cfg.weighting == "ips":
        w = np.minimum(raw_w, cfg.max_weight)
        w = w / w.mean()
    else:
        w = np.ones(len(raw_w))
    model = fit_hierarchical(z, actions, rewards, len(offers), weights=w, family=family,
                             lam_shared=cfg.lam_shared, lam_offer=cfg.lam_offer)
    slot1_biases = slot1_pairs = None
    if len(slot1_rows) and cfg.slot1 == "model":
        n1 = len(slot1_rows)
        slot0_of = np.array([index.get(data.actions[i], -1) for i in slot1_rows], dtype=np.int64)
        slot1_biases, slot1_pairs = fit_slot1_model(
            model, z[-n1:], actions[-n1:], slot0_of, rewards[-n1:], w[-n1:], len(offers), family, cfg.lam_slot1)
    if len(slot1_rows):  # the position column is not a server feature: slot 0 is scored without it
        model.shared = model.shared[:-1]
        model.offer_weights = model.offer_weights[:, :-1]
    kind = "importance-weighted" if cfg.weighting == "ips" else "unweighted"
    log(f"fitted {len(features)} features + {len(pairs)} interactions, {len(offers)} offers "
        f"({family} {kind} regression{f' on slot 0 and {len(slot1_rows)} slot-1 placements' if len(slot1_rows) else ''})")

    created = int(cfg.created_at_millis if cfg.created_at_millis is not None else time.time() * 1000)
    snap = Snapshot(
        model_version="pending", created_at_millis=created, features=features, interactions=pairs, offers=offers,
        shared_weights=model.shared.astype(np.float32), offer_weights=model.offer_weights.astype(np.float32),
        offer_biases=model.offer_biases.astype(np.float32),
        link="logistic" if family == "logistic" else "identity", objective="conversion",
        exploration=Exploration("squarecb", gamma=100.0), slot1_biases=slot1_biases, slot1_pairs=slot1_pairs)

    # Exploration, chosen (or checked) on the validation split.
    flat = Flat.build([data.candidates[i] for i in val_rows], [data.actions[i] for i in val_rows])
    q, q_info = reward_model(data, flat, val_rows)
    slate_ctx = slate_context_for(data, val_rows, flat)
    search = []
    if cfg.exploration == "squarecb":
        grid = [cfg.gamma] if cfg.gamma is not None else list(cfg.gammas)
        best = None
        for g in grid:
            e = Exploration("squarecb", gamma=float(g))
            rep = evaluate(snap, data, val_rows, bootstrap=min(cfg.bootstrap, 200), seed=cfg.seed, exploration=e,
                           q=q, flat=flat, slate_context=slate_ctx)
            # Two-slot logs: the value of the whole slate (the server draws both slots with it).
            dr = rep["slate"]["total"]["dr"] if "slate" in rep else rep["estimates"]["dr"]
            search.append({"gamma": float(g), "dr": dr["value"], "dr_ci95": dr["ci95"],
                           "estimand": "slate" if "slate" in rep else "slot0"})
            lower = dr["ci95"][0] if dr["ci95"] else dr["value"]
            if best is None or lower > best[0] + 1e-12:
                best = (lower, e)
        snap.exploration = best[1]
    elif cfg.exploration == "epsilon_greedy":
        snap.exploration = Exploration("epsilon_greedy", epsilon=cfg.epsilon)
    elif cfg.exploration == "softmax":
        snap.exploration = Exploration("softmax", temperature=cfg.temperature)
    elif cfg.exploration == "uniform":
        snap.exploration = Exploration("uniform")
    else:
        raise TrainError(f"unknown exploration {cfg.exploration}")
    snap.model_version = cfg.model_version or _version(snap, created)
    log(f"exploration {snap.exploration.describe()}, model version {snap.model_version}")

    report = evaluate(snap, data, val_rows, bootstrap=cfg.bootstrap, seed=cfg.seed, q=q, flat=flat,
                      slate_context=slate_ctx, logging_policies=cfg.logging_policies)
    comparison = None
    if cfg.active_version is not None:
        comparison = compare(snap, cfg.active, cfg.active_version, data, val_rows, bootstrap=cfg.bootstrap,
                             seed=cfg.seed, q=q, flat=flat, candidate_report=report, slate_context=slate_ctx,
                             logging_policies=cfg.logging_policies)
        log(f"against the active policy {cfg.active_version} on the same {len(val_rows)} decisions: DR "
            f"{comparison['active_estimates']['dr']['value']:.5f} (candidate {comparison['candidate_estimates']['dr']['value']:.5f}, estimand {comparison['estimand']})")
    report.pop("policy", None)
    report["reward_model"] = q_info
    snap.ope = {
        "generator": f"encore-learn {__version__}",
        "model_version": snap.model_version,
        "exploration": snap.exploration.describe(),
        "reduction": ("importance-weighted regression per offer (shared + per-offer logistic/ridge, weights "
                      f"1/propensity clipped at {cfg.max_weight}), SquareCB exploration") if cfg.weighting == "ips"
        else "unweighted regression per offer (direct method; shared + per-offer logistic/ridge), SquareCB exploration",
        "evaluated_on": "in-sample (no validation split)" if in_sample
        else f"validation split ({len(val_rows)} decisions, {cfg.validation_fraction:.0%} by decision-id hash, "
             "not used for fitting)",
        "gamma_search": search,
        "training": {"decisions": int(len(rows)), "features": len(features), "interactions": len(pairs),
                     "offers": len(offers), "logging_models": data.logging_models,
                     "lambda_shared": cfg.lam_shared, "lambda_offer": cfg.lam_offer, "max_weight": cfg.max_weight,
                     "weighting": cfg.weighting, "slot1": cfg.slot1 if two_slot else "no two-slot decisions",
                     "slot1_placements": int(len(slot1_rows)),
                     "slot1_model": (f"per-offer slot-1 bias and {len(offers)} x {len(offers)} pair terms "
                                     f"(lambda {cfg.lam_slot1})") if slot1_biases is not None else None,
                     "min_feature_count": cfg.min_feature_count},
        **report,
        **cfg.extra,
    }
    if comparison is not None:
        snap.ope["comparison"] = comparison
    snap.validate()
    return snap


def fit_slot1_model(model, z1: np.ndarray, slot1_offer: np.ndarray, slot0_offer: np.ndarray, r1: np.ndarray,
                    w1: np.ndarray, n_offers: int, family: str, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """The SLOT1 section from the slot-1 placements: for each slot-1 offer b, a regression of its
    slot-1 rewards on a one-hot of the slot-0 offer beside it, with the pooled scorer's slot-1
    prediction (its slot-0 score plus the fitted position terms, `z1`'s last column being the
    slot-1 indicator) as offset. Returns (biases[b] = position terms + intercept, pairs[a, b] =
    the one-hot coefficients), float32. An offer without slot-1 samples keeps its position terms
    and no pair terms; a slot-0 offer outside the offer table has no column."""
    offset = model.scores(z1, slot1_offer)
    position = model.shared[-1] + model.offer_weights[:, -1]
    biases = position.astype(np.float64).copy()
    pairs = np.zeros((n_offers, n_offers))
    onehot = np.zeros((len(z1), n_offers))
    known = slot0_offer >= 0
    onehot[np.flatnonzero(known), slot0_offer[known]] = 1.0
    for b in range(n_offers):
        mask = slot1_offer == b
        if not mask.any():
            continue
        coef, intercept = fit_glm(onehot[mask], r1[mask], w1[mask], offset[mask], lam, family)
        biases[b] += intercept
        pairs[:, b] = coef
    return biases.astype(np.float32), pairs.astype(np.float32)

