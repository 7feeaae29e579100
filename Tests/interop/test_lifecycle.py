"""Process lifecycle: start-up line, bad flags, SIGTERM drain, SIGINT."""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time

import grpc
import h2.events
import pytest

import encore_interop as ei

# `<UTC timestamp> encore: listening on H:P (h2c|tls, N threads) host=H plane=data port=P` (docs/logging.md)
FULL_LISTEN_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z encore: listening on 127\.0\.0\.1:(\d+) \((h2c|tls), (\d+) threads?\)"
    r" host=127\.0\.0\.1 plane=data port=\1$", re.M)


def test_listening_line_format(server_factory):
    srv = server_factory("--threads", "3")
    m = FULL_LISTEN_RE.search(srv.stderr)
    assert m, f"unexpected start-up line: {srv.stderr!r}"
    assert int(m.group(1)) == srv.port and m.group(2) == "h2c" and m.group(3) == "3"
    assert srv.stderr.count("listening on") == 1


def test_listening_line_tls(server_factory):
    srv = server_factory(tls=True)
    m = FULL_LISTEN_RE.search(srv.stderr)
    assert m and m.group(2) == "tls", srv.stderr


def test_explicit_port(server_factory):
    port = ei.free_port()
    srv = ei.EncoreProcess(port=port)
    try:
        srv.start()
        assert srv.port == port
    finally:
        srv.stop()


def _run_expect_failure(args, timeout=20):
    cmd = [str(ei.encore_bin()), "serve", "--admin-port", "0"] + args
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                             preexec_fn=ei._die_with_parent)
    except subprocess.TimeoutExpired:  # subprocess.run kills the child on timeout
        pytest.fail(f"`{' '.join(args)}` did not exit within {timeout}s (expected a start-up error)")
    return out.returncode, out.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "notaport"],
        ["--port", "70000"],
        ["--max-message-bytes", "-1"],
        ["--no-such-flag"],
    ],
)
def test_bad_flags_exit_nonzero(args):
    rc, err = _run_expect_failure(["--host", ei.HOST] + args)
    assert rc != 0, err
    assert err.strip(), "no error message on stderr"
    assert "listening on" not in err


def test_unreadable_cert_exit_nonzero(tmp_path, tls_files):
    rc, err = _run_expect_failure(
        ["--host", ei.HOST, "--port", "0", "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tls_files[1])]
    )
    assert rc != 0 and err.strip()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a pem\n")
    rc, err = _run_expect_failure(
        ["--host", ei.HOST, "--port", "0", "--tls-cert", str(tls_files[0]), "--tls-key", str(garbage)]
    )
    assert rc != 0 and err.strip()


def test_port_in_use_exit_nonzero():
    with socket.socket() as blocker:
        blocker.bind((ei.HOST, 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        rc, err = _run_expect_failure(["--host", ei.HOST, "--port", str(port)])
    assert rc != 0, err
    assert err.strip()


def _connect_refused(port: int) -> bool:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((ei.HOST, port))
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()


def _server_has_read(c: ei.H2Client, tag: bytes) -> bool:
    """Sends a PING and waits for its ACK. The server handles a connection's frames in order, so
    once the ACK is back it has read (and dispatched) every frame sent before the PING: no sleep
    that races with the server."""
    c.conn.ping(tag)
    c.flush()
    return c.wait_for(lambda: any(isinstance(e, h2.events.PingAckReceived) and e.ping_data == tag for e in c.events), 5)


def test_sigterm_drains_in_flight(stubs, server_factory):
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE, "--drain-timeout", "5")
    ch = ei.make_channel(srv)
    stub = stubs.diagnostics_pb2_grpc.DiagnosticsStub(ch)
    # Make sure the channel is connected before the call we time.
    assert stub.Echo(stubs.diagnostics_pb2.EchoRequest(payload=b"warm"), timeout=5).payload == b"warm"
    result: dict = {}

    def slow_call():
        try:
            result["resp"] = stub.Echo(stubs.diagnostics_pb2.EchoRequest(payload=b"drain-me", delay_ms=3000),
                                       timeout=10)
        except grpc.RpcError as e:
            result["err"] = e

    t = threading.Thread(target=slow_call, daemon=True)
    t.start()
    # grpcio offers no hook for "the server has the call", so a wide margin instead: 1 s for a
    # call on a connected channel to reach the server, and the 3 s handler is still running
    # when SIGTERM comes.
    time.sleep(1.0)
    t_sig = time.monotonic()
    srv.signal(signal.SIGTERM)
    refused_at = None
    deadline = t_sig + 1.5
    while time.monotonic() < deadline:
        if _connect_refused(srv.port):
            refused_at = time.monotonic() - t_sig
            break
        time.sleep(0.05)
    t.join(timeout=12)
    assert not t.is_alive(), "in-flight call did not finish"
    ch.close()
    rc = srv.wait(timeout=5 + 5)
    assert "err" not in result, f"in-flight call failed during drain: {result.get('err')}"
    assert result["resp"].payload == b"drain-me"
    assert refused_at is not None, "new TCP connections still accepted 1.5 s after SIGTERM"
    assert rc == 0, f"exit code {rc} after SIGTERM; stderr:\n{srv.stderr}"
    assert "draining" in srv.stderr
    assert "stopped" in srv.stderr


def test_sigterm_goaway_existing_connection(stubs, server_factory):
    """During the drain an existing connection receives GOAWAY; the open stream still completes."""
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE, "--drain-timeout", "5")
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        req = stubs.diagnostics_pb2.EchoRequest(payload=b"in-flight", delay_ms=1000).SerializeToString()
        sid = c.start_request(ei.ECHO)
        c.send_body(sid, ei.grpc_frame(req))
        assert _server_has_read(c, b"goaway-1"), "no PING ACK"
        srv.signal(signal.SIGTERM)
        assert c.wait_for(lambda: c.goaway is not None, 5), "no GOAWAY within 5 s of SIGTERM"
        assert c.goaway.error_code == 0, c.goaway
        assert c.goaway.last_stream_id >= sid, c.goaway
        r = c.streams[sid]
        c.wait_for(lambda: r.done, 5)
        assert r.grpc_status == 0, (r.headers, r.trailers)
        assert stubs.diagnostics_pb2.EchoResponse.FromString(r.messages()[0]).payload == b"in-flight"
    finally:
        c.close()
    assert srv.wait(timeout=8) == 0, srv.stderr


def test_health_during_drain_not_serving(stubs, server_factory):
    """If a Health/Check opened right after SIGTERM is answered at all, it must say NOT_SERVING."""
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE, "--drain-timeout", "5")
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        req = ei.grpc_frame(stubs.diagnostics_pb2.EchoRequest(payload=b"x", delay_ms=1000).SerializeToString())
        keep = c.start_request(ei.ECHO)  # keeps the drain open
        c.send_body(keep, req)
        assert _server_has_read(c, b"health-1"), "no PING ACK"
        srv.signal(signal.SIGTERM)
        assert srv.wait_stderr("draining", 2)
        sid = c.start_request(ei.CHECK)
        c.send_body(sid, ei.health_body())
        r = c.result(sid, timeout=3)
        if r.reset_code is None and r.grpc_status == 0:
            status = stubs.health_pb2.HealthCheckResponse.FromString(r.messages()[0]).status
            assert status == stubs.health_pb2.HealthCheckResponse.NOT_SERVING, "health SERVING while draining"
        rk = c.result(keep, timeout=5)
        assert rk.grpc_status == 0, (rk.headers, rk.trailers, rk.reset_code)
    finally:
        c.close()
    assert srv.wait(timeout=8) == 0


def test_sigterm_idle_exits_promptly(server_factory):
    srv = server_factory("--drain-timeout", "10")
    c = ei.H2Client(srv.port)  # an idle connection must not hold the drain open
    try:
        assert c.wait_settings(5)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = srv.wait(timeout=8)
        assert rc == 0, srv.stderr
        # A wide margin for a shared machine, still far below the 10 s drain an idle connection
        # holding it open would take.
        assert time.monotonic() - t0 < 6, "idle connections kept the server alive during drain"
    finally:
        c.close()


def test_drain_timeout_bounds_exit(stubs, server_factory):
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE, "--drain-timeout", "1")
    ch = ei.make_channel(srv)
    stub = stubs.diagnostics_pb2_grpc.DiagnosticsStub(ch)
    fut = stub.Echo.future(stubs.diagnostics_pb2.EchoRequest(payload=b"x", delay_ms=20000), timeout=30)
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait(timeout=12)
    elapsed = time.monotonic() - t0
    fut.cancel()
    ch.close()
    assert rc is not None, "server still running 12 s after SIGTERM with --drain-timeout 1"
    # A wide margin for a shared machine: 5 s past the 1 s drain timeout, far below the 20 s the
    # in-flight call would have held a server that ignored it.
    assert elapsed < 6, f"exit took {elapsed:.1f}s with --drain-timeout 1"
    assert rc == 0, srv.stderr


def test_sigint_exits_zero(stubs, server_factory):
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE)
    ch = ei.make_channel(srv)
    try:
        assert stubs.health_pb2_grpc.HealthStub(ch).Check(stubs.health_pb2.HealthCheckRequest(), timeout=5).status == 1
    finally:
        ch.close()
    srv.signal(signal.SIGINT)
    rc = srv.wait(timeout=15)
    assert rc == 0, f"exit code {rc} after SIGINT; stderr:\n{srv.stderr}"
    assert "draining" in srv.stderr
