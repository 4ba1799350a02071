"""Typed, layered settings for every Aegis job and service.

Precedence, lowest to highest (the one place it is written down):

1. ``conf/base.yaml``
2. ``conf/<profile>.yaml`` (profile from ``--profile`` or ``AEGIS_PROFILE``, default ``local``)
3. environment variables ``AEGIS_<SECTION>__<KEY>`` (double underscore between levels),
   e.g. ``AEGIS_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092``
4. explicit overrides (CLI ``--set section.key=value``)

Each layer is a pydantic-settings source (:meth:`Settings.settings_customise_sources`): two
:class:`YamlConfigSettingsSource` files, an :class:`EnvSettingsSource` with prefix ``AEGIS_`` and
delimiter ``__``, and the init arguments for the overrides; pydantic-settings merges them key by key.
``AEGIS_HOME`` (the project root) counts as ``AEGIS_PATHS__HOME`` and wins over it. Environment values
are strings that pydantic converts to the field's type; mappings and lists are YAML (or JSON); ``null``
is None.

Every model is strict (unknown keys are errors, from any layer) and every error names the dotted key.
Relative paths are resolved against the project root (``AEGIS_HOME`` or the current directory).
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

CONF_DIR = Path(__file__).resolve().parent
PROFILES = ("local", "test", "cluster")
ENV_PREFIX = "AEGIS_"
ENV_DELIMITER = "__"
HOME_ENV = "AEGIS_HOME"
PROFILE_ENV = "AEGIS_PROFILE"
UNSAFE_CARD_KEY = "local-development-key-not-a-secret"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsSettings(Strict):
    """Where Aegis keeps its data on disk."""

    home: Path = Field(
        Path("."), validate_default=True, description="Project root (made absolute); relative paths resolve against it."
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()
    lakehouse: Path = Field(Path("var/lakehouse"), description="Root folder (or URI) of all Delta tables.")
    checkpoints: Path = Field(
        Path("var/lakehouse/_checkpoints"), description="Streaming checkpoints, one folder per query."
    )
    cache: Path = Field(Path(".cache"), description="Resolved JVM jars and Kafka broker libraries.")
    run: Path = Field(Path("var/run"), description="Runtime state: broker data, pid files, logs.")


class BrokerSettings(Strict):
    """The embedded single-node KRaft broker started by `aegis kafka up`."""

    host: str = Field("127.0.0.1", description="Interface the broker listens on (loopback only).")
    port: int = Field(19092, ge=1024, le=65535, description="Client port.")
    controller_port: int = Field(19093, ge=1024, le=65535, description="KRaft controller port.")
    heap: str = Field("512m", description="Broker JVM heap.")


class TopicSettings(Strict):
    """Kafka topic names and partition counts."""

    transactions: str = Field("aegis.transactions", description="Incoming card transactions.")
    labels: str = Field("aegis.transaction-labels", description="Chargebacks / confirmed labels.")
    scores: str = Field("aegis.fraud-scores", description="Scores with top reasons, keyed by transaction id.")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions for each topic when created.")


class KafkaSettings(Strict):
    """Kafka endpoints and topics."""

    bootstrap_servers: str = Field("127.0.0.1:19092", description="Comma-separated host:port list.")
    topics: TopicSettings = TopicSettings()
    broker: BrokerSettings = BrokerSettings()
    starting_offsets: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a brand-new streaming query starts reading."
    )
    max_offsets_per_trigger: int | None = Field(
        None, ge=1, description="Upper bound of records per micro-batch of the stream's cold query "
        "(None = all available); the stream's hot query always reads what is available."
    )
    fetch_max_wait_ms: int = Field(
        10, ge=0, description="The stream's Kafka consumers' fetch.max.wait.ms. Kafka's 500 ms default "
        "made every task that reads a micro-batch's offsets wait half a second on its last fetch.",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for item in value.split(","):
            host, _, port = item.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value


class SparkSettings(Strict):
    """How the Spark session is built (spark-submit flags win over these)."""

    master: str = Field("local[*]", description="Master URL used when not launched by spark-submit.")
    app_name: str = Field("aegis", description="Application name prefix.")
    driver_memory: str = Field("4g", description="Driver heap for local runs.")
    shuffle_partitions: int = Field(4, ge=1, description="spark.sql.shuffle.partitions.")
    ui_enabled: bool = Field(False, description="Start the Spark UI.")
    log_level: str = Field("WARN", description="Spark log level.")
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark confs, applied last.")


class MlflowSettings(Strict):
    """MLflow tracking server and model registry."""

    tracking_uri: str = Field("sqlite:///var/mlflow/mlflow.db", description="Tracking store URI.")
    registry_uri: str | None = Field(None, description="Registry URI (defaults to the tracking URI).")
    artifact_root: Path = Field(Path("var/mlflow/artifacts"), description="Artifact folder for new runs.")
    experiment: str = Field("aegis-fraud", description="Experiment for training runs.")
    model_name: str = Field("aegis-fraud", description="Registered model name.")
    serving_alias: str = Field("champion", description="Alias the stream and the API serve.")


class FeatureSettings(Strict):
    """Feature computation parameters shared by the stream and batch engines."""

    timezone: str = Field("UTC", description="Zone for hour-of-day, day-of-week, weekend and night.")
    terminal_label_delay_days: int = Field(7, ge=0, description="Terminal windows end this long before a tx.")
    night_start_hour: int = Field(0, ge=0, le=23, description="Night flag: hour >= this ...")
    night_end_hour: int = Field(7, ge=0, le=24, description="... and hour < this.")


class StreamSettings(Strict):
    """The streaming scoring job."""

    query_name: str = Field(
        "aegis-stream", description="Stable name: checkpoint folder and the app id of idempotent Delta writes."
    )
    trigger_seconds: float = Field(2.0, gt=0, description="Micro-batch trigger interval.")
    allowed_lateness_seconds: float = Field(
        0.0, ge=0, description="Hold features until the event-time frontier passes this much."
    )
    model_refresh_seconds: float = Field(15.0, gt=0, description="How often @champion is re-resolved.")
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus port (0 = off).")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint binds (0.0.0.0 in a pod).")
    publish_scores: bool = Field(True, description="Also write scores to the scores topic.")
    batch_checks: bool = Field(
        True, description="Record each micro-batch's data-quality results in quality.validation_results."
    )
    cold_trigger_seconds: float = Field(
        10.0, gt=0, description="Trigger of the cold query (quarantine, bronze, labels, quality results)."
    )
    queries: Literal["both", "hot", "cold"] = Field(
        "both", description="The queries this process runs: both, or one (the other in an application of its own).",
    )
    cold_in_child_process: bool = Field(
        True, description="With queries=both, `aegis stream` runs the cold query in a child process at lower CPU "
        "priority (stream.cold_nice), so no cold micro-batch holds a core a hot one waits for; on a cluster, "
        "submit two applications instead (queries=hot and queries=cold).",
    )
    cold_nice: int = Field(10, ge=0, le=19, description="The cold child process's niceness (0-19).")
    cold_idle_class: bool = Field(
        True, description="Also put the cold child process in the kernel's idle scheduling class (SCHED_IDLE, "
        "Linux): it then runs on the CPU time the hot query leaves, and the cold query lags further behind "
        "while the machine is saturated.",
    )
    checkpoint_every_commits: int = Field(
        50, ge=1, description="The cold query writes a Delta checkpoint of gold.scores and silver.features once "
        "this many hot commits have landed since the last one, so no hot micro-batch waits for a checkpoint.",
    )
    cold_partitions: int = Field(
        2, ge=1, description="Tasks per stage of the cold query (its Kafka read and its state; fixed at a new "
        "checkpoint). More, shorter tasks would hand a core back to the hot query sooner, but measured in "
        "bench-stream, 8 made the cold micro-batch 4.8 -> 7.0 s and the hot p99 6.7 -> 10.1 s on 2 cores.",
    )
    duplicate_horizon_hours: float = Field(
        168.0, gt=0, description="The cold path drops repeated transaction ids whose Kafka times lie this close."
    )
    state_bootstrap: bool = Field(
        True, description="On a new checkpoint, seed the feature state from bronze (imported or earlier history)."
    )


class SecuritySettings(Strict):
    """Secrets; real deployments pass them through the environment."""

    card_hash_key: str = Field(UNSAFE_CARD_KEY, description="HMAC key for card-number tokens.")


class ApiKey(Strict):
    """One API key, stored as a SHA-256 hash."""

    name: str = Field(description="Who holds the key (for logs).")
    sha256: str = Field(description="Hex SHA-256 of the key.", min_length=64, max_length=64)
    role: Literal["analyst", "service", "admin"] = Field(description="What the key may read.")


class ApiSettings(Strict):
    """The score lookup API."""

    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8080, ge=1, le=65535, description="Bind port.")
    keys: list[ApiKey] = Field(default_factory=list, description="Accepted API keys (hashed).")


class PostgresServerSettings(Strict):
    """The embedded PostgreSQL server started by `aegis postgres up` (used when serving.dsn is not set)."""

    host: Literal["127.0.0.1"] = Field("127.0.0.1", description="Interface it listens on (loopback only).")
    port: int = Field(15432, ge=1024, le=65535, description="TCP port.")
    user: str = Field("aegis", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="Superuser created at initdb.")
    password: str = Field("aegis-local-dev", min_length=8, description="Its password (SCRAM); set it outside local.")
    database: str = Field("aegis", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="Database holding the store.")


class ServingSettings(Strict):
    """The PostgreSQL serving store behind the API and the review console."""

    dsn: str | None = Field(
        None, description="libpq URI of any PostgreSQL; unset = the embedded server of serving.postgres."
    )
    retention_days: int = Field(90, ge=1, description="Scores and features older than this are deleted.")
    pool_min_size: int = Field(2, ge=1, description="API connection pool: connections kept open.")
    pool_max_size: int = Field(8, ge=1, description="API connection pool: at most this many connections.")
    statement_timeout_ms: int = Field(5000, ge=1, description="Longest an API query may run.")
    sync_query_name: str = Field(
        "aegis-serving-sync", pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Checkpoint folder prefix of the sync queries (gold.scores, silver.features).",
    )
    sync_trigger_seconds: float = Field(1.0, gt=0, description="Micro-batch interval of the sync queries.")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus port of `aegis serving sync` (0 = off).")
    postgres: PostgresServerSettings = PostgresServerSettings()

    @model_validator(mode="after")
    def _pool_bounds(self) -> ServingSettings:
        if self.pool_max_size < self.pool_min_size:
            raise ValueError("serving.pool_max_size must be >= serving.pool_min_size")
        return self


class QualitySettings(Strict):
    """Data-quality reporting."""

    data_docs_dir: Path = Field(Path("var/data-docs"), description="Where Data Docs HTML is built.")


class Settings(BaseSettings):
    """All of Aegis' configuration: the layers of the module docstring, validated strictly."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER,
        case_sensitive=False, env_parse_none_str="null",
    )

    profile: Literal["local", "test", "cluster"] = Field("local", description="Active profile.")
    paths: PathsSettings = PathsSettings()
    kafka: KafkaSettings = KafkaSettings()
    spark: SparkSettings = SparkSettings()
    mlflow: MlflowSettings = MlflowSettings()
    features: FeatureSettings = FeatureSettings()
    stream: StreamSettings = StreamSettings()
    security: SecuritySettings = SecuritySettings()
    api: ApiSettings = ApiSettings()
    quality: QualitySettings = QualitySettings()
    serving: ServingSettings = ServingSettings()

    @model_validator(mode="after")
    def _no_unsafe_secrets_outside_local(self) -> Settings:
        if self.profile not in ("local", "test") and self.security.card_hash_key in ("", UNSAFE_CARD_KEY):
            raise ValueError(
                "security.card_hash_key: the built-in development key is refused outside the "
                "local and test profiles; set AEGIS_SECURITY__CARD_HASH_KEY"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest first: overrides (init arguments) > environment > profile YAML > base YAML."""
        layers = _LAYERS.get() or _Layers.from_environ(os.environ)
        return (
            init_settings,
            _StrictEnvSource(settings_cls, layers.environ),
            _YamlLayer(settings_cls, layers.conf_dir / f"{layers.profile}.yaml"),
            _YamlLayer(settings_cls, layers.conf_dir / "base.yaml"),
        )

    def path(self, value: Path) -> Path:
        """Resolve a configured path against ``paths.home``."""
        return value if value.is_absolute() else (self.paths.home / value).resolve()

    @property
    def lakehouse_root(self) -> Path:
        return self.path(self.paths.lakehouse)

    @property
    def checkpoint_root(self) -> Path:
        return self.path(self.paths.checkpoints)

    @property
    def cache_dir(self) -> Path:
        return self.path(self.paths.cache)

    @property
    def run_dir(self) -> Path:
        return self.path(self.paths.run)

    @property
    def serving_dsn(self) -> str:
        """Where the serving store is: ``serving.dsn``, else the embedded server's URI."""
        if self.serving.dsn:
            return self.serving.dsn
        pg = self.serving.postgres
        return f"postgresql://{pg.user}:{quote(pg.password, safe='')}@{pg.host}:{pg.port}/{pg.database}"

    @property
    def mlflow_tracking_uri(self) -> str:
        return _resolve_sqlite_uri(self.mlflow.tracking_uri, self.paths.home)

    @property
    def mlflow_registry_uri(self) -> str:
        return _resolve_sqlite_uri(self.mlflow.registry_uri or self.mlflow.tracking_uri, self.paths.home)


def _resolve_sqlite_uri(uri: str, home: Path) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str((home / uri[len(prefix) :]).resolve())
    return uri


@dataclass(frozen=True)
class _Layers:
    """What one load reads: the profile, the environment and the folder of the YAML files."""

    profile: str
    environ: Mapping[str, str]
    conf_dir: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], profile: str | None = None,
                     conf_dir: Path = CONF_DIR) -> _Layers:
        chosen = profile or environ.get(PROFILE_ENV) or "local"
        if chosen not in PROFILES:
            raise ConfigError(f"profile: unknown profile {chosen!r}; expected one of {', '.join(PROFILES)}")
        return cls(chosen, environ, conf_dir)


#: The layers of the load in progress (set by :func:`load_settings`; ``Settings()`` alone reads os.environ).
_LAYERS: contextvars.ContextVar[_Layers | None] = contextvars.ContextVar("aegis_settings_layers", default=None)


class _YamlLayer(YamlConfigSettingsSource):
    """One YAML file; a file that is not a mapping of settings is a ConfigError naming the file."""

    def _read_file(self, path: Any) -> dict[str, Any]:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return data


class _StrictEnvSource(EnvSettingsSource):
    """``AEGIS_<SECTION>__<KEY>`` from a given environment, strict about sections too.

    pydantic-settings reports unknown keys inside a known section (extra="forbid"); a variable naming
    an unknown section (``AEGIS_KAFKAA__PORT``) would be skipped silently, so it is passed on to
    validation as well, to fail with its name. ``AEGIS_HOME`` sets ``paths.home``.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(dict(self._environ), self.case_sensitive, self.env_ignore_empty,
                              self.env_parse_none_str)

    def decode_complex_value(self, field_name: str, field: Any, value: Any) -> Any:
        """Lists and mappings are YAML (so JSON too): deploy/k8s/secret.yaml holds AEGIS_API__KEYS as a
        YAML flow list."""
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML / JSON: {exc}") from exc

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        known = set(self.settings_cls.model_fields)
        prefix = self.env_prefix.lower()
        for name, value in self.env_vars.items():
            section, sep, rest = name.lower().removeprefix(prefix).partition(ENV_DELIMITER)
            if name.lower().startswith(prefix) and sep and section not in known:
                data.setdefault(section, {})[rest.replace(ENV_DELIMITER, ".")] = value
        home = self.env_vars.get(HOME_ENV.lower())
        if home:
            data["paths"] = {**data.get("paths", {}), "home": home}
        return data


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cursor = out
    parts = [p for p in dotted.split(".") if p]
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def parse_overrides(items: list[str], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parse CLI ``section.key=value`` overrides (values are YAML scalars) into one nested mapping,
    merged over ``base`` if given."""
    merged: dict[str, Any] = dict(base or {})
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected section.key=value")
        merged = _merge(merged, _nested(key.strip(), _parse_scalar(raw)))
    return merged


@contextmanager
def _loading(layers: _Layers) -> Iterator[None]:
    token = _LAYERS.set(layers)
    try:
        yield
    finally:
        _LAYERS.reset(token)


def load_settings(
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    conf_dir: Path = CONF_DIR,
) -> Settings:
    """Load and validate settings; raises ConfigError naming the offending key.

    ``profile`` defaults to ``AEGIS_PROFILE`` (else ``local``), ``environ`` to ``os.environ``.
    """
    env = dict(os.environ if environ is None else environ)
    layers = _Layers.from_environ(env, profile, conf_dir)
    init = {**dict(overrides or {}), "profile": layers.profile}
    try:
        with _loading(layers):
            return Settings(**init)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    except SettingsError as exc:  # an environment value that does not decode (it names the section)
        raise ConfigError(f"invalid configuration: {exc}: {exc.__cause__}") from None


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each starting with the dotted key."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown setting")
        else:
            lines.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)
