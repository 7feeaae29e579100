"""Independent command-line clients: nghttp -v and h2load (Debian nghttp2-client)."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import encore_interop as ei

GRPC_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]


@pytest.fixture(scope="module")
def body_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("body") / "health.bin"
    p.write_bytes(ei.health_body("encore.v1.Decisions"))
    return p


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found (apt-get install -y nghttp2-client)"
    return path


def _url(server, path=ei.CHECK) -> str:
    scheme = "https" if getattr(server, "tls", False) else "http"
    return f"{scheme}://{ei.HOST}:{server.port}{path}"


def test_nghttp_health(any_diag_server, body_file):
    out = subprocess.run(
        [_tool("nghttp"), "-v", "-d", str(body_file)] + GRPC_HEADERS + [_url(any_diag_server)],
        capture_output=True, timeout=30,
    )
    text = out.stdout.decode("utf-8", "replace")
    assert out.returncode == 0, text + out.stderr.decode("utf-8", "replace")
    assert re.search(r"^\s*\[.*\] recv \(stream_id=\d+\) :status: 200$", text, re.M), text
    assert re.search(r"recv \(stream_id=\d+\) grpc-status: 0$", text, re.M), text
    assert "recv HEADERS frame" in text and "recv DATA frame" in text


def test_nghttp_not_found(diag_server, tmp_path):
    body = tmp_path / "b.bin"
    body.write_bytes(ei.health_body("missing.Service"))
    out = subprocess.run(
        [_tool("nghttp"), "-v", "-d", str(body)] + GRPC_HEADERS + [_url(diag_server)],
        capture_output=True, timeout=30,
    )
    text = out.stdout.decode("utf-8", "replace")
    assert re.search(r"grpc-status: 5$", text, re.M), text


H2LOAD_RE = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout"
)


def _h2load(server, body_file, n, c, m, timeout):
    out = subprocess.run(
        [_tool("h2load"), "-n", str(n), "-c", str(c), "-m", str(m), "-t", "1", "-d", str(body_file)]
        + GRPC_HEADERS + [_url(server)],
        capture_output=True, timeout=timeout,
    )
    text = out.stdout.decode("utf-8", "replace") + out.stderr.decode("utf-8", "replace")
    m_ = H2LOAD_RE.search(text)
    assert m_, f"could not parse h2load output:\n{text}"
    total, started, done, succeeded, failed, errored, tmo = map(int, m_.groups())
    return text, dict(total=total, done=done, succeeded=succeeded, failed=failed, errored=errored, timeout=tmo)


def test_h2load_60000(stubs, diag_server, body_file):
    text, r = _h2load(diag_server, body_file, 60000, 16, 8, timeout=150)
    assert r["failed"] == 0, text
    assert r["errored"] == 0, text
    assert r["succeeded"] == 60000, text
    assert "status codes: 60000 2xx" in text, text
    # still healthy, and still gRPC-correct, afterwards
    ch = ei.make_channel(diag_server)
    try:
        stub = stubs.health_pb2_grpc.HealthStub(ch)
        assert stub.Check(stubs.health_pb2.HealthCheckRequest(), timeout=5).status == 1
    finally:
        ch.close()


def test_h2load_tls(tls_server, body_file):
    text, r = _h2load(tls_server, body_file, 5000, 4, 8, timeout=60)
    assert r["succeeded"] == 5000 and r["failed"] == 0 and r["errored"] == 0, text
