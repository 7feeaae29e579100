#!/usr/bin/env python3
"""End-to-end Decide benchmark: Encore's Decide vs nghttpd answering the same POST, and vs the
grpc-swift-2 peer of ../shared/peers (when built), with the same h2load command, in one run.

    scripts/bench-decide.py [--rounds 3] [-n 60000] [--json] [--peers-build /tmp/peers-build]

Each round runs, interleaved: Encore (embedded demo, holdout off, 2 slots, varied customers in a
realistic order), nghttpd (static file with a DecideResponse-sized gRPC frame at the same path),
and, if /tmp/peers-build/swiftgrpc/.build/release/DecideServer exists (build it with
../shared/peers/build.sh), the grpc-swift-2 peer with its own request body. Prints req/s per
round, medians and ratios; with --json the last line is one JSON object.
Only stdlib Python; needs h2load and nghttpd (scripts/install-deps.sh --test).
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def s(num, text):
    return field(num, 2, text.encode())


def decide_request(customer="c000042"):
    item = s(1, "sku-1") + s(2, "electronics") + field(3, 0, varint(12900)) + field(4, 0, varint(1))
    order = (s(1, "o-1") + field(2, 0, varint(12900)) + s(3, "USD") + field(4, 2, item) + s(5, "standard")
             + s(6, "web") + s(7, "mobile") + s(8, "US") + field(9, 0, varint(1)))
    # No request_id (field 7): h2load repeats this body, and a repeated request_id is a retry of one
    # decision (idempotent: logged once), not a new decision per call.
    msg = s(1, "cart") + s(2, customer) + field(3, 2, order) + field(4, 0, varint(2))
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def h2load(port, path, body, n, log):
    cmd = ["h2load", "-n", str(n), "-c", "16", "-m", "8", "-t", "1", "-d", body, "-H", "content-type: application/grpc",
           "-H", "te: trailers", f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, timeout=300).stdout.decode("utf-8", "replace")
    log.write(out)
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not m or not ok or int(ok.group(2)) or int(ok.group(3)):
        raise SystemExit(f"h2load against port {port} failed:\n{out}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=60000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--peers-build", default=os.environ.get("PEERS_BUILD", "/tmp/peers-build"))
    ap.add_argument("--write-body", metavar="FILE", help="only write the Decide request frame to FILE and exit")
    args = ap.parse_args()
    if args.write_body:
        open(args.write_body, "wb").write(decide_request())
        return
    encore = os.environ.get("ENCORE_BIN", os.path.join(ROOT, ".build/release/encore"))
    if not os.path.exists(encore):
        subprocess.run(["swift", "build", "-c", "release", "--product", "encore"], cwd=ROOT, check=True)
    peer_c = os.path.join(args.peers_build, "swiftgrpc/.build/release/DecideServer")
    peer_body = os.path.join(args.peers_build, "body.bin")
    have_c = os.path.exists(peer_c) and os.path.exists(peer_body)
    work = tempfile.mkdtemp(prefix="encore-bench-decide-")
    procs = []

    def stop(*_):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(1)))
    try:
        body = os.path.join(work, "decide.bin")
        open(body, "wb").write(decide_request())
        www = os.path.join(work, "www/encore.v1.Decisions")
        os.makedirs(www)
        # A DecideResponse-sized frame (2 placements, ids, version): what nghttpd sends back.
        open(os.path.join(www, "Decide"), "wb").write(b"\x00\x00\x00\x00\x8c" + b"x" * 140)
        ports = {"encore": free_port(), "nghttpd": free_port(), "grpc-swift-2": free_port()}
        log = open(os.path.join(work, "server.log"), "w")
        procs.append(subprocess.Popen([encore, "serve", "--port", str(ports["encore"]), "--admin-port", "0", "--holdout-share", "0"],
                                      stderr=log))
        procs.append(subprocess.Popen(["nghttpd", "--no-tls", "-d", os.path.join(work, "www"), str(ports["nghttpd"])],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        targets = [("encore", "/encore.v1.Decisions/Decide", body), ("nghttpd", "/encore.v1.Decisions/Decide", body)]
        if have_c:
            procs.append(subprocess.Popen([peer_c, "--port", str(ports["grpc-swift-2"])], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            targets.append(("grpc-swift-2", "/offers.v1.Decisioner/Decide", peer_body))
        for name, _, _ in targets:
            if not wait_port(ports[name]):
                raise SystemExit(f"{name} did not start")
        # Check that Encore really decides (grpc-status 0) before measuring.
        out = subprocess.run(["nghttp", "-v", "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers",
                              f"http://127.0.0.1:{ports['encore']}/encore.v1.Decisions/Decide"],
                             capture_output=True, timeout=30).stdout.decode("utf-8", "replace")
        if "grpc-status: 0" not in out:
            raise SystemExit("Encore's Decide did not answer grpc-status 0:\n" + out[-2000:])
        raw = open(os.path.join(work, "h2load.log"), "w")
        for name, path, b in targets:  # warm-up
            h2load(ports[name], path, b, 6000, raw)
        rounds = []
        for r in range(args.rounds):
            order = targets if r % 2 == 0 else list(reversed(targets))
            row = {name: h2load(ports[name], path, b, args.n, raw) for name, path, b in order}
            rounds.append(row)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:,.0f} req/s" for k, v in row.items()), file=sys.stderr)
        med = {name: statistics.median(row[name] for row in rounds) for name, _, _ in targets}
        ratio_ng = statistics.median(row["encore"] / row["nghttpd"] for row in rounds)
        result = {"command": f"h2load -n {args.n} -c 16 -m 8 -t 1 (POST Decide, gRPC body)",
                  "encore_rps": round(med["encore"]), "nghttpd_rps": round(med["nghttpd"]),
                  "ratio_vs_nghttpd": round(ratio_ng, 3), "bar_vs_nghttpd": 0.70, "rounds": rounds}
        if have_c:
            ratio_c = statistics.median(row["encore"] / row["grpc-swift-2"] for row in rounds)
            result.update({"grpc_swift_2_rps": round(med["grpc-swift-2"]), "ratio_vs_grpc_swift_2": round(ratio_c, 2),
                           "bar_vs_grpc_swift_2": 5.0})
        print(f"Decide (demo, 2 slots) vs peers, h2load -n {args.n} -c 16 -m 8 -t 1, median of {args.rounds} rounds")
        for name in med:
            print(f"  {name:14s} {med[name]:>10,.0f} req/s")
        print(f"  encore / nghttpd       {ratio_ng:.3f}x (bar >= 0.70x: {'PASS' if ratio_ng >= 0.7 else 'FAIL'})")
        if have_c:
            print(f"  encore / grpc-swift-2  {result['ratio_vs_grpc_swift_2']:.1f}x (bar >= 5x: "
                  f"{'PASS' if result['ratio_vs_grpc_swift_2'] >= 5 else 'FAIL'})")
        else:
            print(f"  grpc-swift-2 peer not built ({peer_c} missing): run ../shared/peers/build.sh")
        if args.json:
            print(json.dumps(result))
    finally:
        stop()


if __name__ == "__main__":
    main()
