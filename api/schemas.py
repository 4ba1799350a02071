"""Response bodies of the score lookup API (also what :mod:`api.client` returns)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Decision = Literal["allow", "review", "block"]

_TX_EXAMPLE = "tx-7f3a9c2e51b04d88"
_CUSTOMER_EXAMPLE = "c-0001f4"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Reason(_Model):
    """One of the features that moved the score most (SHAP contribution, in score units)."""

    feature: str | None = Field(description="Feature name.", examples=["customer_amount_zscore_30d"])
    value: float | None = Field(description="The feature's value for this transaction.", examples=[4.2])
    contribution: float | None = Field(description="Its contribution to the score.", examples=[0.31])


class FeatureValues(_Model):
    """The feature vector a transaction was scored on (from silver.features)."""

    feature_version: str | None = Field(description="Content hash of the feature declarations.",
                                        examples=["fs-c6edc172a7"])
    computed_at: datetime | None = Field(description="When the features were computed (UTC).")
    values: dict[str, float | None] = Field(
        description="Feature name -> value, in model-input order (null when missing or not finite).",
        examples=[{"amount": 912.5, "customer_tx_count_1h": 3.0, "customer_amount_zscore_30d": 4.2}],
    )


class Score(_Model):
    """A scored transaction from gold.scores."""

    transaction_id: str = Field(description="Transaction id.", examples=[_TX_EXAMPLE])
    customer_id: str | None = Field(description="Customer (card holder) id.", examples=[_CUSTOMER_EXAMPLE])
    terminal_id: str | None = Field(description="Terminal / merchant id.", examples=["t-00a1c"])
    event_time: datetime | None = Field(description="When the transaction happened (UTC).")
    amount: float | None = Field(description="Amount.", examples=[912.5])
    score: float | None = Field(description="Fraud probability, 0..1.", examples=[0.87])
    decision: str | None = Field(description="allow, review or block.", examples=["block"])
    model_name: str | None = Field(description="Registered model name.", examples=["aegis-fraud"])
    model_version: str | None = Field(description="Registered model version that produced the score.",
                                      examples=["3"])
    policy_version: str | None = Field(description="Decision policy (thresholds) version.",
                                       examples=["p-0a1b2c3d4e"])
    feature_version: str | None = Field(description="Feature set version of the inputs.",
                                        examples=["fs-c6edc172a7"])
    top_reasons: list[Reason] = Field(description="Largest contributions, most important first.")
    source: str | None = Field(description="stream or backfill.", examples=["stream"])
    scored_at: datetime | None = Field(description="When the score was computed (UTC).")


class TransactionScore(Score):
    """A transaction's score, decision, versions, reasons and the feature values used."""

    features: FeatureValues | None = Field(
        description="The feature values the score was computed from; null when silver.features has no row.")


class ScorePage(_Model):
    """One page of scores, newest first (event time, then transaction id, descending)."""

    items: list[Score] = Field(description="The scores on this page.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=["eyJ2IjoxLCJrIjoiYyIsInQiOjE3MDQwNjcyMDAwMDAwMDAsImlkIjoidHgtMSIsImYiOiIwMTIzIn0"],
    )


class CustomerFeatures(_Model):
    """The latest feature vector of a customer (from silver.features)."""

    customer_id: str = Field(description="Customer id.", examples=[_CUSTOMER_EXAMPLE])
    transaction_id: str = Field(description="The transaction the features were computed for.",
                                examples=[_TX_EXAMPLE])
    event_time: datetime | None = Field(description="That transaction's time (UTC).")
    feature_version: str | None = Field(description="Feature set version.", examples=["fs-c6edc172a7"])
    computed_at: datetime | None = Field(description="When the features were computed (UTC).")
    values: dict[str, float | None] = Field(description="Feature name -> value, in model-input order.",
                                            examples=[{"amount": 912.5, "customer_tx_count_1h": 3.0}])


class Champion(_Model):
    """The model version the registry alias points at."""

    name: str = Field(description="Registered model name.", examples=["aegis-fraud"])
    alias: str = Field(description="The alias looked up.", examples=["champion"])
    version: str = Field(description="Registered model version.", examples=["3"])
    aliases: list[str] = Field(description="Every alias of this version.", examples=[["champion"]])
    run_id: str | None = Field(description="MLflow run that produced the version.",
                               examples=["6f1c1b5e2d7a4c0e9b8a7f6e5d4c3b2a"])
    source: str | None = Field(description="Model artifact URI.", examples=["models:/m-0123456789abcdef"])
    policy_version: str | None = Field(description="Decision policy version (version tag).",
                                       examples=["p-0a1b2c3d4e"])
    feature_version: str | None = Field(description="Feature set version (version tag).",
                                        examples=["fs-c6edc172a7"])
    created_at: datetime | None = Field(description="When the version was registered (UTC).")
    tags: dict[str, str] = Field(description="Every tag of the version.")


class Health(_Model):
    """Liveness."""

    status: Literal["ok"] = Field(description="Always ok while the process serves requests.")


class Check(_Model):
    """One readiness check."""

    ok: bool = Field(description="Whether this dependency is usable.")
    detail: str | None = Field(None, description="What is wrong, when not ok.")
    version: int | None = Field(None, description="Delta version served (tables).")
    rows: int | None = Field(None, description="Rows served (tables).")


class Readiness(_Model):
    """Readiness: gold.scores and silver.features loaded and a champion registered."""

    ready: bool = Field(description="True when every check is ok.")
    missing: list[str] = Field(description="Names of the checks that are not ok.", examples=[["champion"]])
    checks: dict[str, Check] = Field(description="Check name -> result.")


class ValidationIssue(_Model):
    """One invalid input; ``loc`` names it, e.g. ``["query", "limit"]``."""

    loc: list[str | int] = Field(description="Where: location then parameter name.", examples=[["query", "limit"]])
    msg: str = Field(description="What is wrong.", examples=["Input should be less than or equal to 1000"])
    type: str = Field(description="Error type.", examples=["less_than_equal"])


class ValidationProblem(_Model):
    """422: the request's parameters are invalid."""

    detail: list[ValidationIssue]


class Problem(_Model):
    """An error."""

    detail: Any = Field(description="What went wrong.", examples=["transaction not found"])


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or unknown API key (header `X-API-Key`)."},
    403: {"model": Problem, "description": "The key's role may not read this resource."},
    422: {"model": ValidationProblem, "description": "Invalid parameter; `loc` names it."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "Unknown id."}}


class Contribution(_Model):
    """One feature's SHAP contribution, in score units."""

    feature: str = Field(description="Feature name.", examples=["customer_amount_zscore_30d"])
    contribution: float | None = Field(description="Its contribution to the score.", examples=[0.31])


class Explanation(_Model):
    """A score's full SHAP explanation: expected value + Σ contributions = score."""

    transaction_id: str = Field(description="Transaction id.", examples=[_TX_EXAMPLE])
    expected_value: float | None = Field(description="SHAP expected value (the model's base score).")
    score: float | None = Field(description="The score.", examples=[0.87])
    contributions: list[Contribution] = Field(description="Every feature's contribution, in model-input order.")


class VerdictRequest(BaseModel):
    """An analyst's verdict on a transaction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$", description="The transaction judged.",
                                examples=[_TX_EXAMPLE])
    is_fraud: bool = Field(strict=True, description="true: confirmed fraud; false: not fraud.", examples=[True])
    note: str | None = Field(None, max_length=500, description="Free text kept with the verdict (<= 500 chars).")


class Verdict(_Model):
    """A recorded verdict; its label event was acknowledged by the labels topic at ``published_at``."""

    verdict_id: int = Field(description="Verdict id.")
    transaction_id: str = Field(description="Transaction id.", examples=[_TX_EXAMPLE])
    customer_id: str = Field(description="Customer id.", examples=[_CUSTOMER_EXAMPLE])
    terminal_id: str | None = Field(description="Terminal id.")
    is_fraud: bool = Field(description="The verdict.")
    analyst: str = Field(description="Name of the API key that recorded it.", examples=["local-analyst"])
    note: str | None = Field(description="The analyst's note.")
    reported_at: datetime = Field(description="When the verdict was recorded (the label's reported_at).")
    published_at: datetime | None = Field(description="When the labels topic acknowledged the label event.")


class Me(_Model):
    """Who the API key belongs to."""

    name: str = Field(description="Key holder.", examples=["local-analyst"])
    role: str = Field(description="analyst, service or admin.", examples=["analyst"])
