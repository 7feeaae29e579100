"""The Python snapshot writer against its own reader and the real `encore` reader."""
import json
import subprocess

import numpy as np
import pytest

from conftest import true_snapshot
from encore.learn.snapshot import (Exploration, Snapshot, SnapshotError, decode_snapshot, encode_snapshot,
                                   read_snapshot, write_export, write_snapshot)


def sample(**kw):
    snap = true_snapshot(Exploration("squarecb", gamma=75.0), noise=0.1, seed=2)
    snap.interactions = [(snap.features.index("order.is_gift"), snap.features.index("segment=gift_giver"))]
    w = snap.width
    snap.shared_weights = np.concatenate([snap.shared_weights, [0.25]]).astype(np.float32)
    snap.offer_weights = np.concatenate([snap.offer_weights, np.full((len(snap.offers), 1), 0.5)], 1).astype(
        np.float32)
    assert snap.offer_weights.shape[1] == w
    snap.ope = {"estimates": {"dr": {"value": 0.3}}, "note": "ünïcode ok"}
    for k, v in kw.items():
        setattr(snap, k, v)
    return snap


def test_round_trip():
    snap = sample()
    data = encode_snapshot(snap)
    assert data[:8] == b"ENCSNAP\0" and data[-144:-136] == b"ENCTRLR1"
    back = decode_snapshot(data)
    assert back.model_version == snap.model_version and back.features == snap.features
    assert back.interactions == snap.interactions and back.offers == snap.offers
    assert np.array_equal(back.shared_weights, snap.shared_weights)
    assert np.array_equal(back.offer_weights, snap.offer_weights)
    assert np.array_equal(back.offer_biases, snap.offer_biases)
    assert back.exploration == snap.exploration and back.ope == snap.ope and not back.signed


def test_corruption_is_detected():
    data = bytearray(encode_snapshot(sample()))
    data[100] ^= 1
    with pytest.raises(SnapshotError, match="checksum"):
        decode_snapshot(bytes(data))
    with pytest.raises(SnapshotError, match="magic"):
        decode_snapshot(b"XXXXXXXX" + bytes(encode_snapshot(sample()))[8:])


def test_invalid_snapshots_are_refused_before_writing():
    snap = sample()
    snap.shared_weights[2] = np.nan
    with pytest.raises(SnapshotError, match="shared weights: weight 2"):
        encode_snapshot(snap)
    with pytest.raises(SnapshotError, match="unknown feature name"):
        encode_snapshot(sample(features=["bias", "order.total"] + sample().features[2:]))
    with pytest.raises(SnapshotError, match="gamma"):
        encode_snapshot(sample(exploration=Exploration("squarecb", gamma=-1)))


def test_weights_beyond_the_server_bound_are_refused_before_writing():
    for value in (3.0e38, -2e6):
        snap = sample()
        snap.offer_weights[1, 0] = value
        with pytest.raises(SnapshotError, match="beyond the ±1e6 weight bound"):
            encode_snapshot(snap)
    snap = sample()
    snap.offer_biases[0] = 1e7
    with pytest.raises(SnapshotError, match="offer biases.*1e6"):
        encode_snapshot(snap)
    snap = sample()
    snap.shared_weights[0] = -1e6  # the bound itself is accepted
    decode_snapshot(encode_snapshot(snap))


def test_export_round_trip(tmp_path):
    snap = sample()
    write_export(snap, str(tmp_path / "e.json"))
    obj = json.loads((tmp_path / "e.json").read_text())
    assert set(obj) >= {"model_version", "features", "interactions", "offers", "shared_weights", "offer_weights",
                        "offer_biases", "link", "objective", "exploration", "rules", "ope"}
    back = read_snapshot(str(tmp_path / "e.json"))
    assert np.array_equal(back.offer_weights, snap.offer_weights) and back.exploration == snap.exploration


def test_real_reader_accepts_python_snapshots(tmp_path, encore_bin):
    for e in (Exploration("squarecb", gamma=75.0), Exploration("epsilon_greedy", epsilon=0.1),
              Exploration("softmax", temperature=0.2), Exploration("uniform")):
        path = str(tmp_path / f"{e.kind}.snap")
        write_snapshot(sample(exploration=e), path)
        out = subprocess.run([encore_bin, "snapshot", "verify", path], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr + out.stdout
        assert "ok: truth-1" in out.stdout
        out = subprocess.run([encore_bin, "snapshot", "inspect", path], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert e.kind in out.stdout and "ünïcode ok" in out.stdout
    # The binary's own builder agrees with the Python writer on every weight.
    write_export(sample(), str(tmp_path / "e.json"))
    out = subprocess.run([encore_bin, "snapshot", "build", "--from", str(tmp_path / "e.json"), "--out",
                          str(tmp_path / "built.snap")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    built, mine = read_snapshot(str(tmp_path / "built.snap")), sample()
    assert np.array_equal(built.shared_weights, mine.shared_weights)
    assert np.array_equal(built.offer_weights, mine.offer_weights) and built.interactions == mine.interactions
    # And the Python reader accepts what the binary writes (its demo snapshot).
    out = subprocess.run([encore_bin, "snapshot", "demo", "--seed", "4", "--out", str(tmp_path / "demo.snap")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    demo = read_snapshot(str(tmp_path / "demo.snap"))
    assert demo.model_version.startswith("demo-4-") and demo.exploration.kind == "squarecb"


def test_real_reader_refuses_a_corrupt_python_snapshot(tmp_path, encore_bin):
    data = bytearray(encode_snapshot(sample()))
    data[70] ^= 0xFF
    (tmp_path / "bad.snap").write_bytes(bytes(data))
    out = subprocess.run([encore_bin, "snapshot", "verify", str(tmp_path / "bad.snap")], capture_output=True,
                         text=True)
    assert out.returncode != 0
