"""Execute the analysts' notebooks headless with this interpreter's ipykernel (no Jupyter install needed).

    .venv/bin/python notebooks/run.py [--lakehouse PATH] [--figures DIR] [--out DIR] [NAME ...]

The kernel is always *this* Python (the venv): a kernelspec named ``python3`` pointing at ``sys.executable``
is written to a temporary folder and used through its own KernelSpecManager, so a ``python3`` kernel
registered elsewhere on the machine (``~/.local/share/jupyter``) cannot take over. Executed copies (with
outputs) go to ``--out`` (default ``var/notebooks``); the checked-in notebooks stay output-free.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NOTEBOOKS_DIR = Path(__file__).resolve().parent
ROOT = NOTEBOOKS_DIR.parent
NOTEBOOKS = ("scores_and_decisions", "model_evaluation", "data_quality")
KERNEL_NAME = "python3"


@contextmanager
def _environ(updates: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def kernel_manager(kernel_dir: Path) -> Any:
    """A KernelManager for a ``python3`` kernel running ``sys.executable -m ipykernel_launcher``."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    write_kernel_spec(kernel_dir / KERNEL_NAME)  # argv[0] is sys.executable
    specs = KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def execute_notebook(path: Path | str, lakehouse: Path | str | None = None, figures_dir: Path | str | None = None,
                     timeout: int = 600, env: dict[str, str] | None = None) -> Any:
    """Run every cell of ``path`` (cwd = its folder) and return the executed notebook.

    ``lakehouse``/``figures_dir`` reach the notebook's parameters cell as AEGIS_LAKEHOUSE /
    AEGIS_FIGURES_DIR. Raises nbclient's CellExecutionError on the first failing cell.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    updates = dict(env or {})
    if lakehouse is not None:
        updates["AEGIS_LAKEHOUSE"] = str(Path(lakehouse).resolve())
    if figures_dir is not None:
        updates["AEGIS_FIGURES_DIR"] = str(Path(figures_dir).resolve())
    updates.setdefault("MPLBACKEND", "Agg")
    with tempfile.TemporaryDirectory(prefix="aegis-kernel-") as tmp, _environ(updates):
        client = NotebookClient(
            nb, km=kernel_manager(Path(tmp)), timeout=timeout, allow_errors=False,
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    """Execute the named notebooks (default: all) and write executed copies."""
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"notebooks to run (default: all of {', '.join(NOTEBOOKS)})")
    parser.add_argument("--lakehouse", help="lakehouse root (default: AEGIS_LAKEHOUSE or var/lakehouse)")
    parser.add_argument("--figures", help="figures folder (default: AEGIS_FIGURES_DIR or var/figures)")
    parser.add_argument("--out", default=str(ROOT / "var" / "notebooks"), help="where executed copies go")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"unknown notebook(s) {', '.join(unknown)}; expected {', '.join(NOTEBOOKS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.names or NOTEBOOKS:
        executed = execute_notebook(NOTEBOOKS_DIR / f"{name}.ipynb", args.lakehouse, args.figures)
        nbformat.write(executed, out / f"{name}.ipynb")
        print(f"{name}: ok -> {out / f'{name}.ipynb'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
