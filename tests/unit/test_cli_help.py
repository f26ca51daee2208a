"""Every command says what it does, its flags take no placeholder, and --version answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from takeover.cli.app import app

runner = CliRunner()


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))


def test_every_command_has_help_and_its_flags_no_placeholder() -> None:
    found = list(commands(typer.main.get_command(app)))
    assert len(found) > 40
    for path, command in found:
        assert (command.help or "").strip(), f"takeover {' '.join(path)} has no help text"
        shown = runner.invoke(app, [*path, "--help"], terminal_width=120)
        assert shown.exit_code == 0, (path, shown.output)
        assert "<bool>" not in shown.output, f"takeover {' '.join(path)} --help shows <bool>"


def test_version() -> None:
    shown = runner.invoke(app, ["--version"])
    assert shown.exit_code == 0
    assert shown.output.startswith("takeover ")
