"""The server's policy math, in Python: scores, link, and the exploration distribution.

Mirrors Sources/EncoreEngine/DecisionWorkspace+Scoring.swift, ActiveModel.swift and
Sources/EncoreModel/Exploration.swift:

- z = the features (float32) followed by one product per interaction (float32);
- each offer's row is shared + offer weights, added in float32 (offers the snapshot does not
  list use the shared weights alone and bias 0);
- score = row · z + bias_a (float32 accumulation on the server; float64 of the float32 values
  here, so scores agree to float32 precision), reward = sigmoid(score) for link logistic,
  the score itself for link identity;
- exploration over the candidates, in their logged order:
  uniform 1/n; epsilon_greedy ε/n + (1 − ε)/ties on every best; softmax exp((r − max)/T)
  normalised; squarecb p(a) = 1/(n + γ (r* − r(a))) for every a but the best (the first max),
  which gets the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .snapshot import Exploration, Snapshot


def distribution(rewards: Sequence[float], exploration: Exploration) -> np.ndarray:
    """Reference (scalar) implementation for one decision, line for line like Exploration.swift."""
    r = [float(x) for x in rewards]
    n = len(r)
    if n < 1:
        raise ValueError("at least one candidate is needed")
    p = [0.0] * n
    kind = exploration.kind
    if kind == "uniform":
        return np.full(n, 1.0 / n)
    if kind == "epsilon_greedy":
        eps = float(exploration.epsilon)
        best = max(r)
        ties = sum(1 for x in r if x == best)
        share = (1 - eps) / ties
        return np.array([eps / n + (share if x == best else 0.0) for x in r])
    if kind == "softmax":
        t = float(exploration.temperature)
        best = max(r)
        w = [np.exp((x - best) / t) for x in r]
        total = sum(w)
        return np.array([x / total for x in w])
    if kind == "squarecb":
        g = float(exploration.gamma)
        b = 0
        for i in range(1, n):
            if r[i] > r[b]:
                b = i
        others = 0.0
        for i in range(n):
            if i != b:
                p[i] = 1.0 / (n + g * (r[b] - r[i]))
                others += p[i]
        p[b] = 1.0 - others
        return np.array(p)
    raise ValueError(f"unknown exploration kind {kind}")


@dataclass
class Flat:
    """Candidates of many decisions, flattened: entry k is candidate `offer[k]` of decision `dec[k]`."""
    offers: list[str]
    dec: np.ndarray
    offer: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    action_pos: np.ndarray  # flat index of each decision's logged action

    @classmethod
    def build(cls, candidates: Sequence[Sequence[str]], actions: Sequence[str],
              offers: Sequence[str] | None = None) -> "Flat":
        index: dict[str, int] = {o: i for i, o in enumerate(offers or [])}
        names = list(offers or [])
        dec, off, starts, counts, apos = [], [], [], [], []
        k = 0
        for i, (cands, a) in enumerate(zip(candidates, actions)):
            starts.append(k)
            counts.append(len(cands))
            found = -1
            for c in cands:
                j = index.get(c)
                if j is None:
                    j = index[c] = len(names)
                    names.append(c)
                dec.append(i)
                off.append(j)
                if c == a and found < 0:
                    found = k
                k += 1
            apos.append(found)
        return cls(names, np.array(dec, dtype=np.int64), np.array(off, dtype=np.int64),
                   np.array(starts, dtype=np.int64), np.array(counts, dtype=np.int64),
                   np.array(apos, dtype=np.int64))

    def segment_sum(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, self.starts) if len(self.starts) else np.zeros(0)


def offer_rows(snap: Snapshot, offers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(len(offers), width) float32 rows (shared + offer, added in float32) and float32 biases."""
    own = {o: i for i, o in enumerate(snap.offers)}
    rows = np.repeat(snap.shared_weights[None, :], len(offers), axis=0).astype(np.float32)
    biases = np.zeros(len(offers), dtype=np.float32)
    for k, o in enumerate(offers):
        i = own.get(o)
        if i is not None:
            rows[k] = (snap.shared_weights + snap.offer_weights[i]).astype(np.float32)
            biases[k] = snap.offer_biases[i]
    return rows, biases


def link(snap: Snapshot, scores: np.ndarray) -> np.ndarray:
    if snap.link == "logistic":
        return 1.0 / (1.0 + np.exp(-scores))
    return scores


def flat_scores(snap: Snapshot, z: np.ndarray, flat: Flat, chunk: int = 65536) -> np.ndarray:
    """Raw score of every flattened candidate. `z`: (decisions, width) float32."""
    rows, biases = offer_rows(snap, flat.offers)
    rows64 = rows.astype(np.float64)
    out = np.empty(len(flat.dec), dtype=np.float64)
    for lo in range(0, len(flat.dec), chunk):
        hi = min(lo + chunk, len(flat.dec))
        d, o = flat.dec[lo:hi], flat.offer[lo:hi]
        dots = np.einsum("ij,ij->i", z[d].astype(np.float64), rows64[o]).astype(np.float32)
        out[lo:hi] = (dots + biases[o]).astype(np.float64)
    return out


def flat_distribution(rewards: np.ndarray, flat: Flat, exploration: Exploration) -> np.ndarray:
    """The exploration distribution of every decision at once (vectorised `distribution`)."""
    r = np.asarray(rewards, dtype=np.float64)
    m = len(r)
    if m == 0:
        return np.zeros(0)
    n = np.repeat(flat.counts, flat.counts).astype(np.float64)
    kind = exploration.kind
    if kind == "uniform":
        return 1.0 / n
    best = np.repeat(np.maximum.reduceat(r, flat.starts), flat.counts)
    if kind == "epsilon_greedy":
        eps = float(exploration.epsilon)
        is_best = r == best
        ties = np.repeat(np.add.reduceat(is_best.astype(np.float64), flat.starts), flat.counts)
        return eps / n + np.where(is_best, (1 - eps) / ties, 0.0)
    if kind == "softmax":
        w = np.exp((r - best) / float(exploration.temperature))
        return w / np.repeat(np.add.reduceat(w, flat.starts), flat.counts)
    if kind == "squarecb":
        g = float(exploration.gamma)
        pos = np.arange(m)
        first = np.minimum.reduceat(np.where(r == best, pos, m), flat.starts)
        p = 1.0 / (n + g * (best - r))
        p[first] = 0.0
        others = np.add.reduceat(p, flat.starts)
        p[first] = 1.0 - others
        return p
    raise ValueError(f"unknown exploration kind {kind}")


def policy_distribution(snap: Snapshot, z: np.ndarray, flat: Flat,
                        exploration: Exploration | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, predicted rewards) of every flattened candidate under `snap`."""
    rewards = link(snap, flat_scores(snap, z, flat))
    return flat_distribution(rewards, flat, exploration or snap.exploration), rewards
