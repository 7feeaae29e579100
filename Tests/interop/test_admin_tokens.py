"""Bearer tokens on the admin plane (issue 14, point 2, tokens only): the config holds each
token's SHA-256, a name and roles; a call without a token gets UNAUTHENTICATED, a valid token
without the role PERMISSION_DENIED, both naming the method and the role; the token never appears
in the server's output. With grpcio metadata, the encore CLI (--token-file, ENCORE_TOKEN) and
encore-learn push.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess

import grpc
import pytest

import encore_interop as ei

TIMEOUT = 10
ALL_ROLES = ["decide", "report", "models.push", "models.activate", "models.force", "catalog.write",
             "customers.write", "read"]
ROLES = {
    "ops": ALL_ROLES,
    "scientist": ["models.push", "models.activate", "read"],
    "pusher": ["models.push"],
    "reader": ["read"],
    "merchandiser": ["catalog.write"],
}


@pytest.fixture(scope="module")
def tokens():
    return {name: secrets.token_urlsafe(24) for name in ROLES}


def _config(tmp_path, tokens, names=None):
    entries = [{"name": n, "sha256": hashlib.sha256(tokens[n].encode()).hexdigest(), "roles": ROLES[n]}
               for n in (names or ROLES)]
    path = tmp_path / "encore.json"
    path.write_text(json.dumps({"admin": {"tokens": entries}}))
    return path


@pytest.fixture
def token_server(server_factory, tmp_path, tokens):
    return server_factory("--config", str(_config(tmp_path, tokens)), "--diagnostics", "--threads", "1")


def _md(token):
    return [("authorization", f"Bearer {token}")] if token else None


class AdminCalls:
    def __init__(self, stubs, channel):
        self.s = stubs
        self.models = stubs.models_pb2_grpc.ModelsStub(channel)
        self.catalog = stubs.catalog_pb2_grpc.CatalogStub(channel)
        self.customers = stubs.catalog_pb2_grpc.CustomersStub(channel)
        self.diagnostics = stubs.diagnostics_pb2_grpc.DiagnosticsStub(channel)

    def list(self, token):
        return self.models.List(self.s.models_pb2.ListModelsRequest(), timeout=TIMEOUT, metadata=_md(token))

    def get_snapshot(self, token):
        return self.models.GetSnapshot(self.s.models_pb2.GetSnapshotRequest(), timeout=TIMEOUT, metadata=_md(token))

    def activate(self, token, version, force=False):
        return self.models.Activate(self.s.models_pb2.ActivateRequest(version=version, force=force),
                                    timeout=TIMEOUT, metadata=_md(token))

    def rollback(self, token):
        return self.models.Rollback(self.s.models_pb2.RollbackRequest(), timeout=TIMEOUT, metadata=_md(token))

    def push(self, token, data, activate=False):
        M = self.s.models_pb2
        return self.models.PushSnapshot(iter([M.SnapshotChunk(data=data, activate=activate)]), timeout=TIMEOUT,
                                        metadata=_md(token))

    def upsert_offer(self, token, offer_id):
        C = self.s.catalog_pb2
        return self.catalog.UpsertOffers(iter([C.OfferRecord(json=json.dumps({"offer_id": offer_id}))]),
                                         timeout=TIMEOUT, metadata=_md(token))

    def upsert_customer(self, token):
        C = self.s.catalog_pb2
        return self.customers.UpsertCustomers(iter([C.CustomerRecord(customer_id="c-token-test")]),
                                              timeout=TIMEOUT, metadata=_md(token))

    def echo(self, token):
        G = self.s.diagnostics_pb2
        return self.diagnostics.Echo(G.EchoRequest(payload=b"hi"), timeout=TIMEOUT, metadata=_md(token))


@pytest.fixture
def calls(stubs, token_server, admin_channel_for):
    return AdminCalls(stubs, admin_channel_for(token_server))


def _refused(fn, *args, **kw):
    with pytest.raises(grpc.RpcError) as e:
        fn(*args, **kw)
    return e.value


# Every admin method with the role it needs and a call making it.
def _method_cases(snapshots):
    snap = snapshots.path[11].read_bytes()
    return [
        ("encore.v1.Models/List", "read", lambda c, t: c.list(t)),
        ("encore.v1.Models/GetSnapshot", "read", lambda c, t: c.get_snapshot(t)),
        ("encore.v1.Models/Activate", "models.activate", lambda c, t: c.activate(t, "no-such-version")),
        ("encore.v1.Models/Rollback", "models.activate", lambda c, t: c.rollback(t)),
        ("encore.v1.Models/PushSnapshot", "models.push", lambda c, t: c.push(t, snap)),
        ("encore.v1.Catalog/UpsertOffers", "catalog.write", lambda c, t: c.upsert_offer(t, "token_offer")),
        ("encore.v1.Customers/UpsertCustomers", "customers.write", lambda c, t: c.upsert_customer(t)),
        ("encore.v1.Diagnostics/Echo", "read", lambda c, t: c.echo(t)),
    ]


def test_every_method_without_token_is_unauthenticated(calls, snapshots):
    for method, role, call in _method_cases(snapshots):
        e = _refused(call, calls, None)
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (method, e.code(), e.details())
        assert method in e.details() and f"'{role}'" in e.details(), e.details()


def test_invalid_token_is_unauthenticated(calls, tokens):
    for bad in ("not-a-configured-token", tokens["reader"] + "x"):
        e = _refused(calls.list, bad)
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e.details()
        assert "encore.v1.Models/List" in e.details()
    # Not the Bearer scheme.
    e = _refused(calls.models.List, calls.s.models_pb2.ListModelsRequest(), timeout=TIMEOUT,
                 metadata=[("authorization", f"Basic {tokens['reader']}")])
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED


def test_every_role_against_every_method(calls, tokens, snapshots):
    """Each token: allowed exactly where it holds the method's role (allowed calls may still fail
    for domain reasons such as NOT_FOUND, never with an auth status)."""
    for name, roles in ROLES.items():
        for method, role, call in _method_cases(snapshots):
            if role in roles:
                try:
                    call(calls, tokens[name])
                except grpc.RpcError as e:
                    assert e.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), (
                        name, method, e.code(), e.details())
            else:
                e = _refused(call, calls, tokens[name])
                assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (name, method, e.code(), e.details())
                assert method in e.details() and f"'{role}'" in e.details() and f"'{name}'" in e.details(), e.details()


def test_force_needs_models_force(calls, tokens, snapshots):
    v11 = snapshots.version[11]
    calls.push(tokens["scientist"], snapshots.path[11].read_bytes())
    e = _refused(calls.activate, tokens["scientist"], v11, force=True)
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "models.force" in e.details() and "Activate" in e.details(), e.details()
    assert calls.activate(tokens["ops"], v11, force=True).version == v11
    assert calls.activate(tokens["scientist"], v11).version == v11


def test_push_with_activate_needs_models_activate(calls, tokens, snapshots):
    before = calls.list(tokens["reader"]).active_version
    e = _refused(calls.push, tokens["pusher"], snapshots.path[12].read_bytes(), activate=True)
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "models.activate" in e.details() and "PushSnapshot" in e.details(), e.details()
    assert calls.list(tokens["reader"]).active_version == before
    reply = calls.push(tokens["pusher"], snapshots.path[12].read_bytes())
    assert not reply.activated


def test_health_needs_no_token(stubs, token_server, admin_channel_for):
    H = stubs.health_pb2
    health = stubs.health_pb2_grpc.HealthStub(admin_channel_for(token_server))
    assert health.Check(H.HealthCheckRequest(service=""), timeout=TIMEOUT).status == H.HealthCheckResponse.SERVING


def test_tokens_never_in_server_output(calls, token_server, tokens, snapshots):
    for name in ROLES:
        for _, _, call in _method_cases(snapshots):
            try:
                call(calls, tokens[name])
            except grpc.RpcError:
                pass
    token_server.stop()
    out = token_server.stderr + token_server.stdout
    assert "bearer tokens required" in out
    for name, token in tokens.items():
        assert token not in out, f"token of {name} appears in the server's output"
        assert hashlib.sha256(token.encode()).hexdigest() not in out


def test_cli_carries_the_token(token_server, tokens, tmp_path, snapshots):
    port = ["--port", str(token_server.admin_port)]
    r = ei.run_cli("models", "list", *port)
    assert r.returncode != 0 and "UNAUTHENTICATED" in r.stderr, r.stderr
    token_file = tmp_path / "token"
    token_file.write_text(tokens["reader"] + "\n")
    r = ei.run_cli("models", "list", *port, "--token-file", str(token_file))
    assert r.returncode == 0, r.stderr
    r = ei.run_cli("push", *port, "--token-file", str(token_file), str(snapshots.path[11]))
    assert r.returncode != 0 and "PERMISSION_DENIED" in r.stderr and "models.push" in r.stderr, r.stderr
    assert tokens["reader"] not in r.stdout + r.stderr
    env = dict(os.environ, ENCORE_TOKEN=tokens["scientist"])
    out = subprocess.run([str(ei.encore_bin()), "push", *port, str(snapshots.path[11])], capture_output=True,
                         text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    r = ei.run_cli("models", "list", *port, "--token-file", str(tmp_path / "missing"))
    assert r.returncode != 0 and "--token-file" in r.stderr


def test_encore_learn_push_carries_the_token(token_server, tokens, tmp_path, snapshots):
    learn = ei.encore_learn_bin()
    token_file = tmp_path / "token"
    token_file.write_text(tokens["scientist"])
    cmd = [str(learn), "push", "--port", str(token_server.admin_port), str(snapshots.path[12])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and "UNAUTHENTICATED" in out.stderr, out.stderr
    out = subprocess.run(cmd + ["--token-file", str(token_file)], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr


def test_non_loopback_admin_with_tokens_needs_no_insecure_flag(server_factory, tmp_path, tokens):
    srv = server_factory("--config", str(_config(tmp_path, tokens, ["reader"])), "--admin-host", "0.0.0.0")
    assert "admin plane at 0.0.0.0:" in srv.stderr
    assert "--insecure-admin" not in srv.stderr


@pytest.mark.parametrize("entry, needle", [
    ({"name": "a", "sha256": "abc", "roles": ["read"]}, "admin.tokens[0].sha256"),
    ({"name": "a", "sha256": "0" * 64, "roles": ["root"]}, "admin.tokens[0].roles"),
    ({"name": "a", "sha256": "0" * 64, "roles": []}, "admin.tokens[0].roles"),
    ({"name": "", "sha256": "0" * 64, "roles": ["read"]}, "admin.tokens[0].name"),
    ({"name": "a", "sha256": "0" * 64, "roles": ["read"], "token": "x"}, "admin.tokens[0].token"),
])
def test_bad_token_config_names_the_key(tmp_path, entry, needle):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"admin": {"tokens": [entry]}}))
    out = subprocess.run([str(ei.encore_bin()), "serve", "--port", "0", "--admin-port", "0", "--config", str(path)],
                         capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and needle in out.stderr, out.stderr
    assert "listening on" not in out.stderr
