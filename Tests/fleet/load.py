"""The fleet test's load generator: grpcio (asyncio) clients sending orders, each a Decide then a
ReportOutcome(SHOWN) of its first placement, both with the `x-encore-customer` routing key.

    python load.py --target 127.0.0.1:P [--target ...] --seconds S --rate ORDERS_PER_S
                   --concurrency C --customers N --out calls.jsonl [--hash-targets]

One target: every call goes there (haproxy). Several with --hash-targets: the client picks the
target by a hash of the customer (the "direct" baseline without a balancer). The run ends after
S seconds, or earlier when the file named by --stop-file appears. Every call is written as one
JSON array [start_monotonic, end_monotonic, method, customer, status, decision_id,
model_version]: CLOCK_MONOTONIC is shared by every process of the machine, so the test can place
each call against the events it caused (a push, a kill, a drain). Bounded in time and count.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import sys
import time
import zlib

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "interop" / "_gen"))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc  # noqa: E402
from encore.v1 import decisions_pb2  # noqa: E402

DECIDE = "/encore.v1.Decisions/Decide"
REPORT = "/encore.v1.Decisions/ReportOutcome"
MAX_CALLS = 2_000_000  # hard bound on what one run may send


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", action="append", required=True)
    ap.add_argument("--hash-targets", action="store_true")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--rate", type=float, default=0, help="orders per second in all (0: closed loop)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--first-customer", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop-file")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--ready-file")
    a = ap.parse_args()
    options = [("grpc.enable_retries", 0), ("grpc.keepalive_time_ms", 10_000)]
    channels = [grpc.aio.insecure_channel(t, options=options) for t in a.target]
    decide = [ch.unary_unary(DECIDE, request_serializer=decisions_pb2.DecideRequest.SerializeToString,
                             response_deserializer=decisions_pb2.DecideResponse.FromString) for ch in channels]
    report = [ch.unary_unary(REPORT, request_serializer=decisions_pb2.OutcomeRequest.SerializeToString,
                             response_deserializer=decisions_pb2.OutcomeResponse.FromString) for ch in channels]
    for ch in channels:
        await asyncio.wait_for(ch.channel_ready(), 10)
    if a.ready_file:
        pathlib.Path(a.ready_file).write_text("ready\n")
    calls: list[list] = []
    start = time.monotonic()
    deadline = start + a.seconds
    stop_file = pathlib.Path(a.stop_file) if a.stop_file else None
    interval = a.concurrency / a.rate if a.rate > 0 else 0.0
    order = 0

    def stopped() -> bool:
        return time.monotonic() >= deadline or len(calls) >= MAX_CALLS or (stop_file is not None and stop_file.exists())

    async def worker(w: int) -> None:
        nonlocal order
        next_at = time.monotonic() + interval * w / max(1, a.concurrency)
        while not stopped():
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            n = order
            order += 1
            customer = f"c{a.first_customer + n % a.customers:06d}"
            target = zlib.crc32(customer.encode()) % len(channels) if a.hash_targets else 0
            md = (("x-encore-customer", customer),)
            req = decisions_pb2.DecideRequest(surface="cart", customer_id=customer, slots=1)
            req.order.order_id = f"o{n}"
            req.order.total_cents = 4000 + n % 9000
            req.order.currency = "USD"
            t0 = time.monotonic()
            try:
                r = await decide[target](req, timeout=a.timeout, metadata=md)
                calls.append([t0, time.monotonic(), "decide", customer, "OK", r.decision_id, r.model_version])
            except grpc.aio.AioRpcError as e:
                calls.append([t0, time.monotonic(), "decide", customer, e.code().name, "", e.details() or ""])
                continue
            if not r.placements:
                continue
            out = decisions_pb2.OutcomeRequest(decision_id=r.decision_id, offer_id=r.placements[0].offer_id,
                                               outcome=decisions_pb2.SHOWN)
            t0 = time.monotonic()
            try:
                await report[target](out, timeout=a.timeout, metadata=md)
                calls.append([t0, time.monotonic(), "report", customer, "OK", r.decision_id, ""])
            except grpc.aio.AioRpcError as e:
                calls.append([t0, time.monotonic(), "report", customer, e.code().name, r.decision_id,
                              e.details() or ""])

    await asyncio.gather(*(worker(w) for w in range(a.concurrency)))
    elapsed = time.monotonic() - start
    for ch in channels:
        await ch.close()
    with open(a.out, "w") as f:
        f.write(json.dumps({"elapsed": elapsed, "calls": len(calls)}) + "\n")
        for c in calls:
            f.write(json.dumps(c) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
