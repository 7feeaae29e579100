"""TLS: ALPN h2 negotiation, TLS 1.2/1.3, failed handshakes."""
from __future__ import annotations

import socket
import ssl
import time

import pytest

import encore_interop as ei
from encore_interop import CHECK, assert_serving, health_body


def _grpcio_ok(stubs, server) -> bool:
    ch = ei.make_channel(server)
    try:
        stub = stubs.health_pb2_grpc.HealthStub(ch)
        return stub.Check(stubs.health_pb2.HealthCheckRequest(service="encore.v1.Decisions"), timeout=5).status == 1
    finally:
        ch.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_alpn_h2_negotiated(tls_server, tls_files, version):
    ctx = ei.client_tls_context(alpn=("h2",), cafile=str(tls_files[0]), min_version=version, max_version=version)
    c = ei.H2Client(tls_server.port, tls=ctx)
    try:
        assert c.sock.selected_alpn_protocol() == "h2"
        assert c.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        assert c.wait_settings(5)
        assert_serving(c.request(CHECK, health_body()))
    finally:
        c.close()


def test_alpn_preference_h2_among_others(tls_server):
    ctx = ei.client_tls_context(alpn=("http/1.1", "h2"))
    c = ei.H2Client(tls_server.port, tls=ctx)
    try:
        assert c.sock.selected_alpn_protocol() == "h2"
        assert_serving(c.request(CHECK, health_body()))
    finally:
        c.close()


def _failed_handshakes(server) -> int:
    return server.stderr.count("tls handshake failed")


def test_alpn_http11_only_rejected(stubs, tls_server):
    before = _failed_handshakes(tls_server)
    ctx = ei.client_tls_context(alpn=("http/1.1",))
    raw = socket.create_connection((ei.HOST, tls_server.port), timeout=5)
    negotiated = None
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            s = ctx.wrap_socket(raw, server_hostname="localhost")  # handshake happens here
            negotiated = s.selected_alpn_protocol()
            # TLS 1.3: a server-side failure may only surface on the first read.
            s.settimeout(3)
            data = s.recv(1)
            if data == b"":
                raise ConnectionError("closed after handshake")
            s.close()
    finally:
        raw.close()
    assert negotiated is None or negotiated != "http/1.1", "server negotiated http/1.1"
    assert tls_server.wait_stderr("tls handshake failed", 3, count=before + 1), \
        "no 'tls handshake failed' line on stderr"
    time.sleep(0.3)
    assert _failed_handshakes(tls_server) == before + 1, "handshake failure must be logged exactly once"
    assert tls_server.alive()
    assert _grpcio_ok(stubs, tls_server)


def test_no_alpn_client_rejected(stubs, tls_server):
    """A client offering no ALPN at all fails the handshake (no_application_protocol alert)."""
    before = _failed_handshakes(tls_server)
    ctx = ei.client_tls_context(alpn=())
    raw = socket.create_connection((ei.HOST, tls_server.port), timeout=5)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            # TLS 1.3: the alert may only surface on the first read.
            s.settimeout(3)
            if s.recv(1) == b"":
                raise ConnectionError("closed")
    finally:
        raw.close()
    assert tls_server.wait_stderr("tls handshake failed", 3, count=before + 1)
    assert _grpcio_ok(stubs, tls_server)


@pytest.mark.parametrize(
    "payload",
    [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello"],
    ids=["h2c-preface", "http1", "bogus-record"],
)
def test_plaintext_on_tls_port(stubs, tls_server, payload):
    s = socket.create_connection((ei.HOST, tls_server.port), timeout=5)
    try:
        s.sendall(payload)
        closed, _ = ei.read_until_eof(s, 5)
        assert closed, "server kept a non-TLS connection open on the TLS port"
    finally:
        s.close()
    assert _grpcio_ok(stubs, tls_server)


def test_tls_client_disconnects_mid_handshake(stubs, tls_server):
    for _ in range(20):
        s = socket.create_connection((ei.HOST, tls_server.port), timeout=5)
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # start of a ClientHello
        s.close()
    assert _grpcio_ok(stubs, tls_server)


def test_wrong_ca_rejected_by_client(tmp_path, tls_server):
    """Sanity check of the test setup: the client really verifies the server certificate."""
    other_cert, _ = ei.make_self_signed(tmp_path)
    ctx = ei.client_tls_context(alpn=("h2",), cafile=str(other_cert))
    raw = socket.create_connection((ei.HOST, tls_server.port), timeout=5)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="localhost")
    finally:
        raw.close()
