"""Reading and joining Encore's decision and outcome logs (docs/logs.md).

Join rules (documented in docs/learning.md):

- Decisions are keyed by `decision_id`; a repeated decision record is counted and ignored.
- Outcomes are keyed by (decision_id, offer_id, outcome); a repeated one is counted once.
- Outcomes naming a decision that is not in the given decision files are reported and ignored;
  so are outcomes for an offer the decision did not place.
- The reward of a placement is 1 when an `accepted` outcome exists for it (conversion), or the
  accepted outcome's `revenue_cents / 100` (revenue, in currency units); a placement with no
  outcome at all counts as reward 0. Decisions younger than `min_age_ms` (relative to `now_ms`,
  by default the newest timestamp in the logs) may still receive outcomes and are left out.
- A truncated last line (a running server's newest file) is skipped; other malformed lines are
  skipped and counted.
"""

from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from .features import ContextCheck, ContextMatrix, check_logged_context, record_features

OUTCOMES = ("shown", "accepted", "declined", "ignored")


class LogError(ValueError):
    """Logs that cannot be used as asked (the message says why and what to do)."""


class PropensityError(LogError):
    """Logged decisions without a usable (positive) propensity."""


def expand_paths(paths: Iterable[str], kind: str) -> list[str]:
    """Files from a mix of file names, globs and log directories (D/<kind>-*.jsonl)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(glob.glob(os.path.join(p, f"{kind}-*.jsonl")))
        elif any(ch in p for ch in "*?["):
            out += sorted(glob.glob(p))
        else:
            out.append(p)
    missing = [p for p in out if not os.path.isfile(p)]
    if missing:
        raise LogError(f"{kind} file not found: {missing[0]}")
    if not out:
        raise LogError(f"no {kind} files in {list(paths)}")
    return out


@dataclass
class JoinStats:
    decision_files: int = 0
    outcome_files: int = 0
    decision_records: int = 0
    duplicate_decisions: int = 0
    outcome_records: int = 0
    duplicate_outcomes: int = 0
    unknown_decision_outcomes: int = 0
    unknown_decision_example: str | None = None
    unplaced_offer_outcomes: int = 0
    malformed_lines: int = 0
    malformed_example: str | None = None
    truncated_last_lines: int = 0
    other_records: int = 0
    too_recent: int = 0
    now_ms: int | None = None
    min_age_ms: int = 0
    holdout_decisions: int = 0
    empty_decisions: int = 0
    decisions_with_outcomes: int = 0
    decisions_without_outcomes: int = 0
    # Replicas (the records' `replica` field, docs/logs.md) seen in decision records, and outcomes
    # joined to a decision that another replica made (reported through another replica, e.g.
    # after a failover: replicas sharing --decision-key-file accept each other's decision ids).
    replicas: list[str] = field(default_factory=list)
    cross_replica_outcomes: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Logs:
    decisions: list[dict[str, Any]]
    # decision_id -> offer_id -> outcome -> first record
    outcomes: dict[str, dict[str, dict[str, dict[str, Any]]]]
    stats: JoinStats

    def accepted(self, decision_id: str, offer_id: str) -> dict[str, Any] | None:
        return self.outcomes.get(decision_id, {}).get(offer_id, {}).get("accepted")

    def reward(self, decision_id: str, offer_id: str, kind: str = "conversion") -> float:
        rec = self.accepted(decision_id, offer_id)
        if rec is None:
            return 0.0
        if kind == "revenue":
            return float(rec.get("revenue_cents") or 0) / 100.0
        return 1.0


def _iter_jsonl(path: str, stats: JoinStats) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        yield from iter_jsonl_bytes(f.read(), path, stats)


def iter_jsonl_bytes(data: bytes, path: str, stats: JoinStats) -> Iterator[dict[str, Any]]:
    """The JSON objects of one log file's bytes (`path` names it in the stats), by the rules in
    this module's doc: a truncated last line is skipped, other malformed lines are counted."""
    lines = data.split(b"\n")
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    for i, raw in enumerate(lines[:last + 1]):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError:
            if i == last and not raw.rstrip().endswith(b"}"):
                stats.truncated_last_lines += 1
            else:
                stats.malformed_lines += 1
                if stats.malformed_example is None:
                    stats.malformed_example = f"{path}:{i + 1}"
            continue
        yield obj


def load_logs(decision_paths: Iterable[str], outcome_paths: Iterable[str] = (), *, min_age_ms: int = 0,
              now_ms: int | None = None) -> Logs:
    """Reads decision and outcome files (see expand_paths) and joins them (join_records)."""
    stats = JoinStats()
    dfiles = expand_paths(decision_paths, "decisions")
    outcome_paths = list(outcome_paths)
    ofiles = expand_paths(outcome_paths, "outcomes") if outcome_paths else []

    def records(files: list[str]) -> Iterator[dict[str, Any]]:
        for path in files:
            yield from _iter_jsonl(path, stats)

    logs = join_records(records(dfiles), records(ofiles), min_age_ms=min_age_ms, now_ms=now_ms, stats=stats)
    logs.stats.decision_files, logs.stats.outcome_files = len(dfiles), len(ofiles)
    return logs


def join_records(decision_records: Iterable[dict[str, Any]], outcome_records: Iterable[dict[str, Any]] = (), *,
                 min_age_ms: int = 0, now_ms: int | None = None, stats: JoinStats | None = None) -> Logs:
    """Joins decision and outcome records (already parsed) by the rules in this module's doc."""
    stats = stats or JoinStats()
    stats.min_age_ms = int(min_age_ms)
    decisions: dict[str, dict[str, Any]] = {}
    seen_replicas: set[str] = set()
    latest = 0
    for rec in decision_records:
        if rec.get("type", "decision") != "decision" or not rec.get("decision_id"):
            stats.other_records += 1
            continue
        stats.decision_records += 1
        did = str(rec["decision_id"])
        if did in decisions:
            stats.duplicate_decisions += 1
            continue
        decisions[did] = rec
        replica = rec.get("replica")
        if replica is not None and replica not in seen_replicas:
            seen_replicas.add(replica)
            stats.replicas.append(replica)
        latest = max(latest, int(rec.get("time_ms") or 0))
    outcomes: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    placed: dict[str, set[str]] = {}
    for rec in outcome_records:
        if rec.get("type", "outcome") != "outcome" or not rec.get("decision_id"):
            stats.other_records += 1
            continue
        stats.outcome_records += 1
        latest = max(latest, int(rec.get("time_ms") or 0))
        did, oid, what = str(rec["decision_id"]), str(rec.get("offer_id", "")), str(rec.get("outcome", ""))
        dec = decisions.get(did)
        if dec is None:
            stats.unknown_decision_outcomes += 1
            if stats.unknown_decision_example is None:
                stats.unknown_decision_example = did
            continue
        offers = placed.get(did)
        if offers is None:
            offers = placed[did] = {str(p.get("offer_id")) for p in dec.get("placements") or []}
        if oid not in offers:
            stats.unplaced_offer_outcomes += 1
            continue
        slot = outcomes.setdefault(did, {}).setdefault(oid, {})
        if what in slot:
            stats.duplicate_outcomes += 1
            continue
        slot[what] = rec
        if rec.get("replica") is not None and dec.get("replica") is not None and rec["replica"] != dec["replica"]:
            stats.cross_replica_outcomes += 1
    stats.now_ms = int(now_ms) if now_ms is not None else latest
    kept = []
    for rec in decisions.values():
        if min_age_ms > 0 and stats.now_ms - int(rec.get("time_ms") or 0) < min_age_ms:
            stats.too_recent += 1
            continue
        kept.append(rec)
        if rec.get("holdout"):
            stats.holdout_decisions += 1
        elif not rec.get("placements"):
            stats.empty_decisions += 1
        if rec["decision_id"] in outcomes:
            stats.decisions_with_outcomes += 1
        else:
            stats.decisions_without_outcomes += 1
    return Logs(kept, outcomes, stats)


@dataclass
class BanditData:
    """Slot-0 bandit records: one per non-holdout decision with at least one placement."""
    decision_ids: list[str]
    candidates: list[list[str]]
    actions: list[str]
    propensities: np.ndarray
    rewards: np.ndarray
    times: np.ndarray
    contexts: ContextMatrix
    reward_kind: str
    logging_models: dict[str, int]
    context_check: ContextCheck = field(default_factory=ContextCheck)
    skipped_action_not_candidate: int = 0
    # Slot 1 (two-slot decisions; docs/learning.md "Two-slot slates"): the offer placed in slot 1
    # (None when the decision placed one offer), its propensity conditional on slot 0's offer (0
    # without one) and its reward; the slot-0 reward is `rewards`.
    slot1_actions: list = field(default_factory=list)
    slot1_propensities: np.ndarray = field(default_factory=lambda: np.zeros(0))
    slot1_rewards: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # The policy that logged each decision: its model version, and whether it fell back to the
    # uniform policy (non-finite scores), for estimators that need the whole logging distribution.
    logging_versions: list = field(default_factory=list)
    uniform_fallback: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return len(self.decision_ids)

    def offers(self) -> list[str]:
        """Every offer seen as a candidate or action, in first-seen order."""
        seen: dict[str, None] = {}
        for cands, a in zip(self.candidates, self.actions):
            for c in cands:
                seen.setdefault(c, None)
            seen.setdefault(a, None)
        return list(seen)

    def two_slot(self) -> np.ndarray:
        """Which decisions placed a second offer."""
        return np.array([a is not None for a in self.slot1_actions], dtype=bool)

    def logging_value(self) -> float:
        return float(self.rewards.mean()) if len(self) else float("nan")


def _bad_propensity(p: Any) -> bool:
    return (not isinstance(p, (int, float)) or isinstance(p, bool) or not math.isfinite(p) or p <= 0
            or p > 1 + 1e-9)


def bandit_data(logs: Logs, reward: str = "conversion") -> BanditData:
    """Slot-0 records for off-policy learning and evaluation. Refuses (PropensityError) logs in
    which any placement of a treated decision has a missing, zero, negative or >1 propensity."""
    if reward not in ("conversion", "revenue"):
        raise LogError(f"reward must be conversion or revenue, got {reward}")
    bad = 0
    example = None
    treated = [r for r in logs.decisions if not r.get("holdout") and r.get("placements")]
    for rec in treated:
        for pl in rec["placements"]:
            if _bad_propensity(pl.get("propensity")):
                bad += 1
                if example is None:
                    example = (f"decision {rec['decision_id']}: slot {pl.get('slot', '?')} offer "
                               f"{pl.get('offer_id')} has propensity {pl.get('propensity')!r}")
                break
    if bad:
        raise PropensityError(
            f"refusing these logs: {bad} of {len(treated)} decisions with placements have a missing or zero "
            f"(or invalid) propensity, e.g. {example}. Off-policy estimates and importance-weighted training "
            f"need the exact probability with which the logging policy chose each offer; drop those "
            f"decisions or fix the log producer (encore serve --log-dir writes them).")
    ids, cands, acts, props, rews, times = [], [], [], [], [], []
    acts1, props1, rews1, versions, fallback = [], [], [], [], []
    ctx = ContextMatrix()
    check = ContextCheck()
    models: dict[str, int] = {}
    skipped = 0
    for rec in treated:
        ordered = sorted(rec["placements"], key=lambda p: int(p.get("slot") or 0))
        first = ordered[0]
        action = str(first.get("offer_id"))
        candidates = [str(c) for c in rec.get("candidates") or []]
        if action not in candidates:
            skipped += 1
            continue
        second = ordered[1] if len(ordered) > 1 else None
        action1 = str(second.get("offer_id")) if second is not None else None
        if action1 is not None and (action1 not in candidates or action1 == action):
            skipped += 1
            continue
        feats = record_features(rec)
        check_logged_context(rec, feats, check)
        ctx.add(feats)
        did = str(rec["decision_id"])
        ids.append(did)
        cands.append(candidates)
        acts.append(action)
        props.append(float(first["propensity"]))
        rews.append(logs.reward(did, action, reward))
        times.append(int(rec.get("time_ms") or 0))
        mv = str(rec.get("model_version", ""))
        models[mv] = models.get(mv, 0) + 1
        acts1.append(action1)
        props1.append(float(second["propensity"]) if second is not None else 0.0)
        rews1.append(logs.reward(did, action1, reward) if action1 is not None else 0.0)
        versions.append(mv)
        fallback.append(bool(rec.get("uniform_fallback")))
    return BanditData(ids, cands, acts, np.array(props, dtype=np.float64), np.array(rews, dtype=np.float64),
                      np.array(times, dtype=np.int64), ctx, reward, models, check, skipped,
                      acts1, np.array(props1, dtype=np.float64), np.array(rews1, dtype=np.float64), versions,
                      np.array(fallback, dtype=bool))
