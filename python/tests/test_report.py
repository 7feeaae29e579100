"""`encore-learn report`: a self-contained HTML page whose numbers are the evaluator's."""
import base64
import json
import re

from encore.learn.cli import main
from encore.learn.estimators import evaluate
from encore.learn.logs import bandit_data, load_logs
from encore.learn.snapshot import read_snapshot
from encore.learn.synthetic import generate


def test_report_is_self_contained_and_shows_the_estimates(tmp_path, capsys):
    logs = generate(3000, 8, customers=500, holdout_share=0.1)
    d = tmp_path / "logs"
    logs.write(str(d))
    snap_path = tmp_path / "c.snap"
    assert main(["train", "--decisions", str(d), "--outcomes", str(d), "--out", str(snap_path), "--bootstrap", "100",
                 "--created-at-ms", "1767225600000", "--active-uniform"]) == 0
    capsys.readouterr()
    out = tmp_path / "report.html"
    assert main(["report", "--snapshot", str(snap_path), "--decisions", str(d), "--outcomes", str(d),
                 "--out", str(out), "--bootstrap", "100", "--json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    page = out.read_text()
    # Self-contained: no external URL, every image an inline PNG that decodes.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    # The numbers are the evaluator's on the same logs, and the page prints them.
    snap = read_snapshot(str(snap_path))
    data = bandit_data(load_logs([str(d)], [str(d)]))
    want = evaluate(snap, data, bootstrap=100)["estimates"]
    assert numbers["estimates"]["dr"]["value"] == want["dr"]["value"]
    assert f"{want['dr']['value']:.5f}" in page and snap.model_version in page
    # The comparison against the uniform policy made at training is shown with its verdict.
    assert numbers["comparison"]["active_version"] == "uniform" and "the active policy uniform" in page
    assert set(numbers["offers"]) == set(data.actions)
    assert numbers["permutation_importance"] and all(len(f) >= 1 for f in numbers["feature_importance"].values())
    assert len(numbers["lift_over_time"]) == 8 and any(b["holdout_n"] for b in numbers["lift_over_time"])
