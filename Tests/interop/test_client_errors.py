"""Every `encore` command that connects reports its mistakes the same way (issue 13, point 5):
one line `encore: error: ...` and exit 1, naming the flag, file or address, never a raw
Foundation error (`NSCocoaErrorDomain Code=4`); ports and files are checked before connecting.
No server is needed except for the address that does not answer (a port nobody listens on)."""
from __future__ import annotations

import socket

import pytest

import encore_interop as ei


def _closed_port() -> int:
    """A local port with no listener (bound, then closed)."""
    with socket.socket() as s:
        s.bind((ei.HOST, 0))
        return s.getsockname()[1]


# (command words, extra arguments), for every command that calls a server.
COMMANDS = [
    (["decide"], ["--surface", "cart", "--customer", "c000001"]),
    (["push"], ["SNAPSHOT"]),
    (["models", "list"], []),
    (["models", "activate"], ["v1"]),
    (["models", "rollback"], []),
    (["bench"], ["--rate", "10", "--duration", "0.2", "--warmup", "0", "--quiet"]),
]


def _args(extra, snapshot):
    return [str(snapshot) if a == "SNAPSHOT" else a for a in extra]


def _one_error_line(r, *needles):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("encore: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "NSCocoaErrorDomain" not in r.stderr and "Error Domain" not in r.stderr, r.stderr
    for needle in needles:
        assert needle in r.stderr, (needle, r.stderr)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    path = tmp_path_factory.mktemp("snap") / "demo.snap"
    r = ei.run_cli("snapshot", "demo", "--out", path)
    assert r.returncode == 0, r.stderr
    return path


@pytest.mark.parametrize("words,extra", COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_bad_port_is_named_before_connecting(words, extra, snapshot):
    for port in ("0", "70000"):
        r = ei.run_cli(*words, "--port", port, *_args(extra, snapshot))
        _one_error_line(r, f"--port {port}: must be in 1...65535")


@pytest.mark.parametrize("words,extra", COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_missing_and_unreadable_files_are_named(words, extra, snapshot, tmp_path):
    port = str(_closed_port())
    missing = tmp_path / "missing.pem"
    r = ei.run_cli(*words, "--port", port, "--ca-file", missing, *_args(extra, snapshot))
    _one_error_line(r, f"--ca-file {missing}: no such file")
    r = ei.run_cli(*words, "--port", port, "--cert", tmp_path, "--key", tmp_path, *_args(extra, snapshot))
    _one_error_line(r, f"--cert {tmp_path}: is a directory")
    if words != ["bench"]:
        r = ei.run_cli(*words, "--port", port, "--token-file", missing, *_args(extra, snapshot))
        _one_error_line(r, f"--token-file {missing}: no such file")


@pytest.mark.parametrize("words,extra", COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_an_address_that_does_not_answer_is_named(words, extra, snapshot):
    port = _closed_port()
    r = ei.run_cli(*words, "--port", port, *_args(extra, snapshot))
    _one_error_line(r, f"cannot connect to {ei.HOST}:{port}", "Connection refused")


def test_command_specific_files_are_named(tmp_path):
    missing = tmp_path / "missing.snap"
    r = ei.run_cli("push", "--port", _closed_port(), missing)
    _one_error_line(r, f"snapshot file {missing}: no such file")
    r = ei.run_cli("fleet", "push", "--targets", f"{ei.HOST}:{_closed_port()}", missing)
    _one_error_line(r, f"snapshot file {missing}: no such file")
    r = ei.run_cli("fleet", "status", "--targets-file", missing)
    _one_error_line(r, f"--targets-file {missing}: no such file")
    r = ei.run_cli("fleet", "status", "--targets", f"{ei.HOST}:70000")
    _one_error_line(r, f"target '{ei.HOST}:70000'")
    bench = ["bench", "--port", _closed_port(), "--rate", "10", "--duration", "0.2", "--quiet"]
    r = ei.run_cli(*bench, "--body-file", missing)
    _one_error_line(r, f"--body-file {missing}: no such file")
    short = tmp_path / "short.bin"
    short.write_bytes(b"\x00\x00")
    r = ei.run_cli(*bench, "--body-file", short)
    _one_error_line(r, f"--body-file {short}: not a gRPC-framed body")
    r = ei.run_cli("bench", "--port", _closed_port(), "--sweep", "50", "--plot", tmp_path / "no" / "dir" / "p.svg")
    _one_error_line(r, f"--plot {tmp_path / 'no' / 'dir' / 'p.svg'}: directory {tmp_path / 'no' / 'dir'} does not exist")
