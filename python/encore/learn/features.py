"""The server's context features, recomputed from a decision log record.

Feature names and values follow docs/snapshots.md and the server's evaluator
(Sources/EncoreEngine/DecisionWorkspace+Scoring.swift): values are float32, as on the server.

| name                          | value                                              |
|-------------------------------|----------------------------------------------------|
| bias                          | 1                                                  |
| order.total_log               | ln(1 + max(total_cents, 0) / 100)                  |
| order.items_log               | ln(1 + max(sum of quantities, 0))                  |
| order.is_gift                 | 1 for a gift order                                 |
| order.category=<c>            | 1 if any line item has category c                  |
| order.shipping=<v>, order.channel=<v>, order.device=<v>, order.country=<v> | 1 on equality |
| surface=<s>                   | 1 on surface s                                     |
| customer.known                | 1 if the customer was in the feature store         |
| customer.<name>               | the stored numeric feature (logged in customer.features) |
| segment=<name>                | 1 if the customer is in the segment                |
| request.<key>                 | the request's features[key], 0 when absent         |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

FIXED = ("bias", "order.total_log", "order.items_log", "order.is_gift", "customer.known")
ONE_HOT_PREFIXES = (
    "order.category=", "order.shipping=", "order.channel=", "order.device=", "order.country=", "surface=", "segment=")
VALUE_PREFIXES = ("customer.", "request.")


def feature_name_error(name: str) -> str | None:
    """None when the server can parse `name` (FeatureOp.parse), else its message."""
    if name in FIXED:
        return None
    for prefix in ONE_HOT_PREFIXES + VALUE_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return None
    return f"unknown feature name '{name}' (see docs/snapshots.md for the feature names)"


def _f32(x: float) -> float:
    return float(np.float32(x))


def record_features(rec: dict[str, Any]) -> dict[str, float]:
    """Every non-zero feature of a decision record, by name (float32 values as floats).

    `customer.known` and `segment=` are as the server saw them (`known_customer`, `customer`);
    cold-start customers carry the store's default features in `customer.features`.
    """
    out: dict[str, float] = {"bias": 1.0}
    order = rec.get("order") or {}
    total = order.get("total_cents") or 0
    out["order.total_log"] = _f32(math.log1p(max(float(total), 0.0) / 100.0))
    items = order.get("items") or []
    qty = 0
    for item in items:
        qty += int(item.get("quantity") or 0)
    v = _f32(math.log1p(max(qty, 0)))
    if v:
        out["order.items_log"] = v
    if order.get("is_gift"):
        out["order.is_gift"] = 1.0
    for item in items:
        c = item.get("category")
        if c:
            out["order.category=" + c] = 1.0
    for field, prefix in (("shipping_method", "order.shipping="), ("channel", "order.channel="),
                          ("device", "order.device="), ("country", "order.country=")):
        value = order.get(field)
        if value:
            out[prefix + value] = 1.0
    surface = rec.get("surface")
    if surface:
        out["surface=" + surface] = 1.0
    if rec.get("known_customer"):
        out["customer.known"] = 1.0
    customer = rec.get("customer") or {}
    for name, value in (customer.get("features") or {}).items():
        if name == "known" or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue  # `customer.known` is the known flag, never a stored column
        fv = _f32(value)
        if fv:
            out["customer." + name] = fv
    for seg in customer.get("segments") or []:
        if seg:
            out["segment=" + seg] = 1.0
    for key, value in (rec.get("request_features") or {}).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        fv = _f32(value)
        if fv:
            out["request." + key] = fv
    return out


class ContextMatrix:
    """Sparse (CSR) contexts of many decisions over an interned vocabulary of feature names."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.names: list[str] = []
        self.counts: list[int] = []
        self._indptr = [0]
        self._indices: list[int] = []
        self._data: list[float] = []
        self._frozen: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, feats: dict[str, float]) -> None:
        vocab = self.vocab
        for name, value in feats.items():
            j = vocab.get(name)
            if j is None:
                j = vocab[name] = len(self.names)
                self.names.append(name)
                self.counts.append(0)
            self.counts[j] += 1
            self._indices.append(j)
            self._data.append(value)
        self._indptr.append(len(self._indices))
        self._frozen = None

    def __len__(self) -> int:
        return len(self._indptr) - 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._frozen is None:
            self._frozen = (np.asarray(self._indptr, dtype=np.int64), np.asarray(self._indices, dtype=np.int32),
                            np.asarray(self._data, dtype=np.float32))
        return self._frozen

    def dense(self, features: Sequence[str], interactions: Sequence[tuple[int, int]] = (),
              rows: np.ndarray | None = None) -> np.ndarray:
        """float32 matrix (len(rows), len(features) + len(interactions)): z as the server builds it."""
        indptr, indices, data = self.arrays()
        if rows is None:
            rows = np.arange(len(self))
        rows = np.asarray(rows, dtype=np.int64)
        width = len(features) + len(interactions)
        col_of = np.full(len(self.names) + 1, -1, dtype=np.int64)
        for c, name in enumerate(features):
            j = self.vocab.get(name)
            if j is not None:
                col_of[j] = c
        out = np.zeros((len(rows), width), dtype=np.float32)
        starts, ends = indptr[rows], indptr[rows + 1]
        lengths = ends - starts
        if lengths.sum():
            row_ids = np.repeat(np.arange(len(rows)), lengths)
            # Positions of every stored entry of the selected rows.
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            pos = np.repeat(starts, lengths) + offsets
            cols = col_of[indices[pos]]
            keep = cols >= 0
            out[row_ids[keep], cols[keep]] = data[pos[keep]]
        for k, (a, b) in enumerate(interactions):
            out[:, len(features) + k] = out[:, a] * out[:, b]
        return out


def vocabulary(ctx: ContextMatrix, rows: Iterable[int] | None = None, min_count: int = 1) -> list[str]:
    """Feature names a trainer may use: every server-parsable name seen in at least `min_count`
    of the given decisions (all when rows is None), `bias` first, then in a stable order."""
    if rows is None:
        counts = dict(zip(ctx.names, ctx.counts))
    else:
        indptr, indices, _ = ctx.arrays()
        rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64)
        c = np.zeros(len(ctx.names), dtype=np.int64)
        for r in rows:
            c[indices[indptr[r]:indptr[r + 1]]] += 1
        counts = {n: int(c[j]) for j, n in enumerate(ctx.names)}
    order = {name: i for i, name in enumerate(FIXED)}
    names = [n for n, k in counts.items() if k >= min_count and n != "bias" and feature_name_error(n) is None]
    names.sort(key=lambda n: (order.get(n, len(order)), n))
    return ["bias"] + names


@dataclass
class ContextCheck:
    """Comparison of recomputed features with the `context` the server logged."""
    compared: int = 0
    mismatched: int = 0
    example: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"compared_values": self.compared, "mismatched_values": self.mismatched, "example": self.example}


def check_logged_context(rec: dict[str, Any], feats: dict[str, float], check: ContextCheck,
                         tolerance: float = 1e-4) -> None:
    """Counts logged `context` entries whose recomputed value differs (interaction products,
    named `a*b`, are recomputed from their factors)."""
    logged = rec.get("context") or {}
    for name, value in logged.items():
        if not isinstance(value, (int, float)):
            continue
        mine = feats.get(name, 0.0)
        if name not in feats and "*" in name:
            for i, ch in enumerate(name):
                a, b = name[:i], name[i + 1:]
                if ch == "*" and feature_name_error(a) is None and feature_name_error(b) is None:
                    mine = _f32(feats.get(a, 0.0) * feats.get(b, 0.0))
                    break
        check.compared += 1
        if abs(mine - float(value)) > tolerance * max(1.0, abs(float(value))):
            check.mismatched += 1
            if check.example is None:
                check.example = f"decision {rec.get('decision_id')}: {name} logged {value}, recomputed {mine}"
