"""encore.learn's DataFrame API: read_logs (local paths, directories, globs and fsspec URLs), the
trainer and evaluator on a DataFrame (the same numbers as on the records), and parquet round trips."""
import fsspec
import numpy as np
import pandas as pd
import pytest

import encore.learn
from encore.learn.estimators import evaluate as evaluate_data
from encore.learn.frames import COLUMNS, evaluate, read_logs, read_parquet, train, write_parquet
from encore.learn.logs import bandit_data, join_records
from encore.learn.synthetic import generate
from encore.learn.train import TrainConfig, train as train_data


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    logs = generate(2500, 4, customers=400, slots=2, holdout_share=0.1)
    d = tmp_path_factory.mktemp("frames")
    logs.write(str(d))
    return logs, d


def test_read_logs_joins_one_row_per_decision(synth):
    logs, d = synth
    df = read_logs(str(d))
    assert list(df.columns) == COLUMNS and len(df) == len(logs.decisions)
    assert df["decision_id"].is_unique
    assert str(df["time"].dtype) == "datetime64[ms, UTC]" or str(df["time"].dtype).startswith("datetime64")
    assert df["holdout"].sum() > 0 and (df.loc[df["holdout"], "placements"] == 0).all()
    treated = df[~df["holdout"] & (df["placements"] > 0)]
    # The joint is the product of the slot propensities; rewards are 0/1 conversions of slot 0.
    two = treated[treated["placements"] == 2]
    assert np.allclose(two["joint_propensity"], two["slot0_propensity"] * two["slot1_propensity"], rtol=1e-12)
    assert set(treated["reward"].unique()) <= {0.0, 1.0} and treated["reward"].sum() > 0
    # Reward 1 exactly where slot 0's offer was accepted.
    assert (treated["reward"] == [float(o in acc) for o, acc in zip(treated["slot0_offer"], treated["accepted"])]).all()
    # pandas habits work: acceptance per offer.
    per_offer = treated.groupby("slot0_offer")["reward"].mean()
    assert len(per_offer) >= 3 and per_offer.between(0, 1).all()


def test_train_and_evaluate_on_a_dataframe_match_the_records(synth):
    logs, d = synth
    df = read_logs(str(d))
    data = bandit_data(join_records(logs.decisions, logs.outcomes))
    cfg = dict(gamma=50.0, bootstrap=50, seed=3, created_at_millis=1_767_225_600_000)
    a, b = train(df, **cfg), train_data(data, TrainConfig(**cfg))
    assert a.model_version == b.model_version and np.array_equal(a.offer_weights, b.offer_weights)
    ra, rb = evaluate(a, df, bootstrap=50), evaluate_data(a, data, bootstrap=50)
    assert ra["estimates"] == rb["estimates"]
    # A pandas filter is a subset of decisions: evaluated on exactly those.
    cart = df[df["surface"] == "cart"]
    assert evaluate(a, cart, bootstrap=0)["decisions"] == int(((cart["placements"] > 0) & ~cart["holdout"]).sum())
    assert encore.learn.evaluate is evaluate and encore.learn.read_logs is read_logs


def test_parquet_round_trip_keeps_every_number(synth, tmp_path):
    _, d = synth
    df = read_logs(str(d))
    path = str(tmp_path / "logs.parquet")
    write_parquet(df, path)
    back = read_parquet(path)
    pd.testing.assert_frame_equal(back.drop(columns=["time"]), df.drop(columns=["time"]), check_dtype=False)
    snap = train(df, gamma=50.0, bootstrap=0, created_at_millis=1_767_225_600_000)
    assert evaluate(snap, back, bootstrap=50)["estimates"] == evaluate(snap, df, bootstrap=50)["estimates"]


def test_fsspec_urls_and_globs(synth):
    _, d = synth
    fs = fsspec.filesystem("memory")
    for path in sorted(d.iterdir()):
        fs.pipe(f"/encore-logs/{path.name}", path.read_bytes())
    by_url = read_logs("memory://encore-logs")
    local = read_logs([str(p) for p in sorted(d.glob("decisions-*.jsonl"))], str(d / "outcomes-*.jsonl"))
    assert by_url["decision_json"].tolist() == local["decision_json"].tolist()
    assert by_url["reward"].tolist() == local["reward"].tolist()
    write_parquet(by_url, "memory://encore-logs/all.parquet")
    assert len(read_parquet("memory://encore-logs/all.parquet")) == len(by_url)
    with pytest.raises(Exception, match="not found"):
        read_logs("memory://no-such-dir/decisions-1.jsonl")
