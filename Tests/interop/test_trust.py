"""Trust boundary, the parts beyond bearer tokens (issue 14): mTLS with --client-ca and
certificate names mapped to roles, optional data-plane authentication, the audit log, SIGHUP
reload of the credentials, and refusal of replayed (older) signed snapshots.

Certificates are made by the test with the openssl command line (`openssl req` / `openssl ca`),
including one signed by another CA and one that has expired.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import secrets
import signal
import subprocess
import time

import grpc
import pytest

import encore_interop as ei

TIMEOUT = 10

CA_CONFIG = """
[ ca ]
default_ca = local
[ local ]
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[ anything ]
commonName = supplied
"""


class PKI:
    """A test CA (and a second, unrelated one) made with openssl, issuing server and client
    certificates."""

    def __init__(self, d: pathlib.Path):
        self.d = d
        self.ca_key, self.ca = self._make_ca("ca")
        self.other_key, self.other = self._make_ca("other-ca")
        self.server_key, self.server = self.issue("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1")
        self.client_key, self.client = self.issue("deployer", "deployer", "subjectAltName=DNS:deploy.example")
        self.reader_key, self.reader = self.issue("reader", "reader-cn", "subjectAltName=URI:spiffe://shop/reader")
        self.stranger_key, self.stranger = self.issue(
            "stranger", "deployer", "subjectAltName=DNS:deploy.example", ca="other-ca")
        self.expired_key, self.expired = self.issue(
            "expired", "deployer", "subjectAltName=DNS:deploy.example",
            dates=("20200101000000Z", "20200201000000Z"))

    def _run(self, *args: str) -> None:
        r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=self.d)
        assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"

    def _make_ca(self, name: str) -> tuple[pathlib.Path, pathlib.Path]:
        key, cert = self.d / f"{name}.key", self.d / f"{name}.pem"
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN=Encore test {name}")
        cadir = self.d / name
        cadir.mkdir()
        (cadir / "index.txt").write_text("")
        (cadir / "serial").write_text(secrets.token_hex(8) + "\n")
        (cadir / "ca.cnf").write_text(CA_CONFIG.format(d=cadir))
        return key, cert

    def issue(self, name, cn, san, ca="ca", dates=None) -> tuple[pathlib.Path, pathlib.Path]:
        key, csr, cert = self.d / f"{name}.key", self.d / f"{name}.csr", self.d / f"{name}.pem"
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
                  "-out", str(csr), "-subj", f"/CN={cn}", "-addext", san)
        span = ["-startdate", dates[0], "-enddate", dates[1]] if dates else ["-days", "2"]
        self._run("ca", "-batch", "-notext", "-config", str(self.d / ca / "ca.cnf"), "-keyfile",
                  str(self.d / f"{ca}.key"), "-cert", str(self.d / f"{ca}.pem"), *span, "-in", str(csr),
                  "-out", str(cert))
        return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


def _tls_channel(pki: PKI, target: str, client: tuple[pathlib.Path, pathlib.Path] | None):
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=client[0].read_bytes() if client else None,
        certificate_chain=client[1].read_bytes() if client else None)
    return grpc.secure_channel(target, creds, options=ei.BASE_OPTIONS + [("grpc.ssl_target_name_override", "localhost")])


def _token_entry(name, token, roles):
    return {"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(), "roles": roles}


def _start(args) -> ei.EncoreProcess:
    proc = ei.EncoreProcess(*args)
    try:
        proc.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    return proc


@pytest.fixture
def started():
    procs: list[ei.EncoreProcess] = []

    def start(*args):
        p = _start(list(args))
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop(grace=3)


def _refused(fn, *a, **kw) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        fn(*a, **kw)
    return e.value


# ------------------------------------------------------------------------------------------
# mTLS
# ------------------------------------------------------------------------------------------
@pytest.fixture
def mtls_server(pki, tmp_path, started):
    config = tmp_path / "encore.json"
    config.write_text(json.dumps({"admin": {"clients": [
        {"name": "deployer", "subject": "DNS:deploy.example", "roles": ["models.push", "models.activate", "read"]},
        {"name": "reader", "subject": "URI:spiffe://shop/reader", "roles": ["read"]},
    ]}}))
    return started("--config", str(config), "--client-ca", str(pki.ca), "--tls-cert", str(pki.server),
                   "--tls-key", str(pki.server_key), "--threads", "1", "--log-dir", str(tmp_path / "logs"))


def test_mtls_certificate_maps_to_roles(stubs, pki, mtls_server):
    M, C = stubs.models_pb2, stubs.catalog_pb2
    with _tls_channel(pki, mtls_server.admin_target, (pki.client_key, pki.client)) as ch:
        models = stubs.models_pb2_grpc.ModelsStub(ch)
        assert models.List(M.ListModelsRequest(), timeout=TIMEOUT).active_version
        e = _refused(stubs.catalog_pb2_grpc.CatalogStub(ch).UpsertOffers,
                     iter([C.OfferRecord(json=json.dumps({"offer_id": "x"}))]), timeout=TIMEOUT)
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e.details()
        assert "'catalog.write'" in e.details() and "'deployer'" in e.details(), e.details()
    # A certificate matched by its URI SAN, with fewer roles.
    with _tls_channel(pki, mtls_server.admin_target, (pki.reader_key, pki.reader)) as ch:
        models = stubs.models_pb2_grpc.ModelsStub(ch)
        assert models.List(M.ListModelsRequest(), timeout=TIMEOUT).active_version
        e = _refused(models.Rollback, M.RollbackRequest(), timeout=TIMEOUT)
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED and "'reader'" in e.details(), e.details()
    # TLS without a client certificate: no credentials.
    with _tls_channel(pki, mtls_server.admin_target, None) as ch:
        e = _refused(stubs.models_pb2_grpc.ModelsStub(ch).List, M.ListModelsRequest(), timeout=TIMEOUT)
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e.details()
        assert "encore.v1.Models/List" in e.details()


def test_encore_learn_push_with_client_certificate(pki, mtls_server, tmp_path, snapshots):
    learn = ei.encore_learn_bin()
    cmd = [str(learn), "push", "--port", str(mtls_server.admin_port), "--ca-file", str(pki.ca), str(snapshots.path[12])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and "UNAUTHENTICATED" in out.stderr, out.stderr
    out = subprocess.run(cmd + ["--cert", str(pki.client), "--key", str(pki.client_key)], capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(cmd + ["--cert", str(pki.client)], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and "--cert and --key go together" in out.stderr, out.stderr


@pytest.mark.parametrize("which", ["stranger", "expired"])
def test_mtls_bad_certificate_fails_the_handshake(stubs, pki, mtls_server, which):
    """A certificate from another CA, or an expired one from the right CA, never gets a call in."""
    before = mtls_server.stderr.count("tls handshake failed")
    client = (pki.stranger_key, pki.stranger) if which == "stranger" else (pki.expired_key, pki.expired)
    with _tls_channel(pki, mtls_server.admin_target, client) as ch:
        e = _refused(stubs.models_pb2_grpc.ModelsStub(ch).List, stubs.models_pb2.ListModelsRequest(), timeout=5)
        assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())
    assert mtls_server.wait_stderr("tls handshake failed", 5, count=before + 1)
    reason = "certificate has expired" if which == "expired" else "certificate verify failed"
    assert reason in mtls_server.stderr, mtls_server.stderr[-2000:]
    # The server still serves a good client.
    with _tls_channel(pki, mtls_server.admin_target, (pki.client_key, pki.client)) as ch:
        assert stubs.models_pb2_grpc.ModelsStub(ch).List(stubs.models_pb2.ListModelsRequest(), timeout=TIMEOUT)


def test_client_ca_errors_name_the_file(tmp_path, pki):
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("junk\n")
    for path, what in ((tmp_path / "missing.pem", "No such file"), (bad, "client CA bundle")):
        r = subprocess.run([str(ei.encore_bin()), "serve", "--port", "0", "--admin-port", "0", "--client-ca", str(path),
                            "--tls-cert", str(pki.server), "--tls-key", str(pki.server_key)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert str(path) in r.stderr and what in r.stderr, r.stderr
        assert "Fatal error" not in r.stderr and "double free" not in r.stderr


# ------------------------------------------------------------------------------------------
# Data-plane authentication
# ------------------------------------------------------------------------------------------
def test_data_plane_auth_needs_decide_and_report(stubs, tmp_path, started):
    frontend, reader = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    config = tmp_path / "encore.json"
    config.write_text(json.dumps({"admin": {"data_plane_auth": True, "tokens": [
        _token_entry("frontend", frontend, ["decide", "report"]), _token_entry("reader", reader, ["read"])]}}))
    server = started("--config", str(config), "--threads", "1")
    D, H = stubs.decisions_pb2, stubs.health_pb2
    with grpc.insecure_channel(server.target, options=ei.BASE_OPTIONS) as ch:
        decisions = stubs.decisions_pb2_grpc.DecisionsStub(ch)
        request = D.DecideRequest(customer_id="c-000001", surface="cart")
        e = _refused(decisions.Decide, request, timeout=TIMEOUT)
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED and "encore.v1.Decisions/Decide" in e.details()
        e = _refused(decisions.Decide, request, timeout=TIMEOUT, metadata=[("authorization", f"Bearer {reader}")])
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e.details()
        assert "'decide'" in e.details() and "'reader'" in e.details(), e.details()
        md = [("authorization", f"Bearer {frontend}")]
        # Many calls on one connection: the verified token is cached per connection.
        for _ in range(50):
            reply = decisions.Decide(request, timeout=TIMEOUT, metadata=md)
        assert reply.decision_id
        if reply.placements:
            decisions.ReportOutcome(D.OutcomeRequest(decision_id=reply.decision_id, offer_id=reply.placements[0].offer_id,
                                                     outcome=D.SHOWN), timeout=TIMEOUT, metadata=md)
        e = _refused(decisions.ReportOutcome, D.OutcomeRequest(decision_id=reply.decision_id), timeout=TIMEOUT)
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e.details()
        # Health stays open for load balancers.
        health = stubs.health_pb2_grpc.HealthStub(ch)
        assert health.Check(H.HealthCheckRequest(service=""), timeout=TIMEOUT).status == H.HealthCheckResponse.SERVING


def test_data_plane_auth_without_credentials_refuses_to_start(tmp_path):
    config = tmp_path / "encore.json"
    config.write_text(json.dumps({"admin": {"data_plane_auth": True}}))
    r = subprocess.run([str(ei.encore_bin()), "serve", "--port", "0", "--admin-port", "0", "--config", str(config)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "data_plane_auth" in r.stderr, r.stderr


# ------------------------------------------------------------------------------------------
# Audit log and SIGHUP reload
# ------------------------------------------------------------------------------------------
def _audit_lines(log_dir: pathlib.Path) -> list[dict]:
    files = sorted(log_dir.glob("audit-*.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def test_audit_log_records_every_admin_call(stubs, tmp_path, started, snapshots):
    ops, reader = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    config = tmp_path / "encore.json"
    config.write_text(json.dumps({"admin": {"tokens": [
        _token_entry("ops", ops, ["models.push", "models.activate", "catalog.write", "read"]),
        _token_entry("reader", reader, ["read"])]}}))
    logs = tmp_path / "logs"
    server = started("--config", str(config), "--threads", "1", "--log-dir", str(logs))
    M, C = stubs.models_pb2, stubs.catalog_pb2
    md_ops, md_reader = [("authorization", f"Bearer {ops}")], [("authorization", f"Bearer {reader}")]
    with grpc.insecure_channel(server.admin_target, options=ei.BASE_OPTIONS) as ch:
        models = stubs.models_pb2_grpc.ModelsStub(ch)
        catalog = stubs.catalog_pb2_grpc.CatalogStub(ch)
        pushed = models.PushSnapshot(iter([M.SnapshotChunk(data=snapshots.path[11].read_bytes(), activate=True)]),
                                     timeout=TIMEOUT, metadata=md_ops)
        # Each answer is only sent after its audit line is on disk: read the file right away.
        lines = _audit_lines(logs)
        assert lines[-1]["method"] == "encore.v1.Models/PushSnapshot" and lines[-1]["status"] == "OK", lines[-1]
        assert lines[-1]["version"] == pushed.model.version and lines[-1]["activated"] is True
        assert lines[-1]["who"] == "ops" and lines[-1]["peer"].startswith("127.0.0.1:"), lines[-1]
        catalog.UpsertOffers(iter([C.OfferRecord(json=json.dumps({"offer_id": f"audit_offer_{i}", "kind": "gift_box",
                                                                  "title": "t", "surfaces": ["cart"],
                                                                  "value_cents": 100}))
                                   for i in range(3)]), timeout=TIMEOUT, metadata=md_ops)
        _refused(models.Activate, M.ActivateRequest(version=snapshots.version[11], force=True), timeout=TIMEOUT,
                 metadata=md_reader)
        _refused(models.List, M.ListModelsRequest(), timeout=TIMEOUT)
        models.Activate(M.ActivateRequest(version=snapshots.version[11]), timeout=TIMEOUT, metadata=md_ops)
    lines = _audit_lines(logs)
    by_method = {}
    for line in lines:
        by_method.setdefault(line["method"], []).append(line)
    upsert = by_method["encore.v1.Catalog/UpsertOffers"][-1]
    assert upsert["who"] == "ops" and upsert["records"] == 3, upsert
    assert upsert["status"] == "OK" and upsert["upserted"] == 3, upsert
    assert upsert["offer_ids"] == ["audit_offer_0", "audit_offer_1", "audit_offer_2"], upsert
    denied = [l for l in by_method["encore.v1.Models/Activate"] if l["status"] == "PERMISSION_DENIED"]
    assert denied and denied[0]["who"] == "reader" and denied[0]["force"] is True, by_method
    anonymous = [l for l in by_method["encore.v1.Models/List"] if l["status"] == "UNAUTHENTICATED"]
    assert anonymous and anonymous[0]["who"] == "anonymous", by_method
    ok = [l for l in by_method["encore.v1.Models/Activate"] if l["status"] == "OK"]
    assert ok and ok[0]["version"] == snapshots.version[11] and ok[0]["active_version"] == snapshots.version[11]
    text = "\n".join(p.read_text() for p in logs.glob("*")) + server.stderr
    assert ops not in text and reader not in text, "a token appears in the logs"


def test_sighup_reloads_tokens(stubs, tmp_path, started):
    keep, revoke = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    config = tmp_path / "encore.json"

    def write(entries):
        config.write_text(json.dumps({"admin": {"tokens": entries}}))

    write([_token_entry("keep", keep, ["read"]), _token_entry("revoke", revoke, ["read"])])
    server = started("--config", str(config), "--threads", "1")
    M = stubs.models_pb2

    def call(token):
        with grpc.insecure_channel(server.admin_target, options=ei.BASE_OPTIONS) as ch:
            return stubs.models_pb2_grpc.ModelsStub(ch).List(
                M.ListModelsRequest(), timeout=TIMEOUT, metadata=[("authorization", f"Bearer {token}")])

    # One long-lived connection too: its cached verification must not outlive the reload.
    held = grpc.insecure_channel(server.admin_target, options=ei.BASE_OPTIONS)
    held_models = stubs.models_pb2_grpc.ModelsStub(held)
    revoke_md = [("authorization", f"Bearer {revoke}")]
    try:
        assert call(keep) and call(revoke) and held_models.List(M.ListModelsRequest(), timeout=TIMEOUT,
                                                                  metadata=revoke_md)
        write([_token_entry("keep", keep, ["read"])])
        server.signal(signal.SIGHUP)
        assert server.wait_stderr("credentials reloaded", 10), server.stderr[-2000:]
        assert call(keep)
        for fn in (lambda: call(revoke),
                   lambda: held_models.List(M.ListModelsRequest(), timeout=TIMEOUT, metadata=revoke_md)):
            e = _refused(fn)
            assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e.details()
        # A bad file, or one that would switch authentication off, keeps the old tokens.
        for bad in ("{not json", json.dumps({"admin": {"tokens": []}})):
            config.write_text(bad)
            before = server.stderr.count("credentials not reloaded")
            server.signal(signal.SIGHUP)
            assert server.wait_stderr("credentials not reloaded", 10, count=before + 1), server.stderr[-2000:]
            assert call(keep)
            assert _refused(lambda: call(revoke)).code() == grpc.StatusCode.UNAUTHENTICATED
        assert server.alive()
    finally:
        held.close()


# ------------------------------------------------------------------------------------------
# Replayed signed snapshots
# ------------------------------------------------------------------------------------------
def test_older_signed_snapshot_needs_force(stubs, tmp_path, started, snapshots):
    older, newer = tmp_path / "older.snap", tmp_path / "newer.snap"
    versions = {}
    for path, seed, created in ((older, 31, 1_790_000_000_000), (newer, 32, 1_790_000_100_000)):
        r = ei.run_cli("snapshot", "demo", "--seed", str(seed), "--out", str(path), "--sign-key", str(snapshots.key),
                       "--created-at-millis", str(created))
        assert r.returncode == 0, r.stderr
        versions[path] = r.stdout.split(": ")[1].split(",")[0]
    ops = secrets.token_urlsafe(16)
    scientist = secrets.token_urlsafe(16)
    config = tmp_path / "encore.json"
    config.write_text(json.dumps({"admin": {"tokens": [
        _token_entry("ops", ops, ["models.push", "models.activate", "models.force", "read"]),
        _token_entry("scientist", scientist, ["models.push", "models.activate", "read"])]}}))
    # The embedded demo (its snapshot created in 2025) with a trusted key: pushes must be signed.
    server = started("--config", str(config), "--threads", "1", "--trusted-key", str(snapshots.pub))
    M = stubs.models_pb2
    sci, op = [("authorization", f"Bearer {scientist}")], [("authorization", f"Bearer {ops}")]
    with grpc.insecure_channel(server.admin_target, options=ei.BASE_OPTIONS) as ch:
        models = stubs.models_pb2_grpc.ModelsStub(ch)
        assert models.PushSnapshot(iter([M.SnapshotChunk(data=newer.read_bytes(), activate=True)]),
                                   timeout=TIMEOUT, metadata=sci).activated
        assert models.List(M.ListModelsRequest(), timeout=TIMEOUT, metadata=sci).active_version == versions[newer]
        e = _refused(models.PushSnapshot, iter([M.SnapshotChunk(data=older.read_bytes(), activate=True)]),
                     timeout=TIMEOUT, metadata=sci)
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "before the active" in e.details(), e.details()
        models.PushSnapshot(iter([M.SnapshotChunk(data=older.read_bytes())]), timeout=TIMEOUT, metadata=sci)
        e = _refused(models.Activate, M.ActivateRequest(version=versions[older]), timeout=TIMEOUT, metadata=sci)
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "force" in e.details(), e.details()
        assert models.List(M.ListModelsRequest(), timeout=TIMEOUT, metadata=sci).active_version == versions[newer]
        e = _refused(models.Activate, M.ActivateRequest(version=versions[older], force=True), timeout=TIMEOUT,
                     metadata=sci)
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED and "models.force" in e.details()
        assert models.Activate(M.ActivateRequest(version=versions[older], force=True), timeout=TIMEOUT,
                               metadata=op).version == versions[older]


# ------------------------------------------------------------------------------------------
# The encore tools over TLS: server verification on by default, mTLS, errors that name things
# ------------------------------------------------------------------------------------------
def test_tools_verify_the_server_and_carry_a_client_certificate(pki, mtls_server):
    admin = ["--port", str(mtls_server.admin_port)]
    cert = ["--cert", str(pki.client), "--key", str(pki.client_key)]
    r = ei.run_cli("models", "list", *admin, "--ca-file", str(pki.ca), *cert)
    assert r.returncode == 0 and "active:" in r.stdout, r.stderr
    # Verification is on by default: the test CA is not in the system trust store.
    r = ei.run_cli("models", "list", *admin, "--tls", *cert)
    assert r.returncode != 0 and r.stderr.startswith("encore: error:"), r.stderr
    assert "certificate verify failed" in r.stderr and f"127.0.0.1:{mtls_server.admin_port}" in r.stderr, r.stderr
    # Skipping verification connects, but without a client certificate there are no credentials.
    r = ei.run_cli("models", "list", *admin, "--insecure-skip-verify")
    assert r.returncode != 0 and "UNAUTHENTICATED" in r.stderr, r.stderr
    # The data plane, by host name, with the CA.
    r = ei.run_cli("decide", "--host", "localhost", "--port", str(mtls_server.port), "--surface", "cart",
                   "--customer", "c000001", "--ca-file", str(pki.ca), "--json")
    assert r.returncode == 0 and "decisionId" in r.stdout, r.stderr
    # Files are checked before connecting, and named.
    r = ei.run_cli("models", "list", *admin, "--ca-file", "/nonexistent/ca.pem")
    assert r.returncode != 0 and "--ca-file /nonexistent/ca.pem" in r.stderr, r.stderr
    r = ei.run_cli("models", "list", *admin, "--ca-file", str(pki.ca), "--cert", str(pki.client))
    assert r.returncode != 0 and "--cert and --key go together" in r.stderr, r.stderr


def test_tools_refuse_a_certificate_for_another_host(pki, started):
    key, cert = pki.issue("elsewhere", "elsewhere", "subjectAltName=DNS:elsewhere.example")
    server = started("--tls-cert", str(cert), "--tls-key", str(key), "--threads", "1")
    r = ei.run_cli("models", "list", "--port", str(server.admin_port), "--ca-file", str(pki.ca))
    assert r.returncode == 1 and "IP address mismatch" in r.stderr, r.stderr
    assert r.stderr.startswith("encore: error: TLS handshake with 127.0.0.1:"), r.stderr
    r = ei.run_cli("models", "list", "--host", "localhost", "--port", str(server.admin_port), "--ca-file", str(pki.ca))
    assert r.returncode == 1 and "hostname mismatch" in r.stderr, r.stderr


# ------------------------------------------------------------------------------------------
# `encore bench` over TLS: the same client core and flags as the tools (issue 13, point 5)
# ------------------------------------------------------------------------------------------
def _bench(port, *args):
    return ei.run_cli("bench", "--port", port, "--rate", 200, "--duration", 0.5, "--warmup", 0, "--connections", 1,
                      "--json", "--quiet", *args, timeout=60)


def _bench_result(r):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_bench_verifies_the_server_and_carries_a_client_certificate(pki, tmp_path, started):
    # Data-plane authentication by client certificate only: a call without the certificate is
    # UNAUTHENTICATED, so an OK call proves that bench presented it.
    config = tmp_path / "encore.json"
    config.write_text(json.dumps({"admin": {"data_plane_auth": True, "clients": [
        {"name": "loadtest", "subject": "DNS:deploy.example", "roles": ["decide"]}]}}))
    server = started("--config", str(config), "--client-ca", str(pki.ca), "--tls-cert", str(pki.server),
                     "--tls-key", str(pki.server_key), "--threads", "1", "--holdout-share", "0")
    cert = ["--cert", str(pki.client), "--key", str(pki.client_key)]
    for host in ("127.0.0.1", "localhost"):
        r = _bench_result(_bench(server.port, "--host", host, "--ca-file", str(pki.ca), *cert))
        assert r["errors"] == 0 and r["ok"] >= 50, r
    # Verified TLS without the client certificate: every call refused by the server, not by TLS.
    r = _bench_result(_bench(server.port, "--ca-file", str(pki.ca)))
    assert r["ok"] == 0 and r["error_kinds"] == {"grpc_16": r["errors"]} and r["errors"] > 0, r
    # Verification is on by default: the test CA is not in the system trust store.
    r = _bench(server.port, "--tls", *cert)
    assert r.returncode == 1 and r.stderr.startswith("encore: error: bench: TLS handshake with 127.0.0.1:"), r.stderr
    assert "certificate verify failed" in r.stderr, r.stderr
    # A CA that did not issue the server's certificate.
    r = _bench(server.port, "--ca-file", str(pki.other), *cert)
    assert r.returncode == 1 and "certificate verify failed" in r.stderr, r.stderr
    # Skipping verification (only by that name) connects.
    r = _bench_result(_bench(server.port, "--insecure-skip-verify", *cert))
    assert r["errors"] == 0 and r["ok"] >= 50, r
    # Files are checked before connecting, and named.
    r = _bench(server.port, "--ca-file", str(tmp_path / "missing.pem"))
    assert r.returncode == 1 and r.stderr == f"encore: error: --ca-file {tmp_path / 'missing.pem'}: no such file\n", \
        r.stderr
    r = _bench(server.port, "--ca-file", str(pki.ca), "--key", str(pki.client_key))
    assert r.returncode == 1 and "--cert and --key go together" in r.stderr, r.stderr


def test_bench_refuses_a_certificate_for_another_host(pki, started):
    key, cert = pki.issue("elsewhere-bench", "elsewhere", "subjectAltName=DNS:elsewhere.example")
    server = started("--tls-cert", str(cert), "--tls-key", str(key), "--threads", "1")
    r = _bench(server.port, "--ca-file", str(pki.ca))
    assert r.returncode == 1 and "IP address mismatch" in r.stderr, r.stderr
    r = _bench(server.port, "--host", "localhost", "--ca-file", str(pki.ca))
    assert r.returncode == 1 and "hostname mismatch" in r.stderr, r.stderr
    assert r.stderr.startswith(f"encore: error: bench: TLS handshake with localhost:{server.port} failed"), r.stderr
