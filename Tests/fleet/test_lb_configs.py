"""The shipped load-balancer configurations are valid for the Debian versions they target:
deploy/haproxy/haproxy.cfg under `haproxy -c` (2.6) and deploy/nginx/nginx.conf under `nginx -t`
(1.22), and both keep the settings docs/scaling.md relies on."""
from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
HAPROXY = REPO / "deploy" / "haproxy" / "haproxy.cfg"
NGINX = REPO / "deploy" / "nginx" / "nginx.conf"


def test_haproxy_config_is_valid_for_haproxy_2_6():
    assert shutil.which("haproxy"), "haproxy missing: scripts/install-deps.sh --test installs it"
    r = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    text = HAPROXY.read_text()
    for needed in ("mode http", "proto h2", "balance hdr(x-encore-customer)", "hash-type consistent",
                   "retry-on conn-failure empty-response", "tcp-check expect min-recv 1 binary 00000000020801"):
        assert needed in text, needed


def test_haproxy_health_check_is_a_grpc_health_check():
    """The check's bytes are an HTTP/2 preface, SETTINGS, HEADERS for Health/Check and a DATA frame
    with one empty gRPC message: decode them so an edit that breaks them fails here."""
    hexes = re.findall(r"tcp-check send-binary ([0-9a-f]+)", HAPROXY.read_text())
    assert len(hexes) == 1
    data = bytes.fromhex(hexes[0])
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    assert data.startswith(preface)
    frames, rest = [], data[len(preface):]
    while rest:
        length = int.from_bytes(rest[:3], "big")
        frames.append((rest[3], rest[4], int.from_bytes(rest[5:9], "big"), rest[9:9 + length]))
        rest = rest[9 + length:]
    assert [(t, f, s) for t, f, s, _ in frames] == [(4, 0, 0), (1, 4, 1), (0, 1, 1)]
    assert b"/grpc.health.v1.Health/Check" in frames[1][3] and b"application/grpc" in frames[1][3]
    assert frames[2][3] == bytes(5)


def test_nginx_config_is_valid(tmp_path):
    assert shutil.which("nginx"), "nginx missing: scripts/install-deps.sh --test installs it"
    r = subprocess.run(["nginx", "-t", "-c", str(NGINX), "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                        "-g", f"pid {tmp_path / 'nginx.pid'};"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[warn]" not in r.stderr and "[emerg]" not in r.stderr, r.stderr
    text = NGINX.read_text()
    for needed in ("grpc_pass grpc://encore_replicas", "hash $http_x_encore_customer consistent", "http2"):
        assert needed in text, needed
