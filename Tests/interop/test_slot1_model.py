"""A snapshot with a slot-1 model (the optional SLOT1 section, docs/snapshots.md) pushed to a
real server through grpcio changes slot 1's placements as its pair terms say, and leaves slot 0
and snapshots without the section alone. The snapshots are built from JSON exports with the
`encore snapshot build` CLI."""
from __future__ import annotations

import json
import math
import struct

import encore_interop as ei

TIMEOUT = 10
OFFERS = ["gift_box", "rush_shipping", "shipping_protection", "extended_warranty"]  # all on the cart
BIASES = [2.0, 1.0, 0.5, 0.0]


def _build(tmp_path, version, slot1=None, exploration=None):
    export = {"model_version": version, "features": ["bias"], "offers": OFFERS, "shared_weights": [0.0],
              "offer_weights": [[0.0] for _ in OFFERS], "offer_biases": BIASES,
              "exploration": exploration or {"kind": "epsilon_greedy", "epsilon": 0.0}}
    if slot1 is not None:
        export["slot1"] = slot1
    src = tmp_path / f"{version}.json"
    src.write_text(json.dumps(export))
    out = tmp_path / f"{version}.snap"
    r = ei.run_cli("snapshot", "build", "--from", str(src), "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    inspect = ei.run_cli("snapshot", "inspect", str(out))
    assert inspect.returncode == 0, inspect.stderr
    return out.read_bytes(), inspect.stdout


def _pairs(terms):
    table = [[0.0] * len(OFFERS) for _ in OFFERS]
    for a, b, v in terms:
        table[OFFERS.index(a)][OFFERS.index(b)] = v
    return table


def _push(stubs, admin_channel, data):
    M = stubs.models_pb2
    models = stubs.models_pb2_grpc.ModelsStub(admin_channel)
    return models.PushSnapshot(iter([M.SnapshotChunk(data=data, activate=True)]), timeout=TIMEOUT)


def _slates(stubs, channel, n, start=0):
    D = stubs.decisions_pb2
    decisions = stubs.decisions_pb2_grpc.DecisionsStub(channel)
    out = []
    for i in range(start, start + n):
        r = decisions.Decide(D.DecideRequest(surface="cart", customer_id=f"slot1-{i}", slots=2,
                                             candidate_offer_ids=OFFERS,
                                             order=D.Order(order_id=f"o-slot1-{i}", total_cents=4200, currency="USD")),
                             timeout=TIMEOUT)
        assert len(r.placements) == 2, r
        out.append((r.model_version, r.placements[0], r.placements[1]))
    return out


def test_slot1_model_changes_slot1_placements(stubs, server_factory, channel_for, tmp_path):
    server = server_factory("--holdout-share", "0")
    channel, admin = channel_for(server), channel_for(server, admin=True)

    # Without the section: greedy slot 0 is gift_box, slot 1 the runner-up, rush_shipping.
    plain, text = _build(tmp_path, "slot1-absent")
    assert "no slot-1 model" in text, text
    assert _push(stubs, admin, plain).activated
    for version, p0, p1 in _slates(stubs, channel, 20):
        assert version == "slot1-absent"
        assert (p0.offer_id, p1.offer_id) == ("gift_box", "rush_shipping")
        assert p1.score == 1.0 and p1.propensity == 1.0

    # With it: beside gift_box, shipping_protection gets +1.5 (2.0 > rush_shipping's 1.0 - 1.0).
    terms = [("gift_box", "shipping_protection", 1.5), ("gift_box", "rush_shipping", -1.0),
             ("rush_shipping", "extended_warranty", 9.0)]  # never used: rush_shipping is never in slot 0
    model, text = _build(tmp_path, "slot1-pairs", slot1={"offer_biases": [0.0] * 4, "pairs": _pairs(terms)})
    assert "biases and 4 x 4 pair terms" in text and "rush_shipping>extended_warranty=9.000" in text, text
    assert _push(stubs, admin, model).activated
    for version, p0, p1 in _slates(stubs, channel, 20, start=100):
        assert version == "slot1-pairs"
        assert (p0.offer_id, p0.score) == ("gift_box", 2.0)  # slot 0 untouched
        assert p1.offer_id == "shipping_protection"
        assert p1.score == 2.0 and p1.propensity == 1.0
        assert math.isclose(p1.expected_value, 1 / (1 + math.exp(-2.0)), rel_tol=1e-12)

    # Slot-1 biases alone: extended_warranty's +1.2 lifts it over rush_shipping (1.0) and
    # shipping_protection (0.5).
    biased, _ = _build(tmp_path, "slot1-biases", slot1={"offer_biases": [0.0, 0.0, 0.0, 1.2], "pairs": _pairs([])})
    assert _push(stubs, admin, biased).activated
    for version, p0, p1 in _slates(stubs, channel, 10, start=200):
        assert (version, p0.offer_id, p1.offer_id) == ("slot1-biases", "gift_box", "extended_warranty")
        assert math.isclose(p1.score, 1.2, rel_tol=1e-6)

    # SquareCB: slot 1's propensity is the exploration of the conditioned scores (given slot 0).
    explore, _ = _build(tmp_path, "slot1-squarecb", slot1={"offer_biases": [-0.8, -0.5, -0.3, 0.2],
                                                            "pairs": _pairs(terms)},
                        exploration={"kind": "squarecb", "gamma": 4})
    assert _push(stubs, admin, explore).activated
    def f32(x):
        return struct.unpack("<f", struct.pack("<f", x))[0]

    b1 = [-0.8, -0.5, -0.3, 0.2]
    table = _pairs(terms)
    firsts = set()
    for version, p0, p1 in _slates(stubs, channel, 150, start=300):
        assert version == "slot1-squarecb"
        a = OFFERS.index(p0.offer_id)
        firsts.add(a)
        rest = list(range(4))
        rest[a] = 3
        rest.pop()
        rewards = [1 / (1 + math.exp(-f32(f32(f32(BIASES[b]) + f32(b1[b])) + f32(table[a][b])))) for b in rest]
        best = max(range(3), key=lambda i: (rewards[i], -i))
        probs = [0.0 if i == best else 1 / (3 + 4 * (rewards[best] - rewards[i])) for i in range(3)]
        probs[best] = 1 - sum(probs)
        k = rest.index(OFFERS.index(p1.offer_id))
        assert math.isclose(p1.propensity, probs[k], rel_tol=1e-9), (p0.offer_id, p1.offer_id, probs)
    assert len(firsts) >= 3, firsts

    # Back to the snapshot without the section: slot 1 is the runner-up again.
    again, _ = _build(tmp_path, "slot1-absent-again")
    assert _push(stubs, admin, again).activated
    for _, p0, p1 in _slates(stubs, channel, 5, start=500):
        assert (p0.offer_id, p1.offer_id) == ("gift_box", "rush_shipping")


def test_corrupt_slot1_export_refused(tmp_path):
    src = tmp_path / "bad.json"
    src.write_text(json.dumps({"model_version": "bad-slot1", "features": ["bias"], "offers": OFFERS,
                               "shared_weights": [0.0], "offer_weights": [[0.0] for _ in OFFERS],
                               "slot1": {"offer_biases": [0.0] * 4, "pairs": _pairs([])[:3]}}))
    r = ei.run_cli("snapshot", "build", "--from", str(src), "--out", str(tmp_path / "bad.snap"))
    assert r.returncode != 0 and "slot1.pairs has 3 rows for 4 offers" in r.stderr + r.stdout, r.stderr
    src.write_text(json.dumps({"model_version": "big-slot1", "features": ["bias"], "offers": OFFERS,
                               "shared_weights": [0.0], "offer_weights": [[0.0] for _ in OFFERS],
                               "slot1": {"offer_biases": [0.0, 0.0, 2e6, 0.0], "pairs": _pairs([])}}))
    r = ei.run_cli("snapshot", "build", "--from", str(src), "--out", str(tmp_path / "big.snap"))
    assert r.returncode != 0 and "slot-1 bias" in r.stderr + r.stdout and "1e6" in r.stderr + r.stdout, r.stderr
