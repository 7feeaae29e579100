"""Catalog size (issue 15, point 1): a decision scores every offer eligible on its surface, so the
offers one surface may have are limited (`--max-offers-per-surface`, default 10,000), at start and
at upsert; offers on other surfaces cost a decision nothing (the per-surface index; instruction
counts in scripts/bench-quick.sh)."""
from __future__ import annotations

import json
import subprocess

import grpc

import encore_interop as ei

TIMEOUT = 10


def _catalog(path, n, surfaces=None, prefix="o"):
    with open(path, "w") as f:
        for i in range(n):
            line = {"offer_id": f"{prefix}{i}", "value_cents": 100}
            if surfaces is not None:
                line["surfaces"] = surfaces
            f.write(json.dumps(line) + "\n")
    return path


def test_offers_per_surface_are_limited_at_start_and_at_upsert(stubs, server_factory, admin_channel_for,
                                                             channel_for, tmp_path):
    # At start: 30 offers without "surfaces" are 30 on every surface.
    too_many = _catalog(tmp_path / "big.jsonl", 30)
    out = subprocess.run([str(ei.encore_bin()), "serve", "--host", ei.HOST, "--port", "0", "--admin-port", "0",
                          "--catalog", str(too_many), "--max-offers-per-surface", "20"],
                         capture_output=True, timeout=30, stdin=subprocess.DEVNULL, preexec_fn=ei._die_with_parent)
    err = out.stderr.decode()
    assert out.returncode == 1, err
    assert "30 offers are eligible on surface cart" in err and "--max-offers-per-surface" in err, err

    # At the limit is served; offers on other surfaces do not count against cart.
    catalog = _catalog(tmp_path / "ok.jsonl", 20, surfaces=["cart"])
    server = server_factory("--catalog", str(catalog), "--max-offers-per-surface", "20", "--holdout-share", "0")
    C = stubs.catalog_pb2
    upsert = stubs.catalog_pb2_grpc.CatalogStub(admin_channel_for(server)).UpsertOffers
    reply = upsert(iter([C.OfferRecord(json=json.dumps({"offer_id": f"mail{i}", "surfaces": ["email"]}))
                         for i in range(20)]), timeout=TIMEOUT)
    assert reply.total == 40, reply

    # One more cart offer (here, one without "surfaces") is refused, naming the surface and the
    # flag, and nothing of the batch is applied.
    records = [C.OfferRecord(json=json.dumps({"offer_id": "pay0", "surfaces": ["payment"]})),
               C.OfferRecord(json=json.dumps({"offer_id": "everywhere"}))]
    try:
        upsert(iter(records), timeout=TIMEOUT)
        raise AssertionError("an upsert past --max-offers-per-surface was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
        assert "21 offers are eligible on surface cart" in e.details(), e.details()
        assert "--max-offers-per-surface" in e.details(), e.details()
    again = upsert(iter([C.OfferRecord(json=json.dumps({"offer_id": "pay0", "surfaces": ["payment"]}))]),
                   timeout=TIMEOUT)
    assert again.total == 41, again

    # And cart decisions still choose among the 20 cart offers only.
    D = stubs.decisions_pb2
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(server))
    for i in range(20):
        r = stub.Decide(D.DecideRequest(surface="cart", customer_id=f"c{i}", slots=2), timeout=TIMEOUT)
        assert r.placements and all(p.offer_id.startswith("o") for p in r.placements), r
