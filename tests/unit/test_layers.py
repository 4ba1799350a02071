"""The layer table of DESIGN.md ("Layers and who may import whom"), enforced on every import.

Each project module is parsed with ``ast`` (nothing is imported), every ``import x`` / ``from x import y``
anywhere in it (module level, inside functions, under ``TYPE_CHECKING``) is an edge from its package to
the imported package, and an edge the table does not allow fails the test with file and line.

``LAYERS`` below is the table in code; change both together. DESIGN.md (kept outside this repository)
does not have the rows for ``sources/`` and ``analysts/`` yet; until it does, the comments here are their
definition.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_BASE = frozenset({"conf", "lakehouse", "features", "models", "quality", "stream", "serving", "sources",
                   "analysts"})
EVERYTHING = _BASE | {"jobs", "api"}

#: package -> the project packages it may import (its own package is always allowed).
LAYERS: dict[str, frozenset[str]] = {
    "conf": frozenset(),
    "lakehouse": frozenset({"conf"}),
    "features": frozenset({"lakehouse"}),  # lakehouse: schemas only
    "models": frozenset({"features"}),  # names / specs
    "quality": frozenset({"conf", "lakehouse", "features"}),
    "stream": frozenset({"conf", "lakehouse", "features", "models", "quality"}),  # the "pipeline/ (or stream/)" row
    "serving": frozenset({"conf", "lakehouse"}),
    # The event contract in code (mirrors conf/contracts/*.json), the simulator, the handbook reader and
    # the live generator: below everything that speaks events, above nothing.
    "sources": frozenset({"conf"}),
    # The analysts' SQL catalog (views, Spark registration, DuckDB / polars): it lists silver, whose
    # columns come from the feature declarations, so it sits above features.
    "analysts": frozenset({"conf", "lakehouse", "features"}),
    "jobs": EVERYTHING,
    # sources: the event contract (the review console publishes verdicts as label events).
    "api": frozenset({"conf", "lakehouse", "serving", "models", "sources"}),
    # Not packages, but they import the package: scripts and notebooks may use all of it.
    "benchmarks": EVERYTHING,
    "notebooks": EVERYTHING,
}

#: Edges the table forbids that are known and tolerated for now, each with its reason. A stale entry
#: (an edge that no longer exists) fails too, so the list only shrinks. (module path, imported package)
ALLOWED_EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    path: str  # repo-relative
    line: int
    package: str  # importing package
    imported: str  # imported module, dotted

    @property
    def target(self) -> str:
        return self.imported.split(".")[0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.package} imports {self.imported}"


def project_packages(repo: Path = REPO) -> set[str]:
    """Top-level folders holding an ``__init__.py`` (the importable project packages), tests excluded."""
    return {p.parent.name for p in repo.glob("*/__init__.py") if p.parent.name != "tests"}


def edges_of(source: str, path: str, package: str, project: set[str]) -> Iterator[Edge]:
    """Every import of a project package in ``source`` (relative imports stay inside the package)."""
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in project and name.split(".")[0] != package:
                yield Edge(path, node.lineno, package, name)


def notebook_sources(path: Path) -> Iterator[str]:
    import json

    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            # IPython magics are not Python; drop those lines.
            yield "".join(line for line in cell["source"] if not line.lstrip().startswith(("%", "!")))


def all_edges(repo: Path = REPO) -> list[Edge]:
    project = project_packages(repo)
    found: list[Edge] = []
    for package in sorted(LAYERS):
        folder = repo / package
        for path in sorted(folder.rglob("*.py")):
            rel = str(path.relative_to(repo))
            found += edges_of(path.read_text(), rel, package, project)
        for path in sorted(folder.rglob("*.ipynb")):
            rel = str(path.relative_to(repo))
            for source in notebook_sources(path):
                found += edges_of(source, rel, package, project)
    return found


def forbidden(edges: list[Edge]) -> list[Edge]:
    return [e for e in edges if e.target not in LAYERS[e.package]]


def test_every_package_has_a_row_in_the_layer_table() -> None:
    missing = project_packages() - set(LAYERS)
    assert not missing, f"packages without a row in the layer table (DESIGN.md and LAYERS here): {sorted(missing)}"


def test_no_import_goes_against_the_layer_table() -> None:
    bad = [e for e in forbidden(all_edges()) if (e.path, e.target) not in ALLOWED_EXCEPTIONS]
    assert not bad, "imports the layer table forbids:\n" + "\n".join(map(str, bad))


def test_allowed_exceptions_are_still_needed() -> None:
    present = {(e.path, e.target) for e in forbidden(all_edges())}
    stale = sorted(set(ALLOWED_EXCEPTIONS) - present)
    assert not stale, f"ALLOWED_EXCEPTIONS entries with no such import any more (remove them): {stale}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import features.catalog\n", ["features.catalog"]),
        ("from features.catalog import FeatureParams\n", ["features.catalog"]),
        ("def f():\n    from jobs import cli\n", ["jobs"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from models.registry import X\n",
         ["models.registry"]),
        ("from . import tables\nfrom .delta_io import x\nimport lakehouse.session\nimport numpy\n", []),
    ],
)
def test_the_walker_sees_every_kind_of_import(source: str, expected: list[str]) -> None:
    project = {"lakehouse", "features", "jobs", "models"}
    assert [e.imported for e in edges_of(source, "lakehouse/x.py", "lakehouse", project)] == expected


def test_a_forbidden_edge_is_reported_with_its_place() -> None:
    edges = list(edges_of("import os\n\nfrom features.catalog import FeatureParams\n", "lakehouse/x.py",
                          "lakehouse", {"lakehouse", "features", "conf"}))
    assert [str(e) for e in forbidden(edges)] == ["lakehouse/x.py:3: lakehouse imports features.catalog"]
    assert forbidden(list(edges_of("from conf.settings import Settings\n", "lakehouse/x.py", "lakehouse",
                                   {"lakehouse", "conf"}))) == []
