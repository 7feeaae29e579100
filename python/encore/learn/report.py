"""`encore-learn report`: one self-contained HTML page about a snapshot and the logs it would
replace (docs/learning.md, "Report"): estimates with intervals for the candidate, the active
policy (when a comparison is given) and the logging policy; traffic and value per offer; feature
importance per offer (|weight| x the feature's spread in the logs, and a permutation importance
on the logged rewards); holdout lift over time. Plots are PNGs inlined as data URLs (matplotlib,
Agg backend): no external asset, readable offline and on a phone."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from .estimators import evaluate
from .logs import BanditData, Logs
from .policy import Flat, flat_scores, link
from .snapshot import Snapshot


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def feature_importance(snap: Snapshot, data: BanditData, top: int = 8) -> dict[str, list[tuple[str, float]]]:
    """Per offer, the features with the largest |weight| x standard deviation of the feature in
    the logged contexts (shared weights included), largest first."""
    z = data.contexts.dense(snap.features, snap.interactions)
    spread = z.std(axis=0)
    names = list(snap.features) + [f"{snap.features[a]}*{snap.features[b]}" for a, b in snap.interactions]
    out = {}
    for k, offer in enumerate(snap.offers):
        w = np.abs(snap.offer_weights[k].astype(np.float64) + snap.shared_weights.astype(np.float64))
        score = w * spread
        order = np.argsort(-score)[:top]
        out[offer] = [(names[j], float(score[j])) for j in order if score[j] > 0]
    return out


def permutation_importance(snap: Snapshot, data: BanditData, top: int = 10, seed: int = 0) -> list[tuple[str, float]]:
    """How much worse the snapshot predicts the logged slot-0 rewards (mean log loss for
    conversion, squared error for revenue) when one feature is shuffled across decisions: the
    increase per feature, largest first."""
    rng = np.random.default_rng(seed)
    flat = Flat.build([[a] for a in data.actions], data.actions)
    z = data.contexts.dense(snap.features, snap.interactions)
    y = data.rewards

    def loss(matrix: np.ndarray) -> float:
        pred = link(snap, flat_scores(snap, matrix, flat))
        if snap.link == "logistic":
            p = np.clip(pred, 1e-9, 1 - 1e-9)
            return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        return float(np.mean((pred - y) ** 2))

    base = loss(z)
    out = []
    for j, name in enumerate(snap.features):
        if name == "bias":
            continue
        shuffled = z.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        # Interactions that use feature j follow it.
        for k, (a, b) in enumerate(snap.interactions):
            if j in (a, b):
                shuffled[:, len(snap.features) + k] = shuffled[:, a] * shuffled[:, b]
        out.append((name, loss(shuffled) - base))
    out.sort(key=lambda t: -t[1])
    return out[:top]


def lift_over_time(logs: Logs, buckets: int = 8) -> list[dict[str, Any]]:
    """Treated vs holdout conversion (accepted offers per decision) in `buckets` equal time slices."""
    recs = [r for r in logs.decisions if r.get("time_ms")]
    if not recs:
        return []
    t = np.array([int(r["time_ms"]) for r in recs])
    edges = np.linspace(t.min(), t.max() + 1, buckets + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = [r for r, ti in zip(recs, t) if lo <= ti < hi]
        treated = [r for r in sel if not r.get("holdout")]
        held = [r for r in sel if r.get("holdout")]

        def conv(rs):
            return float(np.mean([any("accepted" in o for o in logs.outcomes.get(r["decision_id"], {}).values())
                                  for r in rs])) if rs else float("nan")
        out.append({"from_ms": int(lo), "to_ms": int(hi), "treated": conv(treated), "holdout": conv(held),
                    "treated_n": len(treated), "holdout_n": len(held)})
    return out


def build(snap: Snapshot, logs: Logs, data: BanditData, *, comparison: dict[str, Any] | None = None,
          bootstrap: int = 500, seed: int = 0) -> tuple[str, dict[str, Any]]:
    """(HTML page, the numbers it shows)."""
    plt = _pyplot()
    rep = evaluate(snap, data, bootstrap=bootstrap, seed=seed)
    est = rep["estimates"]
    rows = [("candidate " + snap.model_version, est["dr"])]
    if comparison:
        rows.append(("active " + comparison["active_version"] + " (same logs)", comparison["active_estimates"]["dr"]))
    rows.append(("logging policy (observed)", est["logging"]))
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(rows)))
    for i, (label, e) in enumerate(rows):
        lo, hi = e.get("ci95") or (e["value"], e["value"])
        ax.errorbar([e["value"]], [i], xerr=[[e["value"] - lo], [hi - e["value"]]], fmt="o", capsize=4)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"value per decision ({data.reward_kind}; DR for policies, with 95% intervals)")
    estimates_png = _png(fig)

    offers = sorted(set(data.actions))
    traffic = np.array([sum(a == o for a in data.actions) for o in offers])
    value = np.array([data.rewards[[a == o for a in data.actions]].mean() for o in offers])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 0.5 + 0.3 * len(offers)), sharey=True)
    a1.barh(offers, traffic)
    a1.set_xlabel("decisions (slot 0)")
    a2.barh(offers, value, color="tab:green")
    a2.set_xlabel(f"observed {data.reward_kind} per decision")
    a1.invert_yaxis()
    offers_png = _png(fig)

    importance = feature_importance(snap, data)
    perm = permutation_importance(snap, data, seed=seed)
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.3 * max(1, len(perm))))
    ax.barh([p[0] for p in perm], [p[1] for p in perm], color="tab:purple")
    ax.invert_yaxis()
    ax.set_xlabel("increase in prediction loss when the feature is shuffled")
    perm_png = _png(fig)

    lift = lift_over_time(logs)
    fig, ax = plt.subplots(figsize=(7, 3))
    xs = [(b["from_ms"] + b["to_ms"]) / 2 / 1000 / 3600 for b in lift]
    x0 = xs[0] if xs else 0
    ax.plot([x - x0 for x in xs], [b["treated"] for b in lift], "o-", label="treated")
    ax.plot([x - x0 for x in xs], [b["holdout"] for b in lift], "s--", label="holdout")
    ax.set_xlabel("hours since the first decision")
    ax.set_ylabel("decisions with an accepted offer")
    ax.legend()
    lift_png = _png(fig)

    numbers = {"estimates": est, "comparison": comparison, "offers": {o: {"decisions": int(t), "value": float(v)}
                                                                        for o, t, v in zip(offers, traffic, value)},
               "feature_importance": importance, "permutation_importance": perm, "lift_over_time": lift,
               "decisions": len(data)}

    def fmt(e):
        ci = e.get("ci95")
        return f"{e['value']:.5f}" + (f" [{ci[0]:.5f}, {ci[1]:.5f}]" if ci else "")

    est_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{fmt(v)}</td></tr>" for k, v in est.items())
    imp_rows = "".join(
        f"<tr><td>{html.escape(o)}</td><td>{html.escape(', '.join(f'{n} ({s:.3f})' for n, s in feats[:5]))}</td></tr>"
        for o, feats in importance.items())
    verdict = ""
    if comparison:
        diff = comparison["candidate_dr_lower_minus_active_dr"]
        verdict = (f"<p><b>{'Beats' if diff >= 0 else 'Does not beat'}</b> the active policy "
                   f"{html.escape(comparison['active_version'])} on the same "
                   f"{comparison['log_window']['decisions']} decisions: DR lower bound minus active DR = "
                   f"{diff:+.5f}.</p>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Encore report: {html.escape(snap.model_version)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#222}}
img{{max-width:100%}} table{{border-collapse:collapse}} td,th{{border-bottom:1px solid #ddd;padding:.2rem .6rem;
text-align:left}} h2{{margin-top:2rem}}</style></head><body>
<h1>Snapshot {html.escape(snap.model_version)}</h1>
<p>{html.escape(snap.exploration.describe())}; {len(snap.features)} features, {len(snap.offers)} offers with their
own weights; evaluated on {len(data)} logged decisions (slot 0, reward: {html.escape(data.reward_kind)}).</p>
{verdict}
<h2>Estimates</h2><img alt="estimates with 95% intervals" src="{estimates_png}">
<table><tr><th>estimator</th><th>value [95% interval]</th></tr>{est_rows}</table>
<h2>Offers: traffic and value</h2><img alt="traffic and value per offer" src="{offers_png}">
<h2>Feature importance</h2><p>Per offer, |weight| × the feature's standard deviation in the logs:</p>
<table><tr><th>offer</th><th>top features</th></tr>{imp_rows}</table>
<p>Permutation importance on the logged rewards:</p><img alt="permutation importance" src="{perm_png}">
<h2>Holdout lift over time</h2><img alt="treated and holdout conversion over time" src="{lift_png}">
</body></html>
"""
    return page, numbers
