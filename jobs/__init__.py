"""Thin job entry points (spark-submit shims and the `aegis` CLI) over the packages."""
