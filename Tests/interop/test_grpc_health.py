"""grpcio (the reference C-core client) against Health, Decisions and unknown routes."""
from __future__ import annotations

import queue
import signal
import threading
import time

import grpc
import pytest

TIMEOUT = 5


def _health(stubs, channel, service: str):
    stub = stubs.health_pb2_grpc.HealthStub(channel)
    return stub.Check(stubs.health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)


@pytest.mark.parametrize("service", ["", "encore.v1.Decisions"])
def test_health_serving_h2c(stubs, plain_server, channel_for, service):
    resp = _health(stubs, channel_for(plain_server), service)
    assert resp.status == stubs.health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("service", ["", "encore.v1.Decisions"])
def test_health_serving_tls(stubs, tls_server, channel_for, service):
    resp = _health(stubs, channel_for(tls_server), service)
    assert resp.status == stubs.health_pb2.HealthCheckResponse.SERVING


def test_health_unknown_service_not_found(stubs, any_diag_server, channel_for):
    with pytest.raises(grpc.RpcError) as ei:
        _health(stubs, channel_for(any_diag_server), "no.such.Service")
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND, ei.value.details()


class _Reader:
    """Reads a streaming call on a background thread, so each message (or the call's error) can
    be awaited with a timeout."""

    def __init__(self, call):
        self.call = call
        self.items: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            for msg in self.call:
                self.items.put(("msg", msg))
            self.items.put(("end", None))
        except grpc.RpcError as e:
            self.items.put(("err", e))

    def next(self, timeout=TIMEOUT):
        try:
            kind, value = self.items.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout}s") from None
        if kind == "err":
            raise value
        assert kind == "msg", "the stream ended with OK; expected a message or an error"
        return value


def test_watch_sends_serving_then_not_serving_on_sigterm(stubs, server_factory, channel_for):
    """Health/Watch is a server stream: SERVING at once, NOT_SERVING when SIGTERM starts the
    drain, then the stream ends (UNAVAILABLE) and the drain finishes without waiting for its
    deadline. On both planes, for "" and for encore.v1.Decisions."""
    H = stubs.health_pb2
    srv = server_factory("--drain-timeout", "30")
    calls = []
    for admin in (False, True):
        stub = stubs.health_pb2_grpc.HealthStub(channel_for(srv, admin=admin))
        for service in ("", "encore.v1.Decisions"):
            calls.append(_Reader(stub.Watch(H.HealthCheckRequest(service=service), timeout=60)))
    for call in calls:
        assert call.next().status == H.HealthCheckResponse.SERVING
    # Still open: Check answers while the watches wait.
    assert _health(stubs, channel_for(srv), "").status == H.HealthCheckResponse.SERVING
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    for call in calls:
        assert call.next().status == H.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as e:
            call.next()
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value.details()
        assert "draining" in e.value.details()
    assert srv.wait(15) == 0, srv.stderr
    assert time.monotonic() - started < 10, "the open watches held the drain up"
    assert "stopped: every in-flight call completed" in srv.stderr, srv.stderr


def test_watch_unknown_service_is_service_unknown_and_stays_open(stubs, plain_server, channel_for):
    H = stubs.health_pb2
    stub = stubs.health_pb2_grpc.HealthStub(channel_for(plain_server))
    call = _Reader(stub.Watch(H.HealthCheckRequest(service="no.such.Service"), timeout=30))
    assert call.next().status == H.HealthCheckResponse.SERVICE_UNKNOWN
    # Per the health protocol the call is not ended: nothing more arrives while we wait.
    with pytest.raises(TimeoutError):
        call.next(timeout=1.0)
    call.call.cancel()
    with pytest.raises(grpc.RpcError) as e:
        call.next()
    assert e.value.code() == grpc.StatusCode.CANCELLED
    # The server is unaffected by the cancelled stream.
    assert _health(stubs, channel_for(plain_server), "").status == H.HealthCheckResponse.SERVING


def test_watch_deadline_ends_the_stream_after_its_first_message(stubs, server_factory, channel_for):
    """A deadline on an open stream ends it with DEADLINE_EXCEEDED in the trailers, after the
    message already sent (headers were sent: not a trailers-only answer). On a server of its own:
    once, on the shared server, a second message arrived before the deadline (a status change
    left by an earlier test), which this test is not about."""
    H = stubs.health_pb2
    server = server_factory("--threads", "1")
    stub = stubs.health_pb2_grpc.HealthStub(channel_for(server))
    call = _Reader(stub.Watch(H.HealthCheckRequest(service=""), timeout=1.0))
    assert call.next().status == H.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as e:
        call.next()
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_many_watches_come_and_go(stubs, plain_server, channel_for):
    """Watches opened and cancelled in a loop on one connection: every one gets SERVING."""
    H = stubs.health_pb2
    stub = stubs.health_pb2_grpc.HealthStub(channel_for(plain_server))
    for _ in range(3):
        calls = [_Reader(stub.Watch(H.HealthCheckRequest(service=""), timeout=30)) for _ in range(20)]
        assert all(c.next().status == H.HealthCheckResponse.SERVING for c in calls)
        for c in calls:
            c.call.cancel()
        for c in calls:
            with pytest.raises(grpc.RpcError) as e:
                c.next()
            assert e.value.code() == grpc.StatusCode.CANCELLED
    assert _health(stubs, channel_for(plain_server), "").status == H.HealthCheckResponse.SERVING


def test_decide_served(stubs, plain_server, channel_for):
    """Decide is implemented now (the decision core); its contract is covered in test_decide.py."""
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(plain_server))
    req = stubs.decisions_pb2.DecideRequest(surface="cart", customer_id="c-1", slots=1)
    resp = stub.Decide(req, timeout=TIMEOUT)
    assert resp.decision_id and resp.model_version
    assert len(resp.placements) == (0 if resp.holdout else 1)


def test_report_outcome_served(stubs, plain_server, channel_for):
    """ReportOutcome is routed and validates its input (its logging is tested in test_logs.py)."""
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(plain_server))
    D = stubs.decisions_pb2
    with pytest.raises(grpc.RpcError) as ei:
        stub.ReportOutcome(D.OutcomeRequest(decision_id="d"), timeout=TIMEOUT)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "offer_id" in ei.value.details()
    # Only ids this server issued are accepted (test_decision_ids.py covers forged ones).
    with pytest.raises(grpc.RpcError) as ei:
        stub.ReportOutcome(D.OutcomeRequest(decision_id="d", offer_id="gift_box", outcome=D.SHOWN), timeout=TIMEOUT)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "decision_id" in ei.value.details()
    decision = stub.Decide(D.DecideRequest(surface="cart", customer_id="c-1", slots=1), timeout=TIMEOUT)
    reply = stub.ReportOutcome(D.OutcomeRequest(decision_id=decision.decision_id, offer_id="gift_box",
                                                outcome=D.SHOWN), timeout=TIMEOUT)
    assert reply == D.OutcomeResponse()


@pytest.mark.parametrize("path", ["/encore.v1.Nope/Nope", "/grpc.health.v1.Health/Nope", "/x"])
def test_unknown_method_unimplemented(plain_server, channel_for, path):
    call = channel_for(plain_server).unary_unary(path)  # raw bytes in / out
    with pytest.raises(grpc.RpcError) as ei:
        call(b"", timeout=TIMEOUT)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED, ei.value.details()


def test_diagnostics_off_by_default(stubs, plain_server, channel_for):
    ch = channel_for(plain_server)
    stub = stubs.diagnostics_pb2_grpc.DiagnosticsStub(ch)
    with pytest.raises(grpc.RpcError) as ei:
        stub.Echo(stubs.diagnostics_pb2.EchoRequest(payload=b"x"), timeout=TIMEOUT)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as ei:
        stub.Collect(iter([stubs.diagnostics_pb2.EchoRequest(payload=b"x")]), timeout=TIMEOUT)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_many_calls_one_channel(stubs, any_diag_server, channel_for):
    """Sequential and concurrent calls multiplexed on one connection all succeed."""
    ch = channel_for(any_diag_server)
    stub = stubs.health_pb2_grpc.HealthStub(ch)
    req = stubs.health_pb2.HealthCheckRequest(service="encore.v1.Decisions")
    for _ in range(50):
        assert stub.Check(req, timeout=TIMEOUT).status == stubs.health_pb2.HealthCheckResponse.SERVING
    futures = [stub.Check.future(req, timeout=TIMEOUT) for _ in range(200)]
    statuses = [f.result().status for f in futures]
    assert statuses == [stubs.health_pb2.HealthCheckResponse.SERVING] * 200
