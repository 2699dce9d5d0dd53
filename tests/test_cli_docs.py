"""Every CLI command and option explains itself: a command without help text fails here."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from biosegment.cli import main


def walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, path + (name,))


COMMANDS = list(walk(main))


def test_the_cli_has_the_foundation_commands():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"init", "status", "datasets", "models", "info", "reindex"} <= names


@pytest.mark.parametrize(
    "path, command", COMMANDS, ids=[" ".join(p) or "biosegment" for p, _ in COMMANDS]
)
def test_command_and_its_options_have_help(path, command):
    assert (command.help or "").strip(), f"command {' '.join(path)!r} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), (
                f"option {param.opts} of {' '.join(path)!r} has no help"
            )


@pytest.mark.parametrize(
    "path, command", COMMANDS, ids=[" ".join(p) or "biosegment" for p, _ in COMMANDS]
)
def test_help_runs(path, command):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
