"""What a fleet relies on, on real servers over 127.0.0.1: the x-encore-customer routing key
(counted when it disagrees with the body), the replica field of every log record, `encore fleet
push` (two phases, rollback of the switched replicas on a phase-2 failure) and `fleet status`,
and `encore serve --snapshot-dir` (pull mode). The full fleet behind haproxy in network
namespaces is Tests/fleet."""
from __future__ import annotations

import json
import os
import re
import time

import grpc

import encore_interop as ei

TIMEOUT = 10


def _decide(stubs, channel, customer, header=None):
    D = stubs.decisions_pb2
    stub = stubs.decisions_pb2_grpc.DecisionsStub(channel)
    md = (("x-encore-customer", header),) if header is not None else None
    return stub.Decide(D.DecideRequest(surface="cart", customer_id=customer, slots=1), timeout=TIMEOUT, metadata=md)


def _active(stubs, channel_for, server):
    M = stubs.models_pb2
    models = stubs.models_pb2_grpc.ModelsStub(channel_for(server, admin=True))
    return models.List(M.ListModelsRequest(), timeout=TIMEOUT).active_version


def test_routing_header_that_disagrees_with_the_body_is_counted(stubs, server_factory, channel_for):
    """The body decides; a mismatching header is served normally and counted (logged at stop)."""
    server = server_factory("--threads", "2")
    ch = channel_for(server)
    for i in range(5):
        r = _decide(stubs, ch, f"c{i + 1:06d}", header=f"c{i + 1:06d}")
        assert r.decision_id
    for i in range(3):
        assert _decide(stubs, ch, f"c{i + 1:06d}", header="c099999").decision_id
    for i in range(2):
        assert _decide(stubs, ch, f"c{i + 1:06d}").decision_id  # no header: nothing to compare
    r = ei.run_cli("decide", "--port", server.port, "--surface", "cart", "--customer", "c000042")
    assert r.returncode == 0, r.stderr  # the CLI sends the matching header
    assert server.stop(grace=5) == 0
    m = re.search(r"(\d+) Decide calls whose x-encore-customer header disagreed with customer_id", server.stderr)
    assert m, server.stderr[-2000:]
    assert int(m.group(1)) == 3


def test_every_record_names_its_replica(stubs, server_factory, channel_for, tmp_path):
    D = stubs.decisions_pb2
    for name, args in (("named", ["--replica-name", "eu-west-1a"]), ("default", ["--instance-id", "0000000abc01"])):
        logs = tmp_path / name
        server = server_factory("--log-dir", str(logs), "--threads", "1", *args)
        ch = channel_for(server)
        stub = stubs.decisions_pb2_grpc.DecisionsStub(ch)
        ids = []
        for i in range(20):
            r = _decide(stubs, ch, f"c{i + 1:06d}", header=f"c{i + 1:06d}")
            ids.append(r.decision_id)
            if r.placements:
                stub.ReportOutcome(D.OutcomeRequest(decision_id=r.decision_id, offer_id=r.placements[0].offer_id,
                                                    outcome=D.SHOWN), timeout=TIMEOUT)
        assert server.stop(grace=5) == 0
        records = [json.loads(line) for f in sorted(logs.glob("*.jsonl")) for line in f.read_text().splitlines()]
        assert {r["type"] for r in records} == {"decision", "outcome"}
        want = "eu-west-1a" if name == "named" else "0000000abc01"
        assert {r["replica"] for r in records} == {want}, {r.get("replica") for r in records}
        assert all(i.startswith("0000000abc01") for i in ids) or name == "named"
        # the fields documented before stay where they were: replica is the last one
        assert all(list(r)[-1] == "replica" for r in records)


def _fleet(*args, timeout=60):
    return ei.run_cli("fleet", *args, timeout=timeout)


def test_fleet_push_activates_everywhere_or_nowhere(stubs, snapshots, server_factory, channel_for, tmp_path):
    a = server_factory("--threads", "1")
    b = server_factory("--threads", "1")
    gated = server_factory("--threads", "1", "--require-ope")  # refuses to activate a snapshot without OPE evidence
    start = _active(stubs, channel_for, a)
    targets = f"127.0.0.1:{a.admin_port},127.0.0.1:{b.admin_port},127.0.0.1:{gated.admin_port}"

    # Phase 2 fails on the gated replica: the two that switched are rolled back.
    r = _fleet("push", "--targets", targets, "--activate", "--json", snapshots.path[11])
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert not doc["ok"] and doc["outcome"].startswith("phase 2 failed"), doc
    rows = doc["replicas"]
    assert [row["rolled_back"] for row in rows] == [True, True, False], rows
    assert "offline evaluation" in rows[2]["error"], rows[2]
    assert all(row["active_version"] == start for row in rows), rows
    for s in (a, b, gated):
        assert _active(stubs, channel_for, s) == start

    # Phase 1 fails (an unreachable replica): nothing is activated anywhere.
    import socket
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    r = _fleet("push", "--targets", f"127.0.0.1:{a.admin_port},{dead}", "--activate", "--json", snapshots.path[12])
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["outcome"].startswith("phase 1 failed") and "upload refused" in doc["replicas"][1]["error"], doc
    assert _active(stubs, channel_for, a) == start

    # Every replica accepts: all switch, the text report names each; status agrees.
    targets_file = tmp_path / "targets"
    targets_file.write_text(f"# the fleet\n127.0.0.1:{a.admin_port}\n127.0.0.1:{b.admin_port}  # second\n")
    r = _fleet("push", "--targets-file", targets_file, "--activate", snapshots.path[12])
    assert r.returncode == 0, r.stdout + r.stderr
    v12 = snapshots.version[12]
    assert f"active on every replica: {v12}" in r.stdout, r.stdout
    assert _active(stubs, channel_for, a) == _active(stubs, channel_for, b) == v12
    r = _fleet("status", "--targets", targets, "--json")
    doc = json.loads(r.stdout)
    assert [row["active_version"] for row in doc["replicas"]] == [v12, v12, start], doc
    assert [row["health"] for row in doc["replicas"]] == ["SERVING"] * 3
    assert [row["behind"] for row in doc["replicas"]] == [False, False, True], doc
    assert not doc["consistent"] and r.returncode == 1  # split across versions
    r = _fleet("status", "--targets-file", targets_file)
    assert r.returncode == 0 and f"fleet: 2 replica(s) on {v12}" in r.stdout, r.stdout + r.stderr

    # Bad addresses are named.
    r = _fleet("status", "--targets", "nohost")
    assert r.returncode != 0 and "expected host:port" in r.stderr, r.stderr


def _wait_active(stubs, channel_for, server, version, timeout=15.0):
    end = time.monotonic() + timeout
    seen = None
    while time.monotonic() < end:
        seen = _active(stubs, channel_for, server)
        if seen == version:
            return
        time.sleep(0.05)
    raise AssertionError(f"active {seen}, expected {version} within {timeout} s")


def test_snapshot_dir_activates_the_newest_valid_snapshot(stubs, snapshots, server_factory, channel_for, tmp_path):
    d = tmp_path / "snapshots"
    d.mkdir()
    server = server_factory("--threads", "1", "--snapshot-dir", str(d), "--snapshot-dir-interval", "0.1",
                            "--trusted-key", str(snapshots.pub))
    start = _active(stubs, channel_for, server)

    # Unsigned, corrupt and foreign-signed files are refused, each logged with its reason.
    (d / "unsigned.snap").write_bytes(snapshots.path[11].read_bytes())
    corrupt = bytearray(snapshots.signed.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    (d / "corrupt.snap").write_bytes(bytes(corrupt))
    (d / "foreign.snap").write_bytes(snapshots.foreign.read_bytes())
    (d / "notes.txt").write_text("not a snapshot: ignored\n")
    for name in ("unsigned.snap", "corrupt.snap", "foreign.snap"):
        assert server.wait_stderr(f"snapshot dir: refused {d / name}: ", 10), server.stderr[-2000:]
    assert "notes.txt" not in server.stderr
    assert _active(stubs, channel_for, server) == start

    # A signed one (written under a dot name, then renamed, as a sync tool does) is activated.
    (d / ".incoming").write_bytes(snapshots.signed.read_bytes())
    os.rename(d / ".incoming", d / "signed.snap")
    _wait_active(stubs, channel_for, server, snapshots.signed_version)
    assert server.wait_stderr(f"snapshot dir: activated {snapshots.signed_version} from signed.snap", 5)
    # Refusals are logged once per file content, not once per scan.
    time.sleep(0.5)
    assert server.stderr.count(f"refused {d / 'unsigned.snap'}") == 1


def test_snapshot_dir_keeps_the_newest_and_respects_a_rollback(stubs, snapshots, server_factory, channel_for, tmp_path):
    d = tmp_path / "snapshots"
    d.mkdir()
    (d / "a.snap").write_bytes(snapshots.path[11].read_bytes())
    os.utime(d / "a.snap", (1_700_000_000, 1_700_000_000))
    server = server_factory("--threads", "1", "--snapshot-dir", str(d), "--snapshot-dir-interval", "0.1")
    # scanned before the server listens: served from the first call
    assert _active(stubs, channel_for, server) == snapshots.version[11]
    # An older file (same created-at, older modification time) is not activated.
    (d / "old.snap").write_bytes(snapshots.path[12].read_bytes())
    os.utime(d / "old.snap", (1_600_000_000, 1_600_000_000))
    assert server.wait_stderr("old.snap", 5) and "not activated" in server.stderr, server.stderr[-2000:]
    assert _active(stubs, channel_for, server) == snapshots.version[11]
    # An operator's rollback is not undone by the next scans ...
    r = ei.run_cli("models", "rollback", "--port", server.admin_port)
    assert r.returncode == 0, r.stderr
    rolled = _active(stubs, channel_for, server)
    assert rolled != snapshots.version[11]
    time.sleep(0.5)
    assert _active(stubs, channel_for, server) == rolled
    # ... but a newer file is taken.
    (d / "new.snap").write_bytes(snapshots.path[12].read_bytes())
    _wait_active(stubs, channel_for, server, snapshots.version[12])


def test_snapshot_dir_must_exist(tmp_path):
    r = ei.run_cli("serve", "--port", "0", "--admin-port", "0", "--snapshot-dir", str(tmp_path / "missing"))
    assert r.returncode != 0 and "--snapshot-dir" in r.stderr and "no such directory" in r.stderr, r.stderr
