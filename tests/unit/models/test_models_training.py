"""Time splits, label maturity, training result and plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from models.training import TimeSplit, TrainResult, matured_labels_only, plots, time_split


def test_time_split_leaves_label_delay_gaps(split: TimeSplit) -> None:
    assert split.valid_from - split.train_to == pd.Timedelta(days=7)
    assert split.test_from - split.valid_to == pd.Timedelta(days=7)
    assert split.train["event_time"].max() < split.train_to
    assert split.valid["event_time"].min() >= split.valid_from
    assert split.valid["event_time"].max() < split.valid_to
    assert split.test["event_time"].min() >= split.test_from
    assert len(split.train) and len(split.valid) and len(split.test)


def test_time_split_small_frame() -> None:
    times = pd.date_range("2024-01-01", periods=30, freq="D")
    df = pd.DataFrame({"event_time": times, "v": range(30)})
    s = time_split(df, "2024-01-01", "2024-01-08", delay_days=2, valid_days=3, test_days=4)
    assert s.train["v"].tolist() == list(range(0, 7))
    assert s.valid["v"].tolist() == [9, 10, 11]
    assert s.test["v"].tolist() == [14, 15, 16, 17]


def test_matured_labels_only_excludes_recent_rows() -> None:
    df = pd.DataFrame(
        {
            "event_time": pd.to_datetime(
                ["2024-03-01", "2024-03-03 00:00", "2024-03-03 00:00:01", "2024-03-09"], format="ISO8601"
            ),
            "is_fraud": [0, 1, 0, 0],
        }
    )
    kept = matured_labels_only(df, "2024-03-10", label_delay_days=7)
    assert kept["event_time"].tolist() == list(pd.to_datetime(["2024-03-01", "2024-03-03"]))


def test_train_result_has_policy_and_metrics(trained: TrainResult) -> None:
    m = trained.metrics
    for key in (
        "test_auc_roc",
        "test_average_precision",
        "test_recall_at_fpr_0.1pct",
        "test_recall_at_fpr_1pct",
        "test_card_precision_at_20",
        "test_card_precision_at_20_handbook",
        "test_block_precision",
    ):
        assert key in m, key
    assert 0 <= m["test_card_precision_at_20"] <= 1
    assert trained.policy.review_threshold <= trained.policy.block_threshold
    assert len(trained.test_scores) == m["test_n_rows"]
    assert trained.params["gbm_n_trees"] > 0


def test_plots_return_agg_figures(trained: TrainResult, split: TimeSplit, feature_names: list[str]) -> None:
    sample = split.test.head(200)
    contributions, _ = trained.ensemble.explain(sample)
    figures = plots(sample["is_fraud"], trained.ensemble.predict(sample), contributions, feature_names)
    assert set(figures) == {"pr_curve", "roc_curve", "score_distribution", "shap_summary_bar"}
    for fig in figures.values():
        assert isinstance(fig, Figure)
        assert type(fig.canvas).__name__ == "FigureCanvasAgg"
        fig.canvas.draw()
    assert np.isfinite(contributions).all()
