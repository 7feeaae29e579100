"""`encore bench`, checked against things it did not measure itself.

1. Its closed-loop (`--max`) counts agree with h2load's and with the server's: on one server with a
   decision log, each tool's reported number of completed calls is exactly the number of records
   the server logged from it (told apart by `request_id`). Counts, not timings: throughput
   agreement with h2load (issue 8's 15% bar) compares two wall-clock runs on a shared machine, so
   it is the benchmark `scripts/bench-agreement.py` (docs/bench-command.md), not a test.
2. An artificial 5 ms server stall (`encore serve --debug-stall-ms 5 --debug-stall-every N`, a
   hidden testing option) shows up in the open-loop p99.9 measured from the intended send time
   (>= 4 ms), and is hidden when the same load is timed from the actual send time
   (`--no-co-correction`, what a load generator that ignores coordinated omission reports): its
   p99.9 under 4 ms and under the corrected one. The comparison counts only in runs the machine's
   other work did not dominate (the open loop kept up, the uncorrected p99 under 1 ms); when none
   of three attempts qualifies the test is skipped with the numbers.
3. Output contract: the last stdout line with --json is one JSON object with the documented keys;
   non-OK gRPC statuses count as errors; --sweep writes a table, a JSON line and an SVG plot; --tls.

Each run is a few seconds; the whole file takes about 45 s (up to 75 s on a busy machine). No assertion here is a latency
target: the targets are measured by hand with the release build (docs/bench-command.md).
"""
from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

import encore_interop as ei

REQUIRED_KEYS = {"throughput_rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "errors"}
H2LOAD_REQ_RE = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored")


def bench(server, *args, timeout=60.0) -> tuple[dict, subprocess.CompletedProcess]:
    """Runs `encore bench --json` against `server`; returns the last stdout line parsed."""
    out = ei.run_cli("bench", "--host", ei.HOST, "--port", server.port, "--json", *args, timeout=timeout)
    assert out.returncode == 0, f"encore bench failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    last = out.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert REQUIRED_KEYS <= result.keys(), result
    return result, out


LOG_SUMMARY_RE = re.compile(r"decision log: (\d+) records written to .*, (\d+) dropped")


def _decide_body(stubs, path, tag):
    """One realistic gRPC-framed Decide request (2 slots, 2 line items), as h2load -d sends it,
    tagged with `tag` as its order id so the server's decision log says which tool sent each call.
    No request_id: every call is a new decision (a repeated request_id is a retry, logged once)."""
    D = stubs.decisions_pb2
    req = D.DecideRequest(
        surface="confirmation", customer_id="c004242", slots=2,
        order=D.Order(order_id=tag, total_cents=12_345, currency="USD", shipping_method="express",
                      channel="web", device="mobile", country="US", is_gift=True,
                      items=[D.LineItem(sku="e-1", category="electronics", price_cents=9_999, quantity=1),
                             D.LineItem(sku="a-2", category="apparel", price_cents=1_173, quantity=2)]))
    path.write_bytes(ei.grpc_frame(req.SerializeToString()))
    return path


@pytest.mark.watchdog(120)
def test_max_counts_agree_with_h2load_and_the_server_log(stubs, server_factory, tmp_path):
    # Counts, not timings: what each load tool says it completed must be exactly what the server
    # logged from it. Throughput agreement with h2load is a timing comparison between two runs on
    # a shared machine, so it lives in scripts/bench-agreement.py (docs/bench-command.md), not here.
    logs = tmp_path / "logs"
    server = server_factory("--holdout-share", "0", "--threads", "1", "--log-dir", str(logs))
    ours_body = _decide_body(stubs, tmp_path / "bench.bin", "agree-bench")
    theirs_body = _decide_body(stubs, tmp_path / "h2load.bin", "agree-h2load")
    c, m, duration, n = 4, 8, 1, 3000
    # --warmup 0: every call sent is in the measured window, so `sent` is every call the bench made.
    r, _ = bench(server, "--max", "--connections", c, "--streams", m, "--threads", 1, "--duration", duration,
                 "--warmup", 0, "--drain", 20, "--body-file", ours_body, "--quiet")
    assert r["errors"] == 0 and r["error_kinds"] == {} and r["ok"] == r["sent"] > 0, r
    # throughput_rps counts the OK calls completed inside the window: all of them but the ones
    # still in flight when it closed (at most connections x streams).
    in_window = r["throughput_rps"] * r["duration_s"]
    assert r["ok"] - c * m - 0.5 <= in_window <= r["ok"] + 0.5, r

    h2load = shutil.which("h2load")
    assert h2load, "h2load not found (apt-get install -y nghttp2-client)"
    out = subprocess.run(
        [h2load, "-n", str(n), "-c", str(c), "-m", str(m), "-t", "1", "-d", str(theirs_body),
         "-H", "content-type: application/grpc", "-H", "te: trailers", f"http://{ei.HOST}:{server.port}{ei.DECIDE}"],
        capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
    text = out.stdout.decode("utf-8", "replace") + out.stderr.decode("utf-8", "replace")
    counts = H2LOAD_REQ_RE.search(text)
    assert counts, f"could not parse h2load output:\n{text}"
    total, started, done, succeeded, failed, errored = map(int, counts.groups())
    assert (total, started, done, succeeded, failed, errored) == (n, n, n, n, 0, 0), text

    assert server.stop(grace=15) == 0, server.stderr  # SIGTERM flushes the decision log
    summary = LOG_SUMMARY_RE.search(server.stderr)
    assert summary, server.stderr
    written, dropped = map(int, summary.groups())
    assert written + dropped == r["sent"] + n, (written, dropped, r["sent"], n)
    by_tool = collections.Counter()
    for path in sorted(logs.glob("decisions-*.jsonl")):
        for line in path.read_text().splitlines():
            by_tool[json.loads(line)["order"]["order_id"]] += 1
    assert sum(by_tool.values()) == written, (by_tool, written)
    assert set(by_tool) <= {"agree-bench", "agree-h2load"}, by_tool
    # A full log ring drops records (docs/logs.md), which a badly loaded machine can cause; then
    # only the total above is exact. Below that, the split by tool is exact too.
    assert by_tool["agree-bench"] <= r["sent"] and by_tool["agree-h2load"] <= n, (by_tool, r)
    if dropped == 0:
        assert by_tool == {"agree-bench": r["sent"], "agree-h2load": n}, (by_tool, r)


@pytest.mark.watchdog(150)
def test_open_loop_p999_shows_a_5ms_stall_that_uncorrected_timing_hides(server_factory):
    # Every 3000th Decide the (single) reactor sleeps 5 ms; at 3000 calls/s on one stream that is
    # one stall a second. About 15 calls are due during each stall: measured from their intended
    # send time they wait up to 5 ms (0.5% of all calls), and the top 0.1% (3 a stall) all waited
    # more than about 4 ms, so p99.9 shows the stall. Measured from the actual send time, only the
    # one call in flight during the stall sees it (1 in 3000, a third of the 0.1%): p99.9 stays
    # near the normal latency, and only the max shows that a stall happened at all.
    #
    # Timing on a shared 2-core machine. What machine load can only make larger is asserted on
    # every run: no errors but time-outs, and a max of at least the stall in both runs (the call in flight
    # during a stall waits at least 5 ms whatever else happens). The comparison of the two
    # p99.9s is only meaningful when the run is not dominated by other work, so an attempt counts
    # only when (a) the open loop kept up: rate within 2% and a corrected p50 under 1 ms (a
    # backlog would lift every corrected percentile by itself, seconds on a loaded debug build,
    # and prove nothing about the stall), and (b) the uncorrected p99 is under 1 ms (the
    # machine's own delays at the 1% level are well below the 5 ms stall). In such an attempt the
    # stall must show corrected (p99.9 >= 4 ms) and not uncorrected (p99.9 under 4 ms and under
    # the corrected one); up to three attempts, since a burst of machine noise at the 0.1% level
    # can still lift one uncorrected p99.9. When no attempt qualifies, the machine is too busy to
    # tell and the test is skipped (with the numbers), rather than passed on noise or failed by it.
    server = server_factory("--holdout-share", "0", "--threads", "1", "--debug-stall-ms", "5",
                            "--debug-stall-every", "3000")
    assert "debug stall on" in server.stderr
    # --drain 10: on a busy machine (or with a debug build) the single stream may fall behind;
    # the late calls still finish and are timed instead of counting as time-outs.
    common = ["--rate", 3000, "--connections", 1, "--streams", 1, "--duration", 4, "--warmup", 1, "--drain", 10,
              "--quiet"]
    attempts, qualified = [], []
    for _ in range(3):
        corrected, _ = bench(server, *common)
        naive, _ = bench(server, *common, "--no-co-correction")
        summary = (f"corrected p50 {corrected['p50_us']} p99 {corrected['p99_us']} p99.9 {corrected['p999_us']} "
                   f"max {corrected['max_us']} us rate {corrected['rate_ratio']}; uncorrected p99 {naive['p99_us']} "
                   f"p99.9 {naive['p999_us']} max {naive['max_us']} us")
        attempts.append(summary)
        print(summary)
        assert corrected["co_corrected"] is True and naive["co_corrected"] is False
        # Every error but a time-out is a defect. A time-out (a call still unanswered after the
        # 10 s drain) is what a loop that fell seconds behind on a busy machine produces: that
        # attempt did not keep up.
        timeouts = [r.get("error_kinds", {}).get("timeout", 0) for r in (corrected, naive)]
        assert corrected["errors"] == timeouts[0] and naive["errors"] == timeouts[1], (corrected, naive)
        # the stall happened in both runs
        assert corrected["max_us"] >= 4_500 and naive["max_us"] >= 4_500, (corrected, naive)
        # Kept up: no time-outs, the rate held, and neither the median nor the 1% level lifted
        # by anything but the stall (which delays about 0.5% of calls by at most 5 ms).
        kept_up = (sum(timeouts) == 0 and corrected["rate_ratio"] >= 0.98 and corrected["p50_us"] < 1_000
                   and corrected["p99_us"] < 5_000)
        quiet = naive["p99_us"] < 1_000
        if not (kept_up and quiet):
            continue
        qualified.append(summary)
        if corrected["p999_us"] >= 4_000 and naive["p999_us"] < min(4_000, corrected["p999_us"]):
            return
    if not qualified:
        pytest.skip("machine too busy to compare p99.9s (no attempt kept up with a quiet noise floor): "
                    + "; ".join(attempts))
    pytest.fail(f"the stall did not show as expected in {len(qualified)} qualifying attempt(s): {qualified}")


def test_non_ok_status_counts_as_error(demo_server, stubs, tmp_path):
    D = stubs.decisions_pb2
    body = tmp_path / "bad.bin"
    # slots=3 is out of range: INVALID_ARGUMENT for every call
    body.write_bytes(ei.grpc_frame(D.DecideRequest(surface="cart", customer_id="c000001", slots=3)
                                   .SerializeToString()))
    r, out = bench(demo_server, "--rate", 500, "--duration", 1, "--warmup", 0.2, "--connections", 1,
                   "--body-file", body)
    assert r["ok"] == 0 and r["errors"] == r["sent"] > 0, r
    assert r["error_kinds"] == {"grpc_3": r["errors"]}, r
    # the progress line: printed after each full second of the run, which lasts at least 1.2 s
    assert "bench: 1s" in out.stderr, out.stderr


def test_varied_pool_json_and_progress(demo_server):
    r, out = bench(demo_server, "--rate", 1000, "--duration", 1.5, "--warmup", 0.5, "--connections", 2,
                   "--streams", 4, "--threads", 2)
    # Counts, not timings: the schedule puts exactly 1000 x 1.5 intended send times in the window,
    # and every one of them is sent and answered (the drain waits for late ones).
    assert r["errors"] == 0 and r["ok"] == r["sent"] == 1500, r
    assert r["mode"] == "rate" and r["rate"] == 1000.0 and r["connections"] == 2 and r["threads"] == 2, r
    # rate_ratio is throughput / target. How close it comes to 1 is timing (a busy machine falls
    # behind), so only its definition and its structural ceiling are checked: OK calls completed in
    # the window are at most the calls scheduled before its end, the window's 1500 plus the 500 of
    # the warm-up (a generator that fell behind during the warm-up, on a busy machine, sends and
    # completes its backlog inside the window: 1.0113 was seen, more than the 2 x 4 in flight).
    assert r["rate_ratio"] == pytest.approx(r["throughput_rps"] / 1000, abs=1e-4), r
    assert 0 < r["rate_ratio"] <= (1500 + 500) / 1500 + 1e-4, r
    assert 0 < r["p50_us"] <= r["p90_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"], r
    assert re.search(r"^bench: \d+s (warm-up|measure) ", out.stderr, re.M), out.stderr
    assert "open loop at 1000 req/s" in out.stdout, out.stdout  # the human summary


@pytest.mark.watchdog(60)
def test_sweep_writes_table_json_and_svg(demo_server, tmp_path):
    plot = tmp_path / "sweep.svg"
    r, out = bench(demo_server, "--sweep", "30,70", "--plot", plot, "--duration", 1, "--warmup", 0.3,
                   "--connections", 2, "--streams", 4, "--quiet")
    assert r["max_rps"] > 0 and [p["percent"] for p in r["sweep"]] == [30.0, 70.0], r
    for p in r["sweep"]:
        assert p["mode"] == "rate" and abs(p["rate"] - r["max_rps"] * p["percent"] / 100) < 1, p
        assert REQUIRED_KEYS <= p.keys(), p
    assert re.search(r"^\s+70%\s", out.stdout, re.M), out.stdout  # the table
    svg = ET.parse(plot).getroot()
    assert svg.tag.endswith("svg")
    lines = [e for e in svg.iter() if e.tag.endswith("polyline")]
    assert len(lines) == 3, "expected p50, p99 and p99.9 lines"
    for e in lines:
        assert len(e.get("points").split()) == 2


def test_bench_over_tls(tls_server):
    # The server's certificate verified against its own (self-signed) certificate as the CA;
    # more TLS cases (mTLS, wrong host, untrusted CA) in test_trust.py.
    r, _ = bench(tls_server, "--ca-file", tls_server.cert_path, "--rate", 500, "--duration", 1, "--warmup", 0.2,
                 "--connections", 2, "--quiet")
    assert r["errors"] == 0 and r["ok"] > 400, r


def test_bench_refuses_bad_flags(demo_server):
    for args in (["--max", "--rate", "10"], ["--duration", "1"], ["--max", "--plot", "x.svg"],
                 ["--sweep", "0,50"]):
        out = ei.run_cli("bench", "--port", demo_server.port, *args)
        assert out.returncode != 0 and "Error" in out.stderr, (args, out.stderr)
