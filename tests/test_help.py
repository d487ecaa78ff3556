"""Every command and command group has --help text with an example."""

from __future__ import annotations

import typer.main
from typer.testing import CliRunner

from creditctl.cli.app import app


def command_paths(groups: bool | None = None) -> list[tuple[str, ...]]:
    """Every path through the command tree, found by walking it: leaves, groups, or both."""
    paths: list[tuple[str, ...]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        is_group = hasattr(command, "commands")
        if groups is None or groups == is_group:
            paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not sub.hidden:
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


def without_example(paths: list[tuple[str, ...]]) -> list[str]:
    runner = CliRunner()
    missing = []
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        if "Example" not in result.stdout or len(result.stdout.strip()) < 40:
            missing.append(" ".join(path) or "(root)")
    return missing


def test_the_walk_finds_the_documented_commands():
    paths = {" ".join(p) for p in command_paths()}
    assert {
        "",
        "init",
        "account",
        "run",
        "db upgrade",
        "db current",
        "config show",
        "users add",
        "users show",
        "users search",
        "users list",
        "credits balance",
        "credits check",
        "credits deduct",
        "credits grant",
        "credits adjust",
        "credits reverse",
        "credits history",
        "credits reserve",
        "credits capture",
        "credits release",
        "holds list",
        "holds expire",
        "features check",
        "audit log",
        "audit verify",
    } <= paths


def test_every_command_has_help_with_an_example():
    assert without_example(command_paths(groups=False)) == []


def test_every_command_group_has_help_with_an_example():
    assert without_example(command_paths(groups=True)) == []
