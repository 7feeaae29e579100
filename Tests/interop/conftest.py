"""Fixtures for the Encore interop suite.

Servers are started from ENCORE_BIN (default <repo>/.build/debug/encore) with `--port 0`; the
fixture waits (<= 20 s) for the `listening on HOST:PORT` stderr line and always stops the process
at teardown (SIGTERM, then SIGKILL after a bounded grace period). Child processes also get
PR_SET_PDEATHSIG=SIGKILL, so they die with pytest even if pytest itself is killed.
"""
from __future__ import annotations

import signal

import encore_interop as ei  # first: sets GRPC_ENABLE_FORK_SUPPORT before grpc is imported
import grpc
import pytest

import gen_stubs

PER_TEST_TIMEOUT = 90  # seconds; hard backstop on top of the per-operation timeouts
FIXTURE_DRAIN = "2"  # --drain-timeout for shared servers so teardown is quick


# ----------------------------------------------------------------------------------------------
# Per-test watchdog (no pytest-timeout dependency): SIGALRM raises in the main thread.
# ----------------------------------------------------------------------------------------------
class WatchdogTimeout(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "watchdog(seconds): per-test watchdog for a long test (default PER_TEST_TIMEOUT)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("watchdog")
    seconds = int(marker.args[0]) if marker is not None else PER_TEST_TIMEOUT

    def _alarm(signum, frame):
        raise WatchdogTimeout(f"test exceeded {seconds}s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------------------------
# Stubs, certificates
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def stubs():
    return gen_stubs.import_stubs()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("encore-tls")
    cert, key = ei.make_self_signed(d)
    return cert, key


# ----------------------------------------------------------------------------------------------
# Servers
# ----------------------------------------------------------------------------------------------
def _start(args, tls=None) -> ei.EncoreProcess:
    proc = ei.EncoreProcess(*args)
    proc.tls = tls is not None
    proc.cert_pem = tls[0].read_bytes() if tls else None
    proc.cert_path = str(tls[0]) if tls else None
    try:
        proc.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    return proc


class SharedServer:
    """A session-wide server that is restarted if a previous test crashed it."""

    def __init__(self, args, tls=None):
        self.args, self.tls = list(args), tls
        self.proc: ei.EncoreProcess | None = None

    def get(self) -> ei.EncoreProcess:
        if self.proc is None or not self.proc.alive():
            if self.proc is not None:
                self.proc.kill()
            self.proc = _start(self.args, self.tls)
        return self.proc

    def close(self):
        if self.proc is not None:
            self.proc.stop(grace=5)


def _shared(request, holder: SharedServer):
    proc = holder.get()
    yield proc
    if not proc.alive():
        tail = "\n".join(proc.stderr.splitlines()[-30:])
        pytest.fail(
            f"encore server died during this test (exit code {proc.proc.returncode}); stderr tail:\n{tail}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def _plain_holder():
    h = SharedServer(["--drain-timeout", FIXTURE_DRAIN])
    yield h
    h.close()


@pytest.fixture(scope="session")
def _diag_holder():
    h = SharedServer([*ei.DIAG_ON_DATA_PLANE, "--drain-timeout", FIXTURE_DRAIN])
    yield h
    h.close()


@pytest.fixture(scope="session")
def _tls_holder(tls_files):
    h = SharedServer(
        [*ei.DIAG_ON_DATA_PLANE, "--drain-timeout", FIXTURE_DRAIN, "--tls-cert", str(tls_files[0]),
         "--tls-key", str(tls_files[1])],
        tls=tls_files,
    )
    yield h
    h.close()


@pytest.fixture(scope="session")
def _demo_no_holdout_holder():
    h = SharedServer(["--holdout-share", "0", "--threads", "2", "--drain-timeout", FIXTURE_DRAIN])
    yield h
    h.close()


@pytest.fixture
def plain_server(request, _plain_holder):
    """h2c, no --diagnostics."""
    yield from _shared(request, _plain_holder)


@pytest.fixture
def demo_server(request, _plain_holder):
    """The embedded demo as `encore serve` serves it with no data flags (holdout 5%). Shared:
    tests must not change its models or catalog (use server_factory for that)."""
    yield from _shared(request, _plain_holder)


@pytest.fixture
def demo_no_holdout(request, _demo_no_holdout_holder):
    """The embedded demo with --holdout-share 0 (every customer gets placements). Shared, read-only."""
    yield from _shared(request, _demo_no_holdout_holder)


@pytest.fixture
def diag_server(request, _diag_holder):
    """h2c with --diagnostics."""
    yield from _shared(request, _diag_holder)


@pytest.fixture
def tls_server(request, _tls_holder):
    """TLS with --diagnostics."""
    yield from _shared(request, _tls_holder)


@pytest.fixture(params=["h2c", "tls"])
def any_diag_server(request, _diag_holder, _tls_holder):
    """The diagnostics server over h2c and over TLS."""
    holder = _diag_holder if request.param == "h2c" else _tls_holder
    yield from _shared(request, holder)


@pytest.fixture
def server_factory(tls_files):
    """Start a dedicated server with extra flags; every one is stopped at teardown."""
    started: list[ei.EncoreProcess] = []

    def factory(*args, tls=False):
        a = list(args)
        if tls:
            a += ["--tls-cert", str(tls_files[0]), "--tls-key", str(tls_files[1])]
        p = _start(a, tls_files if tls else None)
        started.append(p)
        return p

    yield factory
    for p in started:
        p.stop(grace=3)


# ----------------------------------------------------------------------------------------------
# Demo snapshots and signing keys (written once per session with the encore CLI)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def snapshots(tmp_path_factory):
    """Demo snapshots of seeds 11 and 12 (unsigned), a key pair, a snapshot of seed 13 signed with
    it and one of seed 14 signed with another key. Attributes: path[seed], version[seed],
    key, pub, other_key, other_pub, signed (path), signed_version, foreign (path)."""
    d = tmp_path_factory.mktemp("snapshots")
    ns = ei.DemoSnapshots(d)
    try:
        ns.build()
    except (RuntimeError, OSError) as e:
        pytest.fail(str(e), pytrace=False)
    return ns


# ----------------------------------------------------------------------------------------------
# grpcio channels
# ----------------------------------------------------------------------------------------------
make_channel = ei.make_channel


@pytest.fixture
def channel_for():
    chans = []

    def factory(server, options=(), admin=False):
        ch = make_channel(server, options, admin=admin)
        chans.append(ch)
        return ch

    yield factory
    for ch in chans:
        ch.close()


@pytest.fixture
def admin_channel_for(channel_for):
    """A grpcio channel to a server's admin plane (Models, Catalog, Customers, Diagnostics)."""

    def factory(server, options=()):
        return channel_for(server, options, admin=True)

    return factory


@pytest.fixture
def h2conn():
    clients = []

    def factory(server, **kw):
        tls = ei.client_tls_context() if getattr(server, "tls", False) else None
        c = ei.H2Client(server.port, tls=tls, **kw)
        clients.append(c)
        assert c.wait_settings(5), "no SETTINGS frame from the server within 5 s"
        return c

    yield factory
    for c in clients:
        c.close()
