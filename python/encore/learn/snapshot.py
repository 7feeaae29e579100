"""Encore model snapshots in Python: the binary file format (version 1) and the JSON export.

Both are documented in docs/snapshots.md. `write_snapshot` produces a file that
`encore snapshot verify` and `encore push` accept without the `encore` binary being involved;
`read_snapshot` parses and validates one (everything except the Ed25519 signature, which is
reported but not checked here).

Binary layout (all integers little-endian)::

    header   "ENCSNAP\\0" | u32 format version (1) | u32 section count | i64 created-at ms
             | SHA-256 of the SCHEMA section (32) | u16 model-version length | model version
             | zero padding to a multiple of 8
    table    per section: u32 type | u32 reserved (0) | u64 offset | u64 length
    sections 1 META, 2 SCHEMA, 3 OFFERS, 4 WEIGHTS (f32), 5 EXPLORATION, 6 RULES?, 7 OPE?,
             8 SLOT1? (f32: one slot-1 bias per offer, then offers x offers pair terms, row = slot 0)
    trailer  "ENCTRLR1" | SHA-256 of every byte before the trailer | u8 flags | 7 reserved
             | 32-byte Ed25519 public key | 64-byte signature   (zeros when unsigned)
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"ENCSNAP\0"
TRAILER_MAGIC = b"ENCTRLR1"
# Largest |weight| or |bias| the server accepts (ModelSnapshot.maxWeightMagnitude).
MAX_WEIGHT_MAGNITUDE = 1e6
FORMAT_VERSION = 1
TRAILER_BYTES = 144
MAX_FILE_BYTES = 512 << 20

SECTION_META = 1
SECTION_SCHEMA = 2
SECTION_OFFERS = 3
SECTION_WEIGHTS = 4
SECTION_EXPLORATION = 5
SECTION_RULES = 6
SECTION_OPE = 7
SECTION_SLOT1 = 8
SECTION_NAMES = {1: "META", 2: "SCHEMA", 3: "OFFERS", 4: "WEIGHTS", 5: "EXPLORATION", 6: "RULES", 7: "OPE",
                 8: "SLOT1"}
# Most offers a snapshot with a SLOT1 section may list (ModelSnapshot.maxSlot1Offers).
MAX_SLOT1_OFFERS = 1024

EXPLORATION_KINDS = ("uniform", "epsilon_greedy", "softmax", "squarecb")


class SnapshotError(ValueError):
    """A snapshot or export that is not valid; the message names the problem."""


@dataclass
class Exploration:
    kind: str = "squarecb"
    gamma: float | None = None
    epsilon: float | None = None
    temperature: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("epsilon", "temperature", "gamma"):
            value = getattr(self, key)
            if value is not None:
                out[key] = float(value)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], *, defaults: bool = False) -> "Exploration":
        """`defaults=True` applies the JSON export's defaults (as `encore snapshot build` does);
        the binary section must name its parameter."""
        if not isinstance(obj, dict) or not isinstance(obj.get("kind", "squarecb" if defaults else None), str):
            raise SnapshotError("EXPLORATION: expected an object with a string 'kind'")
        kind = obj.get("kind", "squarecb")
        e = cls(kind=kind, gamma=obj.get("gamma"), epsilon=obj.get("epsilon"), temperature=obj.get("temperature"))
        need = {"squarecb": ("gamma", 100.0), "epsilon_greedy": ("epsilon", 0.05), "softmax": ("temperature", 1.0)}
        if kind not in EXPLORATION_KINDS:
            raise SnapshotError(
                f"EXPLORATION: unknown kind '{kind}' (uniform, epsilon_greedy, softmax, squarecb)")
        if kind in need:
            name, default = need[kind]
            if getattr(e, name) is None:
                if not defaults:
                    raise SnapshotError(f"EXPLORATION: {kind} needs '{name}'")
                setattr(e, name, default)
        problem = e.validation_error()
        if problem:
            raise SnapshotError(f"exploration: {problem}")
        return e

    def validation_error(self) -> str | None:
        if self.kind == "uniform":
            return None
        if self.kind == "epsilon_greedy":
            v = self.epsilon
            return None if v is not None and math.isfinite(v) and 0 <= v <= 1 else f"epsilon must be in [0, 1], got {v}"
        if self.kind == "softmax":
            v = self.temperature
            ok = v is not None and math.isfinite(v) and v > 0
            return None if ok else f"softmax temperature must be a positive finite number, got {v}"
        if self.kind == "squarecb":
            v = self.gamma
            ok = v is not None and math.isfinite(v) and v >= 0
            return None if ok else f"SquareCB gamma must be a non-negative finite number, got {v}"
        return f"unknown exploration kind {self.kind}"

    def describe(self) -> str:
        if self.kind == "squarecb":
            return f"squarecb(gamma={self.gamma})"
        if self.kind == "epsilon_greedy":
            return f"epsilon_greedy(epsilon={self.epsilon})"
        if self.kind == "softmax":
            return f"softmax(temperature={self.temperature})"
        return "uniform"


@dataclass
class Snapshot:
    """A policy as the server sees it. Weights are kept as float32, exactly as stored."""

    model_version: str
    created_at_millis: int
    features: list[str]
    interactions: list[tuple[int, int]]
    offers: list[str]
    shared_weights: np.ndarray  # (width,) float32
    offer_weights: np.ndarray  # (len(offers), width) float32
    offer_biases: np.ndarray  # (len(offers),) float32
    link: str = "logistic"
    objective: str = "conversion"
    exploration: Exploration = field(default_factory=lambda: Exploration("squarecb", gamma=100.0))
    rules: Any = None
    ope: Any = None
    # Optional slot-1 model (the SLOT1 section; docs/snapshots.md): offer b's slot-1 raw score
    # beside slot-0 offer a is its slot-0 raw score + slot1_biases[b] + slot1_pairs[a, b]
    # (float32). None: slot 1 is scored like slot 0.
    slot1_biases: np.ndarray | None = None  # (len(offers),) float32
    slot1_pairs: np.ndarray | None = None  # (len(offers), len(offers)) float32
    # Filled by read_snapshot.
    sha256: str | None = None
    signed: bool = False

    def __post_init__(self) -> None:
        self.interactions = [(int(a), int(b)) for a, b in self.interactions]
        self.shared_weights = np.asarray(self.shared_weights, dtype=np.float32).reshape(-1)
        self.offer_weights = np.asarray(self.offer_weights, dtype=np.float32).reshape(len(self.offers), -1) \
            if len(self.offers) else np.zeros((0, self.width), dtype=np.float32)
        self.offer_biases = np.asarray(self.offer_biases, dtype=np.float32).reshape(-1)
        if (self.slot1_biases is None) != (self.slot1_pairs is None):
            raise SnapshotError("slot-1 model: give both slot1_biases and slot1_pairs, or neither")
        if self.slot1_biases is not None:
            self.slot1_biases = np.asarray(self.slot1_biases, dtype=np.float32).reshape(-1)
            self.slot1_pairs = np.asarray(self.slot1_pairs, dtype=np.float32)

    @property
    def has_slot1(self) -> bool:
        return self.slot1_biases is not None

    @property
    def width(self) -> int:
        return len(self.features) + len(self.interactions)

    def name_at(self, i: int) -> str:
        if i < len(self.features):
            return self.features[i]
        a, b = self.interactions[i - len(self.features)]
        return f"{self.features[a]}*{self.features[b]}"

    def validate(self) -> None:
        """The checks the server's ModelSnapshot.init makes, with the same wording."""
        from .features import feature_name_error

        v = self.model_version.encode("utf-8")
        if not 1 <= len(v) <= 128:
            raise SnapshotError("model version must be 1 to 128 bytes")
        if not self.features:
            raise SnapshotError("feature schema: feature schema is empty")
        seen: set[str] = set()
        for i, name in enumerate(self.features):
            if not name or len(name.encode()) > 256:
                raise SnapshotError(f"feature schema: feature {i} has an empty or over-long name")
            if name in seen:
                raise SnapshotError(f"feature schema: feature {name} is listed twice")
            seen.add(name)
            problem = feature_name_error(name)
            if problem:
                raise SnapshotError(f"feature schema: {problem}")
        for k, (a, b) in enumerate(self.interactions):
            if not (0 <= a < len(self.features) and 0 <= b < len(self.features)):
                raise SnapshotError(
                    f"feature schema: interaction {k} refers to feature {a} x {b}, outside 0..<{len(self.features)}")
        problem = self.exploration.validation_error()
        if problem:
            raise SnapshotError(f"exploration: {problem}")
        if self.link not in ("logistic", "identity"):
            raise SnapshotError(f"link must be logistic or identity, got {self.link}")
        if self.objective not in ("conversion", "revenue"):
            raise SnapshotError(f"objective must be conversion or revenue, got {self.objective}")
        w = self.width
        if self.shared_weights.shape != (w,):
            raise SnapshotError(
                f"shared weights: expected {w} (features + interactions), got {self.shared_weights.size}")
        if self.offer_weights.shape != (len(self.offers), w):
            raise SnapshotError(f"offer weights: expected {len(self.offers)} x {w}, got {self.offer_weights.shape}")
        if self.offer_biases.shape != (len(self.offers),):
            raise SnapshotError(f"offer biases: expected {len(self.offers)}, got {self.offer_biases.size}")
        ids: set[str] = set()
        for oid in self.offers:
            if not oid or len(oid.encode()) > 256:
                raise SnapshotError("offer table: an offer id is empty or over 256 bytes")
            if oid in ids:
                raise SnapshotError(f"offer table: offer {oid} is listed twice")
            ids.add(oid)
        bad = np.flatnonzero(~np.isfinite(self.shared_weights))
        if bad.size:
            i = int(bad[0])
            raise SnapshotError(f"shared weights: weight {i} ({self.name_at(i)}) is {self.shared_weights[i]}")
        bad = np.argwhere(~np.isfinite(self.offer_weights))
        if bad.size:
            o, j = (int(x) for x in bad[0])
            raise SnapshotError(
                f"offer weights: offer {self.offers[o]} weight {j} ({self.name_at(j)}) is {self.offer_weights[o, j]}")
        bad = np.flatnonzero(~np.isfinite(self.offer_biases))
        if bad.size:
            o = int(bad[0])
            raise SnapshotError(f"offer biases: offer {self.offers[o]} bias is {self.offer_biases[o]}")
        # The server refuses any weight or bias beyond MAX_WEIGHT_MAGNITUDE (docs/snapshots.md).
        bad = np.flatnonzero(np.abs(self.shared_weights) > MAX_WEIGHT_MAGNITUDE)
        if bad.size:
            i = int(bad[0])
            raise SnapshotError(f"shared weights: weight {i} ({self.name_at(i)}) is {self.shared_weights[i]}, "
                                "beyond the ±1e6 weight bound")
        bad = np.argwhere(np.abs(self.offer_weights) > MAX_WEIGHT_MAGNITUDE)
        if bad.size:
            o, j = (int(x) for x in bad[0])
            raise SnapshotError(f"offer weights: offer {self.offers[o]} weight {j} ({self.name_at(j)}) is "
                                f"{self.offer_weights[o, j]}, beyond the ±1e6 weight bound")
        bad = np.flatnonzero(np.abs(self.offer_biases) > MAX_WEIGHT_MAGNITUDE)
        if bad.size:
            o = int(bad[0])
            raise SnapshotError(f"offer biases: offer {self.offers[o]} bias is {self.offer_biases[o]}, "
                                "beyond the ±1e6 weight bound")
        if self.has_slot1:
            k = len(self.offers)
            if k > MAX_SLOT1_OFFERS:
                raise SnapshotError(f"slot-1 model: {k} offers, over the {MAX_SLOT1_OFFERS} a snapshot with a "
                                    "slot-1 model may list")
            if self.slot1_biases.shape != (k,):
                raise SnapshotError(f"slot-1 model: expected {k} slot-1 biases, got {self.slot1_biases.size}")
            if self.slot1_pairs.shape != (k, k):
                raise SnapshotError(f"slot-1 model: expected {k} x {k} = {k * k} pair terms, got "
                                    f"{self.slot1_pairs.size}")
            bad = np.flatnonzero(~(np.abs(self.slot1_biases) <= MAX_WEIGHT_MAGNITUDE))
            if bad.size:
                o = int(bad[0])
                v = self.slot1_biases[o]
                raise SnapshotError(f"slot-1 model: offer {self.offers[o]} slot-1 bias is {v}"
                                    + (", beyond the ±1e6 weight bound" if np.isfinite(v) else ""))
            bad = np.argwhere(~(np.abs(self.slot1_pairs) <= MAX_WEIGHT_MAGNITUDE))
            if bad.size:
                a, b = (int(x) for x in bad[0])
                v = self.slot1_pairs[a, b]
                raise SnapshotError(f"slot-1 model: pair term (slot 0 {self.offers[a]}, slot 1 {self.offers[b]}) is {v}"
                                    + (", beyond the ±1e6 weight bound" if np.isfinite(v) else ""))

    # -- JSON export (docs/snapshots.md "Building one") -------------------------------------

    def to_export(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "created_at_millis": int(self.created_at_millis),
            "features": list(self.features),
            "interactions": [[a, b] for a, b in self.interactions],
            "offers": list(self.offers),
            "shared_weights": [float(x) for x in self.shared_weights],
            "offer_weights": [[float(x) for x in row] for row in self.offer_weights],
            "offer_biases": [float(x) for x in self.offer_biases],
            "link": self.link,
            "objective": self.objective,
            "exploration": self.exploration.to_json(),
            "rules": self.rules if self.rules is not None else {},
            "ope": self.ope if self.ope is not None else {},
            **({"slot1": {"offer_biases": [float(x) for x in self.slot1_biases],
                          "pairs": [[float(x) for x in row] for row in self.slot1_pairs]}}
               if self.has_slot1 else {}),
        }

    @classmethod
    def from_export(cls, obj: dict[str, Any]) -> "Snapshot":
        """Reads the JSON export with `encore snapshot build`'s defaults (interactions by index
        or name; link logistic; objective conversion; exploration squarecb gamma 100)."""
        try:
            features = list(obj["features"])
            pairs: list[tuple[int, int]] = []
            for k, refs in enumerate(obj.get("interactions") or []):
                if len(refs) != 2:
                    raise SnapshotError(f"interactions[{k}] must name two features")
                idx = []
                for r in refs:
                    if isinstance(r, str):
                        if r not in features:
                            raise SnapshotError(f"interactions[{k}]: unknown feature {r}")
                        idx.append(features.index(r))
                    else:
                        idx.append(int(r))
                pairs.append((idx[0], idx[1]))
            offers = list(obj["offers"])
            rows = obj["offer_weights"]
            if len(rows) != len(offers):
                raise SnapshotError(f"offer_weights has {len(rows)} rows for {len(offers)} offers")
            width = len(features) + len(pairs)
            for i, row in enumerate(rows):
                if len(row) != width:
                    raise SnapshotError(f"offer_weights[{i}] ({offers[i]}) has {len(row)} weights, expected {width}")
            biases = obj.get("offer_biases")
            slot1 = obj.get("slot1")
            if slot1 is not None:
                prow = slot1["pairs"]
                if len(prow) != len(offers):
                    raise SnapshotError(f"slot1.pairs has {len(prow)} rows for {len(offers)} offers")
                for i, row in enumerate(prow):
                    if len(row) != len(offers):
                        raise SnapshotError(f"slot1.pairs[{i}] ({offers[i]}) has {len(row)} terms, "
                                            f"expected {len(offers)}")
            snap = cls(
                model_version=obj["model_version"],
                created_at_millis=int(obj.get("created_at_millis") or 0),
                features=features, interactions=pairs, offers=offers,
                shared_weights=np.array(obj["shared_weights"], dtype=np.float32),
                offer_weights=np.array(rows, dtype=np.float32).reshape(len(offers), width),
                offer_biases=np.array(biases if biases is not None else [0.0] * len(offers), dtype=np.float32),
                link=obj.get("link") or "logistic", objective=obj.get("objective") or "conversion",
                exploration=Exploration.from_json(obj.get("exploration") or {"kind": "squarecb"}, defaults=True),
                rules=obj.get("rules"), ope=obj.get("ope"),
                slot1_biases=None if slot1 is None else np.array(slot1["offer_biases"], dtype=np.float32),
                slot1_pairs=None if slot1 is None else np.array(slot1["pairs"], dtype=np.float32).reshape(
                    len(offers), len(offers)))
        except KeyError as e:
            raise SnapshotError(f"export is not valid: missing key {e}") from None
        snap.validate()
        return snap


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def encode_snapshot(snap: Snapshot) -> bytes:
    """Serializes `snap` (unsigned) in format version 1."""
    snap.validate()
    sections: list[tuple[int, bytes]] = []
    sections.append((SECTION_META, _json_bytes({"link": snap.link, "objective": snap.objective})))
    schema = _json_bytes({"features": snap.features, "interactions": [[a, b] for a, b in snap.interactions]})
    sections.append((SECTION_SCHEMA, schema))
    sections.append((SECTION_OFFERS, _json_bytes(snap.offers)))
    parts = [snap.shared_weights.astype("<f4").tobytes()]
    for o in range(len(snap.offers)):
        parts.append(np.float32(snap.offer_biases[o]).astype("<f4").tobytes())
        parts.append(snap.offer_weights[o].astype("<f4").tobytes())
    sections.append((SECTION_WEIGHTS, b"".join(parts)))
    sections.append((SECTION_EXPLORATION, _json_bytes(snap.exploration.to_json())))
    if snap.rules is not None:
        sections.append((SECTION_RULES, _json_bytes(snap.rules)))
    if snap.ope is not None:
        sections.append((SECTION_OPE, _json_bytes(snap.ope)))
    if snap.has_slot1:
        sections.append((SECTION_SLOT1, snap.slot1_biases.astype("<f4").tobytes()
                         + snap.slot1_pairs.astype("<f4").tobytes()))

    version = snap.model_version.encode("utf-8")
    out = bytearray(MAGIC)
    out += struct.pack("<IIq", FORMAT_VERSION, len(sections), int(snap.created_at_millis))
    out += hashlib.sha256(schema).digest()
    out += struct.pack("<H", len(version)) + version
    while len(out) % 8:
        out.append(0)
    offset = len(out) + 24 * len(sections)
    for kind, payload in sections:
        out += struct.pack("<IIQQ", kind, 0, offset, len(payload))
        offset += len(payload)
    for _, payload in sections:
        out += payload
    digest = hashlib.sha256(bytes(out)).digest()
    out += TRAILER_MAGIC + digest + bytes(8 + 32 + 64)
    return bytes(out)


def write_snapshot(snap: Snapshot, path: str) -> bytes:
    data = encode_snapshot(snap)
    with open(path, "wb") as f:
        f.write(data)
    return data


def write_export(snap: Snapshot, path: str) -> None:
    snap.validate()
    with open(path, "w", encoding="utf-8") as f:
        json.dump(snap.to_export(), f, indent=1, allow_nan=False)
        f.write("\n")


def decode_snapshot(data: bytes) -> Snapshot:
    """Parses and validates a snapshot, in the server's order of checks (signature excepted)."""
    def bad(message: str) -> SnapshotError:
        return SnapshotError(message)

    n = len(data)
    if n > MAX_FILE_BYTES:
        raise bad(f"snapshot is {n} bytes, over the {MAX_FILE_BYTES}-byte limit")
    if n < 58 + TRAILER_BYTES:
        raise bad(f"truncated snapshot: {n} bytes is shorter than a header and trailer")
    if data[:8] != MAGIC:
        raise bad("wrong magic: not an Encore snapshot")
    (version,) = struct.unpack_from("<I", data, 8)
    if version != FORMAT_VERSION:
        raise bad(f"unsupported snapshot format version {version} (this reader reads version {FORMAT_VERSION})")
    body_end = n - TRAILER_BYTES
    if data[body_end:body_end + 8] != TRAILER_MAGIC:
        raise bad("truncated snapshot: trailer magic missing at the end of the file")
    digest = hashlib.sha256(data[:body_end]).digest()
    if data[body_end + 8:body_end + 40] != digest:
        raise bad("checksum mismatch: the snapshot is corrupt (SHA-256 of the body differs from the trailer)")
    flags = data[body_end + 40]
    if flags > 1 or any(data[body_end + 41:body_end + 48]):
        raise bad(f"trailer flags or reserved bytes are not valid (flags {flags})")
    signed = flags == 1
    if not signed and any(data[body_end + 48:body_end + 144]):
        raise bad("unsigned snapshot carries key or signature bytes in its trailer")
    section_count, created_at = struct.unpack_from("<Iq", data, 12)
    schema_hash = data[24:56]
    (vlen,) = struct.unpack_from("<H", data, 56)
    if not (1 <= vlen <= 128 and 58 + vlen <= body_end):
        raise bad(f"model version length {vlen} is out of range")
    try:
        model_version = data[58:58 + vlen].decode("utf-8")
    except UnicodeDecodeError:
        raise bad("model version is not valid UTF-8") from None
    table = 58 + vlen
    table += (-table) % 8
    if not (1 <= section_count <= 16 and table + 24 * section_count <= body_end):
        raise bad(f"section count {section_count} is out of range or the section table is truncated")
    data_start = table + 24 * section_count
    payloads: dict[int, bytes] = {}
    ranges: list[tuple[int, int]] = []
    for i in range(section_count):
        kind, _reserved, offset, length = struct.unpack_from("<IIQQ", data, table + 24 * i)
        if kind not in SECTION_NAMES:
            raise bad(f"section {i} has unknown type {kind}")
        name = SECTION_NAMES[kind]
        if kind in payloads:
            raise bad(f"section {name} appears twice")
        if offset < data_start or length > body_end or offset > body_end - length:
            raise bad(f"section {name} (offset {offset}, length {length}) lies outside the snapshot body")
        for lo, hi in ranges:
            if offset < hi and lo < offset + length:
                raise bad(f"section {name} overlaps another section at {lo}..<{hi}")
        ranges.append((offset, offset + length))
        payloads[kind] = data[offset:offset + length]
    for kind in (1, 2, 3, 4, 5):
        if kind not in payloads:
            raise bad(f"required section {SECTION_NAMES[kind]} is missing")
    if hashlib.sha256(payloads[SECTION_SCHEMA]).digest() != schema_hash:
        raise bad("feature schema hash in the header does not match the SCHEMA section")

    def js(kind: int) -> Any:
        try:
            return json.loads(payloads[kind].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise bad(f"section {SECTION_NAMES[kind]} is not valid JSON: {e}") from None

    meta, schema, offers, expl = js(1), js(2), js(3), js(5)
    if not isinstance(meta, dict) or meta.get("link") not in ("logistic", "identity") \
            or meta.get("objective") not in ("conversion", "revenue"):
        raise bad("section META is not valid JSON of the expected shape")
    if not isinstance(schema, dict) or not isinstance(schema.get("features"), list) \
            or not isinstance(schema.get("interactions"), list):
        raise bad("section SCHEMA is not valid JSON of the expected shape")
    if not isinstance(offers, list) or not all(isinstance(o, str) for o in offers):
        raise bad("section OFFERS is not valid JSON of the expected shape")
    pairs = []
    for k, pair in enumerate(schema["interactions"]):
        if not isinstance(pair, list) or len(pair) != 2:
            raise bad(f"SCHEMA: interaction {k} must name exactly two features")
        pairs.append((int(pair[0]), int(pair[1])))
    features = list(schema["features"])
    width = len(features) + len(pairs)
    weights = payloads[SECTION_WEIGHTS]
    expected = 4 * (width + len(offers) * (width + 1))
    if len(weights) != expected:
        raise bad(f"WEIGHTS: expected {expected} bytes for {len(offers)} offers x {width} weights, got {len(weights)}")
    floats = np.frombuffer(weights, dtype="<f4").astype(np.float32)
    shared = floats[:width].copy()
    rest = floats[width:].reshape(len(offers), width + 1) if offers else np.zeros((0, width + 1), np.float32)

    slot1_biases = slot1_pairs = None
    if SECTION_SLOT1 in payloads:
        k = len(offers)
        if k > MAX_SLOT1_OFFERS:
            raise bad(f"SLOT1: the snapshot lists {k} offers, over the {MAX_SLOT1_OFFERS} a slot-1 model may have")
        raw = payloads[SECTION_SLOT1]
        if len(raw) != 4 * (k + k * k):
            raise bad(f"SLOT1: expected {4 * (k + k * k)} bytes for {k} slot-1 biases and {k} x {k} pair terms, "
                      f"got {len(raw)}")
        values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        slot1_biases, slot1_pairs = values[:k].copy(), values[k:].reshape(k, k).copy()

    def text(kind: int) -> Any:
        if kind not in payloads:
            return None
        try:
            return json.loads(payloads[kind].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return payloads[kind].decode("utf-8", errors="replace")

    snap = Snapshot(
        model_version=model_version, created_at_millis=created_at, features=features, interactions=pairs,
        offers=offers, shared_weights=shared, offer_weights=rest[:, 1:].copy(), offer_biases=rest[:, 0].copy(),
        link=meta["link"], objective=meta["objective"], exploration=Exploration.from_json(expl),
        rules=text(SECTION_RULES), ope=text(SECTION_OPE), sha256=digest.hex(), signed=signed,
        slot1_biases=slot1_biases, slot1_pairs=slot1_pairs)
    snap.validate()
    return snap


def read_snapshot(path: str) -> Snapshot:
    """Reads a binary snapshot, or a JSON export when the file starts with '{'."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC and data.lstrip()[:1] == b"{":
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SnapshotError(f"{path}: neither a snapshot nor a JSON export ({e})") from None
        return Snapshot.from_export(obj)
    try:
        return decode_snapshot(data)
    except SnapshotError as e:
        raise SnapshotError(f"{path}: {e}") from None
