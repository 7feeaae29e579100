"""Connection-level abuse (issue 13, points 6 and 8), driven with hyper-h2 over raw sockets to
127.0.0.1. Each attack is bounded in connections, bytes and time, and each test checks that the
server keeps answering Health and Decide from another connection while (or after) it runs."""
from __future__ import annotations

import os
import re
import socket
import sys
import time

import h2.config
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


# ----------------------------------------------------------------------------------------------
# Point 8, memory: buffered request bytes are bounded per connection and in total
# ----------------------------------------------------------------------------------------------
def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _hold_partial_messages(c: ei.H2Client, streams: int, held: int) -> list[int]:
    """Opens `streams` Decide calls, each sending the 5-byte prefix of a message one KiB longer
    than `held` and then `held` bytes of it, no END_STREAM: the server must buffer them all,
    waiting for the rest. Streams the server refuses are skipped. Returns the stream ids."""
    prefix = ei.grpc_frame(b"", declared_len=held + 1024)
    chunk = b"\x00" * (16 << 10)
    sids = []
    for _ in range(streams):
        sid = c.start_request(ei.DECIDE)
        sids.append(sid)
        try:
            c.conn.send_data(sid, prefix)
            for _ in range(held // len(chunk)):
                c._wait_window(sid, len(chunk))
                c.conn.send_data(sid, chunk)
            c.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            continue  # refused (RESOURCE_EXHAUSTED, then RST_STREAM) while we were sending
        c.pump(0.001)
    return sids


def _refusals(c: ei.H2Client, sids: list[int], flag: str) -> int:
    refused = [c.streams[s] for s in sids if c.streams[s].grpc_status == 8]
    for r in refused:
        assert flag in (r.grpc_message or ""), (r.headers, r.trailers)
    return len(refused)


def test_buffered_request_bytes_are_bounded_per_connection(stubs, server_factory):
    """128 streams each holding 960 KiB of an unfinished message would make the server buffer
    120 MiB for one connection (before this bound: RSS grew by that much and stayed while the
    connection lived). With --max-connection-buffered-bytes 16 MiB (the default) the streams past
    it are answered RESOURCE_EXHAUSTED naming the flag, RSS stays far below, other clients are
    served meanwhile, and RSS returns near its base once the attacker leaves."""
    srv = server_factory("--threads", "1")
    pid = srv.proc.pid
    assert_other_clients_served(stubs, srv)
    base = _rss_bytes(pid)
    c = ei.H2Client(srv.port, timeout=10)
    try:
        assert c.wait_settings(5)
        sids = _hold_partial_messages(c, 128, 960 << 10)
        c.pump(0.3)
        peak = _rss_bytes(pid)
        assert_other_clients_served(stubs, srv)
        refused = _refusals(c, sids, "--max-connection-buffered-bytes")
        assert refused >= 100, f"only {refused} of 128 streams refused"
        assert peak - base < 64 << 20, f"RSS grew by {(peak - base) >> 20} MiB for one connection"
        assert c.goaway is None, "the connection itself was closed"
        # The refused streams are answered but stay open on our side until we end them.
        for sid in sids:
            try:
                c.conn.end_stream(sid)
            except h2.exceptions.StreamClosedError:
                pass
        c.flush()
        c.wait_for(lambda: all(c.streams[s].done for s in sids), 5)
        # The connection goes on: a new call on it is answered.
        r = c.request(CHECK, health_body(), timeout=5)
        assert r.grpc_status == 0, r
    finally:
        c.close()
    deadline = time.monotonic() + 5
    while _rss_bytes(pid) - base > 24 << 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    after = _rss_bytes(pid)
    assert after - base < 24 << 20, f"RSS {(after - base) >> 20} MiB above base after the attacker left"
    assert_other_clients_served(stubs, srv)


def test_buffered_request_bytes_are_bounded_in_total(stubs, server_factory):
    """Four connections, each under its own bound (16 MiB), together over --max-buffered-bytes
    (24 MiB here): the streams past the total are answered RESOURCE_EXHAUSTED naming that flag;
    small calls (Health, Decide) on another connection are still served from the reserve the
    total keeps for them."""
    srv = server_factory("--threads", "1", "--max-buffered-bytes", str(24 << 20))
    pid = srv.proc.pid
    assert_other_clients_served(stubs, srv)
    base = _rss_bytes(pid)
    attackers = [ei.H2Client(srv.port, timeout=10) for _ in range(4)]
    try:
        refused = 0
        all_sids = []
        for a in attackers:
            assert a.wait_settings(5)
            sids = _hold_partial_messages(a, 12, 960 << 10)
            all_sids.append(sids)
        for a in attackers:
            a.pump(0.2)
        peak = _rss_bytes(pid)
        for a, sids in zip(attackers, all_sids):
            refused += _refusals(a, sids, "--max-buffered-bytes")
        assert refused >= 16, f"only {refused} of 48 streams refused by the total"
        assert peak - base < 64 << 20, f"RSS grew by {(peak - base) >> 20} MiB"
        assert_other_clients_served(stubs, srv)
    finally:
        for a in attackers:
            a.close()
    deadline = time.monotonic() + 5
    while _rss_bytes(pid) - base > 24 << 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _rss_bytes(pid) - base < 24 << 20
    assert_other_clients_served(stubs, srv)


# ----------------------------------------------------------------------------------------------
# Point 8, HPACK bomb: decoded header bytes per connection per second are bounded
# ----------------------------------------------------------------------------------------------
def test_hpack_bomb_in_one_header_block_is_cut_off(stubs, server_factory):
    """One stream whose single header block references a 4,000-byte dynamic-table entry 20,000
    times (about 20 KB on the wire, 80 MB decoded), at most three such streams: the oversized-list
    rule (more than 3 per second) cannot fire, so the bound on decoded header bytes per second (--max-header-bytes-per-second,
    default 64 MiB) must: GOAWAY ENHANCE_YOUR_CALM before the block is decoded to its end.
    Before this bound the server decoded every reference and kept the connection."""
    srv = server_factory("--threads", "1")
    pid = srv.proc.pid
    c = ei.H2Client(srv.port, timeout=10)
    try:
        assert c.wait_settings(5)
        # The first reference puts the header in the server's dynamic table; the others index it.
        bomb = [("x-bomb", "b" * 4000)] * 20000
        cpu0 = _cpu_seconds(pid)
        sent = 0
        t0 = time.monotonic()
        while c.goaway is None and not c.eof and sent < 3 and time.monotonic() - t0 < 20:
            try:
                sid = c.start_request(CHECK, extra_headers=bomb)
                c.send_body(sid, health_body())
            except (OSError, h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                break
            sent += 1
            # One bomb at a time: the server closes after its GOAWAY, and unread bombs in its
            # socket would turn the close into a reset that drops the GOAWAY on our side.
            c.wait_for(lambda: c.goaway is not None or c.eof or c.streams[sid].done, 10)
        c.wait_for(lambda: c.goaway is not None or c.eof, 5)
        cpu = _cpu_seconds(pid) - cpu0
        assert c.goaway is not None, f"no GOAWAY after {sent} single-block bombs"
        assert c.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, c.goaway
        assert sent <= 2, sent
        assert srv.wait_stderr("--max-header-bytes-per-second", 3), srv.stderr[-2000:]
        assert cpu < 5, f"{cpu:.1f} s of server CPU for {sent} bombs"
        assert_other_clients_served(stubs, srv)
    finally:
        c.close()


def test_header_bytes_over_the_rate_close_the_connection(stubs, server_factory):
    """Header lists each under the 16 KiB limit (never a 431), sent faster than
    --max-header-bytes-per-second (1 MiB here): GOAWAY ENHANCE_YOUR_CALM; a client under the rate
    on another connection is not affected."""
    srv = server_factory("--threads", "1", "--max-header-bytes-per-second", str(1 << 20))
    c = ei.H2Client(srv.port, timeout=10)
    quiet = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5) and quiet.wait_settings(5)
        big = [("x-pad", "p" * 3000)] * 4  # ~12 KiB decoded per request, under the list limit
        sent = 0
        t0 = time.monotonic()
        while c.goaway is None and not c.eof and sent < 400 and time.monotonic() - t0 < 10:
            try:
                sid = c.start_request(CHECK, extra_headers=big)
                c.send_body(sid, health_body())
            except (OSError, h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                break
            sent += 1
            if sent % 20 == 0:
                c.pump(0.001)
        c.wait_for(lambda: c.goaway is not None or c.eof, 5)
        assert c.goaway is not None, f"no GOAWAY after {sent} requests of 12 KiB of headers"
        assert c.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, c.goaway
        assert sent >= 80, sent  # about 1 MiB (85 requests) within the first second
        statuses = [s.grpc_status for s in c.streams.values() if s.done]
        assert 431 not in [int(s.headers.get(":status", 0)) for s in c.streams.values() if s.headers]
        assert statuses and all(x == 0 for x in statuses[:50]), statuses[:50]
        for _ in range(5):
            assert quiet.request(CHECK, health_body(), timeout=3).grpc_status == 0
        assert quiet.goaway is None
        assert_other_clients_served(stubs, srv)
    finally:
        c.close()
        quiet.close()


# ----------------------------------------------------------------------------------------------
# Point 8, stuck readers: a connection whose socket takes nothing is closed
# ----------------------------------------------------------------------------------------------
def _non_reading_client(port: int, calls: int, body: bytes) -> socket.socket:
    """A connection with a 4 KiB receive buffer that reads the server's preface (so it knows the
    16 MiB connection window), sends `calls` Echo calls of `body` and then never reads again."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((ei.HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.increment_flow_control_window(1 << 30)
    s.sendall(conn.data_to_send())
    deadline = time.monotonic() + 5
    while conn.outbound_flow_control_window < calls * len(body) and time.monotonic() < deadline:
        data = s.recv(65536)
        assert data, "server closed during the handshake"
        conn.receive_data(data)
    assert conn.outbound_flow_control_window >= calls * len(body), conn.outbound_flow_control_window
    for _ in range(calls):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", ei.HOST),
                                (":path", ECHO), ("content-type", "application/grpc"), ("te", "trailers")])
        for off in range(0, len(body), 16384):
            conn.send_data(sid, body[off:off + 16384], end_stream=off + 16384 >= len(body))
    s.settimeout(2)
    try:
        s.sendall(conn.data_to_send())
    except socket.timeout:
        pass  # the server stopped reading (backpressure): what it has is enough
    return s


def test_connections_whose_socket_takes_nothing_are_closed(stubs, server_factory):
    """16 connections with a 4 KiB receive buffer that send 64 Echo calls of 64 KiB each (4 MiB of
    answers per connection, more than the kernel buffers hold) and then never read: the output
    waits for sockets that take nothing (the flow-control window is open, so resetting streams
    cannot help). After --response-write-timeout (2 s) each such connection is closed; other
    clients are served meanwhile and afterwards."""
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE, "--threads", "1", "--response-write-timeout", "2")
    fds = lambda: len(os.listdir(f"/proc/{srv.proc.pid}/fd"))  # noqa: E731
    base_fds = fds()
    socks = []
    try:
        body = ei.grpc_frame(stubs.diagnostics_pb2.EchoRequest(payload=b"z" * (64 << 10)).SerializeToString())
        peak = 0
        for _ in range(16):
            socks.append(_non_reading_client(srv.port, 64, body))
            peak = max(peak, fds() - base_fds)
        t0 = time.monotonic()
        # Held open at once (the first ones may already be closed on a slow machine: making the
        # 16 takes a while).
        assert peak >= 8, peak
        assert_other_clients_served(stubs, srv)  # while 16 connections' output is stuck
        # Nothing is read from the attackers' sockets (reading would let their output move): the
        # server's descriptors tell when it closed them.
        while fds() > base_fds + 2 and time.monotonic() - t0 < 10:
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        assert fds() <= base_fds + 2, f"{fds() - base_fds} stuck connections still open after {elapsed:.1f} s"
        assert srv.wait_stderr("has read nothing for the response write timeout", 3), srv.stderr[-3000:]
        assert_other_clients_served(stubs, srv)
    finally:
        for s in socks:
            s.close()
