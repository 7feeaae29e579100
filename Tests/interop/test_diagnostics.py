"""The Diagnostics service (--diagnostics) through grpcio, over h2c and TLS."""
from __future__ import annotations

import os
import time

import grpc
import pytest

import encore_interop as ei

TIMEOUT = 10
MAX_MSG = 4 * 1024 * 1024  # server default --max-message-bytes
BIG_OPTS = [("grpc.max_send_message_length", 16 * 1024 * 1024),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024)]


def _diag(stubs, ch):
    return stubs.diagnostics_pb2_grpc.DiagnosticsStub(ch)


def test_echo_round_trip(stubs, any_diag_server, channel_for):
    stub = _diag(stubs, channel_for(any_diag_server))
    for payload in (b"", b"hello", os.urandom(1000), bytes(range(256)) * 70):
        resp = stub.Echo(stubs.diagnostics_pb2.EchoRequest(payload=payload), timeout=TIMEOUT)
        assert resp.payload == payload
        assert resp.messages == 1
        assert resp.bytes == len(payload)


@pytest.mark.parametrize(
    "code,message",
    [
        (9, "précondition échouée: 100% ✓ — 日本語 %41 %%"),
        (9, "plain ascii"),
        (3, "a%2Fb\r\nnext line\ttab"),
        (14, ""),
        (16, "x" * 2000),
    ],
)
def test_echo_status_round_trip(stubs, any_diag_server, channel_for, code, message):
    stub = _diag(stubs, channel_for(any_diag_server))
    req = stubs.diagnostics_pb2.EchoRequest(payload=b"p", status_code=code, status_message=message)
    with pytest.raises(grpc.RpcError) as exc:
        stub.Echo(req, timeout=TIMEOUT)
    assert exc.value.code().value[0] == code
    assert (exc.value.details() or "") == message


def test_echo_deadline_exceeded_grpcio(stubs, any_diag_server, channel_for):
    ch = channel_for(any_diag_server)
    stub = _diag(stubs, ch)
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as exc:
        stub.Echo(stubs.diagnostics_pb2.EchoRequest(payload=b"slow", delay_ms=5000), timeout=0.1)
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Timing on a shared machine, so a wide margin: the call ends on its 0.1 s deadline, not when
    # the 5 s handler answers (a timer on the server, so the abandoned call costs nothing).
    assert time.monotonic() - t0 < 3.0
    # The server is still fine afterwards (and the abandoned call did not wedge the connection).
    resp = stub.Echo(stubs.diagnostics_pb2.EchoRequest(payload=b"after"), timeout=TIMEOUT)
    assert resp.payload == b"after"


def test_echo_delay_honoured(stubs, any_diag_server, channel_for):
    stub = _diag(stubs, channel_for(any_diag_server))
    t0 = time.monotonic()
    resp = stub.Echo(stubs.diagnostics_pb2.EchoRequest(payload=b"d", delay_ms=300), timeout=TIMEOUT)
    elapsed = time.monotonic() - t0
    assert resp.payload == b"d"
    # The server waits at least the 300 ms (machine load only adds); the upper bound is 10x.
    assert 0.28 <= elapsed < 3.0, elapsed


def test_echo_runs_off_reactor(stubs, diag_server, channel_for):
    """Slow Echo calls must not block the reactor: a health check on the same connection answers
    while 8 x 2 s Echo calls are sleeping."""
    ch = channel_for(diag_server)
    stub = _diag(stubs, ch)
    health = stubs.health_pb2_grpc.HealthStub(ch)
    t0 = time.monotonic()
    slow = [stub.Echo.future(stubs.diagnostics_pb2.EchoRequest(payload=b"%d" % i, delay_ms=2000), timeout=TIMEOUT)
            for i in range(8)]
    time.sleep(0.1)
    h0 = time.monotonic()
    assert health.Check(stubs.health_pb2.HealthCheckRequest(), timeout=TIMEOUT).status == 1
    health_latency = time.monotonic() - h0
    got = [f.result().payload for f in slow]
    total = time.monotonic() - t0
    assert got == [b"%d" % i for i in range(8)]
    # Wide margins for a shared machine: a reactor blocked by the sleepers would hold the health
    # check for at least 1.9 s (they started 0.1 s before it), and serialised sleepers take 16 s.
    assert health_latency < 1.5, f"health check took {health_latency:.3f}s while Echo calls were sleeping"
    assert total < 10, f"8 concurrent 2 s Echo calls took {total:.2f}s (serialised: 16 s)"


def test_collect_client_streaming(stubs, any_diag_server, channel_for):
    stub = _diag(stubs, channel_for(any_diag_server))
    sizes = [(i * 37) % 2000 for i in range(1000)]
    sizes[10] = 0
    sizes[500] = 70000  # spans several DATA frames
    msgs = [stubs.diagnostics_pb2.EchoRequest(payload=bytes([i % 256]) * n) for i, n in enumerate(sizes)]
    resp = stub.Collect(iter(msgs), timeout=30)
    assert resp.messages == 1000
    assert resp.bytes == sum(sizes)
    assert resp.payload == b""


def test_collect_zero_messages(stubs, diag_server, channel_for):
    resp = _diag(stubs, channel_for(diag_server)).Collect(iter([]), timeout=TIMEOUT)
    assert resp.messages == 0 and resp.bytes == 0


def test_collect_status_message_ends_call(stubs, diag_server, channel_for):
    stub = _diag(stubs, channel_for(diag_server))
    msgs = [stubs.diagnostics_pb2.EchoRequest(payload=b"a"),
            stubs.diagnostics_pb2.EchoRequest(payload=b"b", status_code=7, status_message="nope ✗")]
    with pytest.raises(grpc.RpcError) as exc:
        stub.Collect(iter(msgs), timeout=TIMEOUT)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert exc.value.details() == "nope ✗"


def test_large_message_ok(stubs, any_diag_server, channel_for):
    stub = _diag(stubs, channel_for(any_diag_server, BIG_OPTS))
    payload = os.urandom(3 * 1024 * 1024)
    resp = stub.Echo(stubs.diagnostics_pb2.EchoRequest(payload=payload), timeout=30)
    assert resp.payload == payload
    assert resp.bytes == len(payload)


def test_too_large_message_resource_exhausted(stubs, any_diag_server, channel_for):
    ch = channel_for(any_diag_server, BIG_OPTS)
    stub = _diag(stubs, ch)
    with pytest.raises(grpc.RpcError) as exc:
        stub.Echo(stubs.diagnostics_pb2.EchoRequest(payload=b"\x00" * (5 * 1024 * 1024)), timeout=30)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.value.details()
    # Server and connection still usable.
    assert stub.Echo(stubs.diagnostics_pb2.EchoRequest(payload=b"ok"), timeout=TIMEOUT).payload == b"ok"


def _request_of_size(stubs, size: int):
    """EchoRequest whose serialized size is exactly `size` bytes (payload only)."""
    for overhead in range(2, 7):
        req = stubs.diagnostics_pb2.EchoRequest(payload=b"z" * (size - overhead))
        if req.ByteSize() == size:
            return req
    raise AssertionError("could not build a request of the exact size")


def test_max_message_boundary(stubs, diag_server, channel_for):
    """Exactly --max-message-bytes is accepted; one byte more is RESOURCE_EXHAUSTED (Collect: small replies)."""
    stub = _diag(stubs, channel_for(diag_server, BIG_OPTS))
    at = _request_of_size(stubs, MAX_MSG)
    resp = stub.Collect(iter([at]), timeout=30)
    assert resp.messages == 1 and resp.bytes == len(at.payload)
    over = _request_of_size(stubs, MAX_MSG + 1)
    with pytest.raises(grpc.RpcError) as exc:
        stub.Collect(iter([over]), timeout=30)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_max_message_bytes_flag(stubs, server_factory, channel_for):
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE, "--max-message-bytes", "1000")
    stub = _diag(stubs, channel_for(srv))
    ok = _request_of_size(stubs, 1000)
    assert stub.Echo(ok, timeout=TIMEOUT).bytes == len(ok.payload)
    with pytest.raises(grpc.RpcError) as exc:
        stub.Echo(_request_of_size(stubs, 1001), timeout=TIMEOUT)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_echo_concurrent_streams(stubs, any_diag_server, channel_for):
    stub = _diag(stubs, channel_for(any_diag_server))
    futs = [stub.Echo.future(stubs.diagnostics_pb2.EchoRequest(payload=os.urandom(i * 10)), timeout=TIMEOUT)
            for i in range(100)]
    for i, f in enumerate(futs):
        r = f.result()
        assert r.bytes == i * 10 and len(r.payload) == i * 10
