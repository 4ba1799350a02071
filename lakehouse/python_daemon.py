"""The daemon Spark forks its Python UDF workers from, with the scoring libraries imported once.

Spark starts a new Python worker whenever none is idle, and drops workers idle for a minute; each
new worker then imported lightgbm, shap and pandas (about 3.6 s of CPU, measured) before its first
row, which made every long micro-batch pay that per task. Forked from this daemon, a worker inherits
the imports. Run by Spark as ``python -m lakehouse.python_daemon`` (``spark.python.daemon.module``).
"""

from __future__ import annotations

import importlib

# Imported before forking; none of them starts a thread at import (OpenMP pools start on first use).
PRELOADED = ("numpy", "pandas", "pyarrow", "lightgbm", "sklearn.ensemble", "shap")


def preload() -> list[str]:
    """Import :data:`PRELOADED`; return the ones this interpreter lacks (a worker imports them itself)."""
    missing = []
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


if __name__ == "__main__":
    preload()
    from pyspark.daemon import manager

    manager()
