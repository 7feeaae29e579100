"""Malformed input, abuse limits, SETTINGS, idle timeout and connection limits."""
from __future__ import annotations

import socket
import struct
import time

import grpc
import h2.errors
import h2.exceptions
import h2.settings
import pytest

import encore_interop as ei
from encore_interop import CHECK, ECHO, assert_serving, health_body

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def grpcio_health_ok(stubs, server) -> bool:
    ch = ei.make_channel(server)
    try:
        stub = stubs.health_pb2_grpc.HealthStub(ch)
        return stub.Check(stubs.health_pb2.HealthCheckRequest(), timeout=5).status == 1
    finally:
        ch.close()


def raw_connect(port: int) -> socket.socket:
    s = socket.create_connection((ei.HOST, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


# ----------------------------------------------------------------------------------------------
# Malformed input
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello start on h2c
        bytes(range(256)) * 4,
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
    ],
    ids=["http1", "tls-on-h2c", "binary", "bad-preface-tail"],
)
def test_garbage_preface_closes(stubs, diag_server, garbage):
    s = raw_connect(diag_server.port)
    try:
        s.sendall(garbage)
        closed, _ = ei.read_until_eof(s, 5)
        assert closed, "server kept a connection open after a bad client preface"
    finally:
        s.close()
    assert grpcio_health_ok(stubs, diag_server)


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00\x00\x64\x00\x01\x00\x00\x00\x01" + b"x" * 10,  # DATA header says 100 bytes, 10 sent
        b"\x00\x00",  # half a frame header
        EMPTY_SETTINGS + b"\x00\x40\x00\x01\x05\x00\x00\x00\x01\x82",  # HEADERS cut short
    ],
    ids=["short-data", "short-frame-header", "short-headers"],
)
def test_truncated_frame_then_eof(stubs, diag_server, tail):
    s = raw_connect(diag_server.port)
    try:
        s.sendall(PREFACE + (EMPTY_SETTINGS if not tail.startswith(EMPTY_SETTINGS) else b"") + tail)
        time.sleep(0.1)
        s.shutdown(socket.SHUT_WR)
        closed, _ = ei.read_until_eof(s, 5)
        assert closed, "server did not close its side after the client's EOF"
    finally:
        s.close()
    assert grpcio_health_ok(stubs, diag_server)


def test_protocol_error_goaway(stubs, diag_server, h2conn):
    """DATA on stream 0 is a connection error: GOAWAY(PROTOCOL_ERROR) and close."""
    c = h2conn(diag_server)
    c.send_raw(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"x")
    assert c.wait_for(lambda: c.goaway is not None or c.eof, 5)
    if c.goaway is not None:
        assert c.goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert c.wait_closed(5)
    assert grpcio_health_ok(stubs, diag_server)


def test_connect_and_drop_storm(stubs, diag_server):
    for i in range(200):
        s = socket.create_connection((ei.HOST, diag_server.port), timeout=5)
        if i % 3 == 1:
            s.sendall(PREFACE[: i % len(PREFACE)])
        elif i % 3 == 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
            s.sendall(PREFACE + EMPTY_SETTINGS)
        s.close()
    assert grpcio_health_ok(stubs, diag_server)


# ----------------------------------------------------------------------------------------------
# SETTINGS and header limits
# ----------------------------------------------------------------------------------------------
def test_server_settings(diag_server, h2conn):
    c = h2conn(diag_server)
    assert c.remote_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS) == 128, c.remote_settings
    assert c.remote_settings.get(h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE) == 16384, c.remote_settings


def test_settings_flags(server_factory):
    srv = server_factory("--max-concurrent-streams", "7", "--max-header-list-bytes", "9000")
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        assert c.remote_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS) == 7
        assert c.remote_settings.get(h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE) == 9000
    finally:
        c.close()


@pytest.mark.parametrize("size", [20 * 1024, 60 * 1024])
def test_oversize_header_list(stubs, diag_server, h2conn, size):
    c = h2conn(diag_server)
    sid = c.start_request(CHECK, extra_headers=[("x-big", "a" * size)])
    c.send_body(sid, health_body())
    r = c.result(sid, timeout=5)
    assert r.done or c.goaway is not None, "no answer to an oversize header list"
    refused = r.reset_code is not None or r.grpc_status == 8
    assert refused, (f"a {size}-byte header list was not refused with RST_STREAM or RESOURCE_EXHAUSTED: "
                     f"headers={r.headers} trailers={r.trailers} goaway={c.goaway}")
    assert grpcio_health_ok(stubs, diag_server)


def test_header_list_under_limit_ok(diag_server, h2conn):
    c = h2conn(diag_server)
    assert_serving(c.request(CHECK, health_body(), extra_headers=[("x-medium", "m" * 8000)]))


# ----------------------------------------------------------------------------------------------
# Rapid reset (CVE-2023-44487)
# ----------------------------------------------------------------------------------------------
def test_rapid_reset_goaway(stubs, diag_server, h2conn):
    c = h2conn(diag_server)
    other = h2conn(diag_server)  # an innocent connection on the same server
    sent = 0
    t0 = time.monotonic()
    while sent < 500 and c.goaway is None and not c.eof and time.monotonic() - t0 < 10:
        try:
            for _ in range(25):
                sid = c.start_request(CHECK)
                c.reset(sid, h2.errors.ErrorCodes.CANCEL)
                sent += 1
        except (OSError, h2.exceptions.ProtocolError):
            break
        c.pump(0.01)
    c.wait_for(lambda: c.goaway is not None or c.eof, 3)
    assert c.goaway is not None, f"no GOAWAY after {sent} rapid resets"
    assert c.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, c.goaway
    assert c.wait_closed(5), "connection not closed after the ENHANCE_YOUR_CALM GOAWAY"
    # Other connections unaffected.
    assert_serving(other.request(CHECK, health_body()))
    assert grpcio_health_ok(stubs, diag_server)


def test_resets_under_limit_allowed(diag_server, h2conn):
    c = h2conn(diag_server)
    for _ in range(40):  # well under the default 100/s
        sid = c.start_request(CHECK)
        c.reset(sid)
    c.pump(0.3)
    assert c.goaway is None, f"GOAWAY after only 40 resets: {c.goaway}"
    assert_serving(c.request(CHECK, health_body()))


def test_resets_spread_over_time_allowed(diag_server, h2conn):
    """3 x 45 resets, 1.1 s apart: even two batches together stay under 100 in one second."""
    c = h2conn(diag_server)
    for batch in range(3):
        if batch:
            deadline = time.monotonic() + 1.1
            while time.monotonic() < deadline:
                c.pump(0.1)
        for _ in range(45):
            c.reset(c.start_request(CHECK))
    c.pump(0.3)
    assert c.goaway is None, f"GOAWAY although the reset rate stayed under the limit: {c.goaway}"
    assert_serving(c.request(CHECK, health_body()))


def test_rapid_reset_limit_flag(server_factory):
    srv = server_factory("--rapid-reset-limit", "10")
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        for _ in range(30):
            if c.goaway is not None or c.eof:
                break
            try:
                c.reset(c.start_request(CHECK))
            except (OSError, h2.exceptions.ProtocolError):
                break
            c.pump(0.005)
        c.wait_for(lambda: c.goaway is not None or c.eof, 3)
        assert c.goaway is not None and c.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    finally:
        c.close()


# ----------------------------------------------------------------------------------------------
# Idle timeout
# ----------------------------------------------------------------------------------------------
def test_idle_timeout(server_factory):
    srv = server_factory("--idle-timeout", "1")
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        t0 = time.monotonic()
        # Waits return as soon as the close comes, so a wide bound costs nothing; the lower bound
        # below is what load cannot fake (the server never closes early).
        assert c.wait_closed(6), "idle connection not closed within 6 s (--idle-timeout 1)"
        elapsed = time.monotonic() - t0
        assert elapsed >= 0.5, f"connection closed after only {elapsed:.2f}s"
        assert c.goaway is not None, "idle close without a GOAWAY"
        assert c.goaway.error_code == h2.errors.ErrorCodes.NO_ERROR, c.goaway
    finally:
        c.close()


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
@pytest.mark.parametrize("send", [b"", b"partial"], ids=["silent", "partial-preface"])
def test_idle_timeout_before_preface(server_factory, tls, send):
    """A connection that never completes the preface (or the TLS handshake) is idle too."""
    srv = server_factory("--idle-timeout", "1", tls=tls)
    s = raw_connect(srv.port)
    try:
        if send:  # the start of a ClientHello record (TLS) or of the client preface (h2c)
            s.sendall(b"\x16\x03\x01\x02\x00\x01" if tls else PREFACE[:8])
        t0 = time.monotonic()
        closed, _ = ei.read_until_eof(s, 6)  # returns at the close: a wide bound costs nothing
        assert closed, "a connection that never sent a preface was not closed by --idle-timeout 1"
        assert time.monotonic() - t0 >= 0.5
    finally:
        s.close()


def test_idle_timeout_spares_active_streams(stubs, server_factory):
    srv = server_factory("--idle-timeout", "1", *ei.DIAG_ON_DATA_PLANE)
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        req = stubs.diagnostics_pb2.EchoRequest(payload=b"long", delay_ms=2000).SerializeToString()
        r = c.request(ECHO, ei.grpc_frame(req), timeout=6)
        assert r.grpc_status == 0, (r.headers, r.trailers, c.goaway)
        assert stubs.diagnostics_pb2.EchoResponse.FromString(r.messages()[0]).payload == b"long"
        # ...and the connection becomes idle afterwards and is closed.
        assert c.wait_closed(6)
    finally:
        c.close()


# ----------------------------------------------------------------------------------------------
# Connection limit
# ----------------------------------------------------------------------------------------------
def test_max_connections(stubs, server_factory):
    # The limit spans reactor threads. No connection is idle long enough to be evicted for the
    # third (test_abuse.py checks eviction).
    srv = server_factory("--max-connections", "2", "--threads", "2", "--evict-idle-after", "600")
    a = ei.H2Client(srv.port)
    b = ei.H2Client(srv.port)
    try:
        assert a.wait_settings(5) and b.wait_settings(5)
        third = raw_connect(srv.port)  # the kernel accepts; the server must close it at once
        try:
            third.sendall(PREFACE + EMPTY_SETTINGS)
        except OSError:
            pass
        t0 = time.monotonic()
        closed, _ = ei.read_until_eof(third, 4)
        third.close()
        assert closed, "third connection was not closed with --max-connections 2"
        assert time.monotonic() - t0 < 4.0  # closed at once; a wide bound for a shared machine
        assert_serving(a.request(CHECK, health_body()))
        assert_serving(b.request(CHECK, health_body()))
        # Freeing a slot lets a new connection in.
        a.close()
        ok = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not ok:
            time.sleep(0.1)
            c = ei.H2Client(srv.port)
            try:
                r = c.request(CHECK, health_body(), timeout=2)
                ok = r.grpc_status == 0
            except OSError:
                pass
            finally:
                c.close()
        assert ok, "no new connection accepted after one of the two was closed"
    finally:
        a.close()
        b.close()
