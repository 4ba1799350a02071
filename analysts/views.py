"""The documented views of the ``aegis`` catalog: name, description and columns here, SQL in ``views/*.sql``.

The SQL files use ``{db}`` (the database), ``{matured}`` (the label-maturity predicate), ``{top}`` (rows
kept per ranking), ``{known}`` (the shared CTE in ``_known.sql``) and, in ``risky.sql``, ``{entity}``.
Leading ``--`` comment lines of a file are its header and not part of the view.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from analysts.catalog import DATABASE, DEFAULT_LABEL_DELAY_DAYS

SQL_DIR = Path(__file__).resolve().parent / "views"
TOP_N = 100


@cache
def sql_text(name: str) -> str:
    """``views/<name>.sql`` without its header comment lines."""
    lines = (SQL_DIR / f"{name}.sql").read_text().splitlines()
    while lines and lines[0].startswith("--"):
        lines.pop(0)
    return "\n".join(lines).rstrip("\n")


def _template(name: str, **fragments: str) -> str:
    """A view's SQL with its fragments filled in and the per-query placeholders kept."""
    keep = {key: "{" + key + "}" for key in ("db", "matured", "top")}
    return sql_text(name).format(known=sql_text("_known"), **fragments, **keep)


@dataclass(frozen=True)
class ViewColumn:
    """A documented view column; ``dtype`` is the Spark SQL type (simpleString)."""

    name: str
    dtype: str
    description: str


@dataclass(frozen=True)
class CatalogView:
    """A documented view. ``sql`` uses ``{db}`` (database) and ``{matured}`` (label-maturity predicate)."""

    name: str
    description: str
    columns: tuple[ViewColumn, ...]
    sql: str

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def query(self, db: str = DATABASE, label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS) -> str:
        """The SELECT behind the view, for the given database and label delay."""
        matured = f"event_time <= current_timestamp - INTERVAL {int(label_delay_days)} DAYS"
        return self.sql.format(db=db, matured=matured, top=TOP_N)


DAILY_SUMMARY = CatalogView(
    name="daily_summary",
    description=(
        "One row per event date: volume, amounts, decisions by type, frauds confirmed so far, and precision / "
        "recall of the decisions (review or block count as flagged) against matured labels. A transaction's "
        "label has matured once its event time is more than the label delay (features.terminal_label_delay_days"
        ", 7 days by default) in the past; unlabelled matured transactions count as genuine, younger ones are "
        "left out of precision and recall."
    ),
    columns=(
        ViewColumn("event_date", "date", "UTC event date."),
        ViewColumn("transactions", "bigint", "Transactions in bronze for the date."),
        ViewColumn("amount_sum", "double", "Sum of their amounts."),
        ViewColumn("scored", "bigint", "Transactions with a score in gold.scores."),
        ViewColumn("allowed", "bigint", "Scores with decision allow."),
        ViewColumn("reviewed", "bigint", "Scores with decision review."),
        ViewColumn("blocked", "bigint", "Scores with decision block."),
        ViewColumn("mean_score", "double", "Mean fraud score (null without scores)."),
        ViewColumn("frauds_confirmed", "bigint", "Transactions of the date reported fraudulent so far."),
        ViewColumn("matured_scored", "bigint", "Scored transactions whose label has matured."),
        ViewColumn("matured_frauds", "bigint", "Of those, the fraudulent ones."),
        ViewColumn("flagged_matured", "bigint", "Of those, the ones decided review or block."),
        ViewColumn("flagged_frauds", "bigint", "Matured frauds decided review or block (true positives)."),
        ViewColumn("precision", "double", "flagged_frauds / flagged_matured (null when nothing was flagged)."),
        ViewColumn("recall", "double", "flagged_frauds / matured_frauds (null without matured frauds)."),
    ),
    sql=_template("daily_summary"),
)

MODEL_PERFORMANCE = CatalogView(
    name="model_performance",
    description=(
        "One row per event date and model version that scored it: volume, mean score of fraudulent vs genuine "
        "transactions, ROC AUC (Mann-Whitney, ties averaged) and precision / recall at the decision (review or "
        "block = flagged), all against matured labels (see daily_summary)."
    ),
    columns=(
        ViewColumn("event_date", "date", "UTC event date."),
        ViewColumn("model_name", "string", "Registered model name."),
        ViewColumn("model_version", "string", "Registered model version."),
        ViewColumn("scored", "bigint", "Transactions the version scored that day."),
        ViewColumn("mean_score", "double", "Mean score over all of them."),
        ViewColumn("flagged", "bigint", "Decided review or block."),
        ViewColumn("matured", "bigint", "Scored transactions whose label has matured."),
        ViewColumn("frauds", "bigint", "Matured fraudulent transactions."),
        ViewColumn("genuine", "bigint", "Matured genuine transactions."),
        ViewColumn("mean_score_fraud", "double", "Mean score of the matured frauds."),
        ViewColumn("mean_score_genuine", "double", "Mean score of the matured genuine transactions."),
        ViewColumn("auc", "double", "ROC AUC over the matured rows (null unless both classes are present)."),
        ViewColumn("flagged_frauds", "bigint", "Matured frauds flagged (true positives)."),
        ViewColumn("precision", "double", "flagged_frauds / matured flagged (null when nothing was flagged)."),
        ViewColumn("recall", "double", "flagged_frauds / frauds (null without matured frauds)."),
    ),
    sql=_template("model_performance"),
)


def _risky(entity: str, label: str) -> CatalogView:
    return CatalogView(
        name=f"risky_{label}s",
        description=(
            f"The riskiest {label}s over all scores: the top {TOP_N} by mean score and the top {TOP_N} by "
            f"blocks (ties included), with their counts. Order by mean_score_rank or blocks_rank."
        ),
        columns=(
            ViewColumn(entity, "string", f"{label.capitalize()} id."),
            ViewColumn("transactions", "bigint", "Scored transactions."),
            ViewColumn("amount_sum", "double", "Sum of their amounts."),
            ViewColumn("mean_score", "double", "Mean fraud score."),
            ViewColumn("max_score", "double", "Highest fraud score."),
            ViewColumn("reviews", "bigint", "Decisions review."),
            ViewColumn("blocks", "bigint", "Decisions block."),
            ViewColumn("block_rate", "double", "blocks / transactions."),
            ViewColumn("frauds_confirmed", "bigint", "Of the scored transactions, those reported fraudulent so far."),
            ViewColumn("first_date", "date", "First event date scored."),
            ViewColumn("last_date", "date", "Last event date scored."),
            ViewColumn("mean_score_rank", "int", "Rank by mean_score, highest first (1 = riskiest)."),
            ViewColumn("blocks_rank", "int", "Rank by blocks, then mean_score (1 = most blocked)."),
        ),
        sql=_template("risky", entity=entity),
    )


RISKY_TERMINALS = _risky("terminal_id", "terminal")
RISKY_CUSTOMERS = _risky("customer_id", "customer")

QUARANTINE_REASONS = CatalogView(
    name="quarantine_reasons",
    description="Quarantined records per quarantine date and reason.",
    columns=(
        ViewColumn("quarantine_date", "date", "UTC date the records were quarantined."),
        ViewColumn("reason", "string", "Human-readable reason."),
        ViewColumn("records", "bigint", "Quarantined records."),
        ViewColumn("transactions", "bigint", "Distinct transaction ids among them (when readable)."),
        ViewColumn("from_stream", "bigint", "Records from the stream (the rest: imports / simulator)."),
        ViewColumn("first_quarantined_at", "timestamp", "First record quarantined that day for the reason."),
        ViewColumn("last_quarantined_at", "timestamp", "Last one."),
    ),
    sql=_template("quarantine_reasons"),
)

VIEWS: tuple[CatalogView, ...] = (
    DAILY_SUMMARY, MODEL_PERFORMANCE, RISKY_TERMINALS, RISKY_CUSTOMERS, QUARANTINE_REASONS,
)
