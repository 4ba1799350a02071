"""The suites in conf/expectations as Great Expectations 1.x ``ExpectationSuite`` objects.

Each JSON entry (``type`` in snake case, ``kwargs``, ``meta.critical``, ``meta.batch_only``) becomes
the gx expectation class of the same name (``expect_column_values_to_not_be_null`` ->
``gx.expectations.ExpectColumnValuesToNotBeNull``). Relative bounds such as ``'now+1d'`` and ISO
timestamps are resolved with :func:`quality.rules.resolve_bound` when the suite is built, so build
the suite at validation time. Each gx expectation carries the Aegis name and flags in its ``meta``
so results can be mapped back whatever order gx returns them in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quality.rules import SUITES_DIR, Expectation, load_suite, resolve_bound

if TYPE_CHECKING:
    import great_expectations as gx

SUITE_NAMES = ("transactions", "features", "scores")
BOUND_KEYS = ("min_value", "max_value")
META_NAME = "aegis_name"  # key of the Aegis expectation name in a gx expectation's meta


def class_name(expectation_type: str) -> str:
    """``expect_column_values_to_not_be_null`` -> ``ExpectColumnValuesToNotBeNull``."""
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def expectation_class(expectation_type: str) -> type[gx.expectations.Expectation]:
    """The gx expectation class for a snake-case type; ValueError naming it when gx has none."""
    import great_expectations as gx

    cls = getattr(gx.expectations, class_name(expectation_type), None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, gx.expectations.Expectation):
        raise ValueError(f"unknown expectation type {expectation_type!r} "
                         f"(no gx.expectations.{class_name(expectation_type)})")
    return cls


def resolved_kwargs(exp: Expectation, now: datetime | None = None) -> dict[str, Any]:
    """The entry's kwargs with min/max bounds resolved ('now+1d', ISO timestamps)."""
    kwargs = dict(exp.kwargs)
    for key in BOUND_KEYS:
        if kwargs.get(key) is not None:
            kwargs[key] = resolve_bound(kwargs[key], now)
    return kwargs


def to_gx(exp: Expectation, index: int, now: datetime | None = None) -> gx.expectations.Expectation:
    """One suite entry as a gx expectation; ``meta`` carries the Aegis name, critical and batch_only."""
    meta = {META_NAME: exp.name, "critical": exp.critical, "batch_only": exp.batch_only, "index": index}
    return expectation_class(exp.type)(**resolved_kwargs(exp, now), meta=meta)


def suite_notes(name: str, suites_dir: Path = SUITES_DIR) -> str:
    """The suite-level ``meta.notes`` of a suite file ('' when absent)."""
    data = json.loads((suites_dir / f"{name}.json").read_text())
    return str(data.get("meta", {}).get("notes", ""))


def build_suite(name: str, now: datetime | None = None, suites_dir: Path = SUITES_DIR) -> gx.ExpectationSuite:
    """The suite file ``<suites_dir>/<name>.json`` as a gx ExpectationSuite, bounds resolved at ``now``."""
    import great_expectations as gx

    current = now or datetime.now(UTC)
    entries = load_suite(name, suites_dir)
    names = [e.name for e in entries]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"{suites_dir / f'{name}.json'}: expectation names must be unique, repeated: {duplicated}")
    return gx.ExpectationSuite(
        name=name,
        expectations=[to_gx(e, i, current) for i, e in enumerate(entries)],
        meta={"notes": suite_notes(name, suites_dir), "source": f"conf/expectations/{name}.json"},
    )
