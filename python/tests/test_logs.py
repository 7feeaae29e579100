"""Joining decision and outcome logs (docs/logs.md)."""
import json

import pytest

from encore.learn.logs import LogError, bandit_data, join_records, load_logs


def decision(i, offer="gift_box", slots=("gift_box", "rush_shipping"), holdout=False, t=1000, placements=None):
    did = f"d{i}"
    pls = [] if holdout else placements if placements is not None else [
        {"offer_id": offer, "slot": 0, "propensity": 0.5, "score": 0.0, "expected_value": 0.1}]
    return {"v": 1, "type": "decision", "decision_id": did, "time_ms": t, "surface": "cart",
            "customer_id": f"c{i}", "known_customer": True, "model_version": "m", "holdout": holdout,
            "order": {"total_cents": 1000, "items": []}, "customer": {"segments": [], "features": {}},
            "candidates": [] if holdout else list(slots), "placements": pls}


def outcome(i, offer="gift_box", what="accepted", revenue=500, t=2000):
    return {"v": 1, "type": "outcome", "decision_id": f"d{i}", "offer_id": offer, "outcome": what,
            "revenue_cents": revenue, "time_ms": t}


def test_join_missing_duplicate_and_unknown_outcomes():
    decisions = [decision(i) for i in range(5)] + [decision(0)]  # d0 logged twice
    outcomes = [
        outcome(0), outcome(0),                    # duplicate accepted: counted once
        outcome(0, what="shown"),
        outcome(1, what="declined"),               # outcome but no acceptance: reward 0
        outcome(2, revenue=700),                   # accepted
        outcome(9),                                # unknown decision: reported, ignored
        outcome(3, offer="rush_shipping"),         # an offer the decision did not place: ignored
        # d4: no outcome at all -> reward 0
    ]
    logs = join_records(decisions, outcomes)
    s = logs.stats
    assert s.decision_records == 6 and s.duplicate_decisions == 1
    assert s.outcome_records == 7 and s.duplicate_outcomes == 1
    assert s.unknown_decision_outcomes == 1 and s.unknown_decision_example == "d9"
    assert s.unplaced_offer_outcomes == 1
    assert s.decisions_with_outcomes == 3 and s.decisions_without_outcomes == 2
    data = bandit_data(logs)
    assert data.decision_ids == ["d0", "d1", "d2", "d3", "d4"]
    assert list(data.rewards) == [1, 0, 1, 0, 0]
    rev = bandit_data(logs, "revenue")
    assert list(rev.rewards) == [5.0, 0, 7.0, 0, 0]


def test_holdouts_and_empty_decisions_are_not_bandit_records():
    logs = join_records([decision(0), decision(1, holdout=True), decision(2, placements=[])], [])
    assert logs.stats.holdout_decisions == 1 and logs.stats.empty_decisions == 1
    assert bandit_data(logs).decision_ids == ["d0"]


def test_slot0_reward_ignores_slot1_acceptance():
    pls = [{"offer_id": "gift_box", "slot": 0, "propensity": 0.5},
           {"offer_id": "rush_shipping", "slot": 1, "propensity": 1.0}]
    logs = join_records([decision(0, placements=pls)], [outcome(0, offer="rush_shipping")])
    data = bandit_data(logs)
    assert data.actions == ["gift_box"] and list(data.rewards) == [0.0]


def test_min_age_horizon():
    decisions = [decision(i, t=1000 * i) for i in range(10)]
    logs = join_records(decisions, [], min_age_ms=3000, now_ms=9000)
    assert logs.stats.too_recent == 3  # t = 7000, 8000, 9000 are younger than 3 s
    assert len(logs.decisions) == 7
    # Default reference time: the newest timestamp in the logs.
    assert join_records(decisions, [], min_age_ms=3000).stats.too_recent == 3


def test_files_directories_and_truncated_last_line(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    (d / "decisions-20261125T000000-0-0.jsonl").write_text(
        "\n".join(json.dumps(decision(i)) for i in range(3)) + "\n" + json.dumps(decision(3))[:40])
    (d / "outcomes-20261125T000000-0.jsonl").write_text(
        json.dumps(outcome(1)) + "\nnot json\n" + json.dumps(outcome(2)) + "\n")
    logs = load_logs([str(d)], [str(d)])
    assert logs.stats.decision_records == 3 and logs.stats.truncated_last_lines == 1
    assert logs.stats.malformed_lines == 1 and logs.stats.outcome_records == 2
    assert list(bandit_data(logs).rewards) == [0, 1, 1]
    with pytest.raises(LogError):
        load_logs([str(tmp_path / "nope.jsonl")], [])


def test_logged_context_is_checked_against_recomputed_features():
    rec = decision(0)
    rec["context"] = {"bias": 1.0, "order.total_log": 2.3979, "surface=cart": 1.0, "order.is_gift": 1.0}
    data = bandit_data(join_records([rec], []))
    assert data.context_check.compared == 4
    assert data.context_check.mismatched == 1  # is_gift is false in the order
    assert "order.is_gift" in data.context_check.example
