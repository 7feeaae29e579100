import os
import pathlib
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from encore.learn.snapshot import Exploration, Snapshot
from encore.learn.synthetic import INTERCEPT, OFFERS

REPO = pathlib.Path(__file__).resolve().parents[2]


def encore_binary() -> str | None:
    """The `encore` binary: $ENCORE_BIN, else <repo>/.build/{release,debug}/encore, else PATH."""
    env = os.environ.get("ENCORE_BIN")
    if env and os.access(env, os.X_OK):
        return env
    for kind in ("release", "debug"):
        p = REPO / ".build" / kind / "encore"
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which("encore")


def start_encore(binary: str, args, log_path) -> tuple[subprocess.Popen, int, int]:
    """Starts `encore serve` on free data and admin ports (stderr to `log_path`) and waits for it;
    returns (process, data port, admin port). The caller stops it (terminate, wait)."""
    proc = subprocess.Popen([binary, "serve", "--port", "0", "--admin-port", "0", *args],
                            stderr=open(log_path, "w"), stdin=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        text = open(log_path).read()
        assert proc.poll() is None, text[-2000:]
        data = re.search(r"listening on [\d.]+:(\d+)", text)
        admin = re.search(r"admin plane at [\d.]+:(\d+)", text)
        if data and admin:
            return proc, int(data.group(1)), int(admin.group(1))
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"encore serve did not report its ports: {open(log_path).read()[-2000:]}")


@pytest.fixture
def encore_bin():
    path = encore_binary()
    if path is None:
        pytest.skip("the encore binary is absent (no $ENCORE_BIN, .build/{release,debug}/encore or encore on PATH); "
                    "build it with `swift build` to check Python-written snapshots against the real reader")
    return path


def true_snapshot(exploration: Exploration, noise: float = 0.0, seed: int = 0) -> Snapshot:
    """A policy whose scores are the synthetic world's true log-odds (plus optional noise)."""
    rng = np.random.default_rng(seed)
    names = sorted({n for _, _, terms in OFFERS.values() for n in terms})
    features = ["bias"] + names
    offers = sorted(OFFERS)
    shared = np.zeros(len(features))
    shared[0] = INTERCEPT
    weights = np.zeros((len(offers), len(features)))
    for k, o in enumerate(offers):
        for n, w in OFFERS[o][2].items():
            weights[k, features.index(n)] = w
    weights += rng.normal(0, noise, weights.shape) if noise else 0
    return Snapshot(model_version="truth-1", created_at_millis=1_764_000_000_000, features=features,
                    interactions=[], offers=offers, shared_weights=shared, offer_weights=weights,
                    offer_biases=np.zeros(len(offers)), exploration=exploration)


@pytest.fixture
def encore_bin_optional():
    """The encore binary or None (for tests whose other checks stand on their own)."""
    return encore_binary()
