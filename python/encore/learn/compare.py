"""The offline gate's evidence: a candidate and the currently active policy estimated on the same
logs (docs/learning.md, "The offline gate").

A snapshot's own OPE report says how good it is on the logs it was trained on; that number cannot
be compared with another snapshot's, estimated on other logs. The server's gate (`encore serve
--require-ope`) therefore reads `ope.comparison`, made here: the active policy (the exact snapshot
the server serves, fetched from it or given as a file, or the uniform policy a server without a
snapshot explores with) evaluated by the same estimators, on the same decisions, with the same
reward model as the candidate; the active version it was made against; and a digest of that log
window. The gate refuses a comparison made against another active version, and activates only
when the candidate's DR lower bound beats the active policy's DR estimate in it (plus a margin).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from .estimators import evaluate, reward_model
from .logs import BanditData
from .policy import Flat
from .snapshot import Exploration, Snapshot

#: The version a server reports when no snapshot is active (its policy is uniform over the eligible
#: offers): `ActiveModel.version` in the server, `active_version` of Models/List.
UNIFORM_VERSION = "uniform"


def uniform_policy(version: str = UNIFORM_VERSION) -> Snapshot:
    """The policy of a server without a snapshot: every eligible offer with probability 1/n."""
    return Snapshot(model_version=version, created_at_millis=0, features=["bias"], interactions=[], offers=[],
                    shared_weights=[0.0], offer_weights=np.zeros((0, 1)), offer_biases=[],
                    exploration=Exploration("uniform"))


def log_window(data: BanditData, rows: Sequence[int]) -> dict[str, Any]:
    """What the estimates were made on: the number of decisions, their time span and a SHA-256 over
    their sorted decision ids (so two reports can be checked to cover the same decisions)."""
    ids = sorted(data.decision_ids[i] for i in rows)
    digest = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()
    times = data.times[np.asarray(rows, dtype=np.int64)] if len(rows) else np.zeros(0, dtype=np.int64)
    return {"decisions": len(ids), "sha256_of_decision_ids": digest,
            "first_time_ms": int(times.min()) if len(times) else None,
            "last_time_ms": int(times.max()) if len(times) else None}


def compare(candidate: Snapshot, active: Snapshot | None, active_version: str, data: BanditData,
            rows: np.ndarray | None = None, *, bootstrap: int = 1000, seed: int = 0, folds: int = 2,
            q: np.ndarray | None = None, flat: Flat | None = None,
            candidate_report: dict[str, Any] | None = None, slate_context=None,
            logging_policies=None) -> dict[str, Any]:
    """Estimates `candidate` and the active policy (`active`, or uniform when None) on the same
    decisions `rows` of `data` with one reward model, and returns the `ope.comparison` object the
    server's gate reads. `candidate_report` reuses an evaluation already made on exactly these
    rows with this `q` and `flat`."""
    rows = np.arange(len(data)) if rows is None else np.asarray(rows)
    if flat is None:
        flat = Flat.build([data.candidates[i] for i in rows], [data.actions[i] for i in rows])
    if q is None:
        q, _ = reward_model(data, flat, rows, folds=folds)
    if slate_context is None:
        from .estimators import slate_context_for

        slate_context = slate_context_for(data, rows, flat, folds=folds)
    if candidate_report is None:
        candidate_report = evaluate(candidate, data, rows, bootstrap=bootstrap, seed=seed, q=q, flat=flat,
                                    slate_context=slate_context, logging_policies=logging_policies)
    policy = active if active is not None else uniform_policy(active_version)
    active_report = evaluate(policy, data, rows, bootstrap=bootstrap, seed=seed, q=q, flat=flat,
                             slate_context=slate_context, logging_policies=logging_policies)
    slate = "slate" in candidate_report and "slate" in active_report
    cand_est = candidate_report["slate"]["total"] if slate else candidate_report["estimates"]
    act_est = active_report["slate"]["total"] if slate else active_report["estimates"]
    cand_dr, act_dr = cand_est["dr"], act_est["dr"]
    lower = cand_dr["ci95"][0] if cand_dr.get("ci95") else cand_dr["value"]
    extra: dict[str, Any] = {}
    if slate:
        extra = {"candidate_estimates_slot0": candidate_report["estimates"],
                 "active_estimates_slot0": active_report["estimates"]}
    return {
        "estimand": "slate" if slate else "slot0",
        "method": "candidate and active policy estimated on the same decisions with the same cross-fitted "
                  "reward model and bootstrap seed",
        "active_version": active_version,
        "active_policy": policy.exploration.describe() if active is not None else "uniform (no snapshot)",
        "active_estimates": act_est,
        "active_diagnostics": active_report["diagnostics"],
        "candidate_version": candidate.model_version,
        "candidate_estimates": cand_est,
        "candidate_dr_lower_minus_active_dr": float(lower - act_dr["value"]),
        "log_window": log_window(data, rows),
        **extra,
    }
