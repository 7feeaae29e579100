"""GET /status on the admin plane (issue 16, point 3), loaded in headless Chromium.

grpcio drives Decide calls and outcomes; Debian's `chromium` loads the page over HTTP/1.1, runs
its script (which renders the embedded data, then refreshes it from /status.json without a
reload) and dumps the DOM, which must hold the numbers the traffic produced: the decision count,
each offer's SHOWN and ACCEPTED counts, the active model version, plots drawn as inline SVG. A
screenshot at phone width is taken too (docs/status-page.png is one; set
ENCORE_STATUS_SCREENSHOT=path to keep this run's). Needs `chromium` (scripts/install-deps.sh --test).
"""
from __future__ import annotations

import collections
import html.parser
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

import encore_interop as ei

TIMEOUT = 10
N = 240


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: scripts/install-deps.sh --test installs Debian's chromium",
                    pytrace=False)
    return path


def _run_chromium(tmp_path, *args, timeout=90):
    profile = tmp_path / "chromium-profile"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--disable-extensions", "--disable-background-networking",
           f"--user-data-dir={profile}", *args]
    env = dict(os.environ, HOME=str(tmp_path))
    out = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-3000:]
    return out.stdout.decode()


class _DOM(html.parser.HTMLParser):
    """Elements by id (attributes and text) and offer rows by data-offer."""

    def __init__(self):
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self.offers: dict[str, dict] = {}
        self.svg_shapes = collections.Counter()
        self._open: list[str | None] = []
        self._svg: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.by_id[a["id"]] = {"attrs": a, "text": ""}
        if "data-offer" in a:
            self.offers[a["data-offer"]] = a
        if tag == "svg":
            self._svg = a.get("id")
        elif self._svg and tag in ("polyline", "rect"):
            self.svg_shapes[(self._svg, tag)] += 1
        self._open.append(a.get("id"))

    def handle_endtag(self, tag):
        if tag == "svg":
            self._svg = None
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for ident in self._open:
            if ident:
                self.by_id[ident]["text"] += data


@pytest.mark.watchdog(200)
def test_status_page_in_headless_chromium(stubs, server_factory, tmp_path):
    server = server_factory("--threads", "2", "--log-dir", str(tmp_path / "logs"))
    D = stubs.decisions_pb2
    shown, accepted = collections.Counter(), collections.Counter()
    with ei.make_channel(server) as channel:
        stub = stubs.decisions_pb2_grpc.DecisionsStub(channel)
        for i in range(N):
            reply = stub.Decide(D.DecideRequest(
                surface="cart", customer_id=f"c{i + 1:06d}", slots=1,
                order=D.Order(order_id=f"o-{i}", total_cents=3000 + 11 * i, currency="USD")), timeout=TIMEOUT)
            for p in reply.placements:
                stub.ReportOutcome(D.OutcomeRequest(decision_id=reply.decision_id, offer_id=p.offer_id,
                                                    outcome=D.SHOWN), timeout=TIMEOUT)
                shown[p.offer_id] += 1
                if i % 4 == 0:
                    stub.ReportOutcome(D.OutcomeRequest(decision_id=reply.decision_id, offer_id=p.offer_id,
                                                        outcome=D.ACCEPTED, revenue_cents=1200), timeout=TIMEOUT)
                    accepted[p.offer_id] += 1
            if i == N // 2:
                time.sleep(2.5)  # at least one sampling interval inside the traffic: the plots get points
        with ei.make_channel(server, admin=True) as admin:
            version = stubs.models_pb2_grpc.ModelsStub(admin).List(
                stubs.models_pb2.ListModelsRequest(), timeout=TIMEOUT).active_version
    time.sleep(2.5)
    url = f"http://127.0.0.1:{server.admin_port}/status"
    page = urllib.request.urlopen(url, timeout=TIMEOUT).read().decode()
    assert "<script src" not in page and "<link" not in page and "@import" not in page, "external asset"
    assert 'name="viewport"' in page

    # Virtual time lets the page's 5 s refresh timer fire (twice) before the DOM is dumped.
    dom_text = _run_chromium(tmp_path, "--virtual-time-budget=11000", "--dump-dom", url)
    dom = _DOM()
    dom.feed(dom_text)
    assert dom.by_id["model-version"]["text"] == version, dom.by_id.get("model-version")
    assert dom.by_id["decisions-total"]["attrs"]["data-value"] == str(N)
    assert dom.by_id["decisions-total"]["text"] == f"{N:,}"
    for offer, count in shown.items():
        row = dom.offers.get(offer)
        assert row is not None, (offer, sorted(dom.offers))
        assert row["data-shown"] == str(count), (offer, row)
        assert row["data-accepted"] == str(accepted.get(offer, 0)), (offer, row)
    assert sum(int(r["data-placements"]) for r in dom.offers.values()) == sum(shown.values())
    # Plots: lines for the rate and both latency quantiles, bars per offer and per group.
    assert dom.svg_shapes[("plot-rate", "polyline")] == 1, dom.svg_shapes
    assert dom.svg_shapes[("plot-latency", "polyline")] == 2, dom.svg_shapes
    assert dom.svg_shapes[("plot-acceptance", "rect")] == len(dom.offers), dom.svg_shapes
    assert dom.svg_shapes[("plot-lift", "rect")] == 2, dom.svg_shapes
    p99 = dom.by_id["p99"]["text"]
    assert p99 not in ("", "–") and float(p99) > 0, p99
    assert "Lift in order value per decision" in dom.by_id["lift-summary"]["text"], dom.by_id["lift-summary"]
    assert f"{N:,}" in dom_text  # decisions in the lift table (treated + holdout add up to N)
    # The page refreshed itself from /status.json (no reload): the server counted those requests.
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.admin_port}/metrics", timeout=TIMEOUT).read().decode()
    refreshes = [line for line in metrics.splitlines()
                 if line.startswith('encore_admin_http_requests_total{path="/status.json"')]
    assert refreshes and int(float(refreshes[0].rsplit(" ", 1)[1])) >= 1, refreshes

    # A screenshot at phone width (the page must lay out in one column there).
    shot = tmp_path / "status.png"
    _run_chromium(tmp_path, "--hide-scrollbars", "--window-size=412,2200", "--virtual-time-budget=3000",
                  f"--screenshot={shot}", url)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, len(data)
    keep = os.environ.get("ENCORE_STATUS_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
