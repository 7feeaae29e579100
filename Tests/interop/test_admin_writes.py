"""Admin writes are serialized and never lost (issue 14, point 7): catalog and customer upserts from
several grpcio clients at once, beside snapshot pushes and activations, all on the admin plane.
Every upsert the server acknowledged must be in the state the next Decide reads."""
from __future__ import annotations

import concurrent.futures
import json
import threading

import grpc
import pytest

import encore_interop as ei

TIMEOUT = 30
CLIENTS = 8
STREAMS_PER_CLIENT = 5
RECORDS_PER_STREAM = 5  # 8 x 5 x 5 = 200 distinct new records
SEEDS = range(31, 41)  # ten demo snapshots, built once for this module
MAX_PUSHES = 60
CUSTOMER_STREAMS = 10  # 400 customers: a push binds in well under a millisecond, so the race needs more tries
BASE_OFFERS = len(ei.demo_catalog())
BASE_CUSTOMERS = 100_000  # the embedded demo's customer table


@pytest.fixture(scope="module")
def ten_snapshots(tmp_path_factory):
    """(version, bytes) of ten distinct demo snapshots."""
    builder = ei.DemoSnapshots(tmp_path_factory.mktemp("ten-snapshots"))
    out = []
    for seed in SEEDS:
        path = builder.dir / f"demo-{seed}.snap"
        try:
            version = builder._demo(seed, path)
        except (RuntimeError, OSError) as e:
            pytest.fail(str(e), pytrace=False)
        out.append((version, path.read_bytes()))
    assert len({v for v, _ in out}) == len(out), "demo snapshots of distinct seeds share a version"
    return out


def _pusher(stubs, channel, snapshots, start: threading.Event, done: threading.Event, errors: list):
    """Pushes each snapshot (activating it with the push), then activates the one before it with
    Models/Activate; goes on round the ten (at most MAX_PUSHES pushes) until the upserting clients
    are done, and ends by pushing the last one again. Each swap rebinds over the catalog and customers."""
    M = stubs.models_pb2
    models = stubs.models_pb2_grpc.ModelsStub(channel)
    start.wait()
    def push(version, data):
        chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
        reply = models.PushSnapshot(
            iter([M.SnapshotChunk(data=c, activate=i == len(chunks) - 1) for i, c in enumerate(chunks)]),
            timeout=TIMEOUT)
        assert reply.activated and reply.model.version == version, reply

    try:
        previous = None
        for n in range(MAX_PUSHES):
            if n >= len(snapshots) and done.is_set():
                break
            version, data = snapshots[n % len(snapshots)]
            push(version, data)
            if previous is not None:
                models.Activate(M.ActivateRequest(version=previous), timeout=TIMEOUT)
            previous = version
        push(*snapshots[-1])  # pushed again: older snapshots may have been unloaded by now
    except (grpc.RpcError, AssertionError) as e:  # reported by the test, not lost in a thread
        errors.append(f"pusher: {e!r}")


def _run_concurrently(server, stubs, snapshots, upload_one_stream, streams=STREAMS_PER_CLIENT):
    """CLIENTS threads (one admin channel each) call `upload_one_stream(stub_channel, client, stream)`
    `streams` times while a pusher thread pushes and activates the snapshots. Returns the
    acknowledged replies per (client, stream)."""
    start, done = threading.Event(), threading.Event()
    errors: list = []
    channels = [ei.make_admin_channel(server) for _ in range(CLIENTS + 1)]
    try:
        pusher = threading.Thread(target=_pusher, args=(stubs, channels[-1], snapshots, start, done, errors))
        pusher.start()

        def client(c):
            start.wait()
            return [upload_one_stream(channels[c], c, s) for s in range(streams)]

        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(client, c) for c in range(CLIENTS)]
            start.set()
            try:
                replies = [f.result(timeout=120) for f in futures]
            finally:
                done.set()
        pusher.join(timeout=120)
        assert not pusher.is_alive(), "the pusher did not finish"
    finally:
        for ch in channels:
            ch.close()
    assert not errors, errors
    return replies


def _placed(decisions, D, customer, offer_id):
    resp = decisions.Decide(
        D.DecideRequest(surface="cart", customer_id=customer, slots=1, candidate_offer_ids=[offer_id],
                        order=D.Order(order_id="o-writes", total_cents=4200, currency="USD")),
        timeout=TIMEOUT)
    return [p.offer_id for p in resp.placements] == [offer_id]


@pytest.mark.watchdog(240)
def test_concurrent_offer_upserts_beside_pushes_are_never_lost(stubs, server_factory, channel_for, ten_snapshots):
    """8 clients x 5 streams x 5 new offers (200, all distinct) while another client pushes and
    activates ten snapshots: every acknowledged offer is in the final catalog and served."""
    server = server_factory("--holdout-share", "0", "--threads", "2", "--admin-port", "0", "--max-admin-uploads", "16")
    C = stubs.catalog_pb2

    def upload(channel, c, s):
        ids = [f"race_offer_{c}_{s}_{r}" for r in range(RECORDS_PER_STREAM)]
        lines = [json.dumps({"offer_id": i, "kind": "gift_box", "surfaces": ["cart"], "value_cents": 300}) for i in ids]
        reply = stubs.catalog_pb2_grpc.CatalogStub(channel).UpsertOffers(
            iter([C.OfferRecord(json=j) for j in lines]), timeout=TIMEOUT)
        assert reply.upserted == RECORDS_PER_STREAM, reply
        return ids

    acked = [i for per_client in _run_concurrently(server, stubs, ten_snapshots, upload) for ids in per_client
             for i in ids]
    assert len(set(acked)) == CLIENTS * STREAMS_PER_CLIENT * RECORDS_PER_STREAM

    catalog = stubs.catalog_pb2_grpc.CatalogStub(channel_for(server, admin=True))
    # Re-upserting one known offer changes nothing and reports the catalog's size.
    total = catalog.UpsertOffers(iter([C.OfferRecord(json=json.dumps(
        {"offer_id": acked[0], "kind": "gift_box", "surfaces": ["cart"], "value_cents": 300}))]), timeout=TIMEOUT).total
    decisions = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(server))
    D = stubs.decisions_pb2
    missing = [i for i in acked if not _placed(decisions, D, "c000321", i)]
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged offers are not served after the race "
        f"(catalog total {total}, expected {BASE_OFFERS + len(acked)}): {missing[:10]}")
    assert total == BASE_OFFERS + len(acked), f"catalog total {total}, expected {BASE_OFFERS + len(acked)}"
    versions = {decisions.Decide(D.DecideRequest(surface="cart", customer_id=f"c{i:06d}"), timeout=TIMEOUT).model_version
                for i in range(1, 9)}
    assert versions == {ten_snapshots[-1][0]}, f"final active model {versions}, expected {ten_snapshots[-1][0]}"


@pytest.mark.watchdog(240)
def test_concurrent_customer_upserts_beside_pushes_are_never_lost(stubs, server_factory, channel_for, ten_snapshots):
    """An offer only customers in segment vip may see; 8 clients x 10 streams x 5 new vip customers
    (400) while another client pushes and activates ten snapshots: the Decide right after each
    acknowledged upsert, and every Decide after the race, places the offer for every upserted
    customer (it knows them and their segment), and for no cold-start one."""
    server = server_factory("--holdout-share", "0", "--threads", "2", "--admin-port", "0", "--max-admin-uploads", "16")
    C = stubs.catalog_pb2
    gate = "race_vip_only"
    stubs.catalog_pb2_grpc.CatalogStub(channel_for(server, admin=True)).UpsertOffers(iter([C.OfferRecord(
        json=json.dumps({"offer_id": gate, "surfaces": ["cart"], "segments": ["vip"], "value_cents": 300}))]),
        timeout=TIMEOUT)
    decisions = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(server))
    D = stubs.decisions_pb2
    assert not _placed(decisions, D, "race-customer-never-upserted", gate), "a cold-start customer passed the vip gate"

    def upload(channel, c, s):
        """Upserts five customers, then decides for each of them at once (while the pushes go on)."""
        ids = [f"race-customer-{c}-{s}-{r}" for r in range(RECORDS_PER_STREAM)]
        reply = stubs.catalog_pb2_grpc.CustomersStub(channel).UpsertCustomers(
            iter([C.CustomerRecord(customer_id=i, segments=["vip"], features={"referrals": 1}) for i in ids]),
            timeout=TIMEOUT)
        assert reply.upserted == RECORDS_PER_STREAM, reply
        return ids, [i for i in ids if not _placed(decisions, D, i, gate)]

    results = [r for per_client in _run_concurrently(server, stubs, ten_snapshots, upload, CUSTOMER_STREAMS)
               for r in per_client]
    acked = [i for ids, _ in results for i in ids]
    assert len(set(acked)) == CLIENTS * CUSTOMER_STREAMS * RECORDS_PER_STREAM
    unknown_right_after = [i for _, unknown in results for i in unknown]
    assert not unknown_right_after, (
        f"{len(unknown_right_after)} of {len(acked)} acknowledged customers were unknown to the Decide right after "
        f"their upsert was acknowledged: {unknown_right_after[:10]}")
    unknown = [i for i in acked if not _placed(decisions, D, i, gate)]
    total = stubs.catalog_pb2_grpc.CustomersStub(channel_for(server, admin=True)).UpsertCustomers(
        iter([C.CustomerRecord(customer_id=acked[0], segments=["vip"])]), timeout=TIMEOUT).total
    assert not unknown, (
        f"{len(unknown)} of {len(acked)} acknowledged customers are unknown to the next Decide "
        f"(customer total {total}): {unknown[:10]}")
    assert total == BASE_CUSTOMERS + len(acked), f"customer total {total}, expected {BASE_CUSTOMERS + len(acked)}"
    assert not _placed(decisions, D, "race-customer-never-upserted", gate)
