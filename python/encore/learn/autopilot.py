"""`encore-learn autopilot`: continuous learning against a running server (docs/learning.md,
"Continuous learning").

Every cycle (`--every`, e.g. 10m): read the decision and outcome logs matching the globs (again,
so new and rotated files are picked up), keep the decisions of the rolling `--window`, fetch the
policy the server serves now (Models/GetSnapshot; uniform without a snapshot), train a candidate
and estimate it and the active policy on the same held-out decisions (the comparison the
server's `--require-ope` gate reads), and push it with activation when its DR lower bound beats
the active policy's DR (plus `--margin`); otherwise it is not pushed. A push the server's gate
refuses is reported with the server's message. One JSON line per cycle on stdout: trained on how
many decisions, the estimates of both policies, pushed or refused and why.

A cycle that fails (no logs yet, a server that is down or restarting, logs refused) writes a line
with `"status": "error"` and the next cycle runs as planned: nothing is kept open between cycles.
Candidates are written to `--state-dir` (default: none kept), so the snapshots of the policies
that logged are at hand for the pseudo-inverse slate estimate; others are fetched from the
server by version while it still has them loaded.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .train import TrainConfig


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '10m', '2h', '7d' (decimals allowed)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m:
        raise ValueError(f"duration {text!r}: expected a number with an optional unit s, m, h or d (e.g. 10m, 7d)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


@dataclass
class AutopilotConfig:
    server: str                                   # the admin plane, HOST:PORT
    decisions: Sequence[str]
    outcomes: Sequence[str]
    every_s: float = 600.0
    window_s: float | None = None                 # None: every decision in the files
    min_age_ms: int = 0
    reward: str = "conversion"
    token: str | None = None
    tls: bool = False
    state_dir: str | None = None
    margin: float = 0.0
    local_check: bool = True                      # False: push every candidate, the server's gate decides
    cycles: int | None = None                     # None: forever
    timeout_s: float = 120.0
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields


def _endpoint(server: str) -> tuple[str, int]:
    host, sep, port = server.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--server {server!r}: expected HOST:PORT (the admin plane)")
    return host, int(port)


def _estimates(est: dict[str, Any]) -> dict[str, Any]:
    return {k: {"value": v["value"], "ci95": v.get("ci95")} for k, v in est.items() if isinstance(v, dict)
            and "value" in v}


def _logging_policies(client, versions, state_dir, log) -> dict[str, Any] | None:
    """model version -> Snapshot (None: uniform) for every logging policy, or None if one is
    neither in the state directory nor loaded on the server."""
    import grpc

    from .compare import UNIFORM_VERSION
    from .snapshot import decode_snapshot, read_snapshot

    out: dict[str, Any] = {}
    for v in versions:
        if v == UNIFORM_VERSION:
            out[v] = None
            continue
        path = os.path.join(state_dir, f"{v}.snap") if state_dir else None
        if path and os.path.isfile(path):
            out[v] = read_snapshot(path)
            continue
        try:
            got = client.get_snapshot(v)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                log(f"logging policy {v} is neither in the state directory nor loaded on the server: "
                    "no pseudo-inverse slate estimate this cycle")
                return None
            raise
        out[v] = decode_snapshot(got[1]) if got is not None else None
    return out


def run_cycle(cfg: AutopilotConfig, cycle: int, *, now_ms: int | None = None, created_at_ms: int | None = None,
              log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """One cycle; returns its JSON line (a dict). Never raises for a failing cycle."""
    import grpc

    from ..client import Client
    from .compare import UNIFORM_VERSION
    from .logs import LogError, bandit_data, load_logs
    from .snapshot import SnapshotError, decode_snapshot, write_snapshot
    from .train import TrainError, train

    t0 = time.time()
    now = int(now_ms if now_ms is not None else time.time() * 1000)
    line: dict[str, Any] = {"cycle": cycle, "time_ms": now, "status": "ok"}
    try:
        logs = load_logs(cfg.decisions, cfg.outcomes, min_age_ms=cfg.min_age_ms, now_ms=now if cfg.min_age_ms else None)
        if cfg.window_s is not None:
            start = now - int(cfg.window_s * 1000)
            before = len(logs.decisions)
            logs.decisions = [d for d in logs.decisions if int(d.get("time_ms") or 0) >= start]
            line["outside_window"] = before - len(logs.decisions)
        data = bandit_data(logs, cfg.reward)
        line["trained_on"] = {"decisions": len(data), "two_offer_decisions": int(data.two_slot().sum()),
                              "logged_by": data.logging_models, "outcome_records": logs.stats.outcome_records}
        host, port = _endpoint(cfg.server)
        with Client(host, admin_host=host, admin_port=port, token=cfg.token, tls=cfg.tls,
                    timeout=cfg.timeout_s) as c:
            got = c.get_snapshot()
            if got is None:
                active, active_version = None, c.list_models().active_version or UNIFORM_VERSION
            else:
                active_version, raw = got
                active = decode_snapshot(raw)
            policies = _logging_policies(c, sorted(data.logging_models), cfg.state_dir, log)
            tc = TrainConfig(**cfg.train)
            tc.active, tc.active_version, tc.logging_policies = active, active_version, policies
            if created_at_ms is not None:
                tc.created_at_millis = created_at_ms
            snap = train(data, tc, log=log)
            if cfg.state_dir:
                os.makedirs(cfg.state_dir, exist_ok=True)
                write_snapshot(snap, os.path.join(cfg.state_dir, f"{snap.model_version}.snap"))
            comp = snap.ope["comparison"]
            line["active"] = {"version": active_version, "estimates": _estimates(comp["active_estimates"])}
            line["candidate"] = {"version": snap.model_version, "exploration": snap.exploration.describe(),
                                 "estimates": _estimates(comp["candidate_estimates"])}
            line["estimand"] = comp["estimand"]
            line["evaluated_on"] = comp["log_window"]["decisions"]
            diff = float(comp["candidate_dr_lower_minus_active_dr"])
            line["candidate_dr_lower_minus_active_dr"] = diff
            cand_lo = comp["candidate_estimates"]["dr"]["ci95"][0]
            act_dr = comp["active_estimates"]["dr"]["value"]
            if cfg.local_check and diff < cfg.margin:
                line["pushed"] = False
                line["decision"] = "refused"
                line["reason"] = (f"candidate's DR lower bound {cand_lo:.5f} is below the active policy's DR "
                                  f"{act_dr:.5f}" + (f" + margin {cfg.margin}" if cfg.margin else "") +
                                  " on the same decisions; not pushed")
            else:
                try:
                    reply = c.push_snapshot(snap_bytes(snap), activate=True, timeout=cfg.timeout_s)
                    line["pushed"] = True
                    line["decision"] = "activated" if reply.activated else "loaded, not activated"
                    line["reason"] = (f"candidate's DR lower bound {cand_lo:.5f} vs active DR {act_dr:.5f}: "
                                      + ("activated" if reply.activated else "the server did not activate it"))
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
                        raise
                    line["pushed"] = True
                    line["decision"] = "refused"
                    line["reason"] = f"refused by the server's gate: {e.details()}"
            line["active_after"] = c.list_models().active_version
    except grpc.RpcError as e:
        line.update(status="error", error=f"server {cfg.server}: {e.code().name}: {e.details()}")
    except (LogError, TrainError, SnapshotError, ValueError, OSError, RuntimeError) as e:
        line.update(status="error", error=f"{type(e).__name__}: {e}")
    line["seconds"] = round(time.time() - t0, 1)
    return line


def snap_bytes(snap) -> bytes:
    from .snapshot import encode_snapshot

    return encode_snapshot(snap)


def run(cfg: AutopilotConfig, *, out=None, sleep: Callable[[float], None] = time.sleep,
        after_cycle: Callable[[dict[str, Any]], None] | None = None,
        log: Callable[[str], None] = lambda m: None) -> list[dict[str, Any]]:
    """Runs cycles every `cfg.every_s` seconds (measured start to start), printing one JSON line
    each to `out` (default stdout); returns the lines. Stops after `cfg.cycles` cycles."""
    out = out or sys.stdout
    lines = []
    k = 0
    while cfg.cycles is None or k < cfg.cycles:
        k += 1
        start = time.time()
        line = run_cycle(cfg, k, log=log)
        print(json.dumps(line, default=_json_default), file=out, flush=True)
        lines.append(line)
        if after_cycle is not None:
            after_cycle(line)
        if cfg.cycles is not None and k >= cfg.cycles:
            break
        sleep(max(0.0, cfg.every_s - (time.time() - start)))
    return lines


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
