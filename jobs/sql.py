"""`aegis sql` and `aegis sql-shell` (`make sql`): Spark SQL over the ``aegis`` catalog.

Every table is ``aegis.<name>`` (transactions, labels, quarantine, features, scores, validation_results,
run_log) next to the documented views (docs/tables.md); Delta time travel and history work as usual:
``SELECT * FROM aegis.transactions VERSION AS OF 3``, ``DESCRIBE HISTORY aegis.scores``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import sqlparse

from conf.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PROMPT = "aegis> "
CONTINUATION = "   ...> "
DEFAULT_MAX_ROWS = 200
FORMATS = ("table", "csv", "parquet")
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
SHELL_HELP = """Statements end with ';' and may span lines. Commands:
  \\d             list the tables and views of database aegis
  \\d NAME        describe a table or view (columns, types, comments)
  \\h             this help
  \\q             quit (also Ctrl-D)
Examples:
  SELECT * FROM daily_summary ORDER BY event_date DESC LIMIT 7;
  DESCRIBE HISTORY aegis.scores;
  SELECT COUNT(*) FROM aegis.transactions VERSION AS OF 0;"""


class SqlError(RuntimeError):
    """A statement failed (parse or analysis error, missing table, ...)."""


# ---------------------------------------------------------------------------------------- statements


def split_statements(text: str) -> tuple[list[str], str]:
    """Split SQL on ``;`` outside quotes and comments (sqlparse); returns (complete statements, unfinished rest).

    Comments are dropped from the statements; the rest is the raw text after the last ``;`` (so a
    shell can append the next line to it), or empty when it holds only whitespace and comments.
    """
    statements: list[str] = []
    rest = ""
    for piece in sqlparse.split(text):
        body = sqlparse.format(piece, strip_comments=True).strip()
        if body.endswith(";"):
            statement = body[:-1].strip()
            if statement:
                statements.append(statement)
        elif body:
            rest = text[text.rfind(piece):]
    return statements, rest



# --------------------------------------------------------------------------------------------- output


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if value != 0 and (abs(value) >= 1e15 or abs(value) < 1e-4):
            return f"{value:.6e}"
        return f"{value:.6f}".rstrip("0").rstrip(".") or "0"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (list, tuple, dict)) or hasattr(value, "asDict"):
        return json.dumps(_plain(value), default=str)
    return str(value)


def _plain(value: Any) -> Any:
    if hasattr(value, "asDict"):
        return {k: _plain(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return value


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as an aligned text table (numbers right-aligned), with a row count footer."""
    cells = [[_text(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], (int, float, Decimal)) and not isinstance(row[i], bool)
            for row in rows if row[i] is not None)
        for i in range(len(columns))
    ]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return " | ".join(parts).rstrip()

    out = [line(list(columns)), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _format_from(out: Path | None, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    if out is None:
        return "table"
    try:
        return _SUFFIXES[out.suffix.lower()]
    except KeyError:
        raise ValueError(f"--out {out}: cannot tell the format from the suffix; use .csv, .parquet or "
                         "--format") from None


def _flat_for_csv(df: DataFrame) -> DataFrame:
    """Nested columns as JSON text and binary as base64, which CSV can hold."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    cols = []
    for field in df.schema.fields:
        col = F.col(f"`{field.name}`")
        if isinstance(field.dataType, (T.ArrayType, T.MapType, T.StructType)):
            col = F.to_json(col)
        elif isinstance(field.dataType, T.BinaryType):
            col = F.base64(col)
        cols.append(col.alias(field.name))
    return df.select(*cols)


def write_result(df: DataFrame, out: Path, fmt: str) -> int:
    """Write the whole result as one CSV or Parquet file (through Arrow); returns the row count."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    table = (_flat_for_csv(df) if fmt == "csv" else df).toArrow()
    if fmt == "csv":
        pacsv.write_csv(table, out)
    else:
        pq.write_table(table, out)
    return table.num_rows


def print_result(df: DataFrame, stream: TextIO, max_rows: int = DEFAULT_MAX_ROWS) -> int:
    """Print up to ``max_rows`` rows as a table; returns the number printed."""
    rows = df.limit(max_rows + 1).collect()
    shown = rows[:max_rows]
    if not df.columns:
        print("OK", file=stream)
        return 0
    print(format_table(df.columns, [tuple(r) for r in shown]), file=stream)
    if len(rows) > max_rows:
        print(f"(first {max_rows} rows shown; more with --max-rows N, or all with --out FILE)", file=stream)
    else:
        print(f"({len(shown)} row{'' if len(shown) == 1 else 's'})", file=stream)
    return len(shown)


# ------------------------------------------------------------------------------------------ execution


@contextlib.contextmanager
def open_catalog(settings: Settings, job: str = "sql") -> Iterator[SparkSession]:
    """The Spark session with every table and view registered and ``aegis`` the current database
    (the previous current database is restored on exit, for sessions shared with other code)."""
    from analysts.catalog import DATABASE
    from analysts.spark import register_catalog
    from lakehouse.session import create_session

    spark = create_session(settings, job)
    register_catalog(spark, settings)
    previous = spark.catalog.currentDatabase()
    spark.catalog.setCurrentDatabase(DATABASE)
    try:
        yield spark
    finally:
        spark.catalog.setCurrentDatabase(previous)


def execute(spark: SparkSession, statement: str) -> DataFrame:
    """Run one statement; SqlError with Spark's message when it fails."""
    from pyspark.errors import PySparkException

    try:
        return spark.sql(statement)
    except PySparkException as exc:
        raise SqlError(_first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    """Spark's message without the JVM stack trace or the logical plan an analysis error appends."""
    text = str(exc).strip().split("\n\nJVM stacktrace:")[0]
    kept: list[str] = []
    for line in text.splitlines():
        if line.startswith(("'", "+-", ":-", "   +-", "   :-")):
            break
        kept.append(line)
    return "\n".join(kept).rstrip().removesuffix(";").strip() or type(exc).__name__


def _results(spark: SparkSession, statements: list[str]) -> Iterator[DataFrame]:
    for statement in statements:
        yield execute(spark, statement)


def run(settings: Settings, query: str, out: str | Path | None = None, fmt: str | None = None,
        max_rows: int = DEFAULT_MAX_ROWS, stdout: TextIO | None = None) -> int:
    """`aegis sql QUERY`: print the result (or write CSV/Parquet to ``out``); 1 when a statement fails.

    ``query`` may hold several ``;``-separated statements; each result is printed, and with ``out``
    the last one is written.
    """
    from pyspark.errors import PySparkException

    stream = stdout or sys.stdout
    out_path = Path(out) if out is not None else None
    form = _format_from(out_path, fmt)
    if (form != "table") != (out_path is not None):
        raise ValueError(f"--format {form} needs --out PATH" if out_path is None
                         else "--out needs a file format (csv or parquet), not table")
    statements, rest = split_statements(query)
    if rest.strip():
        statements.append(rest.strip())
    if not statements:
        raise ValueError("no SQL statement given")
    with open_catalog(settings) as spark:
        try:
            for number, df in enumerate(_results(spark, statements), 1):
                if out_path is not None and number == len(statements):
                    rows = write_result(df, out_path, form)
                    print(f"wrote {rows:,} rows to {out_path} ({form})", file=sys.stderr)
                else:
                    print_result(df, stream, max_rows)
        except (SqlError, PySparkException) as exc:
            message = str(exc) if isinstance(exc, SqlError) else _first_line(exc)
            print(f"aegis sql: {message}", file=sys.stderr)
            return 1
    return 0


def _list_objects(spark: SparkSession, stream: TextIO) -> None:
    from analysts.catalog import DATABASE

    rows = [(t.name, t.tableType.lower(), _clip(t.description or "", 100))
            for t in spark.catalog.listTables(DATABASE)]
    print(format_table(["name", "type", "description"], sorted(rows, key=lambda r: (r[1] != "external", r[0]))),
          file=stream)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _meta(spark: SparkSession, command: str, stream: TextIO) -> bool:
    """Handle a backslash command; False means quit."""
    parts = command.split()
    head = parts[0]
    if head in ("\\q", "\\quit"):
        return False
    if head in ("\\h", "\\?", "\\help"):
        print(SHELL_HELP, file=stream)
    elif head == "\\d" and len(parts) == 1:
        _list_objects(spark, stream)
    elif head == "\\d":
        print_result(execute(spark, f"DESCRIBE TABLE {parts[1]}"), stream, 1000)
    else:
        print(f"unknown command {head}; \\h for help", file=stream)
    return True


def shell(settings: Settings, stdin: TextIO | None = None, stdout: TextIO | None = None,
          max_rows: int = DEFAULT_MAX_ROWS) -> int:
    """`aegis sql-shell` (`make sql`): read ``;``-terminated statements until ``\\q`` or end of input.

    Prompts and line editing only when stdin is a terminal; a failing statement prints its error and
    the loop goes on. Returns 0, or 1 when input was piped and some statement failed.
    """
    source = stdin or sys.stdin
    stream = stdout or sys.stdout
    interactive = stdin is None and source.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    with open_catalog(settings, "sql-shell") as spark:
        if interactive:
            print(f"Aegis SQL on {settings.lakehouse_root} (database aegis). \\h for help, \\q to quit.",
                  file=stream)
        failed = _loop(spark, source, stream, interactive, max_rows)
    return 1 if failed and not interactive else 0


def _loop(spark: SparkSession, source: TextIO, stream: TextIO, interactive: bool, max_rows: int) -> bool:
    """The read-eval-print loop; True when some statement failed."""
    failed = False
    buffer = ""
    while True:
        prompt = CONTINUATION if buffer.strip() else PROMPT
        try:
            if interactive:
                line = input(prompt)
            else:
                line = source.readline()
                if not line:
                    break
        except EOFError:
            break
        except KeyboardInterrupt:
            print("\n(cancelled)", file=stream)
            buffer = ""
            continue
        if not buffer.strip() and line.strip().startswith("\\"):
            try:
                if not _meta(spark, line.strip(), stream):
                    return failed
            except SqlError as exc:
                failed = True
                print(f"error: {exc}", file=stream)
            continue
        statements, buffer = split_statements(buffer + line + ("\n" if interactive else ""))
        for statement in statements:
            try:
                print_result(execute(spark, statement), stream, max_rows)
            except SqlError as exc:
                failed = True
                print(f"error: {exc}", file=stream)
            except KeyboardInterrupt:
                spark.sparkContext.cancelAllJobs()
                print("(cancelled)", file=stream)
                break
    if buffer.strip():
        print("(unterminated statement ignored; end statements with ';')", file=stream)
    if interactive:
        print(file=stream)
    return failed
