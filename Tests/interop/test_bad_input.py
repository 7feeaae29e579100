"""Issue 15, robustness under bad input, with grpcio: only finite numbers in answers (huge-weight
snapshots, features beyond float32), oversize string fields refused instead of acknowledged and
then dropped from the log, absurd outcome revenue refused, and snapshots padded with junk refused.
Every limit named here is documented in Protocol/PROTOCOL.md."""
from __future__ import annotations

import hashlib
import json
import math
import struct

import grpc
import pytest

import encore_interop as ei

TIMEOUT = 10
ELIGIBLE = ei.eligible_by_surface(ei.demo_catalog())


# ----------------------------------------------------------------------------------------------
# A snapshot writer independent of Encore's (format: docs/snapshots.md), so tests can build
# snapshots the encore CLI refuses to write.
# ----------------------------------------------------------------------------------------------
def _json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def snapshot_bytes(version, features, offers, shared, offer_rows, biases, exploration=None,
                   link="logistic", gap: bytes = b"", tail: bytes = b"", section_pad: dict | None = None) -> bytes:
    """`gap` goes between the section table and the first section (with offsets shifted to skip
    it), `tail` after the last section, `section_pad[type]` is appended inside that section."""
    exploration = exploration or {"kind": "squarecb", "gamma": 50}
    schema = _json({"features": features, "interactions": []})
    weights = struct.pack(f"<{len(shared)}f", *shared)
    for bias, row in zip(biases, offer_rows):
        weights += struct.pack(f"<{1 + len(row)}f", bias, *row)
    sections = [(1, _json({"link": link, "objective": "conversion"})), (2, schema), (3, _json(offers)),
                (4, weights), (5, _json(exploration))]
    sections = [(t, p + (section_pad or {}).get(t, b"")) for t, p in sections]
    v = version.encode()
    out = bytearray(b"ENCSNAP\0") + struct.pack("<IIq", 1, len(sections), 1_700_000_000_000)
    out += hashlib.sha256(sections[1][1]).digest() + struct.pack("<H", len(v)) + v
    while len(out) % 8:
        out.append(0)
    offset = len(out) + 24 * len(sections) + len(gap)
    for t, p in sections:
        out += struct.pack("<IIQQ", t, 0, offset, len(p))
        offset += len(p)
    out += gap
    for _, p in sections:
        out += p
    out += tail
    digest = hashlib.sha256(bytes(out)).digest()
    return bytes(out + b"ENCTRLR1" + digest + bytes(8 + 32 + 64))


def push(stubs, channel, data: bytes, activate=False):
    M = stubs.models_pb2
    models = stubs.models_pb2_grpc.ModelsStub(channel)
    chunks = [data[i: i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    return models.PushSnapshot(iter([M.SnapshotChunk(data=c, activate=activate) for c in chunks]),
                               timeout=30)


def rpc_error(fn, *args, **kw) -> grpc.RpcError:
    try:
        out = fn(*args, **kw)
    except grpc.RpcError as e:
        return e
    pytest.fail(f"expected an error status, got OK: {out}")


def decide_request(D, **kw):
    kw.setdefault("order", D.Order(order_id="o-bad", total_cents=4200, currency="USD", channel="web",
                                   device="desktop", country="US"))
    kw.setdefault("surface", "cart")
    kw.setdefault("customer_id", "c000321")
    return D.DecideRequest(**kw)


def assert_finite_answer(resp):
    for p in resp.placements:
        assert math.isfinite(p.propensity) and 0 < p.propensity <= 1, resp
        assert math.isfinite(p.score) and math.isfinite(p.expected_value), resp


# ----------------------------------------------------------------------------------------------
# Point 2: only finite numbers in answers
# ----------------------------------------------------------------------------------------------
def test_huge_weight_snapshot_is_refused_at_push(stubs, server_factory, channel_for, admin_channel_for):
    server = server_factory("--holdout-share", "0")
    ch = channel_for(server)
    admin = admin_channel_for(server)
    offers = ["gift_box", "rush_shipping"]
    for w in (3.0e38, -3.0e38):
        data = snapshot_bytes("huge-weights", ["bias", "request.x"], offers, [w, w], [[w, -w], [-w, w]], [w, w])
        err = rpc_error(push, stubs, admin, data, activate=True)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, (err.code(), err.details())
        assert "weight" in err.details() and "1e6" in err.details(), err.details()
    # The server kept deciding with its model, with finite numbers.
    stub = stubs.decisions_pb2_grpc.DecisionsStub(ch)
    resp = stub.Decide(decide_request(stubs.decisions_pb2, slots=2, features={"x": 1.0}), timeout=TIMEOUT)
    assert resp.model_version != "huge-weights" and resp.placements
    assert_finite_answer(resp)


def test_overflowing_scores_fall_back_to_uniform_with_finite_answers(stubs, server_factory, channel_for, admin_channel_for, tmp_path):
    """Weights at the 1e6 bound times a float32-sized feature overflow: the decision is uniform
    over the eligible offers (propensities 1/n, then 1/(n-1)), scores are 0, nothing is NaN."""
    logs = tmp_path / "logs"
    server = server_factory("--holdout-share", "0", "--log-dir", str(logs))
    ch = channel_for(server)
    admin = admin_channel_for(server)
    D = stubs.decisions_pb2
    cart = sorted(ELIGIBLE["cart"])[:3]
    data = snapshot_bytes("bound-weights", ["bias", "request.x"], cart, [0.0, 1e6],
                          [[0.5, 1e6], [0.0, -1e6], [1.0, 1e6]], [0.1, 0.2, 0.3])
    assert push(stubs, admin, data, activate=True).activated
    stub = stubs.decisions_pb2_grpc.DecisionsStub(ch)
    for x in (3.4e38, -3.4e38, 1e38):
        resp = stub.Decide(decide_request(D, slots=2, candidate_offer_ids=cart, features={"x": x}), timeout=TIMEOUT)
        assert resp.model_version == "bound-weights"
        assert len(resp.placements) == 2, resp
        assert_finite_answer(resp)
        assert [p.propensity for p in resp.placements] == [1 / 3, 1 / 2], resp
        assert all(p.score == 0 for p in resp.placements), resp
    # An ordinary value is scored by the model (and not counted as a fallback below).
    resp = stub.Decide(decide_request(D, slots=1, candidate_offer_ids=cart, features={"x": 1e-3}), timeout=TIMEOUT)
    assert_finite_answer(resp)
    assert resp.placements[0].score != 0, resp
    server.stop()
    assert "3 uniform fallbacks for non-finite scores" in server.stderr, server.stderr[-2000:]
    # The log says so, and holds only numbers (no null) in the fallback records.
    records = [json.loads(line) for f in sorted(logs.glob("decisions-*.jsonl")) for line in f.read_text().splitlines()]
    mine = [r for r in records if r.get("model_version") == "bound-weights"]
    assert [bool(r.get("uniform_fallback")) for r in mine] == [True, True, True, False], mine
    for r in mine[:3]:
        assert [p["propensity"] for p in r["placements"]] == [1 / 3, 1 / 2], r
        numbers = list(r["context"].values()) + [v for p in r["placements"] for v in p.values() if not isinstance(v, str)]
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers), r


@pytest.mark.parametrize("value", [1e308, -1e308, 3.5e38, float("inf"), float("-inf"), float("nan")],
                         ids=["1e308", "-1e308", "3.5e38", "inf", "-inf", "nan"])
def test_features_beyond_float32_are_invalid_argument(stubs, demo_no_holdout, channel_for, value):
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(demo_no_holdout))
    err = rpc_error(stub.Decide, decide_request(stubs.decisions_pb2, features={"ok": 1.0, "x": value}),
                    timeout=TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert err.details().startswith("features:") and "float32" in err.details(), err.details()


def test_float32_extremes_are_accepted(stubs, demo_no_holdout, channel_for):
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(demo_no_holdout))
    big = 3.4028234663852886e38  # float32's largest finite value
    resp = stub.Decide(decide_request(stubs.decisions_pb2, slots=2, features={"a": big, "b": -big}), timeout=TIMEOUT)
    assert_finite_answer(resp)


# ----------------------------------------------------------------------------------------------
# Point 3: nothing acknowledged and then dropped; no silent truncation; no padded snapshots
# ----------------------------------------------------------------------------------------------
MB = "x" * (1 << 20)
# (field, limit in bytes, how to put a value of n bytes into a request)
FIELD_LIMITS = [
    ("order.currency", 16, lambda D, v: dict(order=D.Order(currency=v))),
    ("order.country", 16, lambda D, v: dict(order=D.Order(country=v))),
    ("order.channel", 64, lambda D, v: dict(order=D.Order(channel=v))),
    ("order.device", 64, lambda D, v: dict(order=D.Order(device=v))),
    ("order.shipping_method", 64, lambda D, v: dict(order=D.Order(shipping_method=v))),
    ("order.items.sku", 64, lambda D, v: dict(order=D.Order(items=[D.LineItem(sku=v, quantity=1)]))),
    ("order.items.category", 128, lambda D, v: dict(order=D.Order(items=[D.LineItem(category=v, quantity=1)]))),
    ("features", 128, lambda D, v: dict(features={v: 1.0})),
]


@pytest.mark.parametrize("field,limit,build", FIELD_LIMITS, ids=[f[0] for f in FIELD_LIMITS])
def test_oversize_fields_are_refused_naming_field_and_limit(stubs, demo_no_holdout, channel_for, field, limit, build):
    D = stubs.decisions_pb2
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(demo_no_holdout))
    for value in (MB, "y" * (limit + 1)):
        err = rpc_error(stub.Decide, decide_request(D, **build(D, value)), timeout=TIMEOUT)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, err.code(), err.details())
        assert err.details().startswith(field + ":") and f" {limit} " in err.details(), err.details()
    assert_finite_answer(stub.Decide(decide_request(D, **build(D, "y" * limit)), timeout=TIMEOUT))


def test_line_items_over_128_are_refused_not_truncated(stubs, demo_no_holdout, channel_for):
    D = stubs.decisions_pb2
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(demo_no_holdout))
    items = [D.LineItem(sku=f"s{i}", category="books", price_cents=100, quantity=1) for i in range(129)]
    err = rpc_error(stub.Decide, decide_request(D, order=D.Order(items=items)), timeout=TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("order.items:"), err.details()
    assert "128" in err.details(), err.details()
    stub.Decide(decide_request(D, order=D.Order(items=items[:128])), timeout=TIMEOUT)


def test_a_decision_at_every_limit_is_answered_and_logged(stubs, server_factory, channel_for, tmp_path):
    logs = tmp_path / "logs"
    server = server_factory("--log-dir", str(logs), "--holdout-share", "0")
    D = stubs.decisions_pb2
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(server))
    items = [D.LineItem(sku=f"{i:03d}".ljust(64, "s"), category=f"{i:03d}".ljust(128, "c"), price_cents=100,
                        quantity=1) for i in range(128)]
    order = D.Order(order_id="o" * 256, total_cents=5000, currency="c" * 16, country="n" * 16, channel="h" * 64,
                    device="d" * 64, shipping_method="m" * 64, items=items)
    features = {f"{i:03d}".ljust(128, "k"): float(i) for i in range(128)}
    resp = stub.Decide(D.DecideRequest(surface="cart", customer_id="u" * 256, request_id="at-every-limit", slots=2,
                                       order=order, features=features), timeout=TIMEOUT)
    assert resp.placements
    assert server.stop() == 0
    assert ", 0 dropped" in server.stderr, server.stderr[-2000:]
    records = [json.loads(line) for f in sorted(logs.glob("decisions-*.jsonl")) for line in f.read_text().splitlines()]
    mine = [r for r in records if r.get("request_id") == "at-every-limit"]
    assert len(mine) == 1, f"the decision was answered but not logged ({len(records)} records)"
    assert mine[0]["decision_id"] == resp.decision_id
    assert len(mine[0]["order"]["items"]) == 128 and len(mine[0]["request_features"]) == 128


@pytest.mark.parametrize("revenue", [-1, -(2 ** 63), 100_000_000_001, 2 ** 63 - 1])
def test_negative_or_absurd_revenue_is_refused(stubs, demo_no_holdout, channel_for, revenue):
    D = stubs.decisions_pb2
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(demo_no_holdout))
    decision = stub.Decide(decide_request(D), timeout=TIMEOUT)
    offer = decision.placements[0].offer_id if decision.placements else "gift_box"
    req = D.OutcomeRequest(decision_id=decision.decision_id, offer_id=offer, outcome=D.ACCEPTED,
                           revenue_cents=revenue)
    err = rpc_error(stub.ReportOutcome, req, timeout=TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert err.details().startswith("revenue_cents:") and "100000000000" in err.details(), err.details()
    for ok in (0, 100_000_000_000):
        stub.ReportOutcome(D.OutcomeRequest(decision_id=decision.decision_id, offer_id=offer, outcome=D.ACCEPTED,
                                            revenue_cents=ok), timeout=TIMEOUT)


def _padding_cases():
    offers = ["gift_box", "rush_shipping"]
    args = ("padded", ["bias"], offers, [0.1], [[0.2], [0.3]], [0.0, 0.1])
    junk = b"\x00" * (8 << 20)
    return [
        ("junk between the table and the sections", snapshot_bytes(*args, gap=junk), "no gaps or padding"),
        ("junk after the last section", snapshot_bytes(*args, tail=junk), "belong to no section"),
        ("whitespace inside OFFERS", snapshot_bytes(*args, section_pad={3: b" " * (1 << 20)}), "whitespace"),
        ("EXPLORATION over 4 KiB", snapshot_bytes(*args, exploration={"kind": "uniform", "pad": "p" * 5000}),
         "4096-byte limit"),
    ]


@pytest.mark.parametrize("name,data,reason", _padding_cases(), ids=[c[0] for c in _padding_cases()])
def test_snapshots_padded_with_junk_are_refused(stubs, demo_no_holdout, admin_channel_for, name, data, reason):
    err = rpc_error(push, stubs, admin_channel_for(demo_no_holdout), data)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, (name, err.code(), err.details())
    assert reason in err.details(), err.details()


def test_the_unpadded_snapshot_of_the_padding_cases_is_accepted(stubs, server_factory, admin_channel_for):
    server = server_factory("--holdout-share", "0")
    data = snapshot_bytes("unpadded", ["bias"], ["gift_box", "rush_shipping"], [0.1], [[0.2], [0.3]], [0.0, 0.1])
    assert push(stubs, admin_channel_for(server), data).model.version == "unpadded"


# ----------------------------------------------------------------------------------------------
# Point 1 (part): bounded upsert streams
# ----------------------------------------------------------------------------------------------
def _endless(make, limit=2_000_000):
    """A stream that does not end by itself (bounded only so a broken server cannot hang the test)."""
    for i in range(limit):
        yield make(i)


@pytest.mark.parametrize("kind", ["offers", "customers"])
@pytest.mark.parametrize("bound", ["records", "bytes"])
def test_an_endless_upsert_stream_is_ended_with_resource_exhausted(stubs, server_factory, admin_channel_for, kind, bound):
    flags = ("--max-upsert-records", "500") if bound == "records" else ("--max-upsert-bytes", "20000")
    server = server_factory("--holdout-share", "0", *flags)
    ch = admin_channel_for(server)
    C = stubs.catalog_pb2
    if kind == "offers":
        call = stubs.catalog_pb2_grpc.CatalogStub(ch).UpsertOffers
        pad = "t" * 1000

        def make(i):
            return C.OfferRecord(json=json.dumps({"offer_id": f"flood{i}", "title": pad, "value_cents": 1}))
    else:
        call = stubs.catalog_pb2_grpc.CustomersStub(ch).UpsertCustomers

        def make(i):
            return C.CustomerRecord(customer_id=f"flood-{i:07d}")
    err = rpc_error(call, _endless(make), timeout=60)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
    flag, value = flags
    assert flag in err.details() and value in err.details(), err.details()
    # Nothing of the refused stream was applied: one more record adds exactly one.
    first = call(iter([make(10_000_000)]), timeout=TIMEOUT)
    second = call(iter([make(10_000_001)]), timeout=TIMEOUT)
    assert first.upserted == 1 and second.total == first.total + 1, (first, second)
    if kind == "offers":
        assert first.total == len(ei.demo_catalog()) + 1, first


def _held_push(stubs, channel, data: bytes, release, chunk=1 << 20):
    """A PushSnapshot that sends `data` and then holds its stream open until `release` is set."""
    M = stubs.models_pb2

    def gen():
        for i in range(0, len(data), chunk):
            yield M.SnapshotChunk(data=data[i: i + chunk])
        release.wait(30)

    return stubs.models_pb2_grpc.ModelsStub(channel).PushSnapshot.future(gen(), timeout=60)


def _valid_snapshot(version, pad_offers=0):
    offers = ["gift_box", "rush_shipping"] + [f"pad{i:07d}".ljust(200, "p") for i in range(pad_offers)]
    return snapshot_bytes(version, ["bias"], offers, [0.1], [[0.2]] * len(offers), [0.0] * len(offers))


def test_concurrent_admin_uploads_are_bounded_in_number(stubs, server_factory, admin_channel_for):
    import threading
    import time
    server = server_factory("--holdout-share", "0", "--max-admin-uploads", "2")
    release = threading.Event()
    held = [_held_push(stubs, admin_channel_for(server), _valid_snapshot(f"held-{i}"), release) for i in range(2)]
    try:
        time.sleep(0.5)  # both streams are open and holding their slots
        for call in (lambda: push(stubs, admin_channel_for(server), _valid_snapshot("third")),
                     lambda: stubs.catalog_pb2_grpc.CatalogStub(admin_channel_for(server)).UpsertOffers(
                         iter([stubs.catalog_pb2.OfferRecord(json='{"offer_id": "x"}')]), timeout=TIMEOUT)):
            err = rpc_error(call)
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
            assert "--max-admin-uploads" in err.details() and "2" in err.details(), err.details()
    finally:
        release.set()
    assert sorted(f.result().model.version for f in held) == ["held-0", "held-1"]
    # Their slots are given back: a new upload is accepted.
    assert push(stubs, admin_channel_for(server), _valid_snapshot("after")).model.version == "after"


def test_concurrent_admin_uploads_are_bounded_in_bytes(stubs, server_factory, admin_channel_for):
    import threading
    import time
    server = server_factory("--holdout-share", "0", "--max-admin-upload-bytes", "3000000")
    release = threading.Event()
    big = _valid_snapshot("big", pad_offers=10_000)  # about 2.1 MB, sent in 1 MiB chunks
    assert 2_000_000 < len(big) < 3_000_000
    held = _held_push(stubs, admin_channel_for(server), big, release)
    try:
        time.sleep(1.0)
        err = rpc_error(push, stubs, admin_channel_for(server), _valid_snapshot("second", pad_offers=5_000))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
        assert "--max-admin-upload-bytes" in err.details() and "3000000" in err.details(), err.details()
    finally:
        release.set()
    assert held.result().model.version == "big"
    assert push(stubs, admin_channel_for(server), _valid_snapshot("second", pad_offers=5_000)).model.version == "second"
