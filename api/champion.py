"""The served model, read from the MLflow registry (an MlflowClient created at app startup)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("aegis.api.champion")


@dataclass(frozen=True)
class ChampionLookup:
    """Outcome of one registry lookup: ``found`` (with ``info``), ``missing`` or ``unavailable``."""

    state: str
    detail: str | None = None
    info: dict[str, Any] | None = None


class ChampionSource:
    """Looks up ``model_name@serving_alias`` in the configured registry."""

    def __init__(self, tracking_uri: str, registry_uri: str, model_name: str, alias: str) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.model_name = model_name
        self.alias = alias
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> ChampionSource:
        return cls(settings.mlflow_tracking_uri, settings.mlflow_registry_uri, settings.mlflow.model_name,
                   settings.mlflow.serving_alias)

    def connect(self) -> bool:
        """Create the MlflowClient (idempotent, never raises); False while the registry is not there."""
        with self._lock:
            if self._client is None and self._missing_store() is None:
                try:
                    from mlflow import MlflowClient

                    self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
                except Exception as exc:
                    log.warning("cannot create the MLflow client: %s", exc)
            return self._client is not None

    def _missing_store(self) -> str | None:
        """A SQLite registry file that does not exist is reported, not created by a read-only API."""
        prefix = "sqlite:///"
        if self.registry_uri.startswith(prefix):
            path = Path(self.registry_uri[len(prefix):].split("?", 1)[0])
            if not path.is_file():
                return f"no MLflow registry at {path}"
        return None

    def lookup(self) -> ChampionLookup:
        """The version behind the alias; never raises."""
        missing = self._missing_store()
        if missing:
            return ChampionLookup("missing", missing)
        if not self.connect():
            return ChampionLookup("unavailable", "model registry unavailable")
        try:
            from models.registry import get_alias_version

            version = get_alias_version(self._client, self.model_name, self.alias)
        except Exception as exc:  # registry down, locked, bad URI: report, do not fail the request
            log.warning("registry lookup failed: %s", exc)
            return ChampionLookup("unavailable", f"model registry unavailable: {type(exc).__name__}")
        if version is None:
            return ChampionLookup("missing", f"no version of model {self.model_name!r} has alias @{self.alias}")
        tags = {str(k): str(v) for k, v in (version.tags or {}).items()}
        created = getattr(version, "creation_timestamp", None)
        info = {
            "name": version.name,
            "alias": self.alias,
            "version": str(version.version),
            "aliases": sorted(getattr(version, "aliases", None) or [self.alias]),
            "run_id": version.run_id or None,
            "source": version.source or None,
            "policy_version": tags.get("policy_version"),
            "feature_version": tags.get("feature_version"),
            "created_at": (datetime.fromtimestamp(created / 1000, UTC).isoformat().replace("+00:00", "Z")
                           if created else None),
            "tags": tags,
        }
        if (info["policy_version"] is None or info["feature_version"] is None) and version.run_id:
            info.update(self._run_params(version.run_id, info))
        return ChampionLookup("found", info=info)

    def _run_params(self, run_id: str, info: dict[str, Any]) -> dict[str, Any]:
        try:
            params = self._client.get_run(run_id).data.params
        except Exception:
            return {}
        return {
            "policy_version": info["policy_version"] or params.get("policy_version"),
            "feature_version": info["feature_version"] or params.get("feature_version"),
        }
