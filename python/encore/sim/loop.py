"""The learning loop against a real server, with a shopper simulator whose conversion model is known.

    python -m encore.sim.loop --seed 1 [--rounds 4] [--orders 40000] [--quick] [--json] [--slots 2] [--autopilot]

Starts `encore serve --port 0 --holdout-share 0 --log-dir DIR --catalog C --customers U` (no
snapshot: the first policy is uniform over the eligible offers), then per round: simulates
`--orders` orders (Decide with slots=1, then ReportOutcome SHOWN and ACCEPTED/IGNORED drawn from the
true model), trains a snapshot on every log so far (encore-learn's trainer, by default unweighted
per-offer regression: see --weighting), evaluates it offline (SNIPS, DR) on the decisions the
trainer held out, pushes and activates it, and computes its TRUE value (exploration included) on
a fixed sample of contexts. Every Decide reply's propensity is compared with the one the true-value
computation assigns to that offer under the active policy (`propensity_check_by_round`).
Progress goes to stderr; with --json the last stdout line is one JSON object.

`--slots 2` serves slates: the shopper's slot-1 acceptance has a position effect and depends on
the offer above it (SLOT1_POSITION, PAIR_EFFECTS), the true slate value of every pushed policy is
computed with the server's slot-1 rule (encore.learn.slates), and the JSON adds the slate values
and slate OPE by round. `--autopilot` replaces the train-and-push step by one cycle of
`encore-learn autopilot` against a server started with --require-ope: what is served next is
whatever the autopilot and the server's gate let through.

Reproducible end to end: the same --seed (and options) gives the same decisions, logs (but for
their timestamps), estimates, verdict and byte-identical JSON on every run with the same binary.
The server runs one reactor thread with `--instance-id` and `--decision-key-file` derived from the
seed, so decision ids (MAC included) and the server's draws (seeded from decision id and model
version) repeat; Decide calls go one at a
time in a fixed order (the id counter follows arrival order); the trainer's created-at time, and so
its model version, is fixed per round; each round waits until every record is on disk before
training. Wall-clock figures (`elapsed_s`) go to stderr only, never into the JSON.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from ..learn.features import ContextMatrix, record_features
from ..learn.policy import Flat, policy_distribution
from ..learn.snapshot import write_snapshot

# The embedded demo catalog (Sources/EncoreDemo/DemoCatalog.swift).
CATALOG = [
    ("gift_box", "gift_box", ("cart", "payment", "confirmation"), 500),
    ("gift_message", "gift_box", ("cart", "payment"), 200),
    ("rush_shipping", "rush_shipping", ("cart", "payment"), 999),
    ("express_upgrade", "rush_shipping", ("payment", "confirmation"), 599),
    ("shipping_protection", "shipping_protection", ("cart", "payment", "confirmation"), 299),
    ("complementary_socks", "complementary_item", ("cart", "thank_you"), 899),
    ("complementary_case", "complementary_item", ("thank_you", "confirmation"), 1999),
    ("referral_give20_get20", "referral", ("thank_you", "confirmation", "email"), 2000),
    ("review_precommit", "review_precommitment", ("thank_you", "confirmation", "email"), 150),
    ("loyalty_enroll", "loyalty_enrollment", ("payment", "thank_you", "confirmation"), 800),
    ("loyalty_double_points", "loyalty_enrollment", ("cart", "thank_you"), 300),
    ("partner_streaming_trial", "partner_offer", ("thank_you", "confirmation"), 1200),
    ("partner_card", "partner_offer", ("confirmation", "thank_you", "email"), 5000),
    ("extended_warranty", "complementary_item", ("cart", "payment"), 2499),
    ("donation_roundup", "partner_offer", ("payment", "thank_you"), 50),
    ("next_order_discount", "referral", ("confirmation", "email", "thank_you"), 700),
]
SURFACES = ("cart", "payment", "thank_you", "confirmation")
CATEGORIES = ("electronics", "apparel", "home", "beauty", "toys")
FEATURE_NAMES = ("orders_log", "aov_log", "days_since_last_log", "return_rate", "email_engagement", "app_user",
                 "reviews_log", "referrals")
INTERCEPT = -3.0

# The simulator's true conversion model: log-odds = INTERCEPT + bias + Σ w·x, in the server's feature
# names. The terms are the demo's (DemoModel.trueWeights); the per-offer biases centre the continuous
# features (order.total_log ≈ 4.8, customer.aov_log ≈ 4.4, ...) so that context, not a constant
# offset, decides which offer is best: gift orders -> gift box, electronics/high totals -> shipping
# protection and warranty, repeat buyers -> loyalty, deal seekers -> next-order discount, ...
TRUE_MODEL: dict[str, tuple[float, dict[str, float]]] = {
    "gift_box": (0.0, {"order.is_gift": 2.5, "segment=gift_giver": 1.0, "surface=cart": 0.3,
                       "order.is_gift*segment=gift_giver": 0.5}),
    "gift_message": (0.0, {"order.is_gift": 2.0, "segment=gift_giver": 0.4}),
    "rush_shipping": (-1.0, {"order.shipping=express": -1.0, "order.is_gift": 0.8, "surface=payment": 0.4,
                             "order.total_log": 0.2}),
    "express_upgrade": (0.3, {"order.shipping=express": -1.5, "order.is_gift": 0.5,
                              "customer.days_since_last_log": -0.1}),
    "shipping_protection": (-2.9, {"order.total_log": 0.6, "order.category=electronics": 0.8,
                                   "surface=payment": 0.3}),
    "complementary_socks": (0.0, {"order.category=apparel": 1.5, "surface=thank_you": 0.3}),
    "complementary_case": (0.0, {"order.category=electronics": 1.6, "surface=thank_you": 0.2}),
    "referral_give20_get20": (-0.6, {"segment=vip": 1.2, "customer.referrals": 0.4,
                                     "customer.email_engagement": 0.8}),
    "review_precommit": (0.0, {"customer.reviews_log": 0.9, "segment=repeat": 0.4}),
    "loyalty_enroll": (-0.5, {"segment=repeat": 1.0, "segment=loyalty_member": -2.0, "customer.orders_log": 0.4}),
    "loyalty_double_points": (-1.0, {"segment=loyalty_member": 1.5, "order.total_log": 0.2}),
    "partner_streaming_trial": (0.0, {"customer.app_user": 0.8, "order.device=mobile": 0.4,
                                      "order.category=toys": 0.3}),
    "partner_card": (-2.4, {"customer.aov_log": 0.5, "segment=vip": 0.6, "segment=deal_seeker": -0.5}),
    "extended_warranty": (-1.5, {"order.category=electronics": 1.2, "order.category=home": 0.6,
                                 "order.total_log": 0.3}),
    "donation_roundup": (0.0, {"surface=thank_you": 0.2, "customer.email_engagement": 0.3}),
    "next_order_discount": (0.0, {"segment=deal_seeker": 1.2, "segment=new": 0.6}),
}


# Slot 1 (--slots 2): the offer below slot 0 is seen less (a position effect on its log-odds) and
# its acceptance depends on what sits above it: complements sell better together (a gift box
# beside shipping protection, a phone case beside a warranty), substitutes cannibalise each other
# (gift box and gift message, rush shipping and express upgrade, the two loyalty offers, two
# kinds of insurance). Slot 0's acceptance does not depend on slot 1 (it is seen first).
SLOT1_POSITION = -0.8
PAIR_EFFECTS: dict[tuple[str, str], float] = {
    ("gift_box", "shipping_protection"): 1.2, ("shipping_protection", "gift_box"): 0.6,
    ("gift_box", "gift_message"): -1.5, ("gift_message", "gift_box"): -1.5,
    ("rush_shipping", "express_upgrade"): -2.0, ("express_upgrade", "rush_shipping"): -2.0,
    ("loyalty_enroll", "loyalty_double_points"): -1.5, ("loyalty_double_points", "loyalty_enroll"): -1.5,
    ("complementary_case", "extended_warranty"): 0.8, ("extended_warranty", "complementary_case"): 0.5,
    ("shipping_protection", "extended_warranty"): -0.8, ("extended_warranty", "shipping_protection"): -0.8,
    ("partner_streaming_trial", "partner_card"): 0.5,
}


# --pair-scale multiplies every pair effect (1: as above; 0: slot 1 depends on its own offer only).
PAIR_SCALE = [1.0]


def pair_effect(a: str, b: str) -> float:
    return PAIR_SCALE[0] * PAIR_EFFECTS.get((a, b), 0.0)


def true_slot1_probability(logit_b: float, a: str, b: str) -> float:
    """Slot-1 acceptance of offer b beside slot-0 offer a, from b's slot-0 log-odds in the context."""
    return 1.0 / (1.0 + math.exp(-(logit_b + SLOT1_POSITION + pair_effect(a, b))))


def eprint(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def candidates_for(surface: str) -> list[str]:
    return [o for o, _, surfaces, _ in CATALOG if surface in surfaces]


def true_probability(feats: dict[str, float], offer: str) -> float:
    return 1.0 / (1.0 + math.exp(-true_logit(feats, offer)))


def true_logit(feats: dict[str, float], offer: str) -> float:
    bias, terms = TRUE_MODEL[offer]
    s = INTERCEPT + bias
    for name, w in terms.items():
        if "*" in name:
            a, b = name.split("*")
            s += w * feats.get(a, 0.0) * feats.get(b, 0.0)
        else:
            s += w * feats.get(name, 0.0)
    return s


# -- data --------------------------------------------------------------------------------------

def make_customers(n: int, seed: int) -> list[tuple[str, list[str], dict[str, float]]]:
    """Customers drawn like DemoCustomers.customer(n) (same feature names and segments)."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for i in range(1, n + 1):
        u = rng.random(16)
        orders = int(-math.log(1 - u[0] * 0.999) * 3)
        aov = 20 + u[1] * u[2] * 300
        days = 365.0 if orders == 0 else u[3] * 200
        returns = u[4] * 0.3
        email = u[5]
        app = 1.0 if u[6] < 0.35 else 0.0
        reviews = int(u[7] * orders) if orders > 0 else 0
        referrals = int(u[9] * 5) if u[8] < 0.1 else 0
        segs = []
        if orders == 0:
            segs.append("new")
        if orders >= 2:
            segs.append("repeat")
        if orders >= 8 and aov > 120:
            segs.append("vip")
        if u[10] < 0.15:
            segs.append("gift_giver")
        if u[11] < 0.25:
            segs.append("deal_seeker")
        if orders >= 1 and u[12] < 0.25:
            segs.append("loyalty_member")
        vals = [math.log1p(orders), math.log1p(aov), math.log1p(days), returns, email, app, math.log1p(reviews),
                float(referrals)]
        feats = {k: round(float(v), 4) for k, v in zip(FEATURE_NAMES, vals)}
        out.append((f"c{i:06d}", segs, feats))
    return out


def write_data(directory: str, customers) -> tuple[str, str]:
    cat = os.path.join(directory, "catalog.jsonl")
    with open(cat, "w") as f:
        for oid, kind, surfaces, value in CATALOG:
            f.write(json.dumps({"offer_id": oid, "kind": kind, "title": oid, "surfaces": list(surfaces),
                                "value_cents": value}) + "\n")
    csv = os.path.join(directory, "customers.csv")
    with open(csv, "w") as f:
        f.write("customer_id,segments," + ",".join(FEATURE_NAMES) + "\n")
        for cid, segs, feats in customers:
            f.write(cid + "," + "|".join(segs) + "," + ",".join(repr(feats[k]) for k in FEATURE_NAMES) + "\n")
    return cat, csv


def make_contexts(n: int, rng: np.random.Generator, customers) -> list[dict[str, Any]]:
    """Orders: a random customer, surface and order; each as a decision-record-like dict."""
    out = []
    for i in range(n):
        c = customers[int(rng.integers(0, len(customers)))]
        surface = SURFACES[int(rng.integers(0, len(SURFACES)))]
        k = int(rng.integers(1, 4))
        items = []
        for _ in range(k):
            items.append({"sku": f"s{int(rng.integers(0, 500))}",
                          "category": CATEGORIES[int(rng.integers(0, len(CATEGORIES)))],
                          "price_cents": int(round(math.exp(rng.normal(math.log(6000), 0.8)))),
                          "quantity": int(rng.integers(1, 3))})
        order = {"total_cents": sum(it["price_cents"] * it["quantity"] for it in items), "currency": "USD",
                 "is_gift": bool(rng.random() < 0.2),
                 "shipping_method": "express" if rng.random() < 0.3 else "standard",
                 "channel": "app" if rng.random() < 0.4 else "web",
                 "device": "mobile" if rng.random() < 0.5 else "desktop", "country": "US", "items": items}
        rec = {"surface": surface, "customer_id": c[0], "known_customer": True, "order": order,
               "customer": {"segments": c[1], "features": c[2]}, "candidates": candidates_for(surface)}
        feats = record_features(rec)
        rec["_logit"] = {o: true_logit(feats, o) for o in rec["candidates"]}
        rec["_mu"] = {o: 1.0 / (1.0 + math.exp(-v)) for o, v in rec["_logit"].items()}
        rec["_feats"] = feats
        out.append(rec)
    return out


# -- truth -------------------------------------------------------------------------------------

def policy_probabilities(snap, contexts: list[dict[str, Any]]) -> tuple[Flat, np.ndarray]:
    """The active policy's exact distribution over each context's candidates (in the server's
    candidate order: catalog file order filtered by surface), with the server's math
    (encore.learn.policy mirrors DecisionWorkspace+Scoring.swift and Exploration.swift).
    `snap` None is the server without a snapshot: uniform over the eligible offers."""
    cands = [r["candidates"] for r in contexts]
    flat = Flat.build(cands, [c[0] for c in cands])
    if snap is None:
        return flat, 1.0 / np.repeat(flat.counts, flat.counts).astype(np.float64)
    ctx = ContextMatrix()
    for r in contexts:
        ctx.add(r["_feats"])
    pi, _ = policy_distribution(snap, ctx.dense(snap.features, snap.interactions), flat)
    return flat, pi


class Truth:
    """The fixed evaluation sample: exact values of policies under the true model.

    value(snap) = (1/N) Σ_i Σ_a π(a|x_i) μ(x_i, a): the expected slot-0 conversion per order of the
    policy with its exploration, where π is the server's exploration distribution for the
    snapshot and μ the simulator's true conversion probability. It is exact over the fixed sample
    of N contexts (no draw of offers or outcomes); random_value and oracle_value are the same
    expectation for the uniform policy and for the best offer per context. The loop asks for one
    slot, so the server's slot-1 draw (from the remaining offers) never happens and does not enter.
    """

    def __init__(self, contexts: list[dict[str, Any]]) -> None:
        self.contexts = contexts
        self.ctx = ContextMatrix()
        for r in contexts:
            self.ctx.add(r["_feats"])
        cands = [r["candidates"] for r in contexts]
        self.flat = Flat.build(cands, [c[0] for c in cands])
        self.mu = np.array([r["_mu"][c] for r in contexts for c in r["candidates"]])
        self.random_value = float(np.mean([np.mean(list(r["_mu"].values())) for r in contexts]))
        self.oracle_value = float(np.mean([max(r["_mu"].values()) for r in contexts]))

    def slates(self) -> None:
        """The slate structures (built on first use): slot 1's candidates after each slot-0
        choice in the server's order, their true slot-1 acceptance, and the reference values."""
        if hasattr(self, "pairs"):
            return
        from ..learn.slates import Pairs, slate_policy, slot1_value

        flat = self.flat
        self.pairs = pairs = Pairs.build(flat)
        logit = np.array([r["_logit"][c] for r in self.contexts for c in r["candidates"]])
        names = flat.offers
        effect = np.array([[pair_effect(a, b) for b in names] for a in names])
        a_idx = flat.offer[pairs.group_entry[pairs.group_of_pair]]
        b_idx = flat.offer[pairs.entry]
        self.mu1 = 1.0 / (1.0 + np.exp(-(logit[pairs.entry] + SLOT1_POSITION + effect[a_idx, b_idx])))
        pi0, pi1 = slate_policy(None, None, flat, pairs)
        self.random_slate_value = float((flat.segment_sum(pi0 * self.mu) +
                                         slot1_value(pi0, pi1, self.mu1, flat, pairs)).mean())
        # Oracle: the best ordered pair in every context.
        best1 = np.full(len(flat.dec), -np.inf)
        best1[pairs.group_entry] = np.maximum.reduceat(self.mu1, pairs.starts)
        self.oracle_slate_value = float(np.maximum.reduceat(self.mu + best1, flat.starts).mean())
        # The best the server's rule can do with the true slot-0 acceptance as its scorer: the
        # top offer, then the top of the rest (one scorer for both slots).
        self.top2_true_slate_value = self._greedy_slate(self.mu)

    def _greedy_slate(self, rewards: np.ndarray, slot1_rewards: np.ndarray | None = None) -> float:
        """True slate value of taking the first best offer for slot 0 and the first best of the
        rest (in the server's slot-1 order) for slot 1, by `rewards` (slot 1: by `slot1_rewards`
        over the pair entries when given, the snapshot's slot-1 model)."""
        flat, pairs = self.flat, self.pairs
        m = len(rewards)
        pos = np.arange(m)
        best = np.repeat(np.maximum.reduceat(rewards, flat.starts), flat.counts)
        first = np.minimum.reduceat(np.where(rewards == best, pos, m), flat.starts)
        r1 = rewards[pairs.entry] if slot1_rewards is None else slot1_rewards
        pbest = np.repeat(np.maximum.reduceat(r1, pairs.starts), pairs.counts)
        ppos = np.arange(len(r1))
        pfirst = np.minimum.reduceat(np.where(r1 == pbest, ppos, len(r1)), pairs.starts)
        groups = pairs.group_of_entry[first]
        v1 = np.where(groups >= 0, self.mu1[pfirst[np.maximum(groups, 0)]], 0.0)
        return float((self.mu[first] + v1).mean())

    def slate_value(self, snap) -> tuple[float, float]:
        """(slate value with the snapshot's exploration, value of its greedy slate)."""
        from ..learn.slates import slate_policy, slot1_rewards, slot1_value

        self.slates()
        if snap is None:
            return self.random_slate_value, self.random_slate_value
        z = self.ctx.dense(snap.features, snap.interactions)
        pi0, pi1 = slate_policy(snap, z, self.flat, self.pairs)
        v = float((self.flat.segment_sum(pi0 * self.mu) + slot1_value(pi0, pi1, self.mu1, self.flat,
                                                                        self.pairs)).mean())
        _, rewards = policy_distribution(snap, z, self.flat)
        return v, self._greedy_slate(rewards, slot1_rewards(snap, z, self.flat, self.pairs))

    def value(self, snap) -> tuple[float, float]:
        """(value with the snapshot's exploration, value of its greedy choice)."""
        if snap is None:
            return self.random_value, self.random_value
        z = self.ctx.dense(snap.features, snap.interactions)
        pi, rewards = policy_distribution(snap, z, self.flat)
        v = float(self.flat.segment_sum(pi * self.mu).mean())
        best = np.repeat(np.maximum.reduceat(rewards, self.flat.starts), self.flat.counts)
        pos = np.arange(len(rewards))
        first = np.minimum.reduceat(np.where(rewards == best, pos, len(rewards)), self.flat.starts)
        greedy = float(self.mu[first].mean())
        return v, greedy


# -- server ------------------------------------------------------------------------------------

def _pdeathsig() -> None:
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def start_server(binary: str, args: list[str], log_path: str, timeout: float = 60.0):
    log = open(log_path, "w")
    proc = subprocess.Popen([binary, "serve", *args], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, preexec_fn=_pdeathsig)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {open(log_path).read()[-2000:]}")
        with open(log_path) as f:
            admin_port = None
            for line in f:
                m = re.search(r"admin plane at \S+:(\d+)", line)  # printed before the data plane's line
                if m:
                    admin_port = int(m.group(1))
                if "listening on" in line:
                    port = int(line.strip().rsplit(":", 1)[1].split()[0])
                    return proc, port, admin_port
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not report 'listening on' in time")


def stop_server(proc) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# -- simulation --------------------------------------------------------------------------------

def simulate_round(stub, pb, contexts: list[dict[str, Any]], rng: np.random.Generator, snap=None, *,
                   chunk: int = 1000, timeout: float = 30.0, slots: int = 1) -> dict[str, Any]:
    """Serves `contexts` through Decide (`slots` 1 or 2) and reports SHOWN then ACCEPTED or
    IGNORED for every placement, drawn from the true model (slot 1: `true_slot1_probability`
    beside slot 0's offer). `snap` is the active snapshot (None: no snapshot, uniform): every
    reply's propensity (slot 1's: conditional on slot 0) is compared with the exact probability
    that the true-value computation gives the chosen offer."""
    draws = rng.random(len(contexts))
    draws1 = rng.random(len(contexts)) if slots == 2 else None
    accepted = accepted1 = 0
    shown_true = shown_true1 = 0.0
    counts: dict[str, int] = {}
    flat, pi = policy_probabilities(snap, contexts)
    pairs = pi1 = None
    if slots == 2:
        from ..learn.slates import Pairs, slate_policy

        pairs = Pairs.build(flat)
        z = None
        if snap is not None:
            ctx = ContextMatrix()
            for r in contexts:
                ctx.add(r["_feats"])
            z = ctx.dense(snap.features, snap.interactions)
        _, pi1 = slate_policy(snap, z, flat, pairs)
    version = snap.model_version if snap is not None else None
    max_diff = 0.0
    mismatched = 0
    wrong_version = 0
    expected_pi = 0.0
    placed = 0
    for lo in range(0, len(contexts), chunk):
        batch = contexts[lo:lo + chunk]
        replies = []
        for rec in batch:
            o = rec["order"]
            req = pb.DecideRequest(surface=rec["surface"], customer_id=rec["customer_id"], slots=slots)
            req.order.CopyFrom(pb.Order(total_cents=o["total_cents"], currency=o["currency"], is_gift=o["is_gift"],
                                        shipping_method=o["shipping_method"], channel=o["channel"],
                                        device=o["device"], country=o["country"]))
            for it in o["items"]:
                req.order.items.add(**it)
            # One call at a time: the server numbers decision ids (and seeds its draws from them)
            # in arrival order, which concurrent calls would make vary from run to run.
            replies.append(stub.Decide(req, timeout=timeout))
        shown, final = [], []
        for k, (rec, rep) in enumerate(zip(batch, replies)):
            if not rep.placements:
                continue
            offer = rep.placements[0].offer_id
            counts[offer] = counts.get(offer, 0) + 1
            i = lo + k
            j0 = rec["candidates"].index(offer)
            j = flat.starts[i] + j0
            diff = abs(float(pi[j]) - rep.placements[0].propensity)
            if len(rep.placements) > 1:
                offer1 = rep.placements[1].offer_id
                pos1 = rec["candidates"].index(offer1)
                g = pairs.group_of_entry[j]
                m = len(rec["candidates"])
                pidx = pairs.starts[g] + (pos1 if pos1 < m - 1 else j0)
                diff = max(diff, abs(float(pi1[pidx]) - rep.placements[1].propensity))
            max_diff = max(max_diff, diff)
            mismatched += diff > 1e-4
            expected_pi += float(pi[j])
            if version is not None and rep.model_version != version:
                wrong_version += 1
            p = rec["_mu"][offer]
            shown_true += p
            ok = draws[lo + k] < p
            accepted += ok
            shown.append(pb.OutcomeRequest(decision_id=rep.decision_id, offer_id=offer, outcome=pb.SHOWN))
            final.append(pb.OutcomeRequest(decision_id=rep.decision_id, offer_id=offer,
                                           outcome=pb.ACCEPTED if ok else pb.IGNORED,
                                           revenue_cents=0))
            placed += 1
            if len(rep.placements) > 1:
                p1 = true_slot1_probability(rec["_logit"][offer1], offer, offer1)
                shown_true1 += p1
                ok1 = draws1[lo + k] < p1
                accepted1 += ok1
                shown.append(pb.OutcomeRequest(decision_id=rep.decision_id, offer_id=offer1, outcome=pb.SHOWN))
                final.append(pb.OutcomeRequest(decision_id=rep.decision_id, offer_id=offer1,
                                               outcome=pb.ACCEPTED if ok1 else pb.IGNORED, revenue_cents=0))
                placed += 1
        # In batches, with a generous deadline: on a loaded machine thousands of outstanding
        # calls can wait on a starved server for longer than a Decide's deadline.
        for batch_requests in (shown, final):
            for lo2 in range(0, len(batch_requests), 500):
                for f in [stub.ReportOutcome.future(r, timeout=4 * timeout) for r in batch_requests[lo2:lo2 + 500]]:
                    f.result()
    n = len(contexts)
    out = {"orders": n, "placed": placed, "accepted": accepted, "conversion": accepted / n,
           "expected_conversion": shown_true / n,
           "offers_shown": dict(sorted(counts.items())),
           "propensity_check": {"max_abs_diff": max_diff, "decisions_differing_by_more_than_1e-4": int(mismatched),
                                "replies_from_another_model": int(wrong_version),
                                "mean_propensity_of_served_offer": expected_pi / max(n, 1)}}
    if slots == 2:
        out["slate_conversion"] = (accepted + accepted1) / n
        out["expected_slate_conversion"] = (shown_true + shown_true1) / n
    return out


def wait_for_logs(log_dir: str, decisions: int, outcomes: int, timeout: float = 30.0) -> None:
    """Waits until the server has written `decisions` decision and `outcomes` outcome records to
    `log_dir` (it flushes within a second; a loaded machine can take longer). Training on a log
    that is still being written would make the round depend on timing."""
    def count(kind: str) -> int:
        n = 0
        for name in os.listdir(log_dir):
            if name.startswith(kind + "-") and name.endswith(".jsonl"):
                with open(os.path.join(log_dir, name), "rb") as f:
                    n += f.read().count(b"\n")
        return n
    deadline = time.time() + timeout
    while True:
        have = (count("decisions"), count("outcomes"))
        if have[0] >= decisions and have[1] >= outcomes:
            return
        if time.time() > deadline:
            raise RuntimeError(f"after {timeout:.0f}s the server's logs hold {have[0]} decision and {have[1]} "
                               f"outcome records; expected {decisions} and {outcomes}")
        time.sleep(0.2)


def instance_id_for(seed: int) -> str:
    """The server's fixed decision-id prefix for a seeded loop (12 hex digits)."""
    return f"5eed{seed & 0xFFFFFFFF:08x}"


def write_decision_key(work: str, seed: int) -> str:
    """A fixed decision-id MAC key for a seeded loop (32 hex digits, mode 600), so the ids (MAC
    included), and the trainer's validation split hashed from them, repeat from run to run. A
    simulation's key, never a production one."""
    path = os.path.join(work, "decision.key")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(f"5eed{seed & 0xFFFFFFFF:08x}{'0' * 20}\n")
    return path


# -- main --------------------------------------------------------------------------------------

def default_binary() -> str:
    if os.environ.get("ENCORE_BIN"):
        return os.environ["ENCORE_BIN"]
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    for kind in ("release", "debug"):
        p = os.path.join(root, ".build", kind, "encore")
        if os.path.exists(p):
            return p
    raise SystemExit("no encore binary: set ENCORE_BIN or build .build/release/encore")


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="learning-loop", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 4; 2 with --quick)")
    ap.add_argument("--orders", type=int, default=None, help="orders simulated per round (default 40000; 4000 with "
                    "--quick)")
    ap.add_argument("--customers", type=int, default=None,
                    help="simulated customers (default 20000; 5000 with --quick)")
    ap.add_argument("--eval-contexts", type=int, default=None,
                    help="fixed sample of contexts for the true values (default 20000; 5000 with --quick)")
    ap.add_argument("--quick", action="store_true", help="a small run for tests: 2 rounds of 4000 orders")
    ap.add_argument("--gamma", default="auto", help="SquareCB gamma for training, or 'auto'")
    ap.add_argument("--weighting", choices=("ips", "none"), default="none",
                    help="the trainer's regression weighting (encore-learn train --weighting); default none")
    ap.add_argument("--interaction", action="append", default=[], metavar="A*B",
                    help="quadratic interaction for the trainer (repeatable; default none)")
    ap.add_argument("--bootstrap", type=int, default=None, help="bootstrap samples for the OPE intervals "
                    "(default 200; 50 with --quick)")
    ap.add_argument("--slots", type=int, choices=(1, 2), default=1,
                    help="offers per decision (2: slates; the shopper's slot-1 model is SLOT1_POSITION and PAIR_EFFECTS)")
    ap.add_argument("--pair-scale", type=float, default=1.0,
                    help="with --slots 2: multiplies the shopper's slot-0/slot-1 pair effects (0: none)")
    ap.add_argument("--slot1", choices=("model", "pool", "ignore", "auto"), default="model",
                    help="with --slots 2: the trainer's --slot1 (model: a slot-1 model in the snapshot; pool: the "
                         "scorer also fitted on slot-1 placements, no slot-1 model; ignore: slot 0 only)")
    ap.add_argument("--autopilot", action="store_true",
                    help="no human step: each round runs one `encore-learn autopilot` cycle (train on the logs, "
                         "compare with the active policy, push through its gate and the server's --require-ope)")
    ap.add_argument("--work-dir", help="keep logs and snapshots here (default: a temporary directory, removed)")
    ap.add_argument("--binary", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for name, full, quick in (("rounds", 4, 2), ("orders", 40000, 4000), ("customers", 20000, 5000),
                              ("eval_contexts", 20000, 5000), ("bootstrap", 200, 50)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    interactions = []
    for spec in args.interaction:
        a, sep, b = spec.partition("*")
        if not sep or not a or not b:
            ap.error(f"--interaction {spec!r}: expected NAME*NAME")
        interactions.append((a, b))

    import grpc

    from .._proto.encore.v1 import decisions_pb2 as pb, decisions_pb2_grpc
    from ..client import Client
    from ..learn.logs import bandit_data, load_logs
    from ..learn.autopilot import AutopilotConfig, run_cycle
    from ..learn.snapshot import decode_snapshot
    from ..learn.train import TrainConfig, train

    signal.signal(signal.SIGTERM, _terminate)
    t0 = time.time()
    work = args.work_dir or tempfile.mkdtemp(prefix="encore-loop-")
    os.makedirs(work, exist_ok=True)
    log_dir = os.path.join(work, "logs")
    os.makedirs(log_dir, exist_ok=True)
    binary = args.binary or default_binary()

    customers = make_customers(args.customers, args.seed)
    cat, csv = write_data(work, customers)
    truth = Truth(make_contexts(args.eval_contexts, np.random.default_rng([args.seed, 2]), customers))
    eprint(f"[loop] true values on {args.eval_contexts} contexts: uniform random {truth.random_value:.4f}, "
           f"oracle {truth.oracle_value:.4f}")

    proc = None
    result: dict[str, Any] = {"seed": args.seed, "rounds": args.rounds, "orders_per_round": args.orders,
                              "quick": args.quick, "customers": args.customers, "eval_contexts": args.eval_contexts,
                              "trainer": {"weighting": args.weighting, "interactions": args.interaction, "slot1": args.slot1,
                                          "gamma": args.gamma, "bootstrap": args.bootstrap},
                              "random_value": truth.random_value, "oracle_value": truth.oracle_value,
                              "true_value_by_round": [], "greedy_true_value_by_round": [],
                              "ope_snips_by_round": [], "ope_dr_by_round": [], "ope_ips_by_round": [],
                              "ope_snips_ci95_by_round": [], "ope_dr_ci95_by_round": [],
                              "ope_decisions_by_round": [], "gamma_by_round": [], "model_version_by_round": [],
                              "logged_conversion_by_round": [], "logged_expected_conversion_by_round": [],
                              "propensity_check_by_round": [], "slots": args.slots, "autopilot": args.autopilot}
    if args.autopilot:
        result["autopilot_lines"] = []
    if args.slots == 2:
        PAIR_SCALE[0] = args.pair_scale
        truth.slates()
        result.update({"random_slate_value": truth.random_slate_value, "oracle_slate_value": truth.oracle_slate_value,
                       "top2_true_slate_value": truth.top2_true_slate_value,
                       "true_slate_value_by_round": [], "greedy_true_slate_value_by_round": [],
                       "ope_slate_by_round": [], "ope_slate_ci95_by_round": [], "ope_slate_ips_by_round": [],
                       "ope_slate_snips_by_round": [], "ope_slate_pi_by_round": [], "ope_slate_pi_ci95_by_round": [],
                       "logged_expected_slate_conversion_by_round": [],
                       "slot1_model": {"position_log_odds": SLOT1_POSITION, "pair_scale": args.pair_scale,
                                       "pair_effects": {f"{a}>{b}": v for (a, b), v in PAIR_EFFECTS.items()}}})
        eprint(f"[loop] slates: uniform random {truth.random_slate_value:.4f}, oracle {truth.oracle_slate_value:.4f}, "
               f"top two by the true slot-0 acceptance {truth.top2_true_slate_value:.4f}")
    try:
        # One reactor thread and a fixed instance id: decision ids, and the draws seeded from them,
        # then depend only on the order of the calls (see the module doc).
        proc, port, admin_port = start_server(
            binary, ["--host", "127.0.0.1", "--port", "0", "--admin-port", "0", "--holdout-share", "0",
                     "--threads", "1", "--instance-id", instance_id_for(args.seed),
                     "--decision-key-file", write_decision_key(work, args.seed),
                     "--log-dir", log_dir, "--catalog", cat, "--customers", csv,
                     *(["--require-ope"] if args.autopilot else [])],
            os.path.join(work, "server.log"))
        eprint(f"[loop] {binary} serving on 127.0.0.1:{port} (uniform policy), logs in {log_dir}")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = decisions_pb2_grpc.DecisionsStub(channel)
        client = Client("127.0.0.1", port, admin_port=admin_port)
        sim_rng = np.random.default_rng([args.seed, 3])
        gamma = None if args.gamma == "auto" else float(args.gamma)
        active = None  # the server starts without a snapshot: uniform
        logging_policies: dict[str, Any] = {"uniform": None}  # model version -> snapshot (PI estimator)
        decided = reported = 0
        for k in range(1, args.rounds + 1):
            t = time.time()
            contexts = make_contexts(args.orders, sim_rng, customers)
            stats = simulate_round(stub, pb, contexts, sim_rng, active, slots=args.slots)
            result["logged_conversion_by_round"].append(stats["conversion"])
            result["logged_expected_conversion_by_round"].append(stats["expected_conversion"])
            result["propensity_check_by_round"].append(stats["propensity_check"])
            if args.slots == 2:
                result["logged_expected_slate_conversion_by_round"].append(stats["expected_slate_conversion"])
            pc = stats["propensity_check"]
            eprint(f"[loop] round {k}: served by {active.model_version if active else 'no snapshot (uniform)'}; "
                   f"reply propensities vs the exact computation: max |diff| {pc['max_abs_diff']:.2e}, "
                   f"{pc['decisions_differing_by_more_than_1e-4']} differ by > 1e-4")
            eprint(f"[loop] round {k}: {stats['orders']} orders in {time.time() - t:.1f}s, conversion "
                   f"{stats['conversion']:.4f} (expected {stats['expected_conversion']:.4f})")
            decided += stats["orders"]
            reported += 2 * stats["placed"]  # SHOWN, then ACCEPTED or IGNORED
            wait_for_logs(log_dir, decided, reported)
            t = time.time()
            # A fixed created-at per round (2026-01-01T00:00:00Z + k minutes) keeps the model version,
            # which seeds the server's draws together with the decision id, the same every run.
            created = 1_767_225_600_000 + 60_000 * k
            train_fields = dict(interactions=interactions, gamma=gamma, bootstrap=args.bootstrap, seed=args.seed,
                                weighting=args.weighting, slot1=args.slot1)
            if args.autopilot:
                # No human step: the autopilot's cycle decides what the server serves (its gate,
                # and the server's --require-ope gate), and the truth is computed for the snapshot
                # the server serves afterwards, fetched from it.
                acfg = AutopilotConfig(server=f"127.0.0.1:{admin_port}", decisions=[log_dir], outcomes=[log_dir],
                                       state_dir=os.path.join(work, "autopilot"), train=train_fields)
                line = run_cycle(acfg, k, created_at_ms=created, log=lambda m: eprint(f"[train] {m}"))
                line.pop("seconds", None)
                line.pop("time_ms", None)
                eprint(f"[autopilot] {json.dumps(line)}")
                if line["status"] != "ok":
                    raise RuntimeError(f"autopilot cycle {k} failed: {line.get('error')}")
                result["autopilot_lines"].append(line)
                got = client.get_snapshot()
                snap = decode_snapshot(got[1]) if got is not None else None
                which = "candidate" if line.get("decision") == "activated" else "active"
                est = line[which]["estimates"]
                slate_est = est if line["estimand"] == "slate" else None  # the line has the estimand's
                ope_decisions = line["evaluated_on"]
                active = snap
            else:
                logs = load_logs([log_dir], [log_dir])
                data = bandit_data(logs, "conversion")
                cfg = TrainConfig(**train_fields, created_at_millis=created,
                                  logging_policies=dict(logging_policies) if args.slots == 2 else None)
                snap = train(data, cfg, log=lambda m: eprint(f"[train] {m}"))
                path = os.path.join(work, f"round-{k}.snap")
                write_snapshot(snap, path)
                # The OPE estimate made before the push is the snapshot's own OPE report: encore-learn
                # evaluate's math on the decisions the trainer held out of fitting (a hash split by
                # decision id), for the exact policy written. (The loop's server runs without
                # --require-ope, so no comparison with the active policy is needed to activate.)
                est = snap.ope["estimates"]
                slate_est = snap.ope["slate"]["total"] if "slate" in snap.ope else None
                eprint(f"[loop] round {k}: trained {snap.model_version} {snap.exploration.describe()} on "
                       f"{len(data)} decisions in {time.time() - t:.1f}s; OPE SNIPS {est['snips']['value']:.4f} "
                       f"DR {est['dr']['value']:.4f}" + (f"; slate DR {slate_est['dr']['value']:.4f}" if slate_est
                                                         else ""))
                client.push_snapshot(path, activate=True)
                active_version = client.list_models().active_version
                if active_version != snap.model_version:
                    raise RuntimeError(f"pushed {snap.model_version} but {active_version} is active")
                ope_decisions = snap.ope["decisions"]
                active = snap
            if snap is not None:
                logging_policies[snap.model_version] = snap
            value, greedy = truth.value(snap)
            eprint(f"[loop] round {k}: active {snap.model_version if snap else 'uniform'}; TRUE value {value:.4f} "
                   f"(greedy {greedy:.4f}; {value / truth.oracle_value:.3f} of oracle, "
                   f"{value / truth.random_value:.2f}x random)")
            result["true_value_by_round"].append(value)
            result["greedy_true_value_by_round"].append(greedy)
            if args.slots == 2:
                sv, sg = truth.slate_value(snap)
                result["true_slate_value_by_round"].append(sv)
                result["greedy_true_slate_value_by_round"].append(sg)
                result["ope_slate_by_round"].append(slate_est["dr"]["value"])
                result["ope_slate_ci95_by_round"].append(slate_est["dr"].get("ci95"))
                result["ope_slate_ips_by_round"].append(slate_est["ips"]["value"])
                result["ope_slate_snips_by_round"].append(slate_est["snips"]["value"])
                pi_est = slate_est.get("pseudo_inverse")
                result["ope_slate_pi_by_round"].append(pi_est["value"] if pi_est else None)
                result["ope_slate_pi_ci95_by_round"].append(pi_est.get("ci95") if pi_est else None)
                eprint(f"[loop] round {k}: TRUE slate value {sv:.4f} (greedy {sg:.4f}; "
                       f"{sv / truth.oracle_slate_value:.3f} of the oracle slate, "
                       f"{sv / truth.random_slate_value:.2f}x random); OPE slate DR {slate_est['dr']['value']:.4f}"
                       + (f", PI {pi_est['value']:.4f}" if pi_est else ""))
            if not (args.autopilot and args.slots == 2):
                result["ope_snips_by_round"].append(est["snips"]["value"])
                result["ope_dr_by_round"].append(est["dr"]["value"])
                result["ope_ips_by_round"].append(est["ips"]["value"])
                result["ope_snips_ci95_by_round"].append(est["snips"].get("ci95"))
                result["ope_dr_ci95_by_round"].append(est["dr"].get("ci95"))
            result["ope_decisions_by_round"].append(ope_decisions)
            result["gamma_by_round"].append(snap.exploration.gamma if snap else None)
            result["model_version_by_round"].append(snap.model_version if snap else "uniform")
        client.close()
        channel.close()
    finally:
        stop_server(proc)
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)

    final = result["true_value_by_round"][-1] if result["true_value_by_round"] else float("nan")
    result["final_over_oracle"] = final / truth.oracle_value
    result["final_over_random"] = final / truth.random_value
    result["snips_rel_error_by_round"] = [abs(e - v) / v for e, v in
                                          zip(result["ope_snips_by_round"], result["true_value_by_round"])]
    result["dr_rel_error_by_round"] = [abs(e - v) / v for e, v in
                                       zip(result["ope_dr_by_round"], result["true_value_by_round"])]
    if args.autopilot:
        hit = [k for k, v in enumerate(result["true_value_by_round" if args.slots == 1 else
                                              "true_slate_value_by_round"], 1)
               if v >= 0.9 * (truth.oracle_value if args.slots == 1 else truth.oracle_slate_value)]
        result["autopilot_first_cycle_at_0.9_oracle"] = hit[0] if hit else None
    elapsed_s = round(time.time() - t0, 1)  # stderr only: the JSON holds what repeats run to run
    if args.slots == 2:
        fs = result["true_slate_value_by_round"][-1] if result["true_slate_value_by_round"] else float("nan")
        result["final_slate_over_oracle_slate"] = fs / truth.oracle_slate_value
        result["final_slate_over_random_slate"] = fs / truth.random_slate_value
        result["ope_slate_rel_error_by_round"] = [abs(e - v) / v for e, v in zip(result["ope_slate_by_round"],
                                                                                 result["true_slate_value_by_round"])]
        result["ope_slate_pi_rel_error_by_round"] = [abs(e - v) / v if e is not None else None for e, v in
                                                     zip(result["ope_slate_pi_by_round"],
                                                         result["true_slate_value_by_round"])]
        result["slate_bars"] = {
            "final_slate_ge_0.9_oracle_slate": result["final_slate_over_oracle_slate"] >= 0.9,
            "final_slate_ge_1.5_random_slate": result["final_slate_over_random_slate"] >= 1.5,
            "ope_slate_dr_within_15pct": all(e <= 0.15 for e in result["ope_slate_rel_error_by_round"]),
            "ope_slate_pi_within_15pct": all(e is not None and e <= 0.15
                                             for e in result["ope_slate_pi_rel_error_by_round"]),
        }
        eprint(f"[loop] final slate value {fs:.4f} = {result['final_slate_over_oracle_slate']:.3f} x oracle slate, "
               f"{result['final_slate_over_random_slate']:.2f} x random slate")
    result["bars"] = {
        "final_ge_0.9_oracle": result["final_over_oracle"] >= 0.9,
        "final_ge_1.5_random": result["final_over_random"] >= 1.5,
        "ope_within_15pct": all(e <= 0.15 for e in
                                result["snips_rel_error_by_round"] + result["dr_rel_error_by_round"]),
        "at_least_4_rounds": len(result["true_value_by_round"]) >= 4,
        "propensities_match_server": all(c["decisions_differing_by_more_than_1e-4"] == 0
                                         and c["replies_from_another_model"] == 0
                                         for c in result["propensity_check_by_round"]),
    }
    eprint(f"[loop] done in {elapsed_s}s (under 15 min: {elapsed_s < 900}): final true value {final:.4f} = "
           f"{result['final_over_oracle']:.3f} x oracle, {result['final_over_random']:.2f} x random")
    if args.json:
        print(json.dumps(result))
    else:
        for k, (v, s, d) in enumerate(zip(result["true_value_by_round"], result["ope_snips_by_round"],
                                          result["ope_dr_by_round"]), 1):
            print(f"round {k}: true {v:.4f}  SNIPS {s:.4f}  DR {d:.4f}")
        print(f"random {truth.random_value:.4f}  oracle {truth.oracle_value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
