"""Connection-level abuse (issue 13, points 6 and 8), driven with hyper-h2 over raw sockets to
127.0.0.1. Each attack is bounded in connections, bytes and time, and each test checks that the
server keeps answering Health and Decide from another connection while (or after) it runs."""
from __future__ import annotations

import os
import re
import socket
import sys
import time

import h2.connection
import h2.errors
import h2.exceptions
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


# ----------------------------------------------------------------------------------------------
# Point 8, slots held forever: request deadlines and eviction at --max-connections
# ----------------------------------------------------------------------------------------------
def _headers_only(port: int, path: str = CHECK) -> ei.H2Client:
    """A connection that opens one call (HEADERS without END_STREAM) and then sends nothing."""
    c = ei.H2Client(port)
    c.start_request(path)
    return c


def test_headers_without_a_body_do_not_lock_out_health_checks(stubs, server_factory):
    srv = server_factory("--max-connections", "40", "--threads", "1")
    attackers = [_headers_only(srv.port) for _ in range(40)]
    try:
        time.sleep(1.5)  # every slot held, every holder idle for more than --evict-idle-after
        t0 = time.monotonic()
        checks = []
        for _ in range(8):  # a legitimate client's health checks, one connection each, over ~8 s
            c = ei.H2Client(srv.port)
            try:
                r = c.request(CHECK, health_body(), timeout=3)
                checks.append(r.grpc_status)
            except OSError as e:
                checks.append(repr(e))
            finally:
                c.close()
            time.sleep(max(0.0, t0 + len(checks) - time.monotonic()))
        assert checks == [0] * 8, checks
        assert_other_clients_served(stubs, srv)
        # The held calls themselves are cut off (no body within --request-progress-window, 5 s)
        # on the attackers that were not evicted.
        alive = [a for a in attackers if not a.eof]
        assert alive, "every attacker was evicted"
        a = alive[-1]
        sid = min(a.streams)
        assert a.wait_for(lambda: a.streams[sid].done or a.eof, 10)
        assert a.eof or a.streams[sid].reset_code is not None or a.streams[sid].grpc_status == 8, a.streams[sid]
    finally:
        for a in attackers:
            a.close()
    assert srv.alive()


def test_connection_limit_evicts_the_connection_idle_the_longest(server_factory):
    srv = server_factory("--max-connections", "3", "--threads", "1")
    old = [ei.H2Client(srv.port) for _ in range(3)]
    try:
        for c in old:
            assert c.wait_settings(5)
        time.sleep(1.3)
        for c in old[1:]:  # two of them stay busy
            assert c.request(CHECK, health_body(), timeout=3).grpc_status == 0
        new = ei.H2Client(srv.port)
        try:
            assert new.request(CHECK, health_body(), timeout=3).grpc_status == 0
        finally:
            new.close()
        assert old[0].wait_closed(3), "the idle connection was not closed for the new one"
        assert old[0].goaway is not None, "evicted without GOAWAY"
        for c in old[1:]:
            assert c.request(CHECK, health_body(), timeout=3).grpc_status == 0
    finally:
        for c in old:
            c.close()


def test_a_request_body_trickle_is_cut_off(stubs, server_factory):
    """A 4 MiB message: all but 100 KiB at once, then 1 KiB every 100 ms (10 KiB/s, under the
    default 32 KiB/s): RESOURCE_EXHAUSTED within the 5 s progress window, long before the last
    byte would have arrived (10 s of trickle)."""
    srv = server_factory()
    c = ei.H2Client(srv.port, timeout=10)
    try:
        assert c.wait_settings(5)
        size = 4 << 20
        body = ei.grpc_frame(b"", declared_len=size) + b"\x00" * size
        sid = c.start_request(ei.DECIDE)
        head = len(body) - (100 << 10)
        c.send_body(sid, body[:head], end_stream=False)
        t0 = time.monotonic()
        sent = head
        r = c.streams[sid]
        while not r.done and sent < len(body) and time.monotonic() - t0 < 20:
            try:
                c._wait_window(sid, 1024)
                c.conn.send_data(sid, body[sent:sent + 1024])
                c.flush()
            except (h2.exceptions.StreamClosedError, OSError):
                break
            sent += 1024
            c.pump(0.1)
            if sent % (16 << 10) == 0:
                assert_other_clients_served(stubs, srv, timeout=3)
        c.wait_for(lambda: r.done, 3)
        elapsed = time.monotonic() - t0
        assert r.done, "the trickling stream was never cut off"
        assert r.grpc_status == 8 or r.reset_code is not None, r
        assert sent < len(body) and elapsed < 9, (sent, len(body), elapsed)
        assert_other_clients_served(stubs, srv)
    finally:
        c.close()


# ----------------------------------------------------------------------------------------------
# Point 8, accept() on EMFILE: no spinning; --max-connections clamped to the descriptor limit
# ----------------------------------------------------------------------------------------------
class _LimitedProcess(ei.EncoreProcess):
    """`encore serve` under RLIMIT_NOFILE = `nofile` (soft and hard), set in a Python shim that
    then execs the server (same pid)."""

    def __init__(self, nofile: int, *args: str):
        super().__init__(*args)
        self.nofile = nofile

    def command(self) -> list[str]:
        shim = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d)); "
                "os.execv(sys.argv[1], sys.argv[1:])" % (self.nofile, self.nofile))
        return [sys.executable, "-c", shim] + super().command()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_neither_spins_nor_stops_serving(stubs):
    srv = _LimitedProcess(160, "--threads", "1", "--evict-idle-after", "600")
    srv.start()
    held: list[socket.socket] = []
    legit = None
    try:
        m = re.search(r"max-connections 10000 for \S+ is more than the open-file limit allows \(160 descriptors\): "
                      r"using (\d+)", srv.stderr)
        assert m, f"no clamp warning:\n{srv.stderr}"
        assert 0 < int(m.group(1)) < 160
        legit = ei.H2Client(srv.port)
        assert legit.wait_settings(5)
        # Fill both planes (each clamped on its own, so together they pass the limit): accept()
        # then fails with EMFILE while more connections keep arriving.
        for port in (srv.port, srv.admin_port) * 2:
            for _ in range(100):
                try:
                    held.append(socket.create_connection((ei.HOST, port), timeout=2))
                except OSError:
                    break
        fds = lambda: len(os.listdir(f"/proc/{srv.proc.pid}/fd"))  # noqa: E731
        deadline = time.monotonic() + 5
        while fds() < 159 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fds() >= 159, f"the descriptor limit was never reached ({fds()} open)"
        cpu0, t0 = _cpu_seconds(srv.proc.pid), time.monotonic()
        for _ in range(40):  # still more arrive while out of descriptors
            try:
                held.append(socket.create_connection((ei.HOST, srv.port), timeout=2))
            except OSError:
                pass
        time.sleep(2.0)
        cpu = _cpu_seconds(srv.proc.pid) - cpu0
        wall = time.monotonic() - t0
        assert cpu < 0.15 * wall, f"server used {cpu:.2f} s of CPU in {wall:.2f} s while out of descriptors"
        r = legit.request(CHECK, health_body(), timeout=5)
        assert r.grpc_status == 0, ("health on an existing connection", r)
        d = legit.request(ei.DECIDE, _decide_body(stubs), timeout=5)
        assert d.grpc_status == 0, ("decide on an existing connection", d)
    finally:
        for s in held:
            s.close()
        if legit is not None:
            legit.close()
    try:
        # Once the flood leaves, new connections are served again.
        deadline = time.monotonic() + 5
        while True:
            try:
                assert_other_clients_served(stubs, srv, timeout=2)
                break
            except (AssertionError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert srv.alive()
    finally:
        srv.stop(grace=3)


# ----------------------------------------------------------------------------------------------
# A TLS close without close_notify on an idle connection is an ordinary close
# ----------------------------------------------------------------------------------------------
def test_tls_close_without_close_notify_when_idle_is_not_a_warning(server_factory):
    srv = server_factory("--log-level", "debug", tls=True)
    c = ei.H2Client(srv.port, tls=ei.client_tls_context())
    assert c.wait_settings(5)
    assert c.request(CHECK, health_body(), timeout=5).grpc_status == 0
    c.pump(0.2)
    c.sock.close()  # Python closes the socket without sending close_notify
    assert srv.wait_stderr("without close_notify (idle)", 5), srv.stderr[-2000:]
    time.sleep(0.2)
    warnings = [l for l in srv.stderr.splitlines() if "warning" in l and "tls" in l]
    assert not warnings, warnings


# ----------------------------------------------------------------------------------------------
# Point 8, rapid reset: deadline cancels are not an attack; floods are still stopped
# ----------------------------------------------------------------------------------------------
def test_sequential_calls_with_expired_deadlines_are_not_a_rapid_reset(stubs, server_factory):
    """What a stock gRPC client does with a 1 ms deadline against a 20 ms handler: each call is
    cancelled (RST_STREAM CANCEL) when its deadline passes. 400 of them on one connection, several
    hundred within one second, are not taken for CVE-2023-44487 (before: GOAWAY ENHANCE_YOUR_CALM
    after 101)."""
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE)
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        slow = ei.grpc_frame(stubs.diagnostics_pb2.EchoRequest(payload=b"x", delay_ms=20).SerializeToString())
        t0 = time.monotonic()
        for _ in range(400):
            sid = c.start_request(ECHO, extra_headers=[("grpc-timeout", "1m")])
            c.send_body(sid, slow)
            time.sleep(0.0012)
            if not c.streams[sid].done:
                try:
                    c.reset(sid)
                except h2.exceptions.StreamClosedError:
                    pass
            c.pump(0.0005)
            assert c.goaway is None and not c.eof, f"GOAWAY after {sid // 2} calls: {c.goaway}"
        elapsed = time.monotonic() - t0
        c.pump(0.3)
        assert c.goaway is None, c.goaway
        r = c.request(CHECK, health_body(), timeout=5)
        assert r.grpc_status == 0
        assert elapsed < 4, f"400 calls took {elapsed:.1f} s: too slow to test the per-second rule"
        assert_other_clients_served(stubs, srv)
    finally:
        c.close()


def _flood(c, mixed: bool, limit_s: float = 10) -> int:
    """Opens and resets streams (with `mixed`, each reset follows two complete calls) until GOAWAY.
    Returns the number of resets sent."""
    sent = 0
    t0 = time.monotonic()
    while c.goaway is None and not c.eof and time.monotonic() - t0 < limit_s and sent < 5000:
        try:
            for _ in range(20):
                for _ in range(2 if mixed else 0):
                    sid = c.start_request(CHECK)
                    c.send_body(sid, health_body())
                sid = c.start_request(CHECK)
                c.reset(sid, h2.errors.ErrorCodes.CANCEL)
                sent += 1
        except (OSError, h2.exceptions.ProtocolError):
            break
        c.pump(0.002)
    c.wait_for(lambda: c.goaway is not None or c.eof, 3)
    return sent


def test_a_reset_flood_mixed_with_completed_calls_is_stopped_by_encore(stubs, server_factory):
    """Two streams in three complete, the third is reset at once: the ratio rule alone never
    fires (resets are a third of the streams); ten times --rapid-reset-limit resets in one second
    do (so the flood is stopped by Encore's rule, not only by libnghttp2's own limit)."""
    srv = server_factory("--rapid-reset-limit", "10")
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        sent = _flood(c, mixed=True)
        assert c.goaway is not None, f"no GOAWAY after {sent} mixed resets"
        assert c.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, c.goaway
        assert sent <= 1000, sent
        assert srv.wait_stderr("rapid reset from", 3), "GOAWAY not sent by Encore's rule"
        assert_other_clients_served(stubs, srv)
    finally:
        c.close()


# ----------------------------------------------------------------------------------------------
# Point 8, stuck readers: a response that cannot be written is reset after a deadline
# ----------------------------------------------------------------------------------------------
def _zero_window_client(port: int) -> ei.H2Client:
    """A client that advertises INITIAL_WINDOW_SIZE 0 and never opens it: no response DATA can
    reach it."""
    c = ei.H2Client(port, handshake=False)
    c.conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    c.conn.initiate_connection()
    c.flush()
    return c


def test_streams_whose_response_cannot_be_written_are_reset(stubs, server_factory):
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE, "--response-write-timeout", "2")
    clients = [_zero_window_client(srv.port) for _ in range(4)]
    try:
        body = ei.grpc_frame(stubs.diagnostics_pb2.EchoRequest(payload=b"y" * 100).SerializeToString())
        for c in clients:
            assert c.wait_settings(5)
            for _ in range(128):
                c.send_body(c.start_request(ECHO), body)
        t0 = time.monotonic()
        time.sleep(0.5)
        assert not any(s.done for c in clients for s in c.streams.values()), "a response got through a zero window"
        assert_other_clients_served(stubs, srv)  # while 512 streams are stuck
        for c in clients:
            assert c.wait_for(lambda: all(s.done for s in c.streams.values()), 8), "stuck streams not reset"
        elapsed = time.monotonic() - t0
        codes = {s.reset_code for c in clients for s in c.streams.values()}
        assert codes == {int(h2.errors.ErrorCodes.CANCEL)}, codes
        assert 1.5 < elapsed < 8, elapsed
        assert all(c.goaway is None for c in clients)
        assert_other_clients_served(stubs, srv)
    finally:
        for c in clients:
            c.close()


# ----------------------------------------------------------------------------------------------
# Point 8, HPACK bomb: a connection that keeps exceeding the header-list limit is closed
# ----------------------------------------------------------------------------------------------
def test_hpack_bomb_connection_gets_enhance_your_calm(stubs, server_factory):
    """One 4,000-byte header in the dynamic table referenced 1,000 times per stream (about 1 KB on
    the wire, 4 MB decoded, far over the 16 KiB header-list limit): after a few 431s the
    connection gets GOAWAY ENHANCE_YOUR_CALM instead of earning 431s forever."""
    srv = server_factory()
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        bomb = [("x-bomb", "b" * 4000)] * 1000
        sent = 0
        t0 = time.monotonic()
        while c.goaway is None and not c.eof and sent < 50 and time.monotonic() - t0 < 20:
            try:
                sid = c.start_request(CHECK, extra_headers=bomb)
                c.send_body(sid, health_body())
            except (OSError, h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                break
            sent += 1
            c.pump(0.01)
        c.wait_for(lambda: c.goaway is not None or c.eof, 5)
        assert c.goaway is not None, f"no GOAWAY after {sent} header bombs"
        assert c.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, c.goaway
        assert sent <= 10, sent
        assert srv.wait_stderr("header lists over the limit from", 3)
        assert_other_clients_served(stubs, srv)
    finally:
        c.close()
