"""`aegis serve` wiring: the subcommand registers its arguments and handler."""

from __future__ import annotations

import argparse

import pytest

from jobs import serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aegis")
    serve.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_register_adds_serve_with_host_port_and_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _parser().parse_args(["serve", "--host", "127.0.0.1", "--port", "9001"])
    assert (args.command, args.host, args.port) == ("serve", "127.0.0.1", 9001)
    calls = []
    monkeypatch.setattr(serve, "run",
                        lambda settings, host, port, workers: calls.append((settings, host, port, workers)) or 0)
    assert args.handler("settings", args) == 0
    assert calls == [("settings", "127.0.0.1", 9001, 1)]
    defaults = _parser().parse_args(["serve"])
    assert (defaults.host, defaults.port) == (None, None)


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_bad_port_is_a_usage_error(port: str) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--port", port])
