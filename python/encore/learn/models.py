"""Regularised generalised linear models in numpy (logistic by Newton/IRLS, Gaussian ridge in
closed form), and the shared-plus-per-offer ("hierarchical") reward model that has exactly the
shape of an Encore snapshot: reward(x, a) = link(shared · z + w_a · z + b_a).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _objective(eta: np.ndarray, y: np.ndarray, w: np.ndarray, family: str) -> float:
    if family == "logistic":
        return float(np.sum(w * (np.logaddexp(0.0, eta) - y * eta)))
    return float(0.5 * np.sum(w * (eta - y) ** 2))


def fit_glm(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, offset: np.ndarray | None = None,
            lam: float = 1.0, family: str = "logistic", max_iter: int = 50,
            tol: float = 1e-8) -> tuple[np.ndarray, float]:
    """Fits y ~ link(offset + b + x·β), minimising the weighted negative log-likelihood (or half
    the weighted squared error) plus lam/2 ‖β‖² on standardised columns (the intercept gets a
    tiny penalty so all-zero rewards stay finite). Returns (β, b) on the raw scale of x.
    Constant columns get β = 0."""
    n, d = x.shape
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=np.float64)
    if n == 0:
        return np.zeros(d), 0.0
    wsum = w.sum()
    mean = (w[:, None] * x).sum(0) / wsum if d else np.zeros(0)
    sd = np.sqrt(np.maximum((w[:, None] * (x - mean) ** 2).sum(0) / wsum, 0.0)) if d else np.zeros(0)
    live = sd > 1e-9
    xs = np.zeros((n, int(live.sum()) + 1))
    xs[:, 0] = 1.0
    xs[:, 1:] = (x[:, live] - mean[live]) / sd[live]
    penalty = np.full(xs.shape[1], float(lam))
    penalty[0] = 1e-4
    beta = np.zeros(xs.shape[1])
    if family == "gaussian":
        h = xs.T @ (w[:, None] * xs) + np.diag(penalty)
        beta = np.linalg.solve(h, xs.T @ (w * (y - off)))
    elif family == "logistic":
        ybar = float(np.clip((w * y).sum() / wsum, 1e-4, 1 - 1e-4))
        beta[0] = np.log(ybar / (1 - ybar)) - float((w * off).sum() / wsum)
        eta = off + xs @ beta
        obj = _objective(eta, y, w, family) + 0.5 * float(penalty @ beta ** 2)
        for _ in range(max_iter):
            mu = 1.0 / (1.0 + np.exp(-eta))
            grad = xs.T @ (w * (mu - y)) + penalty * beta
            h = xs.T @ ((w * mu * (1 - mu))[:, None] * xs) + np.diag(penalty)
            step = np.linalg.solve(h, grad)
            t = 1.0
            while True:
                cand = beta - t * step
                eta_c = off + xs @ cand
                obj_c = _objective(eta_c, y, w, family) + 0.5 * float(penalty @ cand ** 2)
                if obj_c <= obj + 1e-12 or t < 1e-6:
                    break
                t *= 0.5
            done = abs(obj - obj_c) <= tol * max(1.0, abs(obj))
            beta, eta, obj = cand, eta_c, obj_c
            if done:
                break
    else:
        raise ValueError(f"unknown family {family}")
    coef = np.zeros(d)
    coef[live] = beta[1:] / sd[live]
    intercept = float(beta[0] - np.sum(beta[1:] * mean[live] / sd[live]))
    return coef, intercept


@dataclass
class HierarchicalModel:
    """Weights over z (whose column 0 is `bias`): shared (width,), per offer (K, width) and bias (K,)."""
    shared: np.ndarray
    offer_weights: np.ndarray
    offer_biases: np.ndarray
    family: str
    fitted: np.ndarray  # (K,) bool: the offer had data of its own

    def scores(self, z: np.ndarray, offer_index: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return z @ self.shared + np.einsum("ij,ij->i", z, self.offer_weights[offer_index]) \
            + self.offer_biases[offer_index]

    def predict(self, z: np.ndarray, offer_index: np.ndarray) -> np.ndarray:
        s = self.scores(z, offer_index)
        return 1.0 / (1.0 + np.exp(-s)) if self.family == "logistic" else s


def fit_hierarchical(z: np.ndarray, actions: np.ndarray, rewards: np.ndarray, n_offers: int,
                     weights: np.ndarray | None = None, family: str = "logistic", lam_shared: float = 1.0,
                     lam_offer: float = 10.0, min_samples: int = 1) -> HierarchicalModel:
    """Pooled model over every logged (context, action) first, then one model per offer fitted
    on that offer's samples with the pooled score as offset, so each offer's weights are the
    (ridge-shrunk) deviation from the pooled model. `z[:, 0]` must be the bias column."""
    z = np.asarray(z, dtype=np.float64)
    n, width = z.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    shared = np.zeros(width)
    offer_w = np.zeros((n_offers, width))
    offer_b = np.zeros(n_offers)
    fitted = np.zeros(n_offers, dtype=bool)
    if n == 0:
        return HierarchicalModel(shared, offer_w, offer_b, family, fitted)
    coef, b = fit_glm(z[:, 1:], rewards, w, None, lam_shared, family)
    shared[1:] = coef
    shared[0] = b
    base = z @ shared
    for k in range(n_offers):
        mask = actions == k
        if int(mask.sum()) < min_samples:
            continue
        coef, b = fit_glm(z[mask][:, 1:], rewards[mask], w[mask], base[mask], lam_offer, family)
        offer_w[k, 1:] = coef
        offer_b[k] = b
        fitted[k] = True
    return HierarchicalModel(shared, offer_w, offer_b, family, fitted)
