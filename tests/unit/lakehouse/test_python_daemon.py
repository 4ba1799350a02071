"""The Python worker daemon imports the scoring libraries before Spark forks workers from it."""

from __future__ import annotations

import sys

import pytest

from lakehouse import python_daemon


def test_preload_imports_the_scoring_libraries() -> None:
    assert python_daemon.preload() == []
    for name in ("lightgbm", "shap", "pandas", "pyarrow"):
        assert name in sys.modules


def test_preload_reports_a_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(python_daemon, "PRELOADED", ("numpy", "aegis_no_such_library"))
    assert python_daemon.preload() == ["aegis_no_such_library"]


def test_sessions_use_the_daemon() -> None:
    from lakehouse.session import PYTHON_DAEMON_MODULE

    assert python_daemon.__name__ == PYTHON_DAEMON_MODULE
