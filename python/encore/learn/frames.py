"""Encore's logs as pandas DataFrames, for the habits of data scientists (docs/learning.md,
"DataFrames"):

    from encore.learn import read_logs, train, evaluate
    df = read_logs("logs/")                      # or "s3://bucket/encore/", a glob, a list ...
    df.groupby("slot0_offer")["reward"].mean()   # one row per decision, outcomes joined
    snap = train(df, gamma=100.0)                # the trainer of `encore-learn train`
    report = evaluate(snap, df)                  # IPS, SNIPS, DR with intervals
    write_parquet(df, "logs.parquet"); df = read_parquet("logs.parquet")

Paths are local files, globs, log directories (D/decisions-*.jsonl and D/outcomes-*.jsonl) or
fsspec URLs (`memory://`, `s3://` with s3fs installed, ...). One row per decision record (holdouts
and decisions with nothing eligible included, with their flags); the exact records travel along
in `decision_json` and `outcomes_json`, so `train` and `evaluate` on a DataFrame (also one read
back from parquet, or filtered with pandas) give exactly what the CLI gives on the same records.
Needs pandas, pyarrow and fsspec (`pip install encore-learn[frames]`)."""

from __future__ import annotations

import json
from typing import Any, Iterable

import numpy as np

from .logs import JoinStats, LogError, Logs, bandit_data, iter_jsonl_bytes, join_records

#: Columns of `read_logs`, in order.
COLUMNS = ["decision_id", "time", "time_ms", "surface", "customer_id", "request_id", "model_version", "holdout",
           "placements", "slot0_offer", "slot0_propensity", "slot1_offer", "slot1_propensity", "joint_propensity",
           "candidates", "shown", "accepted", "declined", "revenue_cents", "reward", "decision_json",
           "outcomes_json", "replica"]


def _frames():
    try:
        import fsspec
        import pandas as pd
    except ImportError as e:  # pragma: no cover - the [frames] extra is part of [test]
        raise ImportError("encore.learn DataFrames need pandas, pyarrow and fsspec: "
                          "pip install 'encore-learn[frames]'") from e
    return pd, fsspec


def _files(paths: str | Iterable[str], kind: str) -> list[Any]:
    """fsspec OpenFiles for a mix of files, globs, directories and URLs."""
    _, fsspec = _frames()
    out = []
    for p in [paths] if isinstance(paths, str) else list(paths):
        fs, _, (root,) = fsspec.get_fs_token_paths(p)
        if fs.isdir(root):
            pattern = root.rstrip("/") + f"/{kind}-*.jsonl"
            found = sorted(fs.glob(pattern))
        elif any(ch in root for ch in "*?["):
            found = sorted(fs.glob(root))
        elif fs.exists(root):
            found = [root]
        else:
            raise LogError(f"{kind} file not found: {p}")
        out += [fsspec.core.OpenFile(fs, f) for f in found]
    if not out:
        raise LogError(f"no {kind} files in {paths}")
    return out


def _records(paths, kind: str, stats: JoinStats) -> list[dict[str, Any]]:
    records = []
    for f in _files(paths, kind):
        with f as handle:
            records += list(iter_jsonl_bytes(handle.read(), f.path, stats))
    return records


def read_logs(decisions: str | Iterable[str], outcomes: str | Iterable[str] | None = None, *,
              reward: str = "conversion", min_age_ms: int = 0, now_ms: int | None = None):
    """Decision and outcome logs joined into a DataFrame (one row per decision; see the module
    doc). `outcomes` defaults to `decisions` (a log directory holds both). `reward` is the
    `reward` column: 1 for an accepted slot-0 offer ("conversion") or its revenue / 100
    ("revenue"); the join rules are those of encore-learn train (docs/learning.md)."""
    pd, _ = _frames()
    stats = JoinStats()
    d = _records(decisions, "decisions", stats)
    o = _records(decisions if outcomes is None else outcomes, "outcomes", stats)
    logs = join_records(d, o, min_age_ms=min_age_ms, now_ms=now_ms, stats=stats)
    rows = []
    for rec in logs.decisions:
        did = str(rec["decision_id"])
        placements = sorted(rec.get("placements") or [], key=lambda p: int(p.get("slot") or 0))
        by_offer = logs.outcomes.get(did, {})
        first = placements[0] if placements else None
        second = placements[1] if len(placements) > 1 else None
        kinds = {k: [o for o, outs in by_offer.items() if k in outs] for k in ("shown", "accepted", "declined")}
        revenue = sum(int(outs["accepted"].get("revenue_cents") or 0) for outs in by_offer.values()
                      if "accepted" in outs)
        rows.append({
            "decision_id": did, "time_ms": int(rec.get("time_ms") or 0), "surface": rec.get("surface"),
            "customer_id": rec.get("customer_id"), "request_id": rec.get("request_id"),
            "model_version": rec.get("model_version"), "holdout": bool(rec.get("holdout")),
            "placements": len(placements),
            "slot0_offer": first["offer_id"] if first else None,
            "slot0_propensity": float(first["propensity"]) if first else np.nan,
            "slot1_offer": second["offer_id"] if second else None,
            "slot1_propensity": float(second["propensity"]) if second else np.nan,
            "joint_propensity": float(rec.get("joint_propensity", np.nan)) if placements else np.nan,
            "candidates": list(rec.get("candidates") or []),
            "shown": kinds["shown"], "accepted": kinds["accepted"], "declined": kinds["declined"],
            "revenue_cents": revenue,
            "reward": logs.reward(did, first["offer_id"], reward) if first else 0.0,
            "decision_json": json.dumps(rec, separators=(",", ":")),
            "outcomes_json": json.dumps([r for outs in by_offer.values() for r in outs.values()],
                                        separators=(",", ":")),
            "replica": rec.get("replica"),
        })
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "time"])
    df.insert(1, "time", pd.to_datetime(df["time_ms"], unit="ms", utc=True))
    df.attrs["join"] = stats.to_json()
    df.attrs["reward"] = reward
    return df


def logs_of(df) -> Logs:
    """The joined logs behind a DataFrame of `read_logs` (or its parquet copy, or any subset of its
    rows): exactly the records it was made from."""
    missing = [c for c in ("decision_json", "outcomes_json") if c not in df.columns]
    if missing:
        raise LogError(f"not a DataFrame of encore.learn.read_logs: no column {missing[0]}")
    decisions = [json.loads(s) for s in df["decision_json"]]
    outcomes = [o for s in df["outcomes_json"] for o in json.loads(s)]
    return join_records(decisions, outcomes)


def train(df, reward: str | None = None, log=lambda msg: None, **config):
    """Trains a snapshot on the DataFrame's decisions, as `encore-learn train` (keyword arguments
    are `encore.learn.train.TrainConfig` fields, e.g. gamma=100.0, weighting="none")."""
    from .train import TrainConfig, train as train_data

    data = bandit_data(logs_of(df), reward or df.attrs.get("reward", "conversion"))
    return train_data(data, TrainConfig(**config), log=log)


def evaluate(snapshot, df, reward: str | None = None, **kw) -> dict[str, Any]:
    """IPS, SNIPS and DR of `snapshot` (a Snapshot or a .snap path) on the DataFrame's decisions,
    as `encore-learn evaluate` (keyword arguments: bootstrap, seed, folds)."""
    from .estimators import evaluate as evaluate_data
    from .snapshot import read_snapshot

    snap = read_snapshot(snapshot) if isinstance(snapshot, str) else snapshot
    data = bandit_data(logs_of(df), reward or df.attrs.get("reward", "conversion"))
    return evaluate_data(snap, data, **kw)


def write_parquet(df, path: str) -> None:
    """Writes a `read_logs` DataFrame to parquet (pyarrow; local path or fsspec URL)."""
    pd, fsspec = _frames()
    with fsspec.open(path, "wb") as f:
        df.to_parquet(f, engine="pyarrow", index=False)


def read_parquet(path: str):
    """Reads a DataFrame written by `write_parquet` (local path or fsspec URL)."""
    pd, fsspec = _frames()
    with fsspec.open(path, "rb") as f:
        df = pd.read_parquet(f, engine="pyarrow")
    for col in ("candidates", "shown", "accepted", "declined"):
        df[col] = [list(v) for v in df[col]]
    return df
