"""Typed, layered configuration: every profile loads; bad values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from conf.settings import PROFILES, ConfigError, load_settings, parse_overrides
from jobs.cli import main


@pytest.mark.parametrize("profile", PROFILES)
def test_every_shipped_profile_loads(profile: str) -> None:
    env = {"AEGIS_SECURITY__CARD_HASH_KEY": "k" * 32} if profile == "cluster" else {}
    settings = load_settings(profile, environ=env)
    assert settings.profile == profile
    assert settings.kafka.topics.transactions


def test_precedence_base_profile_env_overrides() -> None:
    assert load_settings("local", environ={}).spark.shuffle_partitions == 4
    assert load_settings("test", environ={}).spark.shuffle_partitions == 2
    env = {"AEGIS_SPARK__SHUFFLE_PARTITIONS": "3"}
    assert load_settings("test", environ=env).spark.shuffle_partitions == 3
    over = parse_overrides(["spark.shuffle_partitions=5"])
    assert load_settings("test", overrides=over, environ=env).spark.shuffle_partitions == 5


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.topicz: unknown setting"):
        load_settings("test", overrides={"kafka": {"topicz": {}}}, environ={})


def test_bad_value_is_named() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.topics\.partitions"):
        load_settings("test", environ={"AEGIS_KAFKA__TOPICS__PARTITIONS": "zero"})
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_servers"):
        load_settings("test", environ={"AEGIS_KAFKA__BOOTSTRAP_SERVERS": "nohostport"})


def test_unsafe_default_secret_refused_outside_local() -> None:
    with pytest.raises(ConfigError, match=r"security\.card_hash_key"):
        load_settings("cluster", environ={})


def test_paths_resolve_against_home(tmp_path: Path) -> None:
    settings = load_settings("test", environ={"AEGIS_HOME": str(tmp_path)})
    assert settings.lakehouse_root == tmp_path / "var" / "lakehouse"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path}/var/mlflow/mlflow.db"


def test_cli_stops_on_broken_config_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--profile", "test", "--set", "stream.trigger_seconds=-1", "kafka", "status"])
    assert code == 2
    assert "stream.trigger_seconds" in capsys.readouterr().err


def test_cli_help_lists_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("kafka", "tables", "import", "simulate", "replay", "features", "train", "stream", "demo"):
        assert command in out
