#!/usr/bin/env python3
"""Generate a deterministic synthetic customer file for Encore's feature store.

    scripts/gen-customers.py --count N --features F --segments S --seed K --out PATH [--format csv|jsonl]

CSV:   customer_id,segments,f0,...,f{F-1}   (segments '|'-separated, may be empty)
JSONL: {"customer_id": "c...", "segments": ["seg00", ...], "features": {"f0": 0.1234, ...}}

Ids are c<zero-padded index>, each customer is in each of the S segments (seg00, seg01, ...)
with probability min(1, 2/S), and every feature is uniform in [0, 1) with four decimals.
The same arguments always give the same bytes. Uses numpy (vectorized, ~10M x 32 in well under
a minute) when available, else plain Python (slow). Progress goes to stderr.
"""

import argparse
import sys
import time

CHUNK = 50_000


def segment_names(s):
    width = max(2, len(str(max(s - 1, 0))))
    return [f"seg{i:0{width}d}" for i in range(s)]


def header(args):
    if args.format == "csv":
        return (",".join(["customer_id", "segments"] + [f"f{j}" for j in range(args.features)]) + "\n").encode()
    return b""


def generate_numpy(args, out, np):
    rng = np.random.default_rng(args.seed)
    n_total, f, s = args.count, args.features, args.segments
    width = max(1, len(str(max(n_total - 1, 0))))
    names = [n.encode() for n in segment_names(s)]
    name_len = len(names[0]) if names else 0
    csv = args.format == "csv"
    # Per-segment slot: a leading separator ('|' or ',') then the name (JSONL: quoted).
    slot = name_len + 1 if csv else name_len + 3
    seg_prob = min(1.0, 2.0 / s) if s else 0.0
    if csv:
        prefix, mid, feat_keys = b"", b",", [b""] * f
        end = b"\n"
    else:
        prefix, mid = b'{"customer_id": "', b'", "segments": ['
        feat_keys = [(b'"features": {' if j == 0 else b"") + f'"f{j}": '.encode() for j in range(f)]
        end = b"}}\n"
    # Row template: prefix, 'c' + id digits, mid, padded segment area, features, end.
    id_off = len(prefix)
    seg_off = id_off + 1 + width + len(mid)
    seg_area = slot * s
    after_seg = (b"," if f else b"") if csv else b"], "
    feat_off = seg_off + seg_area + len(after_seg)
    feat_layout = []  # (offset of the 6 value bytes)
    pos = feat_off
    for j in range(f):
        pos += len(feat_keys[j])
        feat_layout.append(pos)
        pos += 6
        if j < f - 1:
            pos += 1 if csv else 2  # ',' or ', '
    row_len = pos + len(end)
    template = np.zeros(row_len, dtype=np.uint8)

    def put(off, b):
        template[off : off + len(b)] = np.frombuffer(b, dtype=np.uint8)

    put(0, prefix)
    put(id_off, b"c")
    put(seg_off - len(mid), mid)
    put(seg_off + seg_area, after_seg)
    for j in range(f):
        put(feat_layout[j] - len(feat_keys[j]), feat_keys[j])
        put(feat_layout[j], b"0.")
        if j < f - 1:
            put(feat_layout[j] + 6, b"," if csv else b", ")
    if f == 0 and not csv:
        put(feat_off, b'"features": {')
    put(row_len - len(end), end)
    seg_bytes = []
    for name in names:
        sb = (b"|" + name) if csv else (b',"' + name + b'"')
        seg_bytes.append(np.frombuffer(sb, dtype=np.uint8))
    pow10 = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    started = time.time()
    next_report = 1_000_000
    done = 0
    while done < n_total:
        n = min(CHUNK, n_total - done)
        rows = np.tile(template, (n, 1))
        ids = np.arange(done, done + n, dtype=np.int64)
        rows[:, id_off + 1 : id_off + 1 + width] = (ids[:, None] // pow10 % 10 + 48).astype(np.uint8)
        if s:
            member = rng.random((n, s)) < seg_prob
            ordinal = np.cumsum(member, axis=1) - 1
            for k in range(s):
                r = np.nonzero(member[:, k])[0]
                if r.size == 0:
                    continue
                base = seg_off + ordinal[r, k] * slot
                cols = base[:, None] + np.arange(slot)
                rows[r[:, None], cols] = seg_bytes[k]
                first = r[ordinal[r, k] == 0]
                rows[first, seg_off] = 0  # no separator before the first segment
        values = rng.integers(0, 10_000, size=(n, f), dtype=np.int64)
        for j in range(f):
            v = values[:, j]
            o = feat_layout[j] + 2
            rows[:, o] = v // 1000 + 48
            rows[:, o + 1] = v // 100 % 10 + 48
            rows[:, o + 2] = v // 10 % 10 + 48
            rows[:, o + 3] = v % 10 + 48
        flat = rows.ravel()
        out.write(flat[flat != 0].tobytes())
        done += n
        if done >= next_report or done == n_total:
            rate = done / max(time.time() - started, 1e-9)
            print(f"gen-customers: {done:,} / {n_total:,} rows ({rate:,.0f} rows/s)", file=sys.stderr, flush=True)
            next_report += 1_000_000


def generate_plain(args, out):
    import random

    rng = random.Random(args.seed)
    names = segment_names(args.segments)
    width = max(1, len(str(max(args.count - 1, 0))))
    p = min(1.0, 2.0 / args.segments) if args.segments else 0.0
    for i in range(args.count):
        segs = [nm for nm in names if rng.random() < p]
        vals = [f"0.{rng.randrange(10_000):04d}" for _ in range(args.features)]
        cid = f"c{i:0{width}d}"
        if args.format == "csv":
            line = ",".join([cid, "|".join(segs)] + vals) + "\n"
        else:
            feats = ", ".join(f'"f{j}": {v}' for j, v in enumerate(vals))
            segl = ",".join(f'"{s}"' for s in segs)
            line = f'{{"customer_id": "{cid}", "segments": [{segl}], "features": {{{feats}}}}}\n'
        out.write(line.encode())
        if (i + 1) % 1_000_000 == 0:
            print(f"gen-customers: {i + 1:,} / {args.count:,} rows", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, required=True, help="number of customers")
    ap.add_argument("--features", type=int, default=32, help="features per customer (default 32)")
    ap.add_argument("--segments", type=int, default=16, help="distinct segments, at most 64 (default 16)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--out", required=True, help="output path")
    ap.add_argument("--format", choices=["csv", "jsonl"], help="default: from the extension, else csv")
    ap.add_argument("--plain", action="store_true", help="do not use numpy (slow; for testing)")
    args = ap.parse_args()
    if args.format is None:
        args.format = "jsonl" if args.out.endswith((".jsonl", ".ndjson")) else "csv"
    if not 0 <= args.segments <= 64:
        ap.error("--segments must be in 0...64")
    if args.count < 0 or args.features < 0:
        ap.error("--count and --features must be >= 0")
    started = time.time()
    with open(args.out, "wb", buffering=1 << 22) as out:
        out.write(header(args))
        np = None
        if not args.plain:
            try:
                import numpy as np
            except ImportError:
                print("gen-customers: numpy not found, using plain Python (slow)", file=sys.stderr)
        if np is not None:
            generate_numpy(args, out, np)
        else:
            generate_plain(args, out)
    print(f"gen-customers: wrote {args.out} in {time.time() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
