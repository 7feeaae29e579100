"""encore.v1.Models (PushSnapshot, Activate, Rollback, List) and encore.v1.Catalog/UpsertOffers with
grpcio and the `encore push` CLI; snapshot validation and signatures; ten pushes under full Decide
load (h2load + grpcio) without one failed request."""
from __future__ import annotations

import collections
import json
import random
import re
import shutil
import subprocess
import threading
import time

import grpc
import pytest

import encore_interop as ei

TIMEOUT = 10
OFFERS = ei.demo_catalog()
ELIGIBLE = ei.eligible_by_surface(OFFERS)
HEX64 = re.compile(r"^[0-9a-f]{64}$")


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
class Admin:
    """grpcio stubs for one server: Models, Catalog (admin plane), Decisions (data plane)."""

    def __init__(self, stubs, channel, admin_channel):
        self.s = stubs
        self.models = stubs.models_pb2_grpc.ModelsStub(admin_channel)
        self.catalog = stubs.catalog_pb2_grpc.CatalogStub(admin_channel)
        self.decisions = stubs.decisions_pb2_grpc.DecisionsStub(channel)

    def push(self, data: bytes, activate=False, chunk=1024, activate_on="last"):
        M = self.s.models_pb2
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]

        def gen():
            for i, p in enumerate(pieces):
                flag = activate and (i == (len(pieces) - 1 if activate_on == "last" else 0))
                yield M.SnapshotChunk(data=p, activate=flag)

        return self.models.PushSnapshot(gen(), timeout=TIMEOUT)

    def activate(self, version):
        return self.models.Activate(self.s.models_pb2.ActivateRequest(version=version), timeout=TIMEOUT)

    def rollback(self):
        return self.models.Rollback(self.s.models_pb2.RollbackRequest(), timeout=TIMEOUT)

    def list(self):
        return self.models.List(self.s.models_pb2.ListModelsRequest(), timeout=TIMEOUT)

    def decide(self, surface="cart", customer="c000321", slots=2, **kw):
        D = self.s.decisions_pb2
        return self.decisions.Decide(
            D.DecideRequest(surface=surface, customer_id=customer, slots=slots,
                            order=D.Order(order_id="o-models", total_cents=4200, currency="USD"), **kw),
            timeout=TIMEOUT)

    def version_seen(self, n=8):
        """The model_version of n decisions (they must agree)."""
        versions = {self.decide(customer=f"c{7 + i:06d}").model_version for i in range(n)}
        assert len(versions) == 1, f"decisions right after a swap disagree on the version: {versions}"
        return versions.pop()

    def upsert(self, *json_lines):
        C = self.s.catalog_pb2
        return self.catalog.UpsertOffers(iter([C.OfferRecord(json=j) for j in json_lines]), timeout=TIMEOUT)


@pytest.fixture
def admin_for(stubs, channel_for):
    return lambda server: Admin(stubs, channel_for(server), channel_for(server, admin=True))


def _rpc_error(fn, *args, **kw) -> grpc.RpcError:
    try:
        out = fn(*args, **kw)
    except grpc.RpcError as e:
        return e
    pytest.fail(f"expected an error status, got OK: {out}")


def _check_info(info, version, path=None, active=None, signed=False):
    assert info.version == version, info
    assert HEX64.match(info.sha256), f"sha256 is not 64 hex digits: {info.sha256!r}"
    assert info.created_at_millis > 1_600_000_000_000, info
    assert info.loaded_at_millis > 1_600_000_000_000, info
    assert info.exploration, info
    assert info.features > 0 and info.offers > 0, info
    if path is not None:
        assert info.size_bytes == path.stat().st_size, f"size_bytes {info.size_bytes} != file size {path.stat().st_size}"
    if active is not None:
        assert info.active == active, info
    assert info.signed == signed, info
    assert bool(info.signer) == signed, info


# ----------------------------------------------------------------------------------------------
# 6. Push, List, Activate, Rollback
# ----------------------------------------------------------------------------------------------
def test_push_activate_rollback_grpc(stubs, snapshots, server_factory, admin_for):
    server = server_factory("--holdout-share", "0", "--threads", "2")
    a = admin_for(server)
    v11, v12 = snapshots.version[11], snapshots.version[12]
    listed = a.list()
    v0 = listed.active_version
    assert v0 and [m.version for m in listed.models] == [v0] and listed.models[0].active, listed
    assert v0 not in (v11, v12) and v11 != v12
    assert a.version_seen() == v0
    e = _rpc_error(a.rollback)
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, (e.code(), e.details())

    # push without activating, in many small chunks
    r = a.push(snapshots.path[11].read_bytes(), activate=False, chunk=300)
    assert not r.activated, r
    _check_info(r.model, v11, snapshots.path[11], active=False)
    assert a.version_seen() == v0, "a pushed, not activated snapshot is serving"
    listed = a.list()
    assert listed.active_version == v0
    assert [m.version for m in listed.models] == [v11, v0], f"List is not newest first: {listed}"
    assert [m.active for m in listed.models] == [False, True], listed

    # activate it
    info = a.activate(v11)
    _check_info(info, v11, snapshots.path[11], active=True)
    assert a.version_seen() == v11
    assert a.list().active_version == v11

    # push + activate in one call (activate flag on the first chunk only)
    r = a.push(snapshots.path[12].read_bytes(), activate=True, chunk=1000, activate_on="first")
    assert r.activated, r
    _check_info(r.model, v12, snapshots.path[12], active=True)
    assert a.version_seen() == v12
    listed = a.list()
    assert listed.active_version == v12
    assert [m.version for m in listed.models] == [v12, v11, v0], listed
    assert sum(m.active for m in listed.models) == 1, listed
    assert len({m.sha256 for m in listed.models}) == 3, "different snapshots, same sha256"

    # decisions on the new model still honour the contract
    for surface in ei.SURFACES:
        resp = a.decide(surface=surface)
        assert resp.model_version == v12 and len(resp.placements) == 2, resp
        assert all(p.offer_id in ELIGIBLE[surface] for p in resp.placements), resp

    # rollback twice: v12 -> v11 -> v0, then nothing left
    info = a.rollback()
    assert info.version == v11 and info.active, info
    assert a.version_seen() == v11
    info = a.rollback()
    assert info.version == v0 and info.active, info
    assert a.version_seen() == v0
    assert a.list().active_version == v0

    # activating an older loaded one again works
    assert a.activate(v12).active
    assert a.version_seen() == v12


def test_activate_unknown_version_not_found(stubs, demo_server, admin_for):
    a = admin_for(demo_server)
    before = a.list().active_version
    e = _rpc_error(a.activate, "no-such-version-123")
    assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
    assert "no-such-version-123" in (e.details() or ""), e.details()
    e = _rpc_error(a.activate, "")
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
    assert a.list().active_version == before


def test_push_cli(stubs, snapshots, server_factory, admin_for, tmp_path):
    server = server_factory("--threads", "1")
    a = admin_for(server)
    v0 = a.list().active_version
    v11, v12 = snapshots.version[11], snapshots.version[12]
    port = ["--host", ei.HOST, "--port", str(server.admin_port)]  # push: the admin plane
    data_port = ["--host", ei.HOST, "--port", str(server.port)]  # decide: the data plane

    r = ei.run_cli("push", *port, str(snapshots.path[11]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert v11 in r.stdout + r.stderr, r.stdout + r.stderr
    listed = a.list()
    assert listed.active_version == v0 and v11 in [m.version for m in listed.models], listed
    assert a.version_seen() == v0

    r = ei.run_cli("push", *port, "--activate", str(snapshots.path[12]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert a.list().active_version == v12
    assert a.version_seen() == v12

    # CLI decide sees it too
    r = ei.run_cli("decide", *data_port, "--surface", "email", "--customer", "c000042", "--slots", "2", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out.get("modelVersion", out.get("model_version")) == v12, out

    # a corrupt file: non-zero exit, a message, nothing changes
    bad = tmp_path / "bad.snap"
    data = bytearray(snapshots.path[11].read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    r = ei.run_cli("push", *port, "--activate", str(bad))
    assert r.returncode != 0, r.stdout + r.stderr
    assert r.stderr.strip(), "no error message from encore push"
    assert "FAILED_PRECONDITION" in r.stderr or "refused" in r.stderr, r.stderr
    assert a.list().active_version == v12
    r = ei.run_cli("push", *port, str(tmp_path / "missing.snap"))
    assert r.returncode != 0


def _corruptions(data: bytes):
    flip_mid = bytearray(data)
    flip_mid[len(data) // 2] ^= 0x01
    flip_q3 = bytearray(data)
    flip_q3[3 * len(data) // 4] ^= 0x80
    rng = random.Random(7)
    return [
        ("one bit flipped in the middle", bytes(flip_mid)),
        ("one byte flipped at 3/4", bytes(flip_q3)),
        ("truncated to half", data[: len(data) // 2]),
        ("last byte missing", data[:-1]),
        ("first 16 bytes only", data[:16]),
        ("random garbage, same size", bytes(rng.randrange(256) for _ in range(len(data)))),
        ("text garbage", b"this is not a snapshot\n" * 10),
        ("header of one, body of another", data[:64] + bytes(rng.randrange(256) for _ in range(len(data) - 64))),
    ]


def test_corrupt_snapshots_refused(stubs, snapshots, server_factory, admin_for):
    server = server_factory("--threads", "1")
    a = admin_for(server)
    v0 = a.list().active_version
    data = snapshots.path[11].read_bytes()
    failures = []
    for name, bad in _corruptions(data):
        for activate in (False, True):
            try:
                r = a.push(bad, activate=activate)
                failures.append(f"{name} (activate={activate}): accepted: {r}")
                continue
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.FAILED_PRECONDITION or not (e.details() or "").strip():
                    failures.append(f"{name}: expected FAILED_PRECONDITION with a message, got {e.code()} {e.details()!r}")
    assert not failures, "\n".join(failures)
    e = _rpc_error(a.push, b"", activate=True)  # a stream with no bytes at all
    assert e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION), (e.code(), e.details())
    listed = a.list()
    assert listed.active_version == v0 and [m.version for m in listed.models] == [v0], listed
    assert a.version_seen() == v0
    # the intact file is still accepted afterwards
    assert a.push(data, activate=True).activated
    assert a.version_seen() == snapshots.version[11]


def test_unsigned_snapshot_trailer_must_be_clean(stubs, snapshots, server_factory, admin_for):
    """The trailer of an unsigned snapshot has flags 0, then reserved bytes, a public key and a
    signature that are all zero as `encore snapshot demo` writes them. A file where they are not
    is not the file that was written (the SHA-256 does not cover the trailer), so "validated
    completely" should refuse it rather than load it as if intact."""
    server = server_factory("--threads", "1")
    a = admin_for(server)
    data = snapshots.path[11].read_bytes()
    trailer = len(data) - 144
    assert data[trailer : trailer + 8] == b"ENCTRLR1" and data[trailer + 40] == 0, "unexpected trailer layout"
    assert data[trailer + 41 :] == bytes(len(data) - trailer - 41), "unsigned trailer is not all zero"
    accepted = []
    for name, pos in (("reserved byte", trailer + 41), ("public key byte", trailer + 60), ("last byte", len(data) - 1)):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        try:
            a.push(bytes(bad), activate=False)
            accepted.append(f"{name} at offset {pos} flipped: accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, (name, e.code(), e.details())
    assert not accepted, "; ".join(accepted)


def test_signed_snapshots_and_trusted_keys(stubs, snapshots, server_factory, admin_for):
    trusted = server_factory("--threads", "1", "--trusted-key", str(snapshots.pub))
    a = admin_for(trusted)
    v0 = a.list().active_version
    for name, path in (("unsigned", snapshots.path[11]), ("signed by an untrusted key", snapshots.foreign)):
        e = _rpc_error(a.push, path.read_bytes(), activate=True)
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and (e.details() or "").strip(), \
            f"{name}: {e.code()} {e.details()!r}"
    tampered = bytearray(snapshots.signed.read_bytes())
    tampered[len(tampered) // 2] ^= 0x04
    e = _rpc_error(a.push, bytes(tampered), activate=True)
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, ("tampered signed", e.code(), e.details())
    assert a.list().active_version == v0 and len(a.list().models) == 1
    # the CLI gets the refusal too
    r = ei.run_cli("push", "--port", str(trusted.admin_port), "--activate", str(snapshots.path[12]))
    assert r.returncode != 0, r.stdout + r.stderr
    assert a.version_seen() == v0

    r = a.push(snapshots.signed.read_bytes(), activate=True)
    assert r.activated
    _check_info(r.model, snapshots.signed_version, snapshots.signed, active=True, signed=True)
    assert a.version_seen() == snapshots.signed_version

    # without --trusted-key both signed and unsigned are accepted, and List says which is which
    plain = server_factory("--threads", "1")
    b = admin_for(plain)
    assert not b.push(snapshots.path[11].read_bytes()).model.signed
    info = b.push(snapshots.signed.read_bytes()).model
    assert info.signed and info.signer, info
    assert info.signer == r.model.signer, "the same signature reported with two signers"
    by_version = {m.version: m for m in b.list().models}
    assert by_version[snapshots.signed_version].signed and not by_version[snapshots.version[11]].signed


# ----------------------------------------------------------------------------------------------
# 7. Ten pushes under full load
# ----------------------------------------------------------------------------------------------
H2LOAD_RE = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout")
LOAD_REQUESTS = 200_000


class GrpcLoad(threading.Thread):
    """Calls Decide in a loop (futures, 16 in flight) until stopped; checks every response."""

    def __init__(self, stubs, channel, known_versions: set[str]):
        super().__init__(daemon=True)
        self.stub = stubs.decisions_pb2_grpc.DecisionsStub(channel)
        D = stubs.decisions_pb2
        self.reqs = [D.DecideRequest(surface=s, customer_id=f"c{1000 + i:06d}", slots=2,
                                     order=D.Order(order_id=f"load-{i}", total_cents=3000 + i))
                     for i, s in enumerate(ei.SURFACES * 4)]
        self.known = known_versions
        self.stop = threading.Event()
        self.calls = 0
        self.failures: list[str] = []
        self.versions = collections.Counter()
        self.order: list[str] = []  # versions in the order observed (collapsed)

    def check(self, req, fut):
        self.calls += 1
        try:
            r = fut.result()
        except grpc.RpcError as e:
            self.failures.append(f"{e.code()} {e.details()!r}")
            return
        except Exception as e:  # noqa: BLE001 - a failure of any kind counts
            self.failures.append(repr(e))
            return
        self.versions[r.model_version] += 1
        if not self.order or self.order[-1] != r.model_version:
            self.order.append(r.model_version)
        if r.model_version not in self.known:
            self.failures.append(f"unknown model_version {r.model_version!r}")
        if len(r.placements) != 2 or not all(p.offer_id in ELIGIBLE[req.surface] and 0 < p.propensity <= 1
                                             for p in r.placements):
            self.failures.append(f"bad slate for {req.surface}: {r}")

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                batch = []
                for _ in range(16):
                    req = self.reqs[i % len(self.reqs)]
                    i += 1
                    batch.append((req, self.stub.Decide.future(req, timeout=TIMEOUT)))
                for req, f in batch:
                    self.check(req, f)
        except Exception as e:  # noqa: BLE001
            self.failures.append(f"load thread crashed: {e!r}")


@pytest.mark.watchdog(170)
def test_ten_pushes_under_full_load(stubs, snapshots, server_factory, admin_for, channel_for, tmp_path):
    h2load = shutil.which("h2load")
    assert h2load, "h2load not found (apt-get install -y nghttp2-client)"
    server = server_factory("--holdout-share", "0", "--threads", "2")
    a = admin_for(server)
    v0 = a.list().active_version
    known = {v0, snapshots.version[11], snapshots.version[12]}
    D = stubs.decisions_pb2
    body = tmp_path / "decide.bin"
    body.write_bytes(ei.grpc_frame(D.DecideRequest(
        surface="cart", customer_id="c000123", slots=2, request_id="h2load",
        order=D.Order(order_id="o-h2load", total_cents=5000, currency="USD",
                      items=[D.LineItem(sku="s1", category="shoes", price_cents=5000, quantity=1)])).SerializeToString()))

    load = GrpcLoad(stubs, channel_for(server), known)
    proc = subprocess.Popen(
        [h2load, "-n", str(LOAD_REQUESTS), "-c", "8", "-m", "8", "-t", "1", "-d", str(body),
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         f"http://{ei.HOST}:{server.port}/encore.v1.Decisions/Decide"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    cycles = []
    try:
        load.start()
        deadline = time.monotonic() + 10
        while load.calls < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert load.calls >= 200, f"grpcio load made only {load.calls} calls in 10 s"
        time.sleep(1.0)  # h2load is connected and busy by now
        for cycle in range(10):
            seed = 11 if cycle % 2 == 0 else 12
            data = snapshots.path[seed].read_bytes()
            if cycle % 3 == 2:  # push, then a separate Activate
                r = a.push(data, activate=False)
                assert not r.activated
                info = a.activate(snapshots.version[seed])
            else:
                r = a.push(data, activate=True, chunk=700)
                assert r.activated
                info = r.model
            assert info.version == snapshots.version[seed] and info.active, info
            seen = a.decide(customer="c000555").model_version
            assert seen == snapshots.version[seed], f"cycle {cycle}: Decide answered {seen} right after activation"
            cycles.append((cycle, seed, time.monotonic()))
            # Timing, in the safe direction for a shared machine: load only slows h2load's 200,000
            # calls (about 10-40 s with the debug build) against the ~6 s of push cycles. Only a
            # much faster build or machine could make it finish first.
            assert proc.poll() is None, f"h2load finished before push cycle {cycle + 1}; the pushes were not under load"
            time.sleep(0.4)
        try:
            out, _ = proc.communicate(timeout=140)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=5)
            pytest.fail(f"h2load did not finish {LOAD_REQUESTS} requests within the time bound:\n"
                        + out.decode("utf-8", "replace")[-2000:])
    finally:
        load.stop.set()
        load.join(timeout=15)
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    text = out.decode("utf-8", "replace")
    m = H2LOAD_RE.search(text)
    assert m, f"could not parse h2load output:\n{text}"
    total, started, done, succeeded, failed, errored, tmo = map(int, m.groups())
    assert (succeeded, failed, errored, tmo) == (LOAD_REQUESTS, 0, 0, 0), text
    assert f"status codes: {LOAD_REQUESTS} 2xx" in text, text
    assert not load.is_alive(), "grpcio load thread did not stop"
    assert load.calls >= 1000, f"grpcio load made only {load.calls} calls"
    assert not load.failures, f"{len(load.failures)}/{load.calls} grpcio calls failed, e.g. {load.failures[:5]}"
    assert len(load.versions) >= 2, f"the load only ever saw {dict(load.versions)}"
    assert len(load.order) >= 4, f"versions seen by the load, in order: {load.order}"
    assert len(cycles) == 10
    print(f"grpcio load: {load.calls} calls, versions {dict(load.versions)}, {len(load.order)} switches seen")
    # afterwards: a grpcio sample of exactly what h2load sent is OK, on the last pushed version
    raw = channel_for(server).unary_unary(ei.DECIDE)
    msg = body.read_bytes()[5:]
    for _ in range(50):
        r = D.DecideResponse.FromString(raw(msg, timeout=TIMEOUT))
        assert r.model_version == snapshots.version[12] and len(r.placements) == 2, r
    assert server.alive()
    assert a.list().active_version == snapshots.version[12]


# ----------------------------------------------------------------------------------------------
# 8. Catalog/UpsertOffers
# ----------------------------------------------------------------------------------------------
def test_upsert_offers(stubs, server_factory, admin_for):
    server = server_factory("--holdout-share", "0", "--threads", "2")
    a = admin_for(server)
    v0 = a.version_seen()
    new = "interop_new_cart_offer"
    r = a.upsert(json.dumps({"offer_id": new, "kind": "gift_box", "title": "Interop", "surfaces": ["cart"],
                             "value_cents": 700}))
    assert (r.upserted, r.total) == (1, len(OFFERS) + 1), r
    assert a.version_seen() == v0, "an offer upsert changed the model version"
    for _ in range(4):  # both reactor threads see it
        resp = a.decide("cart", candidate_offer_ids=[new])
        assert [(p.offer_id, p.slot) for p in resp.placements] == [(new, 0)], resp
        assert resp.placements[0].propensity == 1.0, resp
    resp = a.decide("cart", candidate_offer_ids=[new, "gift_box"])
    assert {p.offer_id for p in resp.placements} == {new, "gift_box"}, resp
    for surface in ("payment", "email"):
        resp = a.decide(surface, candidate_offer_ids=[new])
        assert len(resp.placements) == 0, f"{new} (surfaces [cart]) placed on {surface}: {resp}"
    for i in range(30):
        resp = a.decide("cart", customer=f"c{500 + i:06d}")
        assert len(resp.placements) == 2 and all(p.offer_id in ELIGIBLE["cart"] | {new} for p in resp.placements), resp

    # updating an existing offer: gift_box moves to email only
    r = a.upsert(json.dumps({"offer_id": "gift_box", "surfaces": ["email"], "value_cents": 500}))
    assert (r.upserted, r.total) == (1, len(OFFERS) + 1), r
    assert [p.offer_id for p in a.decide("email", candidate_offer_ids=["gift_box"]).placements] == ["gift_box"]
    assert len(a.decide("cart", candidate_offer_ids=["gift_box"]).placements) == 0


@pytest.mark.parametrize("record", [
    '{"offer_id": "broken", ',
    'not json at all',
    '',
    '["offer_id", "x"]',
    '{"surfaces": ["cart"], "value_cents": 5}',
    '{"offer_id": 12345}',
    '{"offer_id": "x", "surfaces": "cart"}',
])
def test_upsert_malformed_record_invalid_argument(stubs, _upsert_server, admin_for, record):
    a = admin_for(_upsert_server)
    good = json.dumps({"offer_id": "interop_partial", "surfaces": ["cart"]})
    e = _rpc_error(a.upsert, good, record)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (record, e.code(), e.details())
    assert (e.details() or "").strip(), "INVALID_ARGUMENT without a message"
    # the stream is all or nothing: the good record before the bad one was not applied
    assert len(a.decide("cart", candidate_offer_ids=["interop_partial"]).placements) == 0


@pytest.fixture(scope="module")
def _upsert_server():
    p = ei.EncoreProcess("--holdout-share", "0", "--threads", "1", "--drain-timeout", "2")
    try:
        p.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield p
    p.stop(grace=3)


# ----------------------------------------------------------------------------------------------
# UpsertCustomers
# ----------------------------------------------------------------------------------------------
def test_upsert_customers_changes_scores_atomically(stubs, server_factory, admin_for, channel_for):
    """A new customer upserted into segment vip gets the vip weight of the referral offer on the
    next decision (score up by about the demo's 1.2); bad records are refused, nothing applied."""
    server = server_factory("--holdout-share", "0", "--threads", "2")
    a = admin_for(server)
    C = stubs.catalog_pb2
    customers = stubs.catalog_pb2_grpc.CustomersStub(channel_for(server, admin=True))
    who = "interop-new-customer-1"
    offer = "referral_give20_get20"

    def score():
        resp = a.decide("thank_you", customer=who, slots=1, candidate_offer_ids=[offer])
        assert [p.offer_id for p in resp.placements] == [offer], resp
        return resp.placements[0].score

    cold = {score() for _ in range(4)}
    assert len(cold) == 1, f"cold-start score differs between calls: {cold}"
    reply = customers.UpsertCustomers(
        iter([C.CustomerRecord(customer_id=who, segments=["vip"], features={"email_engagement": 0.9, "referrals": 3})]),
        timeout=TIMEOUT)
    assert reply.upserted == 1 and reply.total == 100_001, reply
    warm = {score() for _ in range(4)}  # both reactor threads see the new generation
    assert len(warm) == 1, f"scores differ after the upsert: {warm}"
    assert warm.pop() - cold.pop() > 1.0, "the vip segment and features did not raise the referral score"

    # An unknown feature name refuses the whole batch (the valid first record is not applied).
    err = _rpc_error(customers.UpsertCustomers, iter([
        C.CustomerRecord(customer_id="interop-new-customer-2", segments=["vip"]),
        C.CustomerRecord(customer_id="interop-new-customer-3", features={"no_such_feature": 1.0}),
    ]), timeout=TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert "no_such_feature" in err.details(), err.details()
    count = customers.UpsertCustomers(iter([C.CustomerRecord(customer_id=who)]), timeout=TIMEOUT)
    assert count.total == 100_001, f"the refused batch was partly applied: total {count.total}"
    err = _rpc_error(customers.UpsertCustomers, iter([C.CustomerRecord(customer_id="")]), timeout=TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "customer_id" in err.details(), err


# ----------------------------------------------------------------------------------------------
# Offline-evaluation gate (--require-ope)
# ----------------------------------------------------------------------------------------------
def _export_with_ope(path, version, dr_value, dr_ci, logging_value, comparison=None):
    """A tiny valid export (bias only, shared weights) carrying an OPE report, optionally with the
    comparison against the active policy that encore-learn's --server writes (compare.py)."""
    ope = {"estimates": {"dr": {"value": dr_value, "ci95": dr_ci}, "logging": {"value": logging_value}}}
    if comparison is not None:
        active_version, active_dr = comparison
        ope["comparison"] = {
            "active_version": active_version,
            "active_estimates": {"dr": {"value": active_dr, "ci95": [active_dr - 0.01, active_dr + 0.01]}},
            "candidate_version": version,
            "candidate_estimates": {"dr": {"value": dr_value, "ci95": dr_ci}},
            "log_window": {"decisions": 1234, "sha256_of_decision_ids": "0" * 64}}
    path.write_text(json.dumps({
        "model_version": version, "features": ["bias"], "offers": ["gift_box"], "shared_weights": [-2.0],
        "offer_weights": [[0.5]], "offer_biases": [0.0], "exploration": {"kind": "squarecb", "gamma": 50},
        "ope": ope,
    }))


def test_require_ope_gate(stubs, snapshots, server_factory, admin_for, tmp_path):
    server = server_factory("--require-ope")
    a = admin_for(server)
    demo = a.version_seen()

    def build(version, dr, ci, comparison=None):
        export = tmp_path / f"{version}.json"
        _export_with_ope(export, version, dr, ci, logging_value=0.10, comparison=comparison)
        out = tmp_path / f"{version}.snap"
        r = ei.run_cli("snapshot", "build", "--from", str(export), "--out", str(out))
        assert r.returncode == 0, r.stdout + r.stderr
        return out.read_bytes()

    # No OPE report at all (a demo snapshot): refused on activate, accepted with force.
    err = _rpc_error(a.push, snapshots.path[11].read_bytes(), activate=True)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "OPE" in err.details(), err.details()
    a.push(snapshots.path[11].read_bytes())  # loading without activation is fine
    err = _rpc_error(a.activate, snapshots.version[11])
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    forced = a.models.Activate(stubs.models_pb2.ActivateRequest(version=snapshots.version[11], force=True), timeout=TIMEOUT)
    assert forced.version == snapshots.version[11] and a.version_seen() == snapshots.version[11]
    active = snapshots.version[11]
    assert active != demo

    # The trick the gate must refuse: a snapshot whose own report looks excellent (DR lower bound
    # 0.333, made on logs of its own choosing) but says nothing of the active policy on those logs.
    err = _rpc_error(a.push, build("own-numbers-only", 0.40, [0.333, 0.45]), activate=True)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "comparison" in err.details(), err.details()
    # A comparison made against another active version (the demo's, active before the forced
    # activation) is refused, naming both versions.
    err = _rpc_error(a.push, build("stale-comparison", 0.40, [0.333, 0.45], comparison=(demo, 0.10)), activate=True)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
    assert demo in err.details() and active in err.details(), err.details()
    # Against the active version, on the same logs: lower bound 0.25 < active DR 0.30 is refused
    # with the numbers; 0.25 >= 0.20 activates.
    bad = build("ope-bad", 0.30, [0.25, 0.35], comparison=(active, 0.30))
    err = _rpc_error(a.push, bad, activate=True)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
    assert "0.25" in err.details() and "0.3" in err.details() and "1234" in err.details(), err.details()
    assert a.version_seen() == active
    reply = a.push(build("ope-good", 0.30, [0.25, 0.35], comparison=(active, 0.20)), activate=True)
    assert reply.activated and a.version_seen() == "ope-good"
    # ope-bad's comparison was made against the old active version: loaded, and still refused on
    # activation, now for that.
    a.push(bad)
    err = _rpc_error(a.activate, "ope-bad")
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "ope-good" in err.details(), err.details()
