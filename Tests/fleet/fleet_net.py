"""Helpers of the fleet test: network namespaces with veth pairs, replica and haproxy processes,
haproxy's stats socket, and a TCP relay that can corrupt a snapshot upload in transit.

Every address used is inside namespaces this test creates (10.231.N.0/24 on veth pairs it
creates); nothing leaves the machine. Every wait is bounded.
"""
from __future__ import annotations

import os
import pathlib
import re
import select
import signal
import socket
import subprocess
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
ADMIN_RE = re.compile(r"admin plane at (\S+):(\d+)")


def encore_bin() -> str:
    return os.environ.get("ENCORE_BIN") or str(REPO / ".build" / "debug" / "encore")


def run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN); running as uid %d" % os.geteuid()
    probe = f"encprobe{os.getpid() % 100000}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`ip netns add` failed (no CAP_NET_ADMIN?): {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class Fleet:
    """N namespaces, each joined to the root namespace by a veth pair: root side 10.231.i.1/24,
    namespace side 10.231.i.2/24 (the replica's address). `close()` removes everything."""

    def __init__(self, count: int, tag: str):
        self.count = count
        self.names = [f"encf{tag}r{i}" for i in range(1, count + 1)]
        self.host_links = [f"ef{tag}h{i}" for i in range(1, count + 1)]
        self.ns_links = [f"ef{tag}n{i}" for i in range(1, count + 1)]
        self.addresses = [f"10.231.{i}.2" for i in range(1, count + 1)]
        self.created: list[str] = []
        self.links: list[str] = []

    def create(self) -> None:
        for i in range(self.count):
            ns, h, n = self.names[i], self.host_links[i], self.ns_links[i]
            run("ip", "netns", "add", ns)
            self.created.append(ns)
            run("ip", "link", "add", h, "type", "veth", "peer", "name", n)
            self.links.append(h)
            run("ip", "link", "set", n, "netns", ns)
            run("ip", "addr", "add", f"10.231.{i + 1}.1/24", "dev", h)
            run("ip", "link", "set", h, "up")
            run("ip", "netns", "exec", ns, "ip", "addr", "add", f"10.231.{i + 1}.2/24", "dev", n)
            run("ip", "netns", "exec", ns, "ip", "link", "set", n, "up")
            run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def close(self) -> None:
        for h in self.links:
            subprocess.run(["ip", "link", "del", h], capture_output=True)
        for ns in self.created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.links, self.created = [], []


class Proc:
    """A background process whose output goes to a file."""

    def __init__(self, cmd: list[str], log: pathlib.Path):
        self.cmd, self.log = cmd, log
        self.out = open(log, "ab")
        self.p = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)

    @property
    def pid(self) -> int:
        return self.p.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        end = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < end:
            m = rx.search(self.text(), start)
            if m:
                return m
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.cmd[0]} exited ({self.p.returncode}) before '{pattern}':\n{self.text()[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"no '{pattern}' within {timeout} s:\n{self.text()[-3000:]}")

    def signal(self, sig: int) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.p.wait(timeout=timeout)

    def stop(self) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.out.close()


def haproxy_config(deploy: str, port: int, servers: list[tuple[str, str]], stats_socket: str) -> str:
    """deploy/haproxy/haproxy.cfg as tested: the listener on 127.0.0.1:port, the fleet's server
    lines, logging to stderr at notice (state changes, no per-request lines) and a stats socket.
    Everything else (balancing, checks, timeouts, retries) is the deploy file's, unchanged."""
    out = []
    servers_done = False
    for line in deploy.splitlines():
        s = line.strip()
        if s.startswith("log /dev/log"):
            out.append("    log stderr format raw local0 notice")
            out.append(f"    stats socket {stats_socket} mode 600 level admin")
            continue
        if s.startswith("bind :"):
            out.append(line.replace(s.split()[1], f"127.0.0.1:{port}", 1))
            continue
        if s.startswith("server "):
            if not servers_done:
                out += [f"    server {name} {addr}" for name, addr in servers]
                servers_done = True
            continue
        out.append(line)
    assert servers_done, "no server lines in the deploy config"
    return "\n".join(out) + "\n"


def haproxy_status(socket_path: str) -> dict[str, str]:
    """Server name -> status (UP, DOWN, ...) of backend encore_replicas, from `show stat`."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(socket_path)
        s.sendall(b"show stat\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == "encore_replicas" and row.get("svname") not in ("BACKEND", "FRONTEND"):
            out[row["svname"]] = row["status"].split()[0]
    return out


def wait_status(socket_path: str, server: str, status: str, timeout: float) -> float:
    """Waits until haproxy reports `server` in `status`; returns the monotonic time it saw it."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = haproxy_status(socket_path).get(server)
        except (FileNotFoundError, ConnectionRefusedError):  # haproxy still starting
            last = None
        if last == status:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"haproxy: {server} is {last}, not {status}, after {timeout} s")


class CorruptingRelay:
    """127.0.0.1:port -> target, relaying HTTP/2 both ways. While `corrupt` is set, flips one
    byte in the middle of the first large DATA frame the client sends on each connection (a
    snapshot upload damaged in transit: its checksum no longer matches)."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.corrupt = False
        self.corrupted = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.closing = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        pending = b""  # client bytes not yet parsed into whole frames
        preface_seen = False
        done = False
        socks = [client, server]
        end = time.monotonic() + 120
        try:
            while time.monotonic() < end:
                ready, _, _ = select.select(socks, [], [], 1.0)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is server:
                        client.sendall(data)
                        continue
                    if done or not self.corrupt:
                        server.sendall(pending + data)
                        pending = b""
                        continue
                    pending += data
                    if not preface_seen:
                        if len(pending) < len(self.PREFACE):
                            continue
                        server.sendall(pending[:len(self.PREFACE)])
                        pending = pending[len(self.PREFACE):]
                        preface_seen = True
                    while len(pending) >= 9:
                        length = int.from_bytes(pending[:3], "big")
                        if len(pending) < 9 + length:
                            break
                        frame = bytearray(pending[:9 + length])
                        pending = pending[9 + length:]
                        if not done and frame[3] == 0 and length >= 1024:  # a large DATA frame
                            frame[9 + length // 2] ^= 0x5A
                            done = True
                            self.corrupted += 1
                        server.sendall(bytes(frame))
                    if done and pending:
                        server.sendall(pending)
                        pending = b""
        except OSError:
            return
        finally:
            client.close()
            server.close()
