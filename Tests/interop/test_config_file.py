"""Every setting of `encore serve` has a config key (docs/configuration.md), resolved once:
defaults, then the demo's, then the file, then the flags (issue 14, point 10). A file alone
configures both planes; a flag wins over it; a bad value names the file and the key."""
from __future__ import annotations

import json
import subprocess

import grpc

import encore_interop as ei


class _FileOnly(ei.EncoreProcess):
    """`encore serve` with only the given arguments (no --host/--port/--admin-port of the harness)."""

    def command(self) -> list[str]:
        return [str(ei.encore_bin()), "serve"] + self.args


def _check(stubs, port: int) -> int:
    with grpc.insecure_channel(f"{ei.HOST}:{port}") as channel:
        reply = stubs.health_pb2_grpc.HealthStub(channel).Check(
            stubs.health_pb2.HealthCheckRequest(service=""), timeout=10)
    return reply.status


def test_a_config_file_alone_configures_both_planes(tmp_path, stubs):
    port, admin = ei.free_port(), ei.free_port()
    config = tmp_path / "encore.json"
    config.write_text(json.dumps({
        "listen": {"host": ei.HOST, "port": port},
        "admin": {"host": ei.HOST, "port": admin},
        "transport": {"threads": 1, "max_connections": 64},
        "logs": {"dir": str(tmp_path / "logs"), "replica_name": "from-file"},
    }))
    server = _FileOnly("--config", str(config)).start()
    try:
        assert server.port == port and server.admin_port == admin, server.stderr
        assert _check(stubs, port) == stubs.health_pb2.HealthCheckResponse.SERVING
        assert _check(stubs, admin) == stubs.health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop()
    assert (tmp_path / "logs").is_dir(), "logs.dir from the file was not used"


def test_a_flag_wins_over_the_file(tmp_path, stubs):
    file_port, flag_port, admin = ei.free_port(), ei.free_port(), ei.free_port()
    config = tmp_path / "encore.json"
    config.write_text(json.dumps({"listen": {"host": ei.HOST, "port": file_port}, "admin": {"port": admin}}))
    server = _FileOnly("--config", str(config), "--port", str(flag_port), "--threads", "1").start()
    try:
        assert server.port == flag_port, server.stderr
        assert server.admin_port == admin, server.stderr
        assert _check(stubs, flag_port) == stubs.health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop()


def test_a_bad_value_names_the_file_and_the_key(tmp_path):
    config = tmp_path / "encore.json"
    config.write_text(json.dumps({"transport": {"threads": 0}}))
    out = subprocess.run([str(ei.encore_bin()), "serve", "--config", str(config)], capture_output=True, text=True,
                         timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 1, out.stderr
    assert f"config {config}: 'transport.threads' must be an integer in 1...255, got 0" in out.stderr, out.stderr
    # The same range for the flag, named as a flag.
    out = subprocess.run([str(ei.encore_bin()), "serve", "--threads", "0"], capture_output=True, text=True,
                         timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and "--threads must be an integer in 1...255, got 0" in out.stderr, out.stderr
