"""`encore-learn`: train, evaluate, push, lift, report (and synth, inspect). See docs/learning.md."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from .. import __version__


def _log_args(p: argparse.ArgumentParser, outcomes_required: bool = True) -> None:
    p.add_argument("--decisions", nargs="+", default=[], metavar="FILE",
                   help="decision log files, globs or log directories (D/decisions-*.jsonl)")
    p.add_argument("--outcomes", nargs="+", default=[], metavar="FILE",
                   help="outcome log files, globs or log directories (D/outcomes-*.jsonl)")
    p.add_argument("--log-dir", nargs="+", default=[], metavar="DIR", dest="log_dirs",
                   help="log directories, e.g. one per replica of a fleet: their decisions and outcomes are "
                        "read together and joined by decision id, whichever replica logged each record "
                        "(same as giving each directory to both --decisions and --outcomes)")
    p.set_defaults(_outcomes_required=outcomes_required)
    p.add_argument("--min-age-ms", type=int, default=0,
                   help="leave out decisions younger than this (they may still get outcomes)")
    p.add_argument("--now-ms", type=int, default=None,
                   help="reference time for --min-age-ms (default: the newest timestamp in the logs)")


def _reward_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reward", choices=("conversion", "revenue"), default="conversion",
                   help="conversion: 1 per accepted slot-0 offer; revenue: its revenue_cents / 100")


def _eprint(*a: Any) -> None:
    print(*a, file=sys.stderr)


def _fmt(est: dict[str, Any]) -> str:
    ci = est.get("ci95")
    return f"{est['value']:.5f}" + (f"  [{ci[0]:.5f}, {ci[1]:.5f}]" if ci else "")


def _merge_log_dirs(args: argparse.Namespace) -> None:
    """--log-dir D... adds D to both --decisions and --outcomes; one of them is required."""
    dirs = list(getattr(args, "log_dirs", []) or [])
    if not hasattr(args, "decisions"):
        return
    args.decisions = list(args.decisions) + dirs
    args.outcomes = list(args.outcomes) + dirs
    if not args.decisions:
        raise SystemExit("encore-learn: give the logs with --decisions FILE... or --log-dir DIR...")
    if getattr(args, "_outcomes_required", False) and not args.outcomes:
        raise SystemExit("encore-learn: give the outcomes with --outcomes FILE... or --log-dir DIR...")


def _load(args: argparse.Namespace):
    from .logs import bandit_data, load_logs

    logs = load_logs(args.decisions, args.outcomes, min_age_ms=args.min_age_ms, now_ms=args.now_ms)
    return logs, bandit_data(logs, args.reward)


def _summarise_join(stats: dict[str, Any], data) -> None:
    s = stats
    _eprint(f"logs: {s['decision_records']} decisions ({s['duplicate_decisions']} duplicate), "
            f"{s['outcome_records']} outcomes ({s['duplicate_outcomes']} duplicate, "
            f"{s['unknown_decision_outcomes']} for unknown decisions, {s['unplaced_offer_outcomes']} for "
            f"offers not placed), {s['holdout_decisions']} holdout, {s['empty_decisions']} with nothing eligible, "
            f"{s['too_recent']} too recent, {s['decisions_without_outcomes']} without outcomes (reward 0)")
    if s["malformed_lines"]:
        _eprint(f"warning: {s['malformed_lines']} malformed lines skipped (first at {s['malformed_example']})")
    if s["unknown_decision_outcomes"]:
        _eprint(f"warning: {s['unknown_decision_outcomes']} outcomes name decisions not in these decision files "
                f"(e.g. {s['unknown_decision_example']}); ignored")
    if data is not None and data.context_check.mismatched:
        _eprint(f"warning: {data.context_check.mismatched} of {data.context_check.compared} logged context values "
                f"differ from the recomputed features (e.g. {data.context_check.example})")


def _active_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--server", metavar="HOST:PORT",
                   help="estimate the policy this server (its admin address) serves now on the same logs, fetched "
                        "with Models/GetSnapshot (uniform when it has no snapshot); the report records the comparison "
                        "that `encore serve --require-ope` checks. Default: no comparison")
    g.add_argument("--active-snapshot", metavar="FILE",
                   help="the active policy as a snapshot file (instead of --server); its model version must be the "
                        "server's active version for the gate to accept the comparison")
    p.add_argument("--token-file", help="file holding the admin plane bearer token for --server (default: "
                   "$ENCORE_TOKEN)")
    p.add_argument("--active-uniform", action="store_true",
                   help="compare with the uniform policy of a server that has no snapshot (active version 'uniform')")


def _logging_snapshot_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--logging-snapshot", action="append", default=[], metavar="FILE",
                   help="a snapshot that logged some of the decisions (repeatable; matched by model version): with "
                        "every logging policy given, two-slot reports add the pseudo-inverse slate estimate")


def _token(args: argparse.Namespace) -> str | None:
    """The admin plane's bearer token: --token-file, else $ENCORE_TOKEN, else none."""
    if getattr(args, "token_file", None):
        try:
            with open(args.token_file) as f:
                return f.read().strip()
        except OSError as e:
            raise ValueError(f"--token-file {args.token_file}: {e.strerror}") from None
    return os.environ.get("ENCORE_TOKEN", "").strip() or None


def _tls_files(args: argparse.Namespace) -> dict:
    """Client keyword arguments from --ca-file, --cert and --key (PEM files), read now so a
    missing file is an error naming it."""
    def read(flag: str, path: str | None) -> bytes | None:
        if not path:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise ValueError(f"{flag} {path}: {e.strerror}") from None

    ca, cert, key = (read("--ca-file", getattr(args, "ca_file", None)), read("--cert", getattr(args, "cert", None)),
                     read("--key", getattr(args, "key", None)))
    if (cert is None) != (key is None):
        raise ValueError("--cert and --key go together (the client certificate and its private key)")
    out: dict = {}
    if ca is not None:
        out["root_certificates"] = ca
    if cert is not None:
        out["certificate_chain"], out["private_key"] = cert, key
    return out


def _active_policy(args: argparse.Namespace):
    """(snapshot or None for uniform, active version), or None when no comparison was asked for."""
    from .compare import UNIFORM_VERSION
    from .snapshot import decode_snapshot, read_snapshot

    if args.active_snapshot:
        snap = read_snapshot(args.active_snapshot)
        return snap, snap.model_version
    if args.server:
        from ..client import Client

        host, sep, port = args.server.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"--server {args.server!r}: expected HOST:PORT")
        with Client(host, admin_host=host, admin_port=int(port), token=_token(args)) as c:
            got = c.get_snapshot()
            if got is None:
                return None, c.list_models().active_version or UNIFORM_VERSION
        version, data = got
        snap = decode_snapshot(data)
        _eprint(f"active policy: {version} fetched from {args.server} ({len(data)} bytes)")
        return snap, version
    if args.active_uniform:
        return None, UNIFORM_VERSION
    return None


def _logging_policies(args: argparse.Namespace):
    """model version -> snapshot of the policies that logged (--logging-snapshot), plus the
    uniform policy of a server without a snapshot; None when none was given."""
    from .compare import UNIFORM_VERSION
    from .snapshot import read_snapshot

    files = getattr(args, "logging_snapshot", None) or []
    if not files:
        return None
    out: dict[str, Any] = {UNIFORM_VERSION: None}
    for f in files:
        snap = read_snapshot(f)
        out[snap.model_version] = snap
    return out


def _print_slate(slate) -> None:
    if not slate:
        return
    print(f"  slate ({slate['two_offer_decisions']} of {slate['decisions']} decisions placed two offers):")
    for part in ("slot0", "slot1", "total"):
        for k, v in slate[part].items():
            print(f"    {part + ' ' + k:<22}{_fmt(v)}")
    if slate.get("pseudo_inverse_note"):
        print(f"    note: pseudo-inverse {slate['pseudo_inverse_note']}")


def cmd_train(args: argparse.Namespace) -> int:
    from .snapshot import write_export, write_snapshot
    from .train import TrainConfig, train

    logs, data = _load(args)
    _summarise_join(logs.stats.to_json(), data)
    pairs = []
    for spec in args.interaction:
        a, sep, b = spec.partition("*")
        if not sep or not a or not b:
            raise ValueError(f"--interaction {spec!r}: expected NAME*NAME, e.g. order.is_gift*segment=gift_giver")
        pairs.append((a, b))
    gamma = None if args.gamma in (None, "auto") else float(args.gamma)
    cfg = TrainConfig(min_feature_count=args.min_feature_count, min_offer_count=args.min_offer_count,
                      interactions=pairs, max_weight=args.max_weight, weighting=args.weighting,
                      lam_shared=args.lambda_shared, lam_offer=args.lambda_offer,
                      validation_fraction=args.validation_fraction,
                      exploration=args.exploration, gamma=gamma, epsilon=args.epsilon, temperature=args.temperature,
                      bootstrap=args.bootstrap, seed=args.seed, model_version=args.model_version,
                      created_at_millis=args.created_at_ms, slot1=args.slot1,
                      logging_policies=_logging_policies(args),
                      extra={"logs": logs.stats.to_json(), "context_check": data.context_check.to_json()})
    active = _active_policy(args)
    if active is not None:
        cfg.active, cfg.active_version = active
    snap = train(data, cfg, log=_eprint)
    write_snapshot(snap, args.out)
    _eprint(f"wrote {args.out}: {snap.model_version}")
    if args.export:
        write_export(snap, args.export)
        _eprint(f"wrote {args.export} (JSON export for `encore snapshot build --from`)")
    est = snap.ope["estimates"]
    if args.json:
        print(json.dumps(snap.ope, indent=2))
    else:
        print(f"model {snap.model_version}  {snap.exploration.describe()}  "
              f"({snap.ope['evaluated_on']})")
        for k in ("ips", "snips", "dr", "logging", "dr_minus_logging"):
            print(f"  {k:<17}{_fmt(est[k])}")
        _print_slate(snap.ope.get("slate"))
        _print_comparison(snap.ope.get("comparison"))
    return 0


def _print_comparison(comparison) -> None:
    if not comparison:
        return
    act = comparison["active_estimates"]
    print(f"  active policy {comparison['active_version']} on the same "
          f"{comparison['log_window']['decisions']} decisions:")
    for k in ("ips", "snips", "dr"):
        print(f"    {k:<15}{_fmt(act[k])}")
    print(f"  candidate DR lower bound - active DR: {comparison['candidate_dr_lower_minus_active_dr']:+.5f}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .estimators import evaluate
    from .snapshot import read_snapshot

    snap = read_snapshot(args.snapshot)
    logs, data = _load(args)
    if not args.json:
        _summarise_join(logs.stats.to_json(), data)
    policies = _logging_policies(args)
    report = evaluate(snap, data, bootstrap=args.bootstrap, seed=args.seed, folds=args.folds,
                      logging_policies=policies)
    active = _active_policy(args)
    if active is not None:
        from .compare import compare

        report["comparison"] = compare(snap, active[0], active[1], data, bootstrap=args.bootstrap, seed=args.seed,
                                       folds=args.folds, logging_policies=policies)
    report["logs"] = logs.stats.to_json()
    report["context_check"] = data.context_check.to_json()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"policy {snap.model_version}  {snap.exploration.describe()}  on {report['decisions']} decisions "
          f"(slot-0 {data.reward_kind})")
    for k, v in report["estimates"].items():
        print(f"  {k:<17}{_fmt(v)}")
    d = report["diagnostics"]
    print(f"  weights: mean {d['mean_weight']:.3f}, max {d['max_weight']:.2f}, "
          f"effective sample size {d['effective_sample_size']:.0f}")
    if report.get("features_absent_from_logs"):
        print(f"  note: features never present in the logs (always 0): {report['features_absent_from_logs']}")
    _print_slate(report.get("slate"))
    _print_comparison(report.get("comparison"))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    import grpc

    from ..client import Client
    from .snapshot import read_snapshot

    snap = read_snapshot(args.snapshot)  # refuse locally what the server would refuse
    try:
        token = _token(args)
    except ValueError as e:
        _eprint(f"encore-learn: {e}")
        return 1
    try:
        tls = _tls_files(args)
    except ValueError as e:
        _eprint(f"encore-learn: {e}")
        return 1
    # Models/PushSnapshot is served on the admin plane: --port is its port.
    with Client(args.host, admin_port=args.port, tls=args.tls or bool(tls), timeout=args.timeout, token=token,
                **tls) as c:
        try:
            reply = c.push_snapshot(args.snapshot, activate=args.activate)
        except grpc.RpcError as e:
            _eprint(f"encore-learn: push refused: {e.code().name}: {e.details()}")
            return 1
    m = reply.model
    if args.json:
        print(json.dumps({"version": m.version, "sha256": m.sha256, "size_bytes": m.size_bytes,
                          "exploration": m.exploration, "activated": reply.activated}))
    else:
        print(f"pushed {m.version} ({m.size_bytes} bytes, sha256 {m.sha256[:16]}..., {m.exploration})")
        print(f"active: {m.version}" if reply.activated else
              f"loaded, not active (activate with: encore models activate {m.version})")
    del snap
    return 0


def cmd_lift(args: argparse.Namespace) -> int:
    from .lift import lift
    from .logs import load_logs

    logs = load_logs(args.decisions, args.outcomes, min_age_ms=args.min_age_ms, now_ms=args.now_ms)
    report = lift(logs, bootstrap=args.bootstrap, seed=args.seed)
    report["logs"] = logs.stats.to_json()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if "error" not in report else 1
    if "error" in report:
        _eprint(f"encore-learn: {report['error']}")
        return 1
    c = report["customers"]
    print(f"customers: {c['treated']} treated, {c['holdout']} holdout ({c['in_both_groups']} seen in both)")

    def cell(x, percent=False):
        val = x.get("mean", x.get("value"))
        if val is None:
            return "n/a"
        ci = x.get("ci95")
        f = (lambda v: f"{100 * v:+.1f}%") if percent else (lambda v: f"{v:.4f}")
        return f"{f(val)} [{f(ci[0])}, {f(ci[1])}]" if ci else f(val)

    rows = [("metric", "treated", "holdout", "difference", "relative lift")]
    for m, v in report["metrics"].items():
        rows.append((m, cell(v["treated"]), cell(v["holdout"]), cell(v["difference"]),
                     cell(v["relative_lift"], percent=True)))
    _print_table(rows)
    if any(v["relative_lift"]["value"] is None for v in report["metrics"].values()):
        print("  n/a: undefined where the holdout's mean is 0 (a holdout gets no offers)")
    return 0


def _print_table(rows) -> None:
    """Left-aligned first column, the others right-aligned, each as wide as its widest cell."""
    widths = [max(len(str(r[j])) for r in rows) for j in range(len(rows[0]))]
    for r in rows:
        cells = [str(r[0]).ljust(widths[0])] + [str(x).rjust(w) for x, w in zip(r[1:], widths[1:])]
        print("  " + "  ".join(cells).rstrip())


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build
    from .snapshot import read_snapshot

    snap = read_snapshot(args.snapshot)
    logs, data = _load(args)
    _summarise_join(logs.stats.to_json(), data)
    comparison = None
    active = _active_policy(args)
    if active is not None:
        from .compare import compare

        comparison = compare(snap, active[0], active[1], data, bootstrap=args.bootstrap, seed=args.seed)
    elif isinstance(snap.ope, dict):
        comparison = snap.ope.get("comparison")
    page, numbers = build(snap, logs, data, comparison=comparison, bootstrap=args.bootstrap, seed=args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(page)
    _eprint(f"wrote {args.out} ({len(page) // 1024} KiB, self-contained)")
    if args.json:
        print(json.dumps(numbers, indent=2, default=float))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .snapshot import read_snapshot
    from .synthetic import generate

    logging = read_snapshot(args.logging_snapshot) if args.logging_snapshot else None
    logs = generate(args.n, args.seed, slots=args.slots, holdout_share=args.holdout_share, logging=logging,
                    order_uplift=args.order_uplift)
    d, o = logs.write(args.out_dir)
    _eprint(f"wrote {d} ({len(logs.decisions)} decisions) and {o} ({len(logs.outcomes)} outcomes)")
    return 0


def cmd_autopilot(args: argparse.Namespace) -> int:
    from .autopilot import AutopilotConfig, parse_duration, run

    pairs = []
    for spec in args.interaction:
        a, sep, b = spec.partition("*")
        if not sep or not a or not b:
            raise ValueError(f"--interaction {spec!r}: expected NAME*NAME")
        pairs.append((a, b))
    train = {"interactions": pairs, "weighting": args.weighting, "exploration": args.exploration,
             "gamma": None if args.gamma == "auto" else float(args.gamma), "bootstrap": args.bootstrap,
             "seed": args.seed, "slot1": args.slot1, "min_feature_count": args.min_feature_count}
    cfg = AutopilotConfig(server=args.server, decisions=args.decisions, outcomes=args.outcomes,
                          every_s=parse_duration(args.every),
                          window_s=parse_duration(args.window) if args.window else None,
                          min_age_ms=args.min_age_ms, reward=args.reward, token=_token(args), tls=args.tls,
                          state_dir=args.state_dir, margin=args.margin, local_check=not args.no_local_check,
                          cycles=args.cycles, train=train)
    _eprint(f"autopilot: every {args.every} against {args.server}" + (f", window {args.window}" if args.window else ""))
    try:
        run(cfg, log=(lambda m: _eprint(f"[train] {m}")) if args.verbose else (lambda m: None))
    except KeyboardInterrupt:
        _eprint("autopilot: stopped")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .snapshot import read_snapshot

    snap = read_snapshot(args.snapshot)
    if args.json:
        out = snap.to_export()
        out["sha256"] = snap.sha256
        print(json.dumps(out, indent=2))
        return 0
    print(f"version      {snap.model_version}")
    print(f"exploration  {snap.exploration.describe()}; link {snap.link}, objective {snap.objective}")
    print(f"features     {len(snap.features)} + {len(snap.interactions)} interactions; offers {len(snap.offers)}")
    print(f"sha256       {snap.sha256}  {'signed (not checked here)' if snap.signed else 'unsigned'}")
    if isinstance(snap.ope, dict) and "estimates" in snap.ope:
        rows = [("ope estimate", "value", "95% interval")]
        for k, v in snap.ope["estimates"].items():
            ci = v.get("ci95")
            rows.append((k, f"{v['value']:.5f}", f"[{ci[0]:.5f}, {ci[1]:.5f}]" if ci else ""))
        _print_table(rows)
        _print_comparison(snap.ope.get("comparison"))
    return 0


class _HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every option's help that has a default worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unsaid = default is None or default is False or default == [] or default is argparse.SUPPRESS
        if unsaid or "%(default)" in text or not action.option_strings or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="encore-learn", description="Learn, evaluate and push Encore policies.")
    ap.add_argument("--version", action="version", version=f"encore-learn {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    _add_parser = sub.add_parser
    sub.add_parser = lambda *a, **kw: _add_parser(*a, formatter_class=_HelpFormatter, **kw)  # type: ignore

    p = sub.add_parser("train", help="learn a policy from decision and outcome logs; write a snapshot")
    _log_args(p)
    _reward_arg(p)
    p.add_argument("--out", required=True, help="snapshot file to write (.snap)")
    p.add_argument("--export", help="also write the JSON export (encore snapshot build --from)")
    p.add_argument("--exploration", choices=("squarecb", "epsilon_greedy", "softmax", "uniform"), default="squarecb",
                   help="how the written policy explores (the server draws with it and logs exact propensities)")
    p.add_argument("--gamma", default="auto", help="SquareCB gamma, or 'auto' (chosen on the validation split)")
    p.add_argument("--epsilon", type=float, default=0.05, help="exploration share for --exploration epsilon_greedy")
    p.add_argument("--temperature", type=float, default=0.1, help="temperature for --exploration softmax")
    p.add_argument("--interaction", action="append", default=[], metavar="A*B",
                   help="quadratic interaction of two feature names (repeatable)")
    p.add_argument("--min-feature-count", type=int, default=10,
                   help="use a feature only if it is non-zero in this many training decisions")
    p.add_argument("--min-offer-count", type=int, default=1,
                   help="give an offer its own weights only if shown in slot 0 this many times")
    p.add_argument("--max-weight", type=float, default=50.0, help="clip importance weights 1/p at this value")
    p.add_argument("--weighting", choices=("ips", "none"), default="ips",
                   help="ips: importance-weighted regression (default); none: unweighted regression (direct method; "
                        "lower variance on logs of a near-greedy policy, needs a model family that fits the reward)")
    p.add_argument("--slot1", choices=("model", "pool", "ignore", "auto"), default="model",
                   help="two-slot logs: model (default) fits the scorer on slot-0 and slot-1 placements and writes a "
                        "slot-1 model (per-offer slot-1 bias, pair terms with the slot-0 offer) the server scores "
                        "slot 1 with; pool fits the scorer the same way without the slot-1 model (the server scores "
                        "slot 1 like slot 0); ignore fits on slot 0 only; auto keeps the best by the slate DR lower bound")
    p.add_argument("--lambda-shared", type=float, default=1.0, help="L2 penalty of the shared weights")
    p.add_argument("--lambda-offer", type=float, default=10.0,
                   help="L2 penalty of each offer's own weights (pulls them toward the shared ones)")
    p.add_argument("--validation-fraction", type=float, default=0.3,
                   help="share of decisions (by decision-id hash) held out of fitting for the OPE report")
    p.add_argument("--model-version", help="default learned-<UTC timestamp>-<weights hash>")
    p.add_argument("--created-at-ms", type=int, default=None,
                   help="the snapshot's created-at time, ms since the Unix epoch (default: now); fixing it makes "
                        "the default model version repeat for the same logs")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples for the 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    p.add_argument("--json", action="store_true", help="print the OPE report as JSON")
    _active_args(p)
    _logging_snapshot_arg(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="IPS, SNIPS and DR estimates of a snapshot's value on logs")
    p.add_argument("--snapshot", required=True, help="snapshot (.snap) or JSON export")
    _log_args(p)
    _reward_arg(p)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples for the 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same output)")
    p.add_argument("--folds", type=int, default=2, help="cross-fitting folds of the DR reward model")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _active_args(p)
    _logging_snapshot_arg(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("push", help="upload a snapshot to a running server (Models/PushSnapshot, admin plane)")
    p.add_argument("snapshot", help="snapshot file (.snap) to upload")
    p.add_argument("--host", default="127.0.0.1", help="the server's admin plane address")
    p.add_argument("--port", type=int, default=50052, help="the admin plane port (encore serve --admin-port)")
    p.add_argument("--tls", action="store_true", help="connect with TLS (implied by --ca-file, --cert)")
    p.add_argument("--ca-file", help="PEM CA bundle that verifies the server (default: the system trust store)")
    p.add_argument("--cert", help="PEM client certificate for mTLS (with --key; encore serve --client-ca)")
    p.add_argument("--key", help="PEM private key of --cert")
    p.add_argument("--token-file", help="file holding the admin plane bearer token (default: $ENCORE_TOKEN)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds the upload may take")
    p.add_argument("--activate", action="store_true", help="activate it once the server has validated it")
    p.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("lift", help="holdout vs treated conversion and revenue per customer")
    _log_args(p)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples for the 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same output)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_lift)

    p = sub.add_parser("report", help="one self-contained HTML page: estimates, offers, feature importance, lift")
    p.add_argument("--snapshot", required=True, help="the candidate snapshot (.snap) or JSON export")
    _log_args(p)
    _reward_arg(p)
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument("--bootstrap", type=int, default=500, help="bootstrap samples for the 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the permutations")
    p.add_argument("--json", action="store_true", help="also print the numbers shown as JSON")
    _active_args(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("synth", help="write synthetic decision and outcome logs (known conversion model)")
    p.add_argument("--out-dir", required=True, help="directory for decisions-*.jsonl and outcomes-*.jsonl")
    p.add_argument("--n", type=int, default=20000, help="decisions to simulate")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same output)")
    p.add_argument("--slots", type=int, choices=(1, 2), default=1, help="placements per decision")
    p.add_argument("--holdout-share", type=float, default=0.05, help="share of customers held out (no offers)")
    p.add_argument("--order-uplift", type=float, default=0.0,
                   help="extra order rate of treated customers (simulates a lift for `lift`)")
    p.add_argument("--logging-snapshot", help="log with this policy instead of uniform")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("autopilot", help="continuous learning: every cycle train on the rolling window, compare "
                       "with the active policy on the same logs, push through the gate; one JSON line per cycle")
    p.add_argument("--server", required=True, metavar="HOST:PORT", help="the server's admin plane address")
    p.add_argument("--decisions", nargs="+", required=True, metavar="GLOB",
                   help="decision log files, globs or directories (expanded again every cycle)")
    p.add_argument("--outcomes", nargs="+", required=True, metavar="GLOB",
                   help="outcome log files, globs or directories (expanded again every cycle)")
    p.add_argument("--every", default="10m", help="time between cycle starts: 90s, 10m, 1h, ...")
    p.add_argument("--window", default=None,
                   help="train on decisions of this rolling window only (e.g. 7d; default: every decision in the files)")
    p.add_argument("--min-age-ms", type=int, default=0,
                   help="leave out decisions younger than this (their outcomes may still arrive)")
    _reward_arg(p)
    p.add_argument("--margin", type=float, default=0.0,
                   help="push only when the candidate's DR lower bound beats the active policy's DR by this much")
    p.add_argument("--no-local-check", action="store_true",
                   help="push every candidate and let the server's gate (encore serve --require-ope) decide")
    p.add_argument("--state-dir", help="keep every candidate snapshot here (also the logging policies for the "
                   "pseudo-inverse slate estimate); default: none kept")
    p.add_argument("--cycles", type=int, default=None, help="stop after this many cycles (default: run until stopped)")
    p.add_argument("--token-file", help="file holding the admin plane bearer token (default: $ENCORE_TOKEN)")
    p.add_argument("--tls", action="store_true", help="connect to the admin plane with TLS")
    p.add_argument("--exploration", choices=("squarecb", "epsilon_greedy", "softmax", "uniform"), default="squarecb",
                   help="the candidates' exploration")
    p.add_argument("--gamma", default="auto", help="SquareCB gamma, or 'auto' (chosen on the validation split)")
    p.add_argument("--weighting", choices=("ips", "none"), default="ips", help="the trainer's regression weighting")
    p.add_argument("--slot1", choices=("model", "pool", "ignore", "auto"), default="model",
                   help="two-slot logs: as train's --slot1 (default model: a slot-1 model in the snapshot)")
    p.add_argument("--interaction", action="append", default=[], metavar="A*B",
                   help="quadratic interaction of two feature names (repeatable)")
    p.add_argument("--min-feature-count", type=int, default=10,
                   help="use a feature only if it is non-zero in this many training decisions")
    p.add_argument("--bootstrap", type=int, default=500, help="bootstrap samples for the 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    p.add_argument("--verbose", action="store_true", help="the trainer's progress on stderr")
    p.set_defaults(func=cmd_autopilot)

    p = sub.add_parser("inspect", help="print a snapshot (validated) and its OPE report")
    p.add_argument("snapshot", help="snapshot file (.snap) or JSON export")
    p.add_argument("--json", action="store_true", help="print the snapshot as its JSON export")
    p.set_defaults(func=cmd_inspect)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from .logs import LogError
    from .snapshot import SnapshotError
    from .train import TrainError

    args = build_parser().parse_args(argv)
    _merge_log_dirs(args)
    try:
        return int(args.func(args) or 0)
    except (LogError, SnapshotError, TrainError, ValueError, OSError) as e:
        _eprint(f"encore-learn: error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
