"""The trainer's regression weighting (encore-learn train --weighting ips|none)."""
import numpy as np
import pytest

from encore.learn.cli import main
from encore.learn.logs import bandit_data, load_logs
from encore.learn.snapshot import read_snapshot
from encore.learn.synthetic import generate
from encore.learn.train import TrainConfig, TrainError, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("logs")
    generate(3000, 3, customers=600, slots=1, holdout_share=0.0).write(str(d))
    return bandit_data(load_logs([str(d)], [str(d)]))


def test_unweighted_is_ips_with_every_weight_clipped_to_one(data):
    """min(1/p, 1) = 1 for every decision: IWR clipped at 1 is the unweighted regression."""
    common = dict(gamma=100.0, bootstrap=0, seed=0, model_version="t", created_at_millis=1_764_000_000_000)
    none = train(data, TrainConfig(weighting="none", **common))
    clipped = train(data, TrainConfig(weighting="ips", max_weight=1.0, **common))
    ips = train(data, TrainConfig(weighting="ips", **common))
    for a, b in ((none.shared_weights, clipped.shared_weights), (none.offer_weights, clipped.offer_weights),
                 (none.offer_biases, clipped.offer_biases)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # The logs' candidate sets differ in size by surface, so 1/p weights do change the fit.
    assert not np.allclose(none.offer_weights, ips.offer_weights, atol=1e-4)
    assert none.ope["training"]["weighting"] == "none" and "unweighted" in none.ope["reduction"]
    assert ips.ope["training"]["weighting"] == "ips" and "importance-weighted" in ips.ope["reduction"]


def test_unknown_weighting_is_refused(data):
    with pytest.raises(TrainError, match="weighting"):
        train(data, TrainConfig(weighting="sqrt", bootstrap=0))


def test_cli_weighting_flag(data, tmp_path):
    d = tmp_path / "logs"
    generate(1500, 4, customers=300, slots=1, holdout_share=0.0).write(str(d))
    out = str(tmp_path / "m.snap")
    assert main(["train", "--decisions", str(d), "--outcomes", str(d), "--out", out, "--weighting", "none",
                 "--bootstrap", "50", "--gamma", "100"]) == 0
    assert read_snapshot(out).ope["training"]["weighting"] == "none"
