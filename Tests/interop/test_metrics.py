"""GET /metrics on the admin plane (issue 16, points 1 and 2), checked by a real Prometheus.

Debian's `prometheus` scrapes a test server's admin port every second (HTTP/1.1, as it does in
production) while grpcio drives N Decide calls and M outcomes; its HTTP API must then report
sum(encore_decisions_total) == N, the per-offer SHOWN counts the client reported, and a number for
histogram_quantile(0.99, ...) over the Decide latency histogram. `promtool check metrics` must
pass on a scrape, in both exposition formats. The same endpoints answer over HTTP/2 (nghttp,
h2c and TLS). Needs `prometheus` (with promtool) and `nghttp` (scripts/install-deps.sh --test).
"""
from __future__ import annotations

import collections
import json
import math
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest

import encore_interop as ei

TIMEOUT = 10
N_DECISIONS = 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None, timeout: float = TIMEOUT):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return r.status, r.headers, r.read()


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: scripts/install-deps.sh --test installs Debian's prometheus "
                    "(prometheus, promtool) and nghttp2-client (nghttp)", pytrace=False)
    return path


class Prometheus:
    """A Prometheus server on a free loopback port with temporary storage, scraping `target`."""

    def __init__(self, tmp_path, target: str):
        self.port = _free_port()
        self.dir = tmp_path / "prometheus"
        self.dir.mkdir()
        config = self.dir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: encore\n    scrape_interval: 1s\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        self.log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [_need("prometheus"), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{self.port}",
             f"--storage.tsdb.path={self.dir / 'data'}", "--storage.tsdb.retention.time=1h"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=ei._die_with_parent)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 40):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if _get(self.base + "/-/ready", timeout=2)[0] == 200:
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        pytest.fail(f"prometheus did not become ready within {timeout} s:\n{self.tail()}", pytrace=False)

    def query(self, promql: str) -> list:
        url = self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        _, _, body = _get(url)
        reply = json.loads(body)
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, accept, timeout: float = 30):
        """Polls `promql` until `accept(result)` holds; returns the last result."""
        deadline = time.monotonic() + timeout
        result = None
        while time.monotonic() < deadline:
            result = self.query(promql)
            if accept(result):
                return result
            time.sleep(0.5)
        pytest.fail(f"{promql!r} never satisfied the check within {timeout} s; last result: {result}\n{self.tail()}",
                    pytrace=False)

    def tail(self) -> str:
        self.log.flush()
        return "\n".join((self.dir / "prometheus.log").read_text(errors="replace").splitlines()[-20:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def prometheus_for(tmp_path):
    started = []

    def factory(server):
        p = Prometheus(tmp_path, f"127.0.0.1:{server.admin_port}")
        started.append(p)
        p.wait_ready()
        return p

    yield factory
    for p in started:
        p.stop()


def _drive(stubs, server, n: int):
    """N Decide calls over two surfaces; SHOWN for every placement, ACCEPTED for every third
    decision's first offer. Returns (shown per offer, accepted per offer, outcomes sent)."""
    D = stubs.decisions_pb2
    shown, accepted = collections.Counter(), collections.Counter()
    outcomes = 0
    with ei.make_channel(server) as channel:
        stub = stubs.decisions_pb2_grpc.DecisionsStub(channel)
        for i in range(n):
            reply = stub.Decide(D.DecideRequest(
                surface="cart" if i % 2 else "confirmation", customer_id=f"c{(i % 900) + 1:06d}", slots=2,
                order=D.Order(order_id=f"o-{i}", total_cents=2000 + 37 * i, currency="USD")), timeout=TIMEOUT)
            for j, p in enumerate(reply.placements):
                stub.ReportOutcome(D.OutcomeRequest(decision_id=reply.decision_id, offer_id=p.offer_id,
                                                    outcome=D.SHOWN), timeout=TIMEOUT)
                shown[p.offer_id] += 1
                outcomes += 1
                if j == 0 and i % 3 == 0:
                    stub.ReportOutcome(D.OutcomeRequest(decision_id=reply.decision_id, offer_id=p.offer_id,
                                                        outcome=D.ACCEPTED, revenue_cents=500), timeout=TIMEOUT)
                    accepted[p.offer_id] += 1
                    outcomes += 1
    return shown, accepted, outcomes


@pytest.mark.watchdog(150)
def test_prometheus_scrapes_decisions_outcomes_and_latency(stubs, server_factory, prometheus_for, tmp_path):
    server = server_factory("--threads", "2", "--log-dir", str(tmp_path / "logs"))
    prom = prometheus_for(server)
    # The target is up (Prometheus reached /metrics over HTTP/1.1) before any traffic, so the
    # latency histogram's rate has a scrape from before the calls.
    prom.wait_for('up{job="encore"}', lambda r: r and r[0]["value"][1] == "1")

    shown, accepted, outcomes = _drive(stubs, server, N_DECISIONS)
    assert sum(shown.values()) > 0, "the demo placed no offer at all"

    prom.wait_for("sum(encore_decisions_total)", lambda r: r and float(r[0]["value"][1]) == N_DECISIONS)
    # Every acknowledged outcome is counted once; repeats would show in encore_outcomes_repeated_total.
    prom.wait_for("sum(encore_offer_outcomes_total)", lambda r: r and float(r[0]["value"][1]) == outcomes)
    by_offer = {s["metric"]["offer"]: float(s["value"][1])
                for s in prom.query('encore_offer_outcomes_total{outcome="shown"}')}
    for offer, count in shown.items():
        assert by_offer.get(offer) == count, (offer, count, by_offer)
    assert sum(by_offer.values()) == sum(shown.values())
    acc = {s["metric"]["offer"]: float(s["value"][1])
           for s in prom.query('encore_offer_outcomes_total{outcome="accepted"}')}
    assert {k: v for k, v in acc.items() if v} == {k: float(v) for k, v in accepted.items()}
    revenue = prom.scalar("sum(encore_offer_revenue_cents_total)")
    assert revenue == 500 * sum(accepted.values())

    # Holdout + treated split over two surfaces, and placements agree with the client's view.
    surfaces = {s["metric"]["surface"]: float(s["value"][1])
                for s in prom.query("sum by (surface) (encore_decisions_total)")}
    assert surfaces.get("cart") == N_DECISIONS // 2 and surfaces.get("confirmation") == N_DECISIONS // 2, surfaces
    assert prom.scalar("sum(encore_offer_placements_total)") == sum(shown.values())

    # p99 over the last minute from the per-surface histogram: a number of seconds, below 1 s.
    q = "histogram_quantile(0.99, sum by (le) (rate(encore_decide_latency_seconds_bucket[1m])))"
    result = prom.wait_for(q, lambda r: r and not math.isnan(float(r[0]["value"][1])))
    p99 = float(result[0]["value"][1])
    assert 0 < p99 < 1.0, p99
    count = prom.scalar("sum(encore_decide_latency_seconds_count)")
    assert count == N_DECISIONS, count

    # gRPC calls by method and code: every Decide and outcome answered OK, nothing in flight.
    calls = {(s["metric"]["method"], s["metric"]["code"]): float(s["value"][1])
             for s in prom.query('encore_grpc_calls_total{plane="data"}')}
    assert calls.get(("Decide", "OK")) == N_DECISIONS, calls
    assert calls.get(("ReportOutcome", "OK")) == outcomes, calls
    assert prom.scalar('sum(encore_grpc_calls_in_flight{plane="data"})') == 0
    # The log writer's counters are exposed (records reach the ring at once).
    prom.wait_for("encore_log_records_written_total", lambda r: r and float(r[0]["value"][1]) >= N_DECISIONS)
    assert prom.scalar("encore_model_info") == 1
    assert prom.scalar("process_resident_memory_bytes") > 1 << 20
    # Prometheus asked for OpenMetrics over HTTP/1.1 and parsed it (the target is up, no error).
    scrapes = prom.scalar('sum(encore_admin_http_requests_total{path="/metrics",protocol="HTTP/1.1",format="openmetrics"})')
    assert scrapes and scrapes >= 1, scrapes
    targets = json.loads(_get(prom.base + "/api/v1/targets")[2])["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"] and targets[0]["lastError"] == "", targets


def test_promtool_accepts_both_exposition_formats(stubs, server_factory, tmp_path):
    promtool = _need("promtool")
    server = server_factory("--log-dir", str(tmp_path / "logs"))
    _drive(stubs, server, 20)
    url = f"http://127.0.0.1:{server.admin_port}/metrics"
    status, headers, body = _get(url)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()
    text = body.decode()
    for family in ("encore_decisions_total", "encore_decide_latency_seconds_bucket", "encore_grpc_calls_total",
                   "encore_connections_closed_total", "encore_offer_outcomes_total", "encore_model_info",
                   "encore_log_records_dropped_total", "encore_admin_auth_failures_total", "process_open_fds"):
        assert family in text, family
    assert 'encore_decide_latency_seconds_bucket{surface="cart",le="+Inf"} 10' in text, text[:2000]

    status, headers, body = _get(url, {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text"), headers
    text = body.decode()
    assert text.endswith("# EOF\n")
    assert "# TYPE encore_decisions counter\n" in text and "encore_decisions_total{" in text
    assert "# TYPE encore_model info\n" in text and "encore_model_info{" in text
    # promtool reads only the text format; the OpenMetrics reference parser checks this one
    # (it refuses a missing # EOF, a counter sample without _total, unsorted or repeated families).
    from prometheus_client.openmetrics import parser
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    assert families["encore_decisions"].type == "counter"
    assert families["encore_decide_latency_seconds"].type == "histogram"
    assert families["encore_model"].type == "info"
    assert sum(s.value for s in families["encore_decisions"].samples if s.name == "encore_decisions_total") == 20


def test_metrics_over_http2_h2c_and_tls(stubs, server_factory):
    nghttp = _need("nghttp")
    for tls in (False, True):
        server = server_factory(tls=tls)
        _drive(stubs, server, 3)
        scheme = "https" if tls else "http"
        out = subprocess.run([nghttp, "-v", f"{scheme}://127.0.0.1:{server.admin_port}/metrics"],
                             capture_output=True, timeout=30, text=True)
        assert out.returncode == 0, out.stderr
        assert ":status: 200" in out.stdout, out.stdout[:2000]
        assert 'encore_decisions_total{surface="cart",group="treated"}' in out.stdout or \
            'encore_decisions_total{surface="cart",group="holdout"}' in out.stdout
        assert "encore_grpc_calls_total{" in out.stdout
        # gRPC on the same admin port still works after the HTTP traffic.
        with ei.make_channel(server, admin=True) as channel:
            models = stubs.models_pb2_grpc.ModelsStub(channel)
            assert models.List(stubs.models_pb2.ListModelsRequest(), timeout=TIMEOUT).active_version


def test_admin_http_endpoints_refuse_without_a_read_token(stubs, server_factory, tmp_path):
    import hashlib
    token = "metrics-reader-token"
    other = "pusher-token"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"admin": {"tokens": [
        {"name": "prom", "sha256": hashlib.sha256(token.encode()).hexdigest(), "roles": ["read"]},
        {"name": "ci", "sha256": hashlib.sha256(other.encode()).hexdigest(), "roles": ["models.push"]}]}}))
    server = server_factory("--config", str(config))
    url = f"http://127.0.0.1:{server.admin_port}/metrics"
    with pytest.raises(urllib.error.HTTPError) as info:
        _get(url)
    assert info.value.code == 401 and info.value.headers["WWW-Authenticate"].startswith("Bearer")
    with pytest.raises(urllib.error.HTTPError) as info:
        _get(url, {"Authorization": f"Bearer {other}"})
    assert info.value.code == 403
    status, _, body = _get(url, {"Authorization": f"Bearer {token}"})
    assert status == 200 and b'encore_admin_auth_failures_total{reason="missing_token"} 1' in body, body[-3000:]
    assert b'encore_admin_auth_failures_total{reason="missing_role"} 1' in body


def test_connection_close_reasons_are_counted(stubs, server_factory):
    server = server_factory()
    # A bad HTTP/2 preface on the data plane, and an h2c connection that closes normally.
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        ei.read_until_eof(s, 5)
    _drive(stubs, server, 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = _get(f"http://127.0.0.1:{server.admin_port}/metrics")[2].decode()
        if 'encore_connections_closed_total{plane="data",reason="bad_preface"} 1' in text and \
                'encore_connections_closed_total{plane="data",reason="peer_closed"} 1' in text:
            break
        time.sleep(0.2)
    else:
        pytest.fail("close reasons not counted:\n" + "\n".join(
            line for line in text.splitlines() if line.startswith("encore_connections")))
    assert 'encore_connections_accepted_total{plane="data"} 2' in text
