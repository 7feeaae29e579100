"""`encore-learn` end to end on small generated logs."""
import argparse
import json
import subprocess
import sys

import pytest

from encore.learn.cli import main
from encore.learn.snapshot import read_snapshot
from encore.learn.synthetic import generate


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("logs")
    logs = generate(4000, 5, customers=800, slots=2, holdout_share=0.1, duplicate_rate=0.05, unknown_outcomes=3)
    logs.write(str(d))
    return d


def run_cli(*args):
    """Runs the installed console script (as a user would)."""
    return subprocess.run([sys.executable, "-m", "encore.learn.cli", *args], capture_output=True, text=True)


def test_train_then_evaluate_json(logdir, tmp_path, encore_bin_optional):
    snap_path, export = str(tmp_path / "m.snap"), str(tmp_path / "m.json")
    out = run_cli("train", "--decisions", str(logdir), "--outcomes", str(logdir), "--out", snap_path,
                  "--export", export, "--bootstrap", "200", "--interaction", "order.is_gift*segment=gift_giver")
    assert out.returncode == 0, out.stderr
    assert "3 for unknown decisions" in out.stderr and "duplicate" in out.stderr
    snap = read_snapshot(snap_path)
    assert snap.model_version.startswith("learned-") and snap.exploration.kind == "squarecb"
    assert snap.interactions and snap.ope["estimand"] == "slot0"
    assert {"ips", "snips", "dr", "logging"} <= set(snap.ope["estimates"])
    assert snap.ope["logs"]["unknown_decision_outcomes"] == 3
    assert read_snapshot(export).model_version == snap.model_version
    if encore_bin_optional:
        v = subprocess.run([encore_bin_optional, "snapshot", "verify", snap_path], capture_output=True, text=True)
        assert v.returncode == 0, v.stderr

    out = run_cli("evaluate", "--snapshot", snap_path, "--decisions", str(logdir), "--outcomes", str(logdir),
                  "--json", "--bootstrap", "200")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    est = report["estimates"]
    for k in ("ips", "snips", "dr", "logging"):
        lo, hi = est[k]["ci95"]
        assert lo <= est[k]["value"] <= hi
    # Uniform logging, a learned policy: clearly better than the logging policy. Deterministic:
    # synthetic logs of seed 5, and train and evaluate use their default --seed 0.
    assert est["dr"]["value"] > est["logging"]["value"]
    assert report["policy"]["model_version"] == snap.model_version
    assert report["decisions"] == report["logs"]["decision_records"] - report["logs"]["holdout_decisions"]


def test_evaluate_refuses_zero_propensities(tmp_path):
    logs = generate(100, 2, customers=50, holdout_share=0.0)
    logs.decisions[10]["placements"][0]["propensity"] = 0.0
    d, o = logs.write(str(tmp_path))
    snap = tmp_path / "m.snap"
    good = generate(300, 3, customers=50, holdout_share=0.0)
    gd, go = good.write(str(tmp_path / "good"))
    assert main(["train", "--decisions", gd, "--outcomes", go, "--out", str(snap), "--bootstrap", "20"]) == 0
    out = run_cli("evaluate", "--snapshot", str(snap), "--decisions", d, "--outcomes", o, "--json")
    assert out.returncode == 2
    assert "1 of 100 decisions" in out.stderr and logs.decisions[10]["decision_id"] in out.stderr
    assert out.stdout == ""


def test_lift_and_inspect(logdir, tmp_path):
    out = run_cli("lift", "--decisions", str(logdir), "--outcomes", str(logdir), "--json", "--bootstrap", "100")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["customers"]["holdout"] > 0 and rep["metrics"]["conversion"]["holdout"]["mean"] == 0
    snap = str(tmp_path / "m.snap")
    assert main(["train", "--decisions", str(logdir), "--outcomes", str(logdir), "--out", snap,
                 "--gamma", "80", "--bootstrap", "20"]) == 0
    assert read_snapshot(snap).exploration.gamma == 80
    out = run_cli("inspect", snap)
    assert out.returncode == 0 and "squarecb(gamma=80.0)" in out.stdout


def test_revenue_reward(logdir, tmp_path):
    snap = str(tmp_path / "r.snap")
    assert main(["train", "--decisions", str(logdir), "--outcomes", str(logdir), "--out", snap,
                 "--reward", "revenue", "--bootstrap", "20"]) == 0
    s = read_snapshot(snap)
    assert s.link == "identity" and s.ope["reward"] == "revenue"


def test_every_option_has_a_help_text():
    from encore.learn.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, p in sub.choices.items()
               for a in p._actions if not isinstance(a, argparse._HelpAction) and not a.help]
    assert not missing, missing
    # Defaults are printed: e.g. train's --bootstrap.
    assert "(default: 1000)" in " ".join(sub.choices["train"].format_help().split())
