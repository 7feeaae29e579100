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


def with_slot1(**kw):
    snap = sample(**kw)
    k = len(snap.offers)
    rng = np.random.default_rng(5)
    snap.slot1_biases = rng.normal(-0.8, 0.2, k).astype(np.float32)
    snap.slot1_pairs = rng.normal(0, 0.7, (k, k)).astype(np.float32)
    return snap


def test_slot1_section_round_trips_and_is_optional():
    snap = with_slot1()
    data = encode_snapshot(snap)
    back = decode_snapshot(data)
    assert np.array_equal(back.slot1_biases, snap.slot1_biases)
    assert np.array_equal(back.slot1_pairs, snap.slot1_pairs)
    # Without it, the file has no SLOT1 section and is byte for byte what it was before.
    plain = sample()
    assert not decode_snapshot(encode_snapshot(plain)).has_slot1
    k = len(snap.offers)
    assert len(data) - len(encode_snapshot(plain)) == 24 + 4 * (k + k * k)  # one table entry + the floats
    # The export carries it too.
    back = Snapshot.from_export(snap.to_export())
    assert np.array_equal(back.slot1_pairs, snap.slot1_pairs)
    assert "slot1" not in plain.to_export()


def test_slot1_section_problems_are_refused():
    k = len(sample().offers)
    for name, index, value, match in (("slot1_biases", (1,), np.nan, "slot-1 bias is nan"),
                                      ("slot1_pairs", (0, 2), np.inf, r"pair term \(slot 0 .*, slot 1 .*\) is inf"),
                                      ("slot1_pairs", (2, 0), -2e6, "beyond the ±1e6 weight bound")):
        snap = with_slot1()
        getattr(snap, name)[index] = value
        with pytest.raises(SnapshotError, match=match):
            encode_snapshot(snap)
    snap = with_slot1()
    snap.slot1_pairs = snap.slot1_pairs[:, :-1]
    with pytest.raises(SnapshotError, match=f"expected {k} x {k}"):
        encode_snapshot(snap)
    with pytest.raises(SnapshotError, match="both"):
        Snapshot(**{**sample().__dict__, "slot1_biases": np.zeros(k)})
    # A SLOT1 payload of the wrong size is refused by the reader (checksum recomputed).
    import hashlib

    data = bytearray(encode_snapshot(with_slot1()))
    body = data[:-144]
    body = body[:-4]  # SLOT1 is the last section: drop its last float and fix its table length
    count = int.from_bytes(body[12:16], "little")
    vlen = int.from_bytes(body[56:58], "little")
    table = 58 + vlen + (-(58 + vlen)) % 8
    entry = table + 24 * (count - 1)
    assert int.from_bytes(body[entry:entry + 4], "little") == 8
    length = int.from_bytes(body[entry + 16:entry + 24], "little") - 4
    body[entry + 16:entry + 24] = length.to_bytes(8, "little")
    broken = bytes(body) + b"ENCTRLR1" + hashlib.sha256(bytes(body)).digest() + bytes(104)
    with pytest.raises(SnapshotError, match=f"SLOT1: expected {4 * (k + k * k)} bytes"):
        decode_snapshot(broken)


def test_real_reader_accepts_the_slot1_section(tmp_path, encore_bin):
    snap = with_slot1()
    path = str(tmp_path / "slot1.snap")
    write_snapshot(snap, path)
    out = subprocess.run([encore_bin, "snapshot", "verify", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr + out.stdout
    out = subprocess.run([encore_bin, "snapshot", "inspect", path], capture_output=True, text=True)
    k = len(snap.offers)
    assert out.returncode == 0 and f"biases and {k} x {k} pair terms" in out.stdout, out.stdout
    # The binary's builder writes the same section from the export.
    write_export(snap, str(tmp_path / "e.json"))
    out = subprocess.run([encore_bin, "snapshot", "build", "--from", str(tmp_path / "e.json"), "--out",
                          str(tmp_path / "built.snap")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    built = read_snapshot(str(tmp_path / "built.snap"))
    assert np.array_equal(built.slot1_biases, snap.slot1_biases)
    assert np.array_equal(built.slot1_pairs, snap.slot1_pairs)
    # A non-finite term written past the Python checks is refused by the real reader.
    data = bytearray(encode_snapshot(snap))
    import hashlib
    import struct

    body = data[:-144]
    body[-4:] = struct.pack("<f", float("nan"))
    (tmp_path / "nan.snap").write_bytes(bytes(body) + b"ENCTRLR1" + hashlib.sha256(bytes(body)).digest() + bytes(104))
    out = subprocess.run([encore_bin, "snapshot", "verify", str(tmp_path / "nan.snap")], capture_output=True,
                         text=True)
    assert out.returncode != 0 and "slot-1 model: pair term" in out.stderr + out.stdout, out.stderr + out.stdout
