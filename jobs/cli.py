"""The `aegis` command line: argv -> one typed job config (:data:`jobs.kinds.JobKind`) -> merged settings -> run.

The commands and their flags are generated from the job classes by pydantic-settings
(:class:`~pydantic_settings.CliSettingsSource`): one subcommand per member of the union, named by its
``kind``, one flag per field. What argparse parsed is validated through the discriminated union, so
a command's arguments become exactly the job class its ``kind`` names; a bad value stops with a
message naming the flag. The options before the command (``--profile``, ``--set``, ``--log-level``)
choose the settings, not the job.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from functools import cache
from typing import Any, get_args

from pydantic import Field, TypeAdapter, ValidationError, create_model
from pydantic_settings import BaseSettings, CliSettingsSource, CliSubCommand, SettingsConfigDict

from conf.settings import ConfigError, format_validation_error, load_settings, parse_overrides
from jobs.base import JobConfig, configure_logging
from jobs.kinds import JobKind

log = logging.getLogger("aegis")
# Errors that explain themselves: printed without a traceback.
USER_FACING_ERRORS = {"RollbackError", "NoModelError", "KafkaBrokerError", "PostgresServerError"}
SUBCOMMAND = ":subcommand"
GLOBAL_OPTIONS = ("profile", "overrides", "log_level")

JOB_ADAPTER: TypeAdapter[JobKind] = TypeAdapter(JobKind)


def job_classes() -> tuple[type[JobConfig], ...]:
    """The members of :data:`JobKind`, in the order ``aegis --help`` lists them."""
    return get_args(get_args(JobKind)[0])


def kind_of(job: type[JobConfig]) -> str:
    """The command a job class answers to (its ``kind``)."""
    return str(job.model_fields["kind"].default)


def _summary(job: type[JobConfig]) -> str:
    return (job.__doc__ or "").strip().splitlines()[0]


class _CommandsBase(BaseSettings):
    # CLI only (no environment): kebab-case flags, --x/--no-x for booleans, None hidden from help.
    model_config = SettingsConfigDict(
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_hide_none_type=True,
        cli_avoid_json=True,
        cli_enforce_required=True,
        cli_exit_on_error=True,
        case_sensitive=True,
    )


@cache
def _commands_model() -> type[BaseSettings]:
    """The CLI's root model: one subcommand field per job class, aliased to its ``kind``."""
    fields: dict[str, Any] = {
        f"cmd_{kind_of(job).replace('-', '_')}": (
            CliSubCommand[job],  # type: ignore[valid-type,misc]
            Field(alias=kind_of(job), description=_summary(job)),
        )
        for job in job_classes()
    }
    return create_model("AegisCommands", __base__=_CommandsBase, **fields)


class Cli:
    """The parser (global options + one subcommand per job) and its pydantic-settings source."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(
            prog="aegis",
            description="Aegis fraud-scoring lakehouse",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )
        self.parser.add_argument(
            "--profile", choices=["local", "test", "cluster"], help="config profile (AEGIS_PROFILE)"
        )
        self.parser.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a setting, e.g. --set kafka.topics.partitions=8 (repeatable)",
        )
        self.parser.add_argument(
            "--log-level",
            default="INFO",
            help="DEBUG shows everything: Spark's JVM logs and the warnings hidden as harmless",
        )
        self.source: CliSettingsSource[argparse.ArgumentParser] = CliSettingsSource(
            _commands_model(), root_parser=self.parser, cli_prog_name="aegis"
        )
        for action in self.parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                action.metavar = "COMMAND"  # not the list of all nineteen

    def parse(self, argv: list[str] | None) -> tuple[argparse.Namespace, JobConfig]:
        """The global options and the job config; exits 2 with usage on a bad command line."""
        namespace = self.parser.parse_args(argv)
        values = vars(namespace)
        command = values.get(SUBCOMMAND)
        if command is None:
            self.parser.error(f"a command is required: {', '.join(kind_of(j) for j in job_classes())}")
        options = argparse.Namespace(**{k: values[k] for k in GLOBAL_OPTIONS})
        # Lists (PATH...) go in as JSON: pydantic-settings would otherwise also split each value on commas.
        job_args = {
            k: json.dumps(v) if isinstance(v, list) else v for k, v in values.items() if k not in GLOBAL_OPTIONS
        }
        parsed = self.source(parsed_args=job_args)()
        try:
            return options, JOB_ADAPTER.validate_python({"kind": command, **parsed.get(command, {})})
        except ValidationError as exc:
            self.parser.exit(2, f"aegis {command}: {describe_job_error(command, exc)}\n")


def flag_of(command: str, field: str) -> str:
    """How a job field is spelled on the command line: ``--from``, ``--max-seconds`` or ``ACTION``."""
    job = next(j for j in job_classes() if kind_of(j) == command)
    info = job.model_fields.get(field) or next((f for f in job.model_fields.values() if f.alias == field), None)
    name = (info.alias if info is not None and info.alias else field).replace("_", "-")
    positional = info is not None and any(getattr(m, "__name__", "") == "_CliPositionalArg" for m in info.metadata)
    return name.upper() if positional else f"--{name}"


def describe_job_error(command: str, exc: ValidationError) -> str:
    """One line per problem, naming the flag and the value given."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(p) for p in error["loc"][1:]]  # [0] is the union's tag (the command)
        message = error["msg"].removeprefix("Value error, ")
        if loc:
            given = error.get("input")
            shown = "" if isinstance(given, dict) or error["type"] == "missing" else f" (got {given!r})"
            lines.append(f"{flag_of(command, loc[0])}: {message}{shown}")
        else:
            lines.append(message)
    return "; ".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The full CLI parser; `aegis --help` lists every job."""
    return Cli().parser


def parse(argv: list[str]) -> JobConfig:
    """The typed job config a command line names (global options are parsed and dropped)."""
    return Cli().parse(argv)[1]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `aegis` console script."""
    options, job = Cli().parse(argv)
    configure_logging(options.log_level)
    try:
        overrides = parse_overrides(options.overrides)
        if options.log_level.upper() == "DEBUG":  # everything, Spark's JVM included (unless --set says otherwise)
            overrides = {**overrides, "spark": {"log_level": "DEBUG", **overrides.get("spark", {})}}
        settings = load_settings(options.profile, overrides=overrides)
    except ConfigError as exc:
        print(f"aegis: {exc}", file=sys.stderr)
        return 2
    command = kind_of(type(job))
    try:
        return int(job.run(settings) or 0)  # type: ignore[attr-defined]
    except ValidationError as exc:
        print(f"aegis {command}: {format_validation_error(exc)}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"aegis {command}: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if type(exc).__name__ not in USER_FACING_ERRORS:
            raise
        print(f"aegis {command}: {exc}", file=sys.stderr)
        return 1


def print_json(payload: dict[str, Any]) -> None:
    """Machine-readable summary on its own line."""
    print(json.dumps(payload, default=str))


if __name__ == "__main__":
    sys.exit(main())
