"""Holdout lift: treated customers against the holdout (control) group, per customer.

Each customer is in one group (the server's holdout is sticky per customer); a customer whose
decisions disagree is reported and assigned by majority. Per customer, over the logged period:

- conversion      1 if the customer accepted at least one offer, else 0
- accepted        accepted offers
- offer_revenue   sum of accepted outcomes' revenue_cents / 100
- orders          decisions (one per order)
- order_revenue   sum of order.total_cents / 100
- revenue         order_revenue + offer_revenue

Group means, the difference treated − holdout and the relative lift get percentile bootstrap 95%
intervals (customers resampled within each group, seeded). A pure holdout gets no offers, so its
offer metrics are 0 by construction; the order metrics are what tells whether offers move the
business (note that only customers who ordered at least once appear in the logs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .logs import Logs

METRICS = ("conversion", "accepted", "offer_revenue", "orders", "order_revenue", "revenue")


def customer_table(logs: Logs) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    per: dict[str, list[float]] = {}
    votes: dict[str, list[int]] = {}
    for rec in logs.decisions:
        cid = str(rec.get("customer_id") or "")
        if not cid:
            continue
        row = per.setdefault(cid, [0.0] * len(METRICS))
        v = votes.setdefault(cid, [0, 0])
        v[1 if rec.get("holdout") else 0] += 1
        did = str(rec["decision_id"])
        accepted = 0
        revenue = 0.0
        for pl in rec.get("placements") or []:
            acc = logs.accepted(did, str(pl.get("offer_id")))
            if acc is not None:
                accepted += 1
                revenue += float(acc.get("revenue_cents") or 0) / 100.0
        order_rev = float((rec.get("order") or {}).get("total_cents") or 0) / 100.0
        row[1] += accepted
        row[2] += revenue
        row[3] += 1
        row[4] += order_rev
    ids = list(per)
    mat = np.array([per[c] for c in ids], dtype=np.float64).reshape(len(ids), len(METRICS))
    if len(ids):
        mat[:, 0] = (mat[:, 1] > 0).astype(np.float64)
        mat[:, 5] = mat[:, 4] + mat[:, 2]
    holdout = np.array([votes[c][1] > votes[c][0] for c in ids], dtype=bool)
    mixed = sum(1 for c in ids if votes[c][0] and votes[c][1])
    return {m: mat[:, j] for j, m in enumerate(METRICS)}, holdout, mixed


def lift(logs: Logs, bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    table, holdout, mixed = customer_table(logs)
    treated = ~holdout
    nt, nh = int(treated.sum()), int(holdout.sum())
    report: dict[str, Any] = {"customers": {"treated": nt, "holdout": nh, "in_both_groups": mixed},
                              "bootstrap": {"samples": bootstrap, "seed": seed, "interval": "percentile 2.5-97.5"},
                              "metrics": {}}
    if nt == 0 or nh == 0:
        report["error"] = "lift needs customers in both groups (treated and holdout)"
        return report
    rng = np.random.default_rng(seed)
    ti, hi = np.flatnonzero(treated), np.flatnonzero(holdout)
    bt = [rng.integers(0, nt, nt) for _ in range(bootstrap)]
    bh = [rng.integers(0, nh, nh) for _ in range(bootstrap)]
    for m in METRICS:
        t, h = table[m][ti], table[m][hi]
        mt = np.array([t[i].mean() for i in bt]) if bootstrap else np.zeros(0)
        mh = np.array([h[i].mean() for i in bh]) if bootstrap else np.zeros(0)

        def ci(x: np.ndarray) -> list[float] | None:
            x = x[np.isfinite(x)]
            return [float(v) for v in np.percentile(x, [2.5, 97.5])] if len(x) else None

        with np.errstate(divide="ignore", invalid="ignore"):
            rel = (mt - mh) / mh
        report["metrics"][m] = {
            "treated": {"mean": float(t.mean()), "ci95": ci(mt)},
            "holdout": {"mean": float(h.mean()), "ci95": ci(mh)},
            "difference": {"value": float(t.mean() - h.mean()), "ci95": ci(mt - mh)},
            "relative_lift": {"value": float(t.mean() / h.mean() - 1), "ci95": ci(rel)} if h.mean() else
            {"value": None, "ci95": None,
             "note": "undefined: the holdout's mean is 0 (offer metrics are 0 by design for a holdout, which "
                     "gets no offers); read the absolute difference instead"},
        }
    return report
