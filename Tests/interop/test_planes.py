"""Two planes (issue 14, points 1 and 4): the data plane (--host/--port) serves Decisions and
Health; the admin plane (--admin-host/--admin-port, default 127.0.0.1:50052) serves Models,
Catalog, Customers, Diagnostics and Health. An admin method on the data port is refused with
PERMISSION_DENIED naming the admin port; a non-loopback admin address without authentication
stops the start unless --insecure-admin. All through grpcio and the encore CLI.
"""
from __future__ import annotations

import re
import subprocess

import grpc
import pytest

import encore_interop as ei

TIMEOUT = 10
ADMIN_LINE_RE = re.compile(r"^\S+Z encore: admin plane at 127\.0\.0\.1:(\d+) \((h2c|tls): ", re.M)


def _admin_calls(stubs, channel):
    """One call of every admin method, by name (each returns the reply or raises grpc.RpcError)."""
    M, C, G = stubs.models_pb2, stubs.catalog_pb2, stubs.diagnostics_pb2
    models = stubs.models_pb2_grpc.ModelsStub(channel)
    catalog = stubs.catalog_pb2_grpc.CatalogStub(channel)
    customers = stubs.catalog_pb2_grpc.CustomersStub(channel)
    diagnostics = stubs.diagnostics_pb2_grpc.DiagnosticsStub(channel)
    return {
        "encore.v1.Models/List": lambda: models.List(M.ListModelsRequest(), timeout=TIMEOUT),
        "encore.v1.Models/GetSnapshot": lambda: models.GetSnapshot(M.GetSnapshotRequest(), timeout=TIMEOUT),
        "encore.v1.Models/Activate": lambda: models.Activate(M.ActivateRequest(version="nope"), timeout=TIMEOUT),
        "encore.v1.Models/Rollback": lambda: models.Rollback(M.RollbackRequest(), timeout=TIMEOUT),
        "encore.v1.Models/PushSnapshot": lambda: models.PushSnapshot(
            iter([M.SnapshotChunk(data=b"not a snapshot")]), timeout=TIMEOUT),
        "encore.v1.Catalog/UpsertOffers": lambda: catalog.UpsertOffers(
            iter([C.OfferRecord(json='{"offer_id": "attacker_offer"}')]), timeout=TIMEOUT),
        "encore.v1.Customers/UpsertCustomers": lambda: customers.UpsertCustomers(
            iter([C.CustomerRecord(customer_id="c-attacker")]), timeout=TIMEOUT),
        "encore.v1.Diagnostics/Echo": lambda: diagnostics.Echo(G.EchoRequest(payload=b"x"), timeout=TIMEOUT),
        "encore.v1.Diagnostics/Collect": lambda: diagnostics.Collect(
            iter([G.EchoRequest(payload=b"x")]), timeout=TIMEOUT),
    }


@pytest.fixture
def planes_server(server_factory):
    # --diagnostics without the testing flag: Diagnostics on the admin plane only.
    return server_factory("--diagnostics", "--threads", "2")


def test_admin_line_names_the_admin_port(planes_server):
    m = ADMIN_LINE_RE.search(planes_server.stderr)
    assert m, planes_server.stderr
    assert int(m.group(1)) == planes_server.admin_port != planes_server.port
    # The data plane's line is unchanged and printed once.
    assert planes_server.stderr.count("listening on") == 1


ADMIN_METHODS = [
    "encore.v1.Models/List", "encore.v1.Models/GetSnapshot", "encore.v1.Models/Activate", "encore.v1.Models/Rollback",
    "encore.v1.Models/PushSnapshot", "encore.v1.Catalog/UpsertOffers", "encore.v1.Customers/UpsertCustomers",
    "encore.v1.Diagnostics/Echo", "encore.v1.Diagnostics/Collect"]


def test_every_admin_method_is_listed(stubs):
    """ADMIN_METHODS covers every method of the admin services in the .proto files."""
    declared = []
    for module, services in ((stubs.models_pb2, ["Models"]), (stubs.catalog_pb2, ["Catalog", "Customers"]),
                             (stubs.diagnostics_pb2, ["Diagnostics"])):
        for name in services:
            service = module.DESCRIPTOR.services_by_name[name]
            declared += [f"{service.full_name}/{m.name}" for m in service.methods]
    assert sorted(declared) == sorted(ADMIN_METHODS)


@pytest.mark.parametrize("method", ADMIN_METHODS)
def test_admin_method_on_data_port_is_permission_denied(stubs, planes_server, channel_for, method):
    call = _admin_calls(stubs, channel_for(planes_server))[method]
    with pytest.raises(grpc.RpcError) as e:
        call()
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, (method, e.value.code(), e.value.details())
    details = e.value.details()
    assert method in details and "admin" in details, details
    assert f"port {planes_server.admin_port}" in details, details


def test_catalog_unchanged_after_refused_upsert(stubs, planes_server, channel_for):
    data = channel_for(planes_server)
    with pytest.raises(grpc.RpcError):
        _admin_calls(stubs, data)["encore.v1.Catalog/UpsertOffers"]()
    D = stubs.decisions_pb2
    decisions = stubs.decisions_pb2_grpc.DecisionsStub(data)
    for i in range(20):
        r = decisions.Decide(D.DecideRequest(surface="cart", customer_id=f"c{i:06d}", slots=2,
                                             candidate_offer_ids=["attacker_offer", "gift_box"]), timeout=TIMEOUT)
        assert all(p.offer_id != "attacker_offer" for p in r.placements), r


def test_admin_methods_work_on_admin_port(stubs, planes_server, channel_for):
    calls = _admin_calls(stubs, channel_for(planes_server, admin=True))
    listed = calls["encore.v1.Models/List"]()
    assert listed.active_version
    assert calls["encore.v1.Diagnostics/Echo"]().payload == b"x"
    # Domain errors, not the plane's refusal: the methods run here.
    with pytest.raises(grpc.RpcError) as e:
        calls["encore.v1.Models/Activate"]()
    assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        calls["encore.v1.Models/PushSnapshot"]()
    assert e.value.code() != grpc.StatusCode.PERMISSION_DENIED, e.value.details()


def test_decisions_not_served_on_admin_port(stubs, planes_server, channel_for):
    D = stubs.decisions_pb2
    decisions = stubs.decisions_pb2_grpc.DecisionsStub(channel_for(planes_server, admin=True))
    with pytest.raises(grpc.RpcError) as e:
        decisions.Decide(D.DecideRequest(surface="cart", customer_id="c000001"), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_on_both_planes(stubs, planes_server, channel_for):
    H = stubs.health_pb2
    for admin in (False, True):
        health = stubs.health_pb2_grpc.HealthStub(channel_for(planes_server, admin=admin))
        assert health.Check(H.HealthCheckRequest(service=""), timeout=TIMEOUT).status == H.HealthCheckResponse.SERVING


def test_cli_models_and_push_use_the_admin_plane(planes_server, snapshots):
    r = ei.run_cli("models", "list", "--port", str(planes_server.admin_port))
    assert r.returncode == 0, r.stdout + r.stderr
    r = ei.run_cli("models", "list", "--port", str(planes_server.port))
    assert r.returncode != 0
    assert "PERMISSION_DENIED" in r.stderr and str(planes_server.admin_port) in r.stderr, r.stderr
    r = ei.run_cli("push", "--port", str(planes_server.port), str(snapshots.path[11]))
    assert r.returncode != 0 and "PERMISSION_DENIED" in r.stderr, r.stderr
    r = ei.run_cli("push", "--port", str(planes_server.admin_port), str(snapshots.path[11]))
    assert r.returncode == 0, r.stdout + r.stderr


def test_admin_port_in_use_refused(planes_server):
    rc, err = _serve_expect_failure(["--admin-port", str(planes_server.admin_port)])
    assert rc == 1, err
    assert "admin plane" in err and "address already in use" in err and str(planes_server.admin_port) in err, err
    assert planes_server.alive()


def test_explicit_admin_port(server_factory):
    port = ei.free_port()
    srv = server_factory("--admin-port", str(port))
    assert srv.admin_port == port


def _serve_expect_failure(args, timeout=30):
    port = [] if "--port" in args else ["--port", "0"]
    cmd = [str(ei.encore_bin()), "serve", "--host", ei.HOST] + port + list(args)
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                             preexec_fn=ei._die_with_parent)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`encore serve {' '.join(args)}` did not exit within {timeout}s (expected a start-up error)")
    return out.returncode, out.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_non_loopback_admin_without_auth_refuses_to_start(host):
    rc, err = _serve_expect_failure(["--admin-host", host, "--admin-port", "0"])
    assert rc == 1, err
    assert "listening on" not in err and "admin plane at" not in err, err
    assert f"--admin-host {host}" in err and "not a loopback address" in err, err
    assert "--insecure-admin" in err, err


def test_same_port_for_both_planes_refused():
    port = ei.free_port()
    rc, err = _serve_expect_failure(["--port", str(port), "--admin-port", str(port)])
    assert rc == 1 and "two ports" in err, err


def test_insecure_admin_starts_and_warns(stubs, server_factory, channel_for):
    srv = server_factory("--admin-host", "0.0.0.0", "--insecure-admin")
    assert "admin plane at 0.0.0.0:" in srv.stderr, srv.stderr
    assert srv.wait_stderr("warning: --insecure-admin", 5), srv.stderr
    # Reached over loopback (0.0.0.0 includes it).
    models = stubs.models_pb2_grpc.ModelsStub(channel_for(srv, admin=True))
    assert models.List(stubs.models_pb2.ListModelsRequest(), timeout=TIMEOUT).active_version


def test_loopback_names_need_no_flag(server_factory):
    srv = server_factory("--admin-host", "localhost")
    assert srv.admin_port and "warning: --insecure-admin" not in srv.stderr


# ----------------------------------------------------------------------------------------------
# Admin TLS
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def admin_pair(tmp_path_factory):
    return ei.make_self_signed(tmp_path_factory.mktemp("admin-tls"))


def _tls_channel(port, root):
    creds = grpc.ssl_channel_credentials(root_certificates=root)
    opts = ei.BASE_OPTIONS + [("grpc.ssl_target_name_override", "localhost")]
    return grpc.secure_channel(f"{ei.HOST}:{port}", creds, options=opts)


def _list(stubs, channel):
    return stubs.models_pb2_grpc.ModelsStub(channel).List(stubs.models_pb2.ListModelsRequest(), timeout=5)


def test_admin_plane_uses_the_data_plane_pair_by_default(stubs, server_factory, tls_files):
    srv = server_factory(tls=True)
    assert re.search(r"admin plane at \S+ \(tls: ", srv.stderr), srv.stderr
    with _tls_channel(srv.admin_port, tls_files[0].read_bytes()) as ch:
        assert _list(stubs, ch).active_version


def test_admin_plane_own_pair(stubs, server_factory, tls_files, admin_pair):
    srv = server_factory("--admin-tls-cert", str(admin_pair[0]), "--admin-tls-key", str(admin_pair[1]), tls=True)
    with _tls_channel(srv.admin_port, admin_pair[0].read_bytes()) as ch:
        assert _list(stubs, ch).active_version
    # The data plane's certificate does not verify the admin plane's.
    with _tls_channel(srv.admin_port, tls_files[0].read_bytes()) as ch:
        with pytest.raises(grpc.RpcError) as e:
            _list(stubs, ch)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_admin_tls_with_h2c_data_plane(stubs, server_factory, admin_pair, channel_for):
    srv = server_factory("--admin-tls-cert", str(admin_pair[0]), "--admin-tls-key", str(admin_pair[1]))
    assert "(h2c, " in srv.listen_line
    with _tls_channel(srv.admin_port, admin_pair[0].read_bytes()) as ch:
        assert _list(stubs, ch).active_version


def test_admin_tls_half_pair_refused(admin_pair):
    rc, err = _serve_expect_failure(["--admin-port", "0", "--admin-tls-cert", str(admin_pair[0])])
    assert rc != 0 and "--admin-tls-key" in err, err


def test_bad_admin_tls_key_is_a_clean_error(tmp_path, admin_pair):
    missing = tmp_path / "missing.pem"
    rc, err = _serve_expect_failure(
        ["--admin-port", "0", "--admin-tls-cert", str(admin_pair[0]), "--admin-tls-key", str(missing)])
    assert rc == 1 and f"encore: error: cannot load TLS private key {missing}" in err, err
