"""Configuration: layered YAML profiles, contracts and the typed settings loader."""

from conf.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
