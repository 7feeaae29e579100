"""Operational log lines (swift-log, docs/logging.md): `--log-format text|json`, `--log-level`,
timestamps, and nothing logged per Decide call even at the most verbose level."""
from __future__ import annotations

import datetime
import json
import re
import signal
import socket
import subprocess

import grpc
import pytest

import encore_interop as ei

TIMEOUT = 10
TEXT_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) encore: (?:(trace|debug|warning|error|critical): )?")


def _decide(stubs, channel, n):
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel)
    for i in range(n):
        stub.Decide(stubs.decisions_pb2.DecideRequest(surface="cart", customer_id=f"c-{i}", slots=1), timeout=TIMEOUT)


def _stop(srv) -> str:
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0, srv.stderr
    return srv.stderr


def test_json_lines_are_valid_json_with_level_time_and_port(server_factory, stubs, channel_for):
    srv = server_factory("--log-format", "json", "--instance-id", "abc")
    _decide(stubs, channel_for(srv), 5)
    err = _stop(srv)
    lines = err.splitlines()
    assert len(lines) >= 5, err
    records = []
    for line in lines:
        record = json.loads(line)  # every line, not only some, is one JSON object
        assert isinstance(record, dict) and {"ts", "level", "logger", "msg"} <= record.keys(), line
        assert record["level"] in {"trace", "debug", "info", "notice", "warning", "error", "critical"}, line
        ts = datetime.datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert abs((datetime.datetime.utcnow() - ts).total_seconds()) < 300, record["ts"]
        records.append(record)
    listening = [r for r in records if r["msg"].startswith("listening on")]
    assert len(listening) == 1 and listening[0]["plane"] == "data" and int(listening[0]["port"]) == srv.port
    admin = [r for r in records if r["msg"].startswith("admin plane at")]
    assert len(admin) == 1 and int(admin[0]["port"]) == srv.admin_port, admin
    # The fixed-instance-id warning is a warning; the shutdown lines are notices.
    assert any(r["level"] == "warning" and "fixed instance id" in r["msg"] for r in records), err
    assert any(r["level"] == "notice" and r["msg"].startswith("stopped:") for r in records), err


def test_text_lines_carry_a_utc_timestamp_and_the_level(server_factory):
    srv = server_factory("--instance-id", "abc")
    err = _stop(srv)
    lines = err.splitlines()
    assert lines and all(TEXT_RE.match(l) for l in lines), err
    assert any(re.match(r"\S+Z encore: warning: decision ids start with the fixed instance id", l) for l in lines), err


def test_log_level_filters_lines(stubs):
    """At `--log-level warning` the start-up notices (the ports) and info lines are gone and the
    warning stays; the server is reached on a port picked beforehand."""
    s = socket.socket()
    s.bind((ei.HOST, 0))
    port = s.getsockname()[1]
    s.close()
    srv = ei.EncoreProcess("--log-level", "warning", "--instance-id", "abc", "--log-format", "json", port=port)
    proc = subprocess.Popen(srv.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=ei._die_with_parent)
    try:
        channel = grpc.insecure_channel(f"{ei.HOST}:{port}")
        grpc.channel_ready_future(channel).result(timeout=20)
        _decide(stubs, channel, 3)
        channel.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    records = [json.loads(l) for l in err.decode().splitlines()]
    assert records, "expected the fixed-instance-id warning"
    assert all(r["level"] in {"warning", "error", "critical"} for r in records), records
    assert any("fixed instance id" in r["msg"] for r in records), records


def test_nothing_is_logged_per_decide_call_even_at_trace(server_factory, stubs, channel_for):
    srv = server_factory("--log-level", "trace")
    channel = channel_for(srv)
    _decide(stubs, channel, 1)  # the connection is open (its accept line is written)
    assert srv.wait_stderr("accepted a connection", 5), srv.stderr
    before = srv.stderr.count("\n")
    _decide(stubs, channel, 300)
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel)
    with pytest.raises(grpc.RpcError):  # a refused Decide does not log either
        stub.Decide(stubs.decisions_pb2.DecideRequest(surface="", customer_id="c", slots=1), timeout=TIMEOUT)
    after = srv.stderr.count("\n")
    assert after == before, srv.stderr.splitlines()[before:]


def test_bad_log_flags_are_refused():
    for flags, needle in ((["--log-format", "xml"], "--log-format must be text or json"),
                          (["--log-level", "loud"], "--log-level must be one of trace, debug, info")):
        out = subprocess.run([str(ei.encore_bin()), "serve", *flags], capture_output=True, timeout=20,
                             stdin=subprocess.DEVNULL)
        assert out.returncode != 0 and needle in out.stderr.decode(), out.stderr
