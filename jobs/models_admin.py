"""`aegis models list | promote VERSION | rollback`: the registry's aliases, by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from conf.settings import Settings
from jobs.scoring import mlflow_client
from models.registry import CHAMPION, TAG_PREVIOUS, get_alias_version, list_versions, rollback, set_alias


def promote(settings: Settings, version: str) -> str:
    """Make ``version`` the champion, remembering the one it replaces (for rollback)."""
    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    client.get_model_version(name, version)  # fails clearly if it does not exist
    current = get_alias_version(client, name, CHAMPION)
    if current is not None and str(current.version) == version:
        return f"{name} version {version} is already @{CHAMPION}"
    client.set_model_version_tag(name, version, TAG_PREVIOUS, "" if current is None else str(current.version))
    client.set_model_version_tag(name, version, "aegis.promoted_at", datetime.now(UTC).isoformat())
    set_alias(client, name, CHAMPION, version)
    return f"{name} version {version} is now @{CHAMPION}" + (f" (was {current.version})" if current else "")


def run(settings: Settings, action: str, version: str | None) -> int:
    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    if action == "list":
        versions = list_versions(client, name)
        if not versions:
            print(f"no versions of {name} registered yet (run `aegis train --promote`)")
            return 0
        print(f"{'version':>7}  {'aliases':<22} {'created':<20} {'feature_version':<16} policy_version")
        for v in versions:
            created = datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            tags = v.tags or {}
            print(f"{v.version:>7}  {','.join(v.aliases) or '-':<22} {created:<20} "
                  f"{tags.get('feature_version', '-'):<16} {tags.get('policy_version', '-')}")
        return 0
    if action == "promote":
        if not version or not version.isdigit():
            raise ValueError("models promote: give a version number, e.g. `aegis models promote 3`")
        print(promote(settings, version))
        return 0
    restored = rollback(client, name)
    print(f"{name}@{CHAMPION} rolled back to version {restored.version}")
    return 0
