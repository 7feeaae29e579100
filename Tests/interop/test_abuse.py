"""Connection-level abuse (issue 13, points 6 and 8), driven with hyper-h2 over raw sockets to
127.0.0.1. Each attack is bounded in connections, bytes and time, and each test checks that the
server keeps answering Health and Decide from another connection while (or after) it runs."""
from __future__ import annotations

import socket
import time

import h2.connection
import h2.errors
import h2.settings

import encore_interop as ei

from encore_interop import CHECK, ECHO, health_body


class _LimitBlindConnection(ei._GracefulH2Connection):
    """A client that ignores the server's SETTINGS_MAX_CONCURRENT_STREAMS (hyper-h2 refuses to
    open a stream over it)."""

    @property
    def open_outbound_streams(self) -> int:
        return 0


def _limit_blind_client(port: int) -> ei.H2Client:
    c = ei.H2Client(port, handshake=False)
    c.conn = _LimitBlindConnection(config=c.conn.config)
    c.conn.initiate_connection()
    c.flush()
    return c


def _decide_body(stubs) -> bytes:
    return ei.grpc_frame(
        stubs.decisions_pb2.DecideRequest(surface="cart", customer_id="c000001").SerializeToString())


def assert_other_clients_served(stubs, server, timeout: float = 5.0) -> None:
    """Health/Check and Decide answered OK on a fresh connection within `timeout`."""
    c = ei.H2Client(server.port)
    try:
        assert c.wait_settings(timeout), "no SETTINGS for a new connection"
        health = c.request(CHECK, health_body(), timeout=timeout)
        assert health.grpc_status == 0, ("health", health.headers, health.trailers, health.reset_code)
        decide = c.request(ei.DECIDE, _decide_body(stubs), timeout=timeout)
        assert decide.grpc_status == 0, ("decide", decide.headers, decide.trailers, decide.reset_code)
    finally:
        c.close()


# ----------------------------------------------------------------------------------------------
# Point 6: a stream over SETTINGS_MAX_CONCURRENT_STREAMS is refused, the connection lives
# ----------------------------------------------------------------------------------------------
def test_stream_over_the_limit_is_refused_not_the_connection(stubs, server_factory):
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE)
    c = _limit_blind_client(srv.port)
    try:
        assert c.wait_settings(5)
        assert c.remote_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS) == 128
        # Let the server see our SETTINGS ACK: the limit is acknowledged from here on.
        c.pump(0.2)
        slow = ei.grpc_frame(stubs.diagnostics_pb2.EchoRequest(payload=b"held", delay_ms=1500).SerializeToString())
        held = []
        for _ in range(128):
            sid = c.start_request(ECHO)
            c.send_body(sid, slow)
            held.append(sid)
        extra = [c.start_request(ECHO) for _ in range(128)]
        for sid in extra:
            c.send_body(sid, slow)
        assert c.wait_for(lambda: all(c.streams[s].done for s in extra), 10), "extra streams not refused in 10 s"
        codes = {c.streams[s].reset_code for s in extra}
        assert codes == {int(h2.errors.ErrorCodes.REFUSED_STREAM)}, codes
        assert c.goaway is None, f"GOAWAY for the whole connection: {c.goaway}"
        # The 128 calls in flight all complete.
        assert c.wait_for(lambda: all(c.streams[s].done for s in held), 15), "held calls did not complete"
        statuses = [c.streams[s].grpc_status for s in held]
        assert statuses == [0] * 128, statuses
        # The client retries the refused calls on the same connection: they complete too.
        retried = []
        for _ in range(128):
            sid = c.start_request(ECHO)
            c.send_body(sid, ei.grpc_frame(stubs.diagnostics_pb2.EchoRequest(payload=b"again").SerializeToString()))
            retried.append(sid)
        assert c.wait_for(lambda: all(c.streams[s].done for s in retried), 15)
        assert [c.streams[s].grpc_status for s in retried] == [0] * 128
        assert c.goaway is None
        assert_other_clients_served(stubs, srv)
    finally:
        c.close()
