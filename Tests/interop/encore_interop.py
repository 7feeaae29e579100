"""Helpers for the Encore interop tests: server process control, a raw HTTP/2 client built on
hyper-h2, gRPC framing and a throw-away self-signed certificate.

Everything talks to 127.0.0.1 only, and every wait is bounded in time.
"""
from __future__ import annotations

import atexit
import ctypes
import datetime
import ipaddress
import os
import pathlib
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field

# grpcio's fork handlers (on by default) make a child forked while other threads are inside
# gRPC abort now and then (SIGABRT before exec, "epoll_wait error: Bad file descriptor"); the
# servers and CLI runs here are forked with a preexec_fn, sometimes during load. Must be set
# before grpc is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc  # noqa: E402
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
ADMIN_RE = re.compile(r"admin plane at (\S+):(\d+)")
HOST = "127.0.0.1"
# Diagnostics (Echo, Collect) belongs to the admin plane; the transport tests drive it on the data
# plane's listener, which this testing-only flag allows.
DIAG_ON_DATA_PLANE = ("--diagnostics", "--debug-diagnostics-on-data-plane")
STARTUP_TIMEOUT = 20.0


def encore_bin() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ENCORE_BIN") or (REPO / ".build" / "debug" / "encore"))


# ----------------------------------------------------------------------------------------------
# Server process
# ----------------------------------------------------------------------------------------------

_LIVE: set["EncoreProcess"] = set()
_PR_SET_PDEATHSIG = 1


try:  # resolved in the parent: the child must not dlopen between fork and exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


@atexit.register
def _kill_leftovers() -> None:
    for p in list(_LIVE):
        p.kill()


class EncoreProcess:
    """One `encore serve` process. stdout/stderr are drained by background threads."""

    def __init__(self, *args: str, port: int = 0):
        self.args = list(args)
        self.requested_port = port
        self.tls = False  # set by the fixtures for TLS servers (with cert_pem / cert_path)
        self.cert_pem: bytes | None = None
        self.cert_path: str | None = None
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.admin_port: int | None = None  # the admin plane (Models, Catalog, Customers, Diagnostics)
        self.host: str | None = None
        self.listen_line: str | None = None
        self._err: list[str] = []
        self._out: list[str] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- lifecycle --------------------------------------------------------------------------
    def command(self) -> list[str]:
        # Every test server gets its own free admin port unless the test picks one.
        admin = [] if any(a.startswith("--admin-port") for a in self.args) else ["--admin-port", "0"]
        return [str(encore_bin()), "serve", "--host", HOST, "--port", str(self.requested_port)] + admin + self.args

    def start(self, timeout: float = STARTUP_TIMEOUT) -> "EncoreProcess":
        binary = encore_bin()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise RuntimeError(f"encore binary not found or not executable: {binary} (set ENCORE_BIN)")
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        _LIVE.add(self)
        for stream, sink in ((self.proc.stderr, self._err), (self.proc.stdout, self._out)):
            t = threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.stderr)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                a = ADMIN_RE.search(self.stderr)  # printed before the data plane's line
                self.admin_port = int(a.group(2)) if a else None
                self.listen_line = next(l for l in self.stderr.splitlines() if LISTEN_RE.search(l))
                return self
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the drain threads catch the last lines
                raise RuntimeError(
                    f"encore exited with code {self.proc.returncode} before listening; stderr:\n{self.stderr}"
                )
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"encore did not print 'listening on' within {timeout}s; stderr:\n{self.stderr}")

    def _drain(self, stream, sink: list[str]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                with self._lock:
                    sink.append(raw.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass

    @property
    def stderr(self) -> str:
        with self._lock:
            return "".join(self._err)

    @property
    def stdout(self) -> str:
        with self._lock:
            return "".join(self._out)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Wait up to timeout for the process to exit; returns the exit code or None."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_stderr(self, needle: str, timeout: float, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stderr.count(needle) >= count:
                return True
            time.sleep(0.05)
        return self.stderr.count(needle) >= count

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._finish()

    def stop(self, grace: float = 3.0) -> int | None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL. Always bounded."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self._finish()
        return self.proc.returncode

    def _finish(self) -> None:
        for t in self._threads:
            t.join(timeout=2)
        for s in (self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except Exception:
                pass
        _LIVE.discard(self)

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def admin_target(self) -> str:
        assert self.admin_port is not None, f"no admin plane line in stderr:\n{self.stderr}"
        return f"{HOST}:{self.admin_port}"


# ----------------------------------------------------------------------------------------------
# gRPC framing
# ----------------------------------------------------------------------------------------------

def grpc_frame(message: bytes, compressed: bool = False, declared_len: int | None = None) -> bytes:
    n = len(message) if declared_len is None else declared_len
    return struct.pack(">BI", 1 if compressed else 0, n) + message


def grpc_unframe(data: bytes) -> list[bytes]:
    msgs = []
    i = 0
    while i < len(data):
        if len(data) - i < 5:
            raise ValueError(f"truncated gRPC prefix in response ({len(data) - i} bytes left)")
        flag, n = struct.unpack(">BI", data[i : i + 5])
        if flag != 0:
            raise ValueError(f"server sent compressed flag {flag}")
        if len(data) - i - 5 < n:
            raise ValueError("truncated gRPC message in response")
        msgs.append(data[i + 5 : i + 5 + n])
        i += 5 + n
    return msgs


CHECK = "/grpc.health.v1.Health/Check"
ECHO = "/encore.v1.Diagnostics/Echo"
COLLECT = "/encore.v1.Diagnostics/Collect"
SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}


def health_request(service: str) -> bytes:
    """Hand-encoded grpc.health.v1.HealthCheckRequest (field 1, string)."""
    raw = service.encode()
    if not raw:
        return b""
    assert len(raw) < 128
    return b"\x0a" + bytes([len(raw)]) + raw


# ----------------------------------------------------------------------------------------------
# Raw HTTP/2 client (hyper-h2 over a plain or TLS socket)
# ----------------------------------------------------------------------------------------------

@dataclass
class StreamResult:
    stream_id: int
    headers: dict[str, str] | None = None
    header_list: list[tuple[str, str]] = field(default_factory=list)
    headers_ended_stream: bool = False
    data: bytearray = field(default_factory=bytearray)
    data_frames: int = 0
    trailers: dict[str, str] | None = None
    ended: bool = False
    reset_code: int | None = None

    @property
    def done(self) -> bool:
        return self.ended or self.reset_code is not None

    @property
    def status(self) -> str | None:
        return None if self.headers is None else self.headers.get(":status")

    @property
    def grpc_status(self) -> int | None:
        for src in (self.trailers, self.headers):
            if src and "grpc-status" in src:
                return int(src["grpc-status"])
        return None

    @property
    def grpc_message(self) -> str | None:
        for src in (self.trailers, self.headers):
            if src and "grpc-message" in src:
                return src["grpc-message"]
        return None

    def messages(self) -> list[bytes]:
        return grpc_unframe(bytes(self.data))


def client_tls_context(alpn=("h2",), cafile: str | None = None, min_version=None, max_version=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
        ctx.check_hostname = True
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


class _GracefulH2Connection(h2.connection.H2Connection):
    """hyper-h2 treats a received GOAWAY as the end of the connection and rejects later frames,
    but RFC 9113 section 6.8 lets the server finish streams up to last_stream_id after a GOAWAY
    (graceful shutdown). Keep the state machine open so those frames are still processed."""

    def _receive_goaway_frame(self, frame):
        frames, events = super()._receive_goaway_frame(frame)
        self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return frames, events


class H2Client:
    """A small, bounded HTTP/2 client on top of h2.connection.H2Connection."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None, timeout: float = 5.0,
                 handshake: bool = True, server_hostname: str = "localhost", validate_headers: bool = True):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.scheme = "http"
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname)
            self.scheme = "https"
        # validate_headers=False sends header fields exactly as given (malformed-request tests).
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=validate_headers,
                                        normalize_outbound_headers=validate_headers)
        self.conn = _GracefulH2Connection(config=cfg)
        self.goaways: list = []
        self.streams: dict[int, StreamResult] = {}
        self.remote_settings: dict[int, int] = {}
        self.settings_received = False
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.eof = False
        self.events: list = []
        if handshake:
            self.conn.initiate_connection()
            self.flush()

    # -- I/O --------------------------------------------------------------------------------
    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def pump(self, timeout: float) -> bool:
        """Read once (waiting at most `timeout`), feed h2. Returns False on EOF / reset."""
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:  # the server sent something h2 rejects
            raise AssertionError(f"server sent an invalid HTTP/2 frame sequence: {e!r}") from e
        for ev in events:
            self._on_event(ev)
        try:
            self.flush()  # SETTINGS ACKs, WINDOW_UPDATEs, PING ACKs
        except OSError:
            self.eof = True
        return True

    def _on_event(self, ev) -> None:
        self.events.append(ev)
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            self.settings_received = True
            for k, v in ev.changed_settings.items():
                self.remote_settings[int(k)] = v.new_value
        elif isinstance(ev, h2.events.ResponseReceived):
            r = self._stream(ev.stream_id)
            r.header_list = list(ev.headers)
            r.headers = dict(ev.headers)
            if ev.stream_ended is not None:
                r.headers_ended_stream = True
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            pass
        elif isinstance(ev, h2.events.DataReceived):
            r = self._stream(ev.stream_id)
            r.data += ev.data
            r.data_frames += 1
            if ev.flow_controlled_length:
                try:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                except h2.exceptions.StreamClosedError:
                    pass
        elif isinstance(ev, h2.events.TrailersReceived):
            self._stream(ev.stream_id).trailers = dict(ev.headers)
        elif isinstance(ev, h2.events.StreamEnded):
            self._stream(ev.stream_id).ended = True
        elif isinstance(ev, h2.events.StreamReset):
            self._stream(ev.stream_id).reset_code = int(ev.error_code)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev
            self.goaways.append(ev)

    def _stream(self, sid: int) -> StreamResult:
        if sid not in self.streams:
            self.streams[sid] = StreamResult(sid)
        return self.streams[sid]

    def wait_for(self, pred, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not self.pump(min(left, 0.25)) and not pred():
                return pred()
        return True

    def wait_settings(self, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda: self.settings_received, timeout)

    def wait_closed(self, timeout: float) -> bool:
        """True once the server closed the TCP connection (EOF / reset) within timeout."""
        return self.wait_for(lambda: self.eof, timeout)

    # -- requests ---------------------------------------------------------------------------
    def start_request(self, path: str, method: str = "POST", content_type: str | None = "application/grpc",
                      extra_headers=(), end_stream: bool = False, te: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", self.scheme), (":authority", f"{HOST}"), (":path", path)]
        if content_type is not None:
            headers.append(("content-type", content_type))
        if te:
            headers.append(("te", "trailers"))
        headers += list(extra_headers)
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self._stream(sid)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, chunk: int | None = None, end_stream: bool = True,
                  flush_each: bool = False) -> None:
        if chunk is None:
            chunk = max(1, min(len(body), self.conn.max_outbound_frame_size)) if body else 1
        i = 0
        while i < len(body):
            piece = body[i : i + chunk]
            self._wait_window(sid, len(piece))
            self.conn.send_data(sid, piece)
            i += len(piece)
            if flush_each:
                self.flush()
        if end_stream:
            self.conn.end_stream(sid)
        self.flush()

    def _wait_window(self, sid: int, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.conn.local_flow_control_window(sid) < n:
            self.flush()
            if time.monotonic() > deadline or not self.pump(0.1):
                raise AssertionError("flow-control window never opened by the server")

    def request(self, path: str, body: bytes = b"", timeout: float = 5.0, **kw) -> StreamResult:
        chunk = kw.pop("chunk", None)
        flush_each = kw.pop("flush_each", False)
        sid = self.start_request(path, end_stream=False, **kw)
        self.send_body(sid, body, chunk=chunk, end_stream=True, flush_each=flush_each)
        return self.result(sid, timeout)

    def result(self, sid: int, timeout: float = 5.0) -> StreamResult:
        r = self._stream(sid)
        self.wait_for(
            lambda: r.done or (self.goaway is not None and self.goaway.last_stream_id < sid), timeout)
        return r

    def reset(self, sid: int, code=h2.errors.ErrorCodes.CANCEL) -> None:
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def health_body(service="encore.v1.Decisions") -> bytes:
    return grpc_frame(health_request(service))


def assert_serving(r: StreamResult):
    assert r.done, "no complete response within the timeout"
    assert r.reset_code is None, f"stream reset with code {r.reset_code}"
    assert r.status == "200", r.headers
    assert r.grpc_status == 0, (r.headers, r.trailers)
    assert r.messages() == [SERVING]


# ----------------------------------------------------------------------------------------------
# grpcio channels
# ----------------------------------------------------------------------------------------------
BASE_OPTIONS = [("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)]


def make_channel(server: EncoreProcess, options=(), admin: bool = False):
    """A grpcio channel to the data plane, or with admin=True to the admin plane (same TLS)."""
    opts = BASE_OPTIONS + list(options)
    target = server.admin_target if admin else server.target
    if getattr(server, "tls", False):
        creds = grpc.ssl_channel_credentials(root_certificates=server.cert_pem)
        opts.append(("grpc.ssl_target_name_override", "localhost"))
        return grpc.secure_channel(target, creds, options=opts)
    return grpc.insecure_channel(target, options=opts)


def make_admin_channel(server: EncoreProcess, options=()):
    return make_channel(server, options, admin=True)



# ----------------------------------------------------------------------------------------------
# Misc
# ----------------------------------------------------------------------------------------------

def read_until_eof(sock: socket.socket, timeout: float) -> tuple[bool, bytes]:
    """Read until the peer closes (EOF or reset) or timeout. Returns (closed, bytes_read)."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, bytes(buf)
        sock.settimeout(min(left, 0.25))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError, OSError):
            return True, bytes(buf)
        if not d:
            return True, bytes(buf)
        buf += d


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_self_signed(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Write cert.pem / key.pem (EC P-256, CN=localhost, SAN localhost + 127.0.0.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


# ----------------------------------------------------------------------------------------------
# Decisioning: the demo catalog, the encore CLI, demo snapshots, concurrent Decide calls
# ----------------------------------------------------------------------------------------------
SURFACES = ("cart", "payment", "thank_you", "confirmation", "email")
DECIDE = "/encore.v1.Decisions/Decide"
DEMO_CATALOG_SWIFT = REPO / "Sources" / "EncoreDemo" / "DemoCatalog.swift"
_OFFER_LINE_RE = re.compile(r"^\s*(\{\s*\"offer_id\".*\})\s*$")


def demo_catalog() -> list[dict]:
    """The embedded demo catalog, parsed from the JSONL string literal in DemoCatalog.swift (so
    the tests follow the source of truth instead of a copy). An offer without `surfaces` is
    eligible everywhere."""
    import json

    offers = []
    for line in DEMO_CATALOG_SWIFT.read_text().splitlines():
        m = _OFFER_LINE_RE.match(line)
        if m:
            offers.append(json.loads(m.group(1)))
    if not offers:
        raise RuntimeError(f"no offers found in {DEMO_CATALOG_SWIFT}")
    return offers


def eligible_by_surface(offers: list[dict]) -> dict[str, set[str]]:
    return {s: {o["offer_id"] for o in offers if s in o.get("surfaces", SURFACES)} for s in SURFACES}


def encore_learn_bin() -> pathlib.Path:
    """The encore-learn command of the Python package's venv (scripts/python-venv.sh, which
    scripts/test.sh runs before this suite); skips the test when it is not installed."""
    import pytest

    learn = REPO / ".venv-python" / "bin" / "encore-learn"
    if not learn.exists():
        pytest.skip("encore-learn is not installed: run scripts/python-venv.sh")
    return learn


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Runs `encore ARGS...` (bounded), capturing text output."""
    return subprocess.run(
        [str(encore_bin())] + [str(a) for a in args], stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=timeout, preexec_fn=_die_with_parent,
    )


_WROTE_RE = re.compile(r"wrote \S+: (\S+),")


class DemoSnapshots:
    """Demo snapshots written by `encore snapshot demo` / `snapshot keygen` into `directory`."""

    def __init__(self, directory: pathlib.Path):
        self.dir = pathlib.Path(directory)
        self.path: dict[int, pathlib.Path] = {}
        self.version: dict[int, str] = {}

    def _demo(self, seed: int, out: pathlib.Path, sign_key: pathlib.Path | None = None) -> str:
        args = ["snapshot", "demo", "--seed", str(seed), "--out", str(out)]
        if sign_key is not None:
            args += ["--sign-key", str(sign_key)]
        r = run_cli(*args)
        if r.returncode != 0 or not out.is_file():
            raise RuntimeError(f"encore {' '.join(args)} failed ({r.returncode}): {r.stdout}{r.stderr}")
        m = _WROTE_RE.search(r.stdout + r.stderr)
        if not m:
            raise RuntimeError(f"encore {' '.join(args)}: no 'wrote F: VERSION,' line in {r.stdout!r}{r.stderr!r}")
        return m.group(1)

    def _keygen(self, out: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
        r = run_cli("snapshot", "keygen", "--out", str(out))
        pub = pathlib.Path(str(out) + ".pub")
        if r.returncode != 0 or not out.is_file() or not pub.is_file():
            raise RuntimeError(f"encore snapshot keygen failed ({r.returncode}): {r.stdout}{r.stderr}")
        return out, pub

    def build(self) -> "DemoSnapshots":
        for seed in (11, 12):
            p = self.dir / f"demo-{seed}.snap"
            self.version[seed] = self._demo(seed, p)
            self.path[seed] = p
        self.key, self.pub = self._keygen(self.dir / "signer.pem")
        self.other_key, self.other_pub = self._keygen(self.dir / "other.pem")
        self.signed = self.dir / "demo-13-signed.snap"
        self.signed_version = self._demo(13, self.signed, self.key)
        self.foreign = self.dir / "demo-14-foreign.snap"
        self.foreign_version = self._demo(14, self.foreign, self.other_key)
        return self


def decide_many(stubs_list, requests, timeout: float = 10.0, window: int = 64):
    """Sends every request with futures, round-robin over the stubs, at most `window` in flight.
    Returns (responses, errors) in request order; an entry is None where the other list holds it."""
    responses: list = [None] * len(requests)
    errors: list = [None] * len(requests)
    pending: list = []

    def settle(i, f):
        try:
            responses[i] = f.result()
        except grpc.RpcError as e:
            errors[i] = e

    for i, req in enumerate(requests):
        stub = stubs_list[i % len(stubs_list)]
        pending.append((i, stub.Decide.future(req, timeout=timeout)))
        if len(pending) >= window:
            for j, f in pending[: window // 2]:
                settle(j, f)
            pending = pending[window // 2 :]
    for j, f in pending:
        settle(j, f)
    return responses, errors
