"""Frame-level gRPC-over-HTTP/2 behaviour, driven with hyper-h2 over raw sockets."""
from __future__ import annotations

import time

import h2.errors
import pytest

import encore_interop as ei

from encore_interop import CHECK, COLLECT, ECHO, SERVING, assert_serving, health_body


# ----------------------------------------------------------------------------------------------
# Response shape
# ----------------------------------------------------------------------------------------------
def test_response_shape(any_diag_server, h2conn):
    c = h2conn(any_diag_server)
    r = c.request(CHECK, health_body())
    assert_serving(r)
    assert r.headers["content-type"].startswith("application/grpc")
    assert "grpc-status" not in r.headers, "grpc-status must be in the trailers for a successful call"
    assert r.trailers is not None and r.trailers.get("grpc-status") == "0"
    accept = r.headers.get("grpc-accept-encoding", "") + "," + (r.trailers or {}).get("grpc-accept-encoding", "")
    assert "identity" in accept, f"no grpc-accept-encoding: identity advertised: {r.headers}"


def test_trailers_only_error(diag_server, h2conn):
    c = h2conn(diag_server)
    r = c.request(CHECK, health_body("nope.Service"))
    assert r.done and r.reset_code is None
    assert r.headers_ended_stream, "error must be a trailers-only response (one HEADERS with END_STREAM)"
    assert r.data_frames == 0 and not r.data
    assert r.headers[":status"] == "200"
    assert r.headers["content-type"].startswith("application/grpc")
    assert r.headers["grpc-status"] == "5"


def test_unknown_path_raw(diag_server, h2conn):
    r = h2conn(diag_server).request("/encore.v1.Nope/Nope", ei.grpc_frame(b""))
    assert r.status == "200" and r.grpc_status == 12


def test_grpc_message_percent_encoded_on_wire(stubs, diag_server, h2conn):
    msg = "ü% ok"
    req = stubs.diagnostics_pb2.EchoRequest(status_code=9, status_message=msg).SerializeToString()
    r = h2conn(diag_server).request(ECHO, ei.grpc_frame(req))
    assert r.grpc_status == 9
    assert r.grpc_message == "%C3%BC%25 ok"


# ----------------------------------------------------------------------------------------------
# Request validation
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["gzip", None])
def test_compressed_flag_unimplemented(diag_server, h2conn, encoding):
    extra = [("grpc-encoding", encoding)] if encoding else []
    body = ei.grpc_frame(ei.health_request("encore.v1.Decisions"), compressed=True)
    r = h2conn(diag_server).request(CHECK, body, extra_headers=extra)
    assert r.status == "200"
    assert r.grpc_status == 12, (r.headers, r.trailers)


def _flagged(flag: int, message: bytes) -> bytes:
    """A gRPC message whose compressed-flag byte is `flag` (only 0 and 1 are defined)."""
    return bytes([flag]) + ei.grpc_frame(message)[1:]


@pytest.mark.parametrize("flag", [2, 0x80, 0xFF])
@pytest.mark.parametrize("split", [None, 3], ids=["one-frame", "3-byte-frames"])
def test_invalid_compressed_flag_byte_is_refused(diag_server, demo_no_holdout, h2conn, stubs, flag, split):
    """A flag byte other than 0 or 1 gets INVALID_ARGUMENT naming the flag, on the unary paths
    (Health/Check, Decide: prefix whole or arriving 3 bytes at a time) and as the second message of
    a client stream (Diagnostics/Collect, where the first prefix was valid); the connection then
    keeps serving."""
    decide = stubs.decisions_pb2.DecideRequest(surface="cart", customer_id="c000001").SerializeToString()
    collect = stubs.diagnostics_pb2.EchoRequest(payload=b"x").SerializeToString()
    cases = [(diag_server, CHECK, _flagged(flag, ei.health_request(""))),
             (demo_no_holdout, ei.DECIDE, _flagged(flag, decide)),
             (diag_server, COLLECT, ei.grpc_frame(collect) + _flagged(flag, collect))]
    for server, path, body in cases:
        c = h2conn(server)
        sid = c.start_request(path)
        c.send_body(sid, body, chunk=split)
        r = c.result(sid)
        assert r.status == "200", (path, r.headers)
        assert r.grpc_status == 3, (path, flag, r.headers, r.trailers)
        assert "compressed flag" in (r.grpc_message or ""), (path, r.grpc_message)
        assert_serving(c.request(CHECK, health_body()))


@pytest.mark.parametrize("ctype", ["text/plain", "application/json", "application/grpcx", "application/grp",
                                   "application/grpc+json", None])
def test_bad_content_type_415(diag_server, h2conn, ctype):
    r = h2conn(diag_server).request(CHECK, health_body(), content_type=ctype)
    assert r.status == "415", r.headers
    assert r.grpc_status == 3, r.headers
    assert r.grpc_message, "415 response must carry a grpc-message"


@pytest.mark.parametrize("ctype", ["application/grpc+proto", "application/grpc;charset=utf-8",
                                   "application/grpc; foo=bar"])
def test_content_type_variants_accepted(diag_server, h2conn, ctype):
    assert_serving(h2conn(diag_server).request(CHECK, health_body(), content_type=ctype))


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_non_post_405(diag_server, h2conn, method):
    c = h2conn(diag_server)
    sid = c.start_request(CHECK, method=method, end_stream=True)
    r = c.result(sid)
    assert r.status == "405", r.headers
    assert r.grpc_status == 12, r.headers


def test_one_byte_data_frames(any_diag_server, h2conn):
    c = h2conn(any_diag_server)
    body = health_body()
    r = c.request(CHECK, body, chunk=1, flush_each=True)
    assert_serving(r)


@pytest.mark.parametrize("chunk", [2, 3, 4, 5, 6, 7])
def test_prefix_split_across_frames(diag_server, h2conn, chunk):
    assert_serving(h2conn(diag_server).request(CHECK, health_body(), chunk=chunk, flush_each=True))


def test_zero_length_message_is_serving(any_diag_server, h2conn):
    r = h2conn(any_diag_server).request(CHECK, ei.grpc_frame(b""))
    assert_serving(r)


def test_no_message_unary_invalid(diag_server, h2conn):
    c = h2conn(diag_server)
    sid = c.start_request(CHECK, end_stream=True)
    r = c.result(sid)
    assert r.grpc_status == 3, (r.headers, r.trailers)
    r2 = c.request(CHECK, b"")  # empty DATA with END_STREAM: still no message
    assert r2.grpc_status == 3, (r2.headers, r2.trailers)


@pytest.mark.parametrize(
    "body",
    [
        ei.grpc_frame(b"\x0a\x13encore.v1.Decis", declared_len=21),  # body cut short
        b"\x00\x00\x00",  # prefix cut short
        b"\x00\x00\x00\x00\x02",  # prefix only
        ei.grpc_frame(b"") + b"\x00\x00",  # complete message then a partial prefix
    ],
    ids=["short-body", "short-prefix", "prefix-only", "trailing-partial-prefix"],
)
def test_stream_ends_mid_message(diag_server, h2conn, body):
    r = h2conn(diag_server).request(CHECK, body)
    assert r.status == "200"
    assert r.grpc_status == 3, (r.headers, r.trailers)


def test_truncated_message_mentions_truncated(diag_server, h2conn):
    r = h2conn(diag_server).request(CHECK, ei.grpc_frame(b"\x0a\x05ab", declared_len=7))
    assert r.grpc_status == 3
    assert "truncat" in (r.grpc_message or "").lower(), r.grpc_message


@pytest.mark.parametrize("path,msg", [(CHECK, b"\x0a\x50ab"), (ECHO, b"\xff\xff\xff")], ids=["health", "echo"])
def test_undecodable_protobuf_invalid(diag_server, h2conn, path, msg):
    r = h2conn(diag_server).request(path, ei.grpc_frame(msg))
    assert r.status == "200" and r.grpc_status == 3, (r.headers, r.trailers)


def test_unknown_protobuf_fields_ignored(diag_server, h2conn):
    # service "" plus unknown fields 2 (varint) and 3 (bytes)
    assert_serving(h2conn(diag_server).request(CHECK, ei.grpc_frame(b"\x0a\x00\x10\x05\x1a\x02hi")))


def test_two_messages_on_unary_invalid(diag_server, h2conn):
    body = health_body() + health_body()
    r = h2conn(diag_server).request(CHECK, body)
    assert r.grpc_status == 3, (r.headers, r.trailers)
    assert not r.data, "no response message may be sent for an invalid unary call"


@pytest.mark.parametrize("value", ["abc", "10x", "m", "-5m", "1.5S", "10 m"])
def test_malformed_grpc_timeout_invalid(diag_server, h2conn, value):
    r = h2conn(diag_server).request(CHECK, health_body(), extra_headers=[("grpc-timeout", value)])
    assert r.grpc_status == 3, (value, r.headers, r.trailers)


@pytest.mark.parametrize("value", ["1S", "100m", "500000u", "99999999n", "5M", "1H"])
def test_valid_grpc_timeout_accepted(diag_server, h2conn, value):
    assert_serving(h2conn(diag_server).request(CHECK, health_body(), extra_headers=[("grpc-timeout", value)]))


def test_server_enforces_grpc_timeout(stubs, diag_server, h2conn):
    """The server itself answers DEADLINE_EXCEEDED (grpcio would time out locally anyway)."""
    c = h2conn(diag_server)
    req = stubs.diagnostics_pb2.EchoRequest(payload=b"x", delay_ms=5000).SerializeToString()
    t0 = time.monotonic()
    r = c.request(ECHO, ei.grpc_frame(req), extra_headers=[("grpc-timeout", "200m")], timeout=8)
    elapsed = time.monotonic() - t0
    assert r.done, "no answer"
    assert r.grpc_status == 4, (r.headers, r.trailers)
    # A wide margin for a shared machine: well after the 200 ms deadline, well before the 5 s
    # handler (a server timer, so the abandoned call costs nothing) would have answered.
    assert elapsed < 3.0, f"DEADLINE_EXCEEDED arrived after {elapsed:.2f}s for a 200 ms deadline"
    # The connection is still usable afterwards.
    assert_serving(c.request(CHECK, health_body()))


# ----------------------------------------------------------------------------------------------
# Multiplexing, streaming and cancellation
# ----------------------------------------------------------------------------------------------
def test_interleaved_streams(any_diag_server, h2conn):
    c = h2conn(any_diag_server)
    body = health_body()
    sids = [c.start_request(CHECK) for _ in range(100)]
    for i in range(len(body)):  # one byte of every stream at a time
        for sid in sids:
            c.conn.send_data(sid, body[i : i + 1])
        c.flush()
    for sid in sids:
        c.conn.end_stream(sid)
    c.flush()
    for sid in sids:
        assert_serving(c.result(sid, timeout=10))


def test_collect_raw_packing(stubs, diag_server, h2conn):
    """Many messages in one DATA frame, one message across many frames, in a single stream."""
    c = h2conn(diag_server)
    small = [stubs.diagnostics_pb2.EchoRequest(payload=b"a" * n).SerializeToString() for n in range(50)]
    big = stubs.diagnostics_pb2.EchoRequest(payload=b"b" * 100000).SerializeToString()
    body = b"".join(ei.grpc_frame(m) for m in small) + ei.grpc_frame(big)
    r = c.request(COLLECT, body, chunk=7777)
    assert r.grpc_status == 0, (r.headers, r.trailers)
    resp = stubs.diagnostics_pb2.EchoResponse.FromString(r.messages()[0])
    assert resp.messages == 51
    assert resp.bytes == sum(range(50)) + 100000


def test_client_cancel_in_flight_echo(stubs, diag_server, h2conn):
    c = h2conn(diag_server)
    req = stubs.diagnostics_pb2.EchoRequest(payload=b"x", delay_ms=300).SerializeToString()
    sid = c.start_request(ECHO)
    c.send_body(sid, ei.grpc_frame(req))
    time.sleep(0.05)
    c.reset(sid, h2.errors.ErrorCodes.CANCEL)
    time.sleep(0.5)  # the handler finishes after the stream is gone; must not break anything
    c.pump(0.1)
    assert c.goaway is None, f"server sent GOAWAY after a single client cancel: {c.goaway}"
    assert_serving(c.request(CHECK, health_body()))


def test_half_open_request_then_cancel(diag_server, h2conn):
    c = h2conn(diag_server)
    sid = c.start_request(COLLECT)
    c.send_body(sid, ei.grpc_frame(b"\x0a\x01a"), end_stream=False)
    c.reset(sid)
    assert_serving(c.request(CHECK, health_body()))


def test_padded_data_frames(diag_server, h2conn):
    c = h2conn(diag_server)
    body = health_body()
    sid = c.start_request(CHECK)
    for i in range(0, len(body), 4):
        c.conn.send_data(sid, body[i : i + 4], pad_length=17)
    c.conn.end_stream(sid)
    c.flush()
    assert_serving(c.result(sid))


def test_client_sends_trailers(diag_server, h2conn):
    c = h2conn(diag_server)
    sid = c.start_request(CHECK)
    c.send_body(sid, health_body(), end_stream=False)
    c.conn.send_headers(sid, [("x-client-trailer", "1")], end_stream=True)
    c.flush()
    assert_serving(c.result(sid))


# RFC 9113 section 8: the server checks the HTTP message rules itself (nghttp2's own checks are off),
# so each malformed request below must still get RST_STREAM(PROTOCOL_ERROR) for its stream only.
_BASE = [(":method", "POST"), (":scheme", "http"), (":authority", ei.HOST), (":path", CHECK),
         ("content-type", "application/grpc"), ("te", "trailers")]


def _without(name):
    return [f for f in _BASE if f[0] != name]


_MALFORMED = {
    "upper-case name": _BASE + [("X-Trace", "1")],
    "name outside the token characters": _BASE + [("x trace", "1")],
    "value with CR LF": _BASE + [("x-trace", "a\r\nb")],
    "value with NUL": _BASE + [("x-trace", "a\x00b")],
    "value with leading space": _BASE + [("x-trace", " a")],
    "connection header": _BASE + [("connection", "keep-alive")],
    "transfer-encoding header": _BASE + [("transfer-encoding", "chunked")],
    "te other than trailers": _without("te") + [("te", "gzip")],
    "pseudo-header after a regular field": _BASE + [(":authority", "late")],
    "duplicate :path": _BASE[:4] + [(":path", CHECK)] + _BASE[4:],
    "unknown pseudo-header": _BASE[:4] + [(":protocol", "websocket")] + _BASE[4:],
    "empty :path": _without(":path")[:3] + [(":path", "")] + _without(":path")[3:],
    "no :scheme": _without(":scheme"),
    "no :path": _without(":path"),
    "no :authority or host": _without(":authority"),
    "relative :path": _without(":path")[:3] + [(":path", "grpc.health.v1.Health/Check")] + _without(":path")[3:],
}


@pytest.mark.parametrize("fields", list(_MALFORMED.values()), ids=list(_MALFORMED))
def test_malformed_request_is_reset_with_protocol_error(diag_server, h2conn, fields):
    c = h2conn(diag_server, validate_headers=False)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, fields, end_stream=False)
    c.conn.send_data(sid, health_body(), end_stream=True)
    c.flush()
    r = c.result(sid)
    assert r.reset_code == h2.errors.ErrorCodes.PROTOCOL_ERROR, f"got {r.reset_code}, headers {r.headers}"
    assert not r.headers, "a malformed request gets no response"
    # Only the stream is reset: the connection serves the next call.
    assert_serving(c.request(CHECK, health_body()))
    assert c.goaway is None


@pytest.mark.parametrize("difference", [-2, 20], ids=["more DATA than declared", "less DATA than declared"])
def test_content_length_must_match_the_data(diag_server, h2conn, difference):
    c = h2conn(diag_server, validate_headers=False)
    body = health_body()
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, _BASE + [("content-length", str(len(body) + difference))], end_stream=False)
    c.conn.send_data(sid, body, end_stream=True)
    c.flush()
    assert c.result(sid).reset_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert_serving(c.request(CHECK, health_body()))


def test_matching_content_length_and_host_are_served(diag_server, h2conn):
    c = h2conn(diag_server, validate_headers=False)
    body = health_body()
    fields = _without(":authority") + [("host", ei.HOST), ("content-length", str(len(body))), ("te", "Trailers")]
    fields = [f for f in fields if f != ("te", "trailers")]
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, fields, end_stream=False)
    c.conn.send_data(sid, body, end_stream=True)
    c.flush()
    assert_serving(c.result(sid))


def test_pseudo_header_in_trailers_is_reset(diag_server, h2conn):
    c = h2conn(diag_server, validate_headers=False)
    sid = c.start_request(CHECK)
    c.send_body(sid, health_body(), end_stream=False)
    c.conn.send_headers(sid, [(":path", CHECK)], end_stream=True)
    c.flush()
    assert c.result(sid).reset_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert_serving(c.request(CHECK, health_body()))


def test_ping_ack(diag_server, h2conn):
    import h2.events

    c = h2conn(diag_server)
    c.conn.ping(b"encore!!")
    c.flush()
    got = lambda: any(isinstance(e, h2.events.PingAckReceived) and e.ping_data == b"encore!!" for e in c.events)
    assert c.wait_for(got, 5), "no PING ACK"


def _allow_streams(c, n):
    """Let hyper-h2 open more streams than the server advertised (to test the server's enforcement)."""
    import h2.settings

    c.conn.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = n
    c.conn.remote_settings.acknowledge()


def test_max_concurrent_streams_enforced(stubs, server_factory):
    srv = server_factory(*ei.DIAG_ON_DATA_PLANE, "--max-concurrent-streams", "4")
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        assert c.remote_settings.get(3) == 4
        _allow_streams(c, 100)
        req = ei.grpc_frame(stubs.diagnostics_pb2.EchoRequest(payload=b"s", delay_ms=600).SerializeToString())
        sids = []
        for _ in range(4):
            sid = c.start_request(ECHO)
            c.send_body(sid, req)
            sids.append(sid)
        extra = c.start_request(ECHO)
        c.send_body(extra, req)
        r5 = c.result(extra, timeout=5)
        # RFC 9113 5.1.2: a stream error (PROTOCOL_ERROR or REFUSED_STREAM) on the 5th stream; 5.4 lets an
        # endpoint escalate it to a connection error, which is what libnghttp2 does (GOAWAY PROTOCOL_ERROR).
        refusals = (int(h2.errors.ErrorCodes.REFUSED_STREAM), int(h2.errors.ErrorCodes.PROTOCOL_ERROR))
        if r5.reset_code is not None:
            assert r5.reset_code in refusals
            for sid in sids:
                r = c.result(sid, timeout=5)
                assert r.grpc_status == 0, (r.headers, r.trailers, r.reset_code)
            assert c.goaway is None
            assert_serving(c.request(CHECK, health_body()))
        else:
            assert c.goaway is not None, f"5th concurrent stream was neither refused nor answered with GOAWAY: {r5}"
            assert int(c.goaway.error_code) in refusals, c.goaway
            assert c.goaway.last_stream_id < extra, c.goaway
            assert r5.headers is None, "the refused stream must not be answered"
        # The server keeps serving new connections either way.
        with ei.H2Client(srv.port) as fresh:
            assert_serving(fresh.request(CHECK, health_body()))
    finally:
        c.close()


def test_continuation_frames_under_raised_limit(server_factory):
    srv = server_factory("--max-header-list-bytes", "65536")
    c = ei.H2Client(srv.port)
    try:
        assert c.wait_settings(5)
        # 30 KiB of header block: needs HEADERS + CONTINUATION (max frame size 16384)
        extra = [("x-big-%d" % i, "v" * 3000) for i in range(10)]
        assert_serving(c.request(CHECK, health_body(), extra_headers=extra))
    finally:
        c.close()
