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
    assert load_settings("local", environ={}).spark.shuffle_partitions == 2
    assert load_settings("cluster", environ={"AEGIS_SECURITY__CARD_HASH_KEY": "k" * 32}).spark.shuffle_partitions == 8
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


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("spark:\n  shuffle_partitions: 1\n  driver_memory: 1g\n  log_level: INFO\n"
                                        "kafka:\n  topics:\n    partitions: 7\n")
    (tmp_path / "test.yaml").write_text("spark:\n  shuffle_partitions: 2\n  driver_memory: 2g\n")
    env = {"AEGIS_SPARK__SHUFFLE_PARTITIONS": "3"}
    s = load_settings("test", overrides={"spark": {"driver_memory": "5g"}}, environ=env, conf_dir=tmp_path)
    assert (s.spark.log_level, s.spark.shuffle_partitions, s.spark.driver_memory) == ("INFO", 3, "5g")
    assert s.kafka.topics.partitions == 7  # a sibling section of the base file survives the profile's
    assert s.kafka.topics.transactions == "aegis.transactions"  # and the model's defaults fill the rest


def test_profile_comes_from_the_argument_then_the_environment() -> None:
    assert load_settings(environ={}).profile == "local"
    assert load_settings(environ={"AEGIS_PROFILE": "test"}).profile == "test"
    assert load_settings("local", environ={"AEGIS_PROFILE": "test"}).profile == "local"
    with pytest.raises(ConfigError, match=r"profile: unknown profile 'prod'"):
        load_settings("prod", environ={})


def test_environment_values_take_the_field_type() -> None:
    env = {
        "AEGIS_KAFKA__MAX_OFFSETS_PER_TRIGGER": "500",
        "AEGIS_SPARK__UI_ENABLED": "true",
        "AEGIS_STREAM__TRIGGER_SECONDS": "0.5",
        "AEGIS_SPARK__CONF": '{"spark.sql.ansi.enabled": "true"}',
        "AEGIS_SERVING__DSN": "postgresql://u:p@db:5432/aegis",
    }
    s = load_settings("test", environ=env)
    assert s.kafka.max_offsets_per_trigger == 500
    assert s.spark.ui_enabled is True
    assert s.stream.trigger_seconds == 0.5
    assert s.spark.conf == {"spark.sql.ansi.enabled": "true"}
    assert s.serving_dsn == "postgresql://u:p@db:5432/aegis"
    unbounded = load_settings("test", environ={"AEGIS_KAFKA__MAX_OFFSETS_PER_TRIGGER": "null"})
    assert unbounded.kafka.max_offsets_per_trigger is None


def test_lists_in_the_environment_are_yaml_or_json() -> None:
    key = "a" * 64
    as_yaml = f"[{{name: svc, role: service, sha256: {key}}}]"
    as_json = f'[{{"name": "svc", "role": "service", "sha256": "{key}"}}]'
    for raw in (as_yaml, as_json):
        keys = load_settings("test", environ={"AEGIS_API__KEYS": raw}).api.keys
        assert [(k.name, k.role, k.sha256) for k in keys] == [("svc", "service", key)]
    with pytest.raises(ConfigError, match=r'field "api"'):
        load_settings("test", environ={"AEGIS_API__KEYS": "[unclosed"})
    with pytest.raises(ConfigError, match=r"api\.keys\.0\.role"):
        load_settings("test", environ={"AEGIS_API__KEYS": f"[{{name: svc, role: root, sha256: {key}}}]"})


def test_unknown_keys_fail_from_every_layer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.topicz: unknown setting"):
        load_settings("test", environ={"AEGIS_KAFKA__TOPICZ": "x"})
    with pytest.raises(ConfigError, match=r"kafkaa: unknown setting"):
        load_settings("test", environ={"AEGIS_KAFKAA__PORT": "1"})
    (tmp_path / "base.yaml").write_text("stream:\n  triger_seconds: 1\n")
    with pytest.raises(ConfigError, match=r"stream\.triger_seconds: unknown setting"):
        load_settings("test", environ={}, conf_dir=tmp_path)
    # Variables without a section (AEGIS_HOME, AEGIS_PROFILE, AEGIS_CACHE_DIR, ...) are not settings keys.
    assert load_settings("test", environ={"AEGIS_CACHE_DIR": "/x", "AEGIS_SOMETHING": "y"}).profile == "test"


def test_stream_settings_of_the_stream_rewrite() -> None:
    s = load_settings("test", overrides=parse_overrides(["stream.cold_trigger_seconds=4",
                                                         "stream.duplicate_horizon_hours=24",
                                                         "stream.state_bootstrap=false"]), environ={})
    assert (s.stream.cold_trigger_seconds, s.stream.duplicate_horizon_hours, s.stream.state_bootstrap) == (4, 24, False)
    assert s.stream.cold_partitions == 2
    assert s.kafka.fetch_max_wait_ms == 10  # not Kafka's 500 ms: every micro-batch's read ended on one such wait
    with pytest.raises(ConfigError, match=r"stream\.cold_partitions: Input should be greater than or equal to 1"):
        load_settings("test", environ={"AEGIS_STREAM__COLD_PARTITIONS": "0"})
    with pytest.raises(ConfigError, match=r"stream\.history_refresh_batches: unknown setting"):
        load_settings("test", overrides={"stream": {"history_refresh_batches": 3}}, environ={})
    with pytest.raises(ConfigError, match=r"stream\.cold_trigger_seconds: Input should be greater than 0"):
        load_settings("test", environ={"AEGIS_STREAM__COLD_TRIGGER_SECONDS": "0"})


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("spark: [unclosed\n")
    with pytest.raises(ConfigError, match=r"base\.yaml: not valid YAML"):
        load_settings("test", environ={}, conf_dir=tmp_path)
    (tmp_path / "base.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match=r"base\.yaml: expected a mapping at the top level"):
        load_settings("test", environ={}, conf_dir=tmp_path)


def test_home_from_the_environment_and_its_precedence(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert load_settings("test", environ={"AEGIS_PATHS__HOME": str(a)}).paths.home == a
    assert load_settings("test", environ={"AEGIS_PATHS__HOME": str(a), "AEGIS_HOME": str(b)}).paths.home == b
    over = parse_overrides([f"paths.home={c}"])
    assert load_settings("test", overrides=over, environ={"AEGIS_HOME": str(b)}).paths.home == c
    assert load_settings("test", environ={}).paths.home == Path.cwd()  # made absolute


def test_explicit_environ_isolates_from_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_SPARK__SHUFFLE_PARTITIONS", "9")
    assert load_settings("test", environ={}).spark.shuffle_partitions == 2
    assert load_settings("test").spark.shuffle_partitions == 9


def test_overrides_parse_yaml_scalars_and_refuse_malformed_items() -> None:
    assert parse_overrides(["a.b=1", "a.c=x", "a.d=true", "e=null"]) == {"a": {"b": 1, "c": "x", "d": True}, "e": None}
    with pytest.raises(ConfigError, match=r"override 'nokey': expected section\.key=value"):
        parse_overrides(["nokey"])
