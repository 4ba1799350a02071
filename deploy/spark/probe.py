"""Where do the driver and the executors import Aegis from? (``deploy/spark/submit.sh probe MASTER PROFILE``)

A diagnostic for the code shipping of deploy/spark/submit.sh. It goes through the same
spark-submit shim as the jobs (settings loaded from the shipped ``conf`` package), then runs
an Arrow ``mapInPandas`` UDF, the kind the scoring UDF is, over a few partitions and prints
one JSON line to stdout::

    {"driver": {...}, "executors": [{"host": ..., "pid": ..., "cwd": ..., "python": ...,
                                     "modules": {"jobs.pipeline": "/.../aegis-pkg/jobs/pipeline.py", ...}}]}
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator

MODULES = ("conf.settings", "jobs.pipeline", "models.spark_scoring", "features.engine", "lakehouse.session")


def where() -> dict[str, object]:
    """This process: host, pid, cwd, interpreter and the file of each Aegis module."""
    files = {}
    for name in MODULES:
        module = importlib.import_module(name)
        files[name] = os.path.realpath(module.__file__ or "")
    return {"host": socket.gethostname(), "pid": os.getpid(), "cwd": os.path.realpath(os.getcwd()),
            "python": sys.executable, "modules": files}


def probe(settings: object, spark: object, partitions: int = 8) -> int:
    """Run the UDF and print the report; 0 if every executor imported every module."""
    import pandas as pd
    from pyspark.sql import SparkSession

    assert isinstance(spark, SparkSession)

    def report(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for _ in batches:
            pass
        time.sleep(0.3)  # keep each task busy long enough for every executor to get some
        yield pd.DataFrame({"report": [json.dumps(where())]})

    rows = spark.range(0, partitions * 10, numPartitions=partitions).mapInPandas(report, "report string").collect()
    executors = {(r["host"], r["pid"]): r for r in (json.loads(row["report"]) for row in rows)}
    out = {"driver": where(), "master": spark.sparkContext.master, "executors": list(executors.values())}
    print(json.dumps(out, sort_keys=True))
    return 0 if executors else 1


if __name__ == "__main__":  # spark-submit deploy/spark/probe.py --profile P
    from jobs.submit import submit_main

    sys.exit(submit_main("probe", probe))
