"""The nightly job under spark-submit: ``spark-submit jobs/nightly.py [--date D] [--retrain] [--profile P]``.

Same code as `aegis nightly` (jobs/backfill.py run_nightly): backfill yesterday, maintain, retrain.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from jobs.backfill import run_nightly
from jobs.submit import submit_main

if __name__ == "__main__":
    cli = argparse.ArgumentParser()
    cli.add_argument("--date", type=date.fromisoformat)
    cli.add_argument("--retrain", action="store_true")
    known, _ = cli.parse_known_args()
    sys.exit(submit_main("nightly", lambda s, spark: run_nightly(s, known.date, known.retrain, spark)))
