"""grpcio (the reference C-core client) against Health, Decisions and unknown routes."""
from __future__ import annotations

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


def test_health_watch_unimplemented(stubs, plain_server, channel_for):
    stub = stubs.health_pb2_grpc.HealthStub(channel_for(plain_server))
    call = stub.Watch(stubs.health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as ei:
        for _ in call:  # bounded by the call timeout; must not yield anything
            pytest.fail("Watch produced a message; expected UNIMPLEMENTED")
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED, ei.value.details()


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
