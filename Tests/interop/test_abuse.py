

# ----------------------------------------------------------------------------------------------
# Point 8, rapid reset: deadline cancels are not an attack; floods are still stopped
# ----------------------------------------------------------------------------------------------
def test_sequential_calls_with_expired_deadlines_are_not_a_rapid_reset(stubs, server_factory):
    """What a stock gRPC client does with a 1 ms deadline against a 20 ms handler: each call is
    cancelled (RST_STREAM CANCEL) when its deadline passes. 400 of them on one connection, several
    hundred within one second, are not taken for CVE-2023-44487 (before: GOAWAY ENHANCE_YOUR_CALM
    after 101)."""
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE)
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        slow = ei.grpc_frame(stubs.diagnostics_pb2.EchoRequest(payload=b"x", delay_ms=20).SerializeToString())
        t0 = time.monotonic()
        for _ in range(400):
            sid = c.start_request(ECHO, extra_headers=[("grpc-timeout", "1m")])
            c.send_body(sid, slow)
            time.sleep(0.0012)
            if not c.streams[sid].done:
                try:
                    c.reset(sid)
                except h2.exceptions.StreamClosedError:
                    pass
            c.pump(0.0005)
            assert c.goaway is None and not c.eof, f"GOAWAY after {sid // 2} calls: {c.goaway}"
        elapsed = time.monotonic() - t0
        c.pump(0.3)
        assert c.goaway is None, c.goaway
        r = c.request(CHECK, health_body(), timeout=5)
        assert r.grpc_status == 0
        assert elapsed < 4, f"400 calls took {elapsed:.1f} s: too slow to test the per-second rule"
        assert_other_clients_served(stubs, srv)
    finally:
        c.close()


def _flood(c: ei.H2Client, mixed: bool, limit_s: float = 10) -> int:
    """Opens and resets streams (with `mixed`, each reset follows a completed call) until GOAWAY.
    Returns the number of resets sent."""
    sent = 0
    t0 = time.monotonic()
    while c.goaway is None and not c.eof and time.monotonic() - t0 < limit_s and sent < 5000:
        try:
            for _ in range(20):
                if mixed:
                    sid = c.start_request(CHECK)
                    c.send_body(sid, health_body())
                sid = c.start_request(CHECK)
                c.reset(sid, h2.errors.ErrorCodes.CANCEL)
                sent += 1
        except (OSError, h2.exceptions.ProtocolError):
            break
        c.pump(0.002)
    c.wait_for(lambda: c.goaway is not None or c.eof, 3)
    return sent


def test_a_reset_flood_mixed_with_completed_calls_is_stopped_by_encore(stubs, server_factory):
    """Half of the streams complete, half are reset at once: the ratio rule alone never fires
    (resets are not more than half of the streams); ten times --rapid-reset-limit resets in one
    second do (so the flood is stopped by Encore's rule, not only by libnghttp2's own limit)."""
    srv = server_factory("--rapid-reset-limit", "20")
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        sent = _flood(c, mixed=True)
        assert c.goaway is not None, f"no GOAWAY after {sent} mixed resets"
        assert c.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, c.goaway
        assert sent <= 1000, sent
        assert srv.wait_stderr("rapid reset from", 3), "GOAWAY not sent by Encore's rule"
        assert_other_clients_served(stubs, srv)
    finally:
        c.close()
