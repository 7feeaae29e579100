"""An operator's mistakes get an error, not a crash or a split brain (issue 14, point 8).

- bad TLS files exit 1 with `encore: error:` naming the file and OpenSSL's reason (they aborted
  with a double free before);
- a second `encore serve` on a port in use is refused ("address already in use", naming the port)
  while one process's reactors still share their port through SO_REUSEPORT;
- ports and files are checked before the data loads: with a customer file that would fail to
  load, the earlier mistake is the one reported.
"""
from __future__ import annotations

import re
import socket
import subprocess

import pytest

import encore_interop as ei

OPENSSL_REASON_RE = re.compile(r"error:[0-9A-F]{8}:")


def _serve_expect_failure(args, timeout=30):
    admin = [] if any(a.startswith("--admin") for a in args) else ["--admin-port", "0"]
    cmd = [str(ei.encore_bin()), "serve", "--host", ei.HOST] + admin + list(args)
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                             preexec_fn=ei._die_with_parent)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`encore serve {' '.join(args)}` did not exit within {timeout}s (expected a start-up error)")
    return out.returncode, out.stderr.decode("utf-8", "replace")


def _assert_clean_error(rc, err, *needles):
    assert "double free" not in err and "crashed" not in err, err
    assert rc == 1, f"exit code {rc}, expected 1; stderr:\n{err}"
    assert "listening on" not in err and "serving" not in err, err
    # `<UTC timestamp> encore: error: ...` (docs/logging.md); the timestamp is cut off here.
    lines = [l.split(" ", 1)[1] for l in err.splitlines() if re.match(r"\S+Z encore: error: ", l)]
    assert len(lines) == 1, f"expected one `encore: error:` line, got:\n{err}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# ----------------------------------------------------------------------------------------------
# TLS files
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def other_pair(tmp_path_factory):
    return ei.make_self_signed(tmp_path_factory.mktemp("other-tls"))


def test_missing_certificate(tmp_path, tls_files):
    missing = tmp_path / "missing-cert.pem"
    rc, err = _serve_expect_failure(["--port", "0", "--tls-cert", str(missing), "--tls-key", str(tls_files[1])])
    line = _assert_clean_error(rc, err, str(missing), "No such file or directory")
    assert OPENSSL_REASON_RE.search(line), line


def test_missing_key(tmp_path, tls_files):
    missing = tmp_path / "missing-key.pem"
    rc, err = _serve_expect_failure(["--port", "0", "--tls-cert", str(tls_files[0]), "--tls-key", str(missing)])
    line = _assert_clean_error(rc, err, str(missing), "No such file or directory")
    assert OPENSSL_REASON_RE.search(line), line


@pytest.mark.parametrize("which", ["cert", "key"])
def test_garbage_pem(tmp_path, tls_files, which):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not PEM\n")
    cert, key = (garbage, tls_files[1]) if which == "cert" else (tls_files[0], garbage)
    rc, err = _serve_expect_failure(["--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)])
    line = _assert_clean_error(rc, err, str(garbage))
    assert OPENSSL_REASON_RE.search(line), line


def test_directory_as_certificate(tmp_path, tls_files):
    rc, err = _serve_expect_failure(["--port", "0", "--tls-cert", str(tmp_path), "--tls-key", str(tls_files[1])])
    _assert_clean_error(rc, err, str(tmp_path))


def test_key_not_matching_certificate(tls_files, other_pair):
    rc, err = _serve_expect_failure(
        ["--port", "0", "--tls-cert", str(tls_files[0]), "--tls-key", str(other_pair[1])])
    line = _assert_clean_error(rc, err, str(other_pair[1]), str(tls_files[0]), "does not match")
    assert "key values mismatch" in line, line


# ----------------------------------------------------------------------------------------------
# Port in use
# ----------------------------------------------------------------------------------------------
def _listen_sockets(port: int) -> int:
    """LISTEN sockets on 127.0.0.1:port in /proc/net/tcp (state 0A)."""
    want = f"0100007F:{port:04X}"
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                n += 1
    return n


def test_second_serve_on_same_port_refused(stubs, server_factory, channel_for):
    first = server_factory("--threads", "2")
    # One process's own reactors share the port: one listener each.
    assert _listen_sockets(first.port) == 2
    rc, err = _serve_expect_failure(["--port", str(first.port)])
    _assert_clean_error(rc, err, "address already in use", str(first.port))
    # The first server is untouched and still the only one listening.
    assert first.alive()
    assert _listen_sockets(first.port) == 2
    health = stubs.health_pb2_grpc.HealthStub(channel_for(first))
    reply = health.Check(stubs.health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == stubs.health_pb2.HealthCheckResponse.SERVING


def test_port_held_with_reuseport_by_another_program_refused():
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind((ei.HOST, 0))
        other.listen(8)
        port = other.getsockname()[1]
        rc, err = _serve_expect_failure(["--port", str(port), "--threads", "2"])
    _assert_clean_error(rc, err, "address already in use", str(port))


# ----------------------------------------------------------------------------------------------
# Checked before the data loads
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def data_files(tmp_path):
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text('{"offer_id": "gift_box"}\n{"offer_id": "rush_shipping"}\n')
    bad_customers = tmp_path / "customers.csv"
    bad_customers.write_text("customer_id,segments,f1\nc1,,0.5\nc2,,not-a-number\n")
    return catalog, bad_customers


def test_bad_customer_file_is_reported(data_files):
    # The baseline the tests below rely on: this customer file fails to load.
    catalog, customers = data_files
    rc, err = _serve_expect_failure(["--port", "0", "--catalog", str(catalog), "--customers", str(customers)])
    _assert_clean_error(rc, err, str(customers))


def test_bad_port_reported_before_data_loads(data_files):
    catalog, customers = data_files
    rc, err = _serve_expect_failure(["--port", "70000", "--catalog", str(catalog), "--customers", str(customers)])
    line = _assert_clean_error(rc, err, "70000")
    assert str(customers) not in line


def test_port_in_use_reported_before_data_loads(data_files):
    catalog, customers = data_files
    with socket.socket() as blocker:
        blocker.bind((ei.HOST, 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        rc, err = _serve_expect_failure(
            ["--port", str(port), "--catalog", str(catalog), "--customers", str(customers)])
    line = _assert_clean_error(rc, err, "address already in use", str(port))
    assert str(customers) not in line


def test_missing_snapshot_reported_before_data_loads(tmp_path, data_files):
    catalog, customers = data_files
    missing = tmp_path / "missing.snap"
    rc, err = _serve_expect_failure(
        ["--port", "0", "--catalog", str(catalog), "--customers", str(customers), "--snapshot", str(missing)])
    _assert_clean_error(rc, err, "--snapshot", str(missing), "No such file or directory")


def test_unusable_log_dir_reported_before_data_loads(tmp_path, data_files):
    catalog, customers = data_files
    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    log_dir = a_file / "logs"
    rc, err = _serve_expect_failure(
        ["--port", "0", "--catalog", str(catalog), "--customers", str(customers), "--log-dir", str(log_dir)])
    _assert_clean_error(rc, err, str(log_dir))


def test_missing_state_file_directory_reported_before_data_loads(tmp_path, data_files):
    catalog, customers = data_files
    state = tmp_path / "no-such-dir" / "state.bin"
    rc, err = _serve_expect_failure(
        ["--port", "0", "--catalog", str(catalog), "--customers", str(customers), "--state-file", str(state)])
    _assert_clean_error(rc, err, "--state-file", str(state))
