"""Synthetic decision and outcome logs in the docs/logs.md format, with a known conversion model.

Used by the tests (estimators against a known answer) and by `encore-learn synth` for trying the
whole loop without a server. The true model is logistic in the server's feature names.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .features import record_features
from .policy import distribution
from .snapshot import Snapshot

OFFERS = {
    # offer: (value_cents, surfaces, true log-odds terms beyond the intercept)
    "gift_box": (500, ("cart", "confirmation"), {"order.is_gift": 2.0, "segment=gift_giver": 1.0}),
    "rush_shipping": (900, ("cart", "payment"), {"order.shipping=express": -1.5, "order.total_log": 0.3}),
    "shipping_protection": (300, ("cart", "payment", "confirmation"),
                            {"order.category=electronics": 1.2, "order.total_log": 0.4}),
    "loyalty_enroll": (0, ("confirmation", "thank_you", "cart"), {"segment=vip": -1.0, "customer.orders_log": 0.6}),
    "partner_card": (2000, ("thank_you", "confirmation", "payment"),
                     {"customer.aov_log": 0.4, "segment=vip": 0.8, "order.device=mobile": -0.5}),
}
INTERCEPT = -3.0
SURFACES = ("cart", "payment", "confirmation", "thank_you")
CATEGORIES = ("electronics", "apparel", "home", "toys")
SEGMENTS = ("vip", "gift_giver", "new")


def true_logit(feats: dict[str, float], offer: str) -> float:
    terms = OFFERS[offer][2]
    return INTERCEPT + sum(w * feats.get(name, 0.0) for name, w in terms.items())


def true_probability(feats: dict[str, float], offer: str) -> float:
    return 1.0 / (1.0 + math.exp(-true_logit(feats, offer)))


@dataclass
class SyntheticLogs:
    decisions: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    # decision_id -> offer -> true conversion probability (slot 0), for every candidate
    truth: dict[str, dict[str, float]] = field(default_factory=dict)

    def write(self, directory: str, stamp: str = "20261125T000000") -> tuple[str, str]:
        os.makedirs(directory, exist_ok=True)
        dpath = os.path.join(directory, f"decisions-{stamp}-0-0.jsonl")
        opath = os.path.join(directory, f"outcomes-{stamp}-0.jsonl")
        with open(dpath, "w") as f:
            for r in self.decisions:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
        with open(opath, "w") as f:
            for r in self.outcomes:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
        return dpath, opath


def generate(n: int = 5000, seed: int = 0, *, customers: int = 2000, slots: int = 1, holdout_share: float = 0.05,
             logging: Snapshot | None = None, duplicate_rate: float = 0.0, unknown_outcomes: int = 0,
             start_ms: int = 1_764_000_000_000, slot1_factor: float = 0.5,
             order_uplift: float = 0.0, slot1_pairs: dict[tuple[str, str], float] | None = None) -> SyntheticLogs:
    """`n` decisions. Logging policy: uniform over the eligible offers, or `logging` (a snapshot,
    evaluated with the server's math; its slot-1 model, if any, is not applied). `order_uplift`
    multiplies treated customers' order totals by (1 + uplift) (a known lift for the lift tests).
    Slot 1's acceptance is slot 0's times `slot1_factor`, times `slot1_pairs[(slot-0 offer,
    slot-1 offer)]` where given (capped at 1)."""
    rng = np.random.default_rng(seed)
    cust = []
    for c in range(customers):
        known = rng.random() < 0.9
        if known:
            orders = int(rng.poisson(3))
            feats = {"orders_log": round(math.log1p(orders), 4), "aov_log": round(float(rng.normal(4.0, 0.5)), 4)}
            segs = [s for s, p in zip(SEGMENTS, (0.15, 0.2, 0.0)) if rng.random() < p]
            if orders == 0:
                segs.append("new")
        else:
            feats, segs = {"orders_log": 0.0, "aov_log": 0.0}, []
        cid = f"c{c:06d}"
        h = int.from_bytes(cid.encode()[-4:], "little") * 2654435761 % 2**32 / 2**32
        cust.append((cid, known, feats, segs, h < holdout_share))
    decisions, outcomes, truth = [], [], {}
    for i in range(n):
        cid, known, cfeats, segs, holdout = cust[int(rng.integers(0, customers))]
        surface = SURFACES[int(rng.integers(0, len(SURFACES)))]
        k = int(rng.integers(1, 4))
        items = []
        for j in range(k):
            cat = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
            items.append({"sku": f"s{int(rng.integers(0, 500))}", "category": cat,
                          "price_cents": int(rng.integers(500, 20000)), "quantity": int(rng.integers(1, 3))})
        total = sum(it["price_cents"] * it["quantity"] for it in items)
        if not holdout and order_uplift:
            total = int(round(total * (1 + order_uplift)))
        did = f"5f0c1a2b3c4d-01-{i + 1:010x}"
        rec: dict[str, Any] = {
            "v": 1, "type": "decision", "decision_id": did, "request_id": f"r-{i}", "time_ms": start_ms + 1000 * i,
            "surface": surface, "customer_id": cid, "known_customer": known,
            "model_version": logging.model_version if logging else "uniform",
            "exploration": logging.exploration.describe() if logging else "uniform", "holdout": holdout,
            "order": {"order_id": f"o-{i}", "total_cents": total, "currency": "USD",
                      "is_gift": bool(rng.random() < 0.2),
                      "shipping_method": "express" if rng.random() < 0.3 else "standard",
                      "channel": "app" if rng.random() < 0.4 else "web",
                      "device": "mobile" if rng.random() < 0.5 else "desktop", "country": "US", "items": items},
            "request_features": {"session_minutes": round(float(rng.exponential(5.0)), 2)},
            "customer": {"segments": segs, "features": dict(cfeats)},
            "context": {}, "candidates": [], "placements": [], "joint_propensity": 1.0,
        }
        decisions.append(rec)
        if holdout:
            continue
        candidates = [o for o in OFFERS if surface in OFFERS[o][1]]
        rec["candidates"] = candidates
        feats = record_features(rec)
        mu = {o: true_probability(feats, o) for o in candidates}
        truth[did] = mu
        if logging is not None:
            from .features import ContextMatrix
            from .policy import Flat, link, flat_scores
            ctx = ContextMatrix()
            ctx.add(feats)
            z = ctx.dense(logging.features, logging.interactions)
            flat = Flat.build([candidates], [candidates[0]])
            scores = flat_scores(logging, z, flat)
            r = link(logging, scores)
            rec["context"] = {name: float(z[0, j]) for j, name in
                              enumerate(logging.features) if z[0, j] != 0}
        else:
            r = np.zeros(len(candidates))
        order = list(range(len(candidates)))
        probs = distribution([r[j] for j in order], logging.exploration) if logging else \
            np.full(len(order), 1.0 / len(order))
        a0 = int(rng.choice(len(order), p=probs / probs.sum()))
        placements = [{"offer_id": candidates[order[a0]], "slot": 0, "propensity": float(probs[a0]),
                       "score": float(r[order[a0]]), "expected_value": float(r[order[a0]])}]
        joint = float(probs[a0])
        if slots == 2 and len(order) >= 2:
            # The server swaps the chosen candidate with the last and draws from the first n-1.
            order[a0], order[-1] = order[-1], order[a0]
            rest = order[:-1]
            p1 = distribution([r[j] for j in rest], logging.exploration) if logging else \
                np.full(len(rest), 1.0 / len(rest))
            a1 = int(rng.choice(len(rest), p=p1 / p1.sum()))
            placements.append({"offer_id": candidates[rest[a1]], "slot": 1, "propensity": float(p1[a1]),
                               "score": float(r[rest[a1]]), "expected_value": float(r[rest[a1]])})
            joint *= float(p1[a1])
        rec["placements"] = placements
        rec["joint_propensity"] = joint
        t = rec["time_ms"]
        for pl in placements:
            oid = pl["offer_id"]
            p = mu[oid] * (1.0 if pl["slot"] == 0 else slot1_factor)
            if pl["slot"] == 1 and slot1_pairs:
                p = min(1.0, p * slot1_pairs.get((placements[0]["offer_id"], oid), 1.0))
            outcomes.append({"v": 1, "type": "outcome", "decision_id": did, "offer_id": oid, "outcome": "shown",
                             "revenue_cents": 0, "time_ms": t + 100})
            accepted = rng.random() < p
            what = "accepted" if accepted else ("declined" if rng.random() < 0.3 else "ignored")
            out = {"v": 1, "type": "outcome", "decision_id": did, "offer_id": oid, "outcome": what,
                   "revenue_cents": OFFERS[oid][0] if accepted else 0, "time_ms": t + 2000}
            outcomes.append(out)
            if duplicate_rate and rng.random() < duplicate_rate:
                outcomes.append(dict(out))
    for u in range(unknown_outcomes):
        outcomes.append({"v": 1, "type": "outcome", "decision_id": f"ffffffffffff-09-{u:010x}",
                         "offer_id": "gift_box", "outcome": "accepted", "revenue_cents": 500,
                         "time_ms": start_ms + 1000 * n})
    return SyntheticLogs(decisions, outcomes, truth)


def true_policy_value(logs: SyntheticLogs, decision_ids: list[str], candidates: list[list[str]],
                      pi: np.ndarray, starts: np.ndarray) -> float:
    """Mean over the given decisions of Σ_a π(a|x) μ(x, a) (the conditional true slot-0 value)."""
    total = 0.0
    for i, did in enumerate(decision_ids):
        mu = logs.truth[did]
        s = int(starts[i])
        total += sum(float(pi[s + j]) * mu[c] for j, c in enumerate(candidates[i]))
    return total / max(len(decision_ids), 1)

