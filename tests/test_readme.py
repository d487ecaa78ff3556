"""README.md keeps up with the real command tree and the Makefile.

The command tree is walked from the Typer app in `creditctl.cli.app`, so a new command or a
new long option fails here until README documents it, and the README's command table may
not name a command or an option that does not exist.

A command counts as documented when a code span in README starts with its path (`credits
deduct ...`). Its long options must appear in the same table row or paragraph as one of
those spans, except options that README documents for every command in a paragraph that
says so ("Every command ... takes `--json`"); the root's options belong in the paragraph
about global options.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from creditctl.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAKEFILE = ROOT / "Makefile"
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the tree, the root first, each with its path of names."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


def long_options(command: Any) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if param.param_type_name == "option":
            names.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    return names - {"--help"}


def tree() -> dict[tuple[str, ...], set[str]]:
    return {path: long_options(command) for path, command in walk(typer.main.get_command(app))}


def units(text: str) -> list[str]:
    """README as table rows, list items and paragraphs: where one command is documented."""
    found: list[str] = []
    current: list[str] = []
    fenced = False

    def close() -> None:
        if current:
            found.append(" ".join(line.strip() for line in current))
            current.clear()

    for line in text.splitlines():
        if line.startswith("```"):
            close()
            fenced = not fenced
        elif fenced or line.startswith("|") or not line.strip():
            close()
            if line.strip():
                found.append(line)
        else:
            if re.match(r"\s*(?:[-*]|\d+\.)\s", line):
                close()
            current.append(line)
    close()
    return found


def spans(unit: str) -> list[str]:
    return [s.replace("\\|", "|").strip() for s in CODE_SPAN.findall(unit)]


def names_command(span: str, path: tuple[str, ...]) -> bool:
    words = span.split()
    if words[:1] == ["creditctl"]:
        words = words[1:]
    return tuple(words[: len(path)]) == path


def options_in(unit: str) -> set[str]:
    return set(LONG_OPTION.findall(unit.replace("\\|", "|")))


def undocumented(text: str, commands: dict[tuple[str, ...], set[str]]) -> list[str]:
    parts = units(text)
    common = set().union(*(options_in(u) for u in parts if "every command" in u.lower()))
    missing: list[str] = []
    for path, options in commands.items():
        if path:
            where = [u for u in parts if any(names_command(s, path) for s in spans(u))]
            if not where:
                missing.append(f"`{' '.join(path)}` is not in README.md")
                continue
        else:
            where = [u for u in parts if "global options" in u.lower()]
        shown = set().union(*(options_in(u) for u in where))
        for option in sorted(options - shown - common):
            label = " ".join(path) or "creditctl (global option)"
            missing.append(f"`{label} {option}` is not in README.md beside that command")
    return missing


def command_table(text: str) -> list[str]:
    """The first cell of each row of the table under '## Commands'."""
    section = re.split(r"^## Commands\n", text, maxsplit=1, flags=re.M)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.M)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [re.split(r"(?<!\\)\|", row)[1] for row in rows]


def unknown(text: str, commands: dict[tuple[str, ...], set[str]]) -> list[str]:
    wrong: list[str] = []
    for cell in command_table(text):
        for span in spans(cell):
            words = span.split()
            path = ()
            while words[len(path) :] and (*path, words[len(path)]) in commands:
                path = (*path, words[len(path)])
            if not path:
                wrong.append(f"`{span}` in the command table names no creditctl command")
                continue
            for option in sorted(options_in(span) - commands[path]):
                wrong.append(f"`{span}`: `{' '.join(path)}` has no option {option}")
    return wrong


def test_the_walk_sees_the_whole_tree():
    commands = tree()
    assert len(commands) > 40
    assert "--ref" in commands[("credits", "deduct")]
    assert "--help" not in commands[("credits", "deduct")]
    assert {"--config", "--database-url", "--operator"} <= commands[()]


def test_readme_documents_every_command_and_long_option():
    missing = undocumented(README.read_text(encoding="utf-8"), tree())
    assert not missing, "README.md is missing:\n" + "\n".join(missing)


def test_the_readme_command_table_names_only_real_commands_and_options():
    wrong = unknown(README.read_text(encoding="utf-8"), tree())
    assert not wrong, "README.md's command table is wrong:\n" + "\n".join(wrong)


SAMPLE_TREE = {
    (): {"--config"},
    ("credits",): set(),
    ("credits", "deduct"): {"--ref", "--key", "--json"},
}
SAMPLE = """## Commands

Every command that prints data
takes `--json`.

| command | what it does |
|---|---|
| `credits deduct USER AMOUNT [--ref R] [--key K]` | spend |

- `credits deduct` draws from the soonest-expiring grant.

Global options: `--config FILE`.
"""


def test_the_checks_pass_a_complete_readme():
    assert undocumented(SAMPLE, SAMPLE_TREE) == []
    assert unknown(SAMPLE, SAMPLE_TREE) == []


def test_the_checks_name_a_missing_command_or_option():
    no_row = SAMPLE.replace("| `credits deduct USER AMOUNT [--ref R] [--key K]` | spend |\n", "")
    no_row = no_row.replace("- `credits deduct` draws", "- Usage draws")
    assert undocumented(no_row, SAMPLE_TREE) == [
        "`credits` is not in README.md",
        "`credits deduct` is not in README.md",
    ]
    no_key = SAMPLE.replace(" [--key K]", "")
    assert undocumented(no_key, SAMPLE_TREE) == [
        "`credits deduct --key` is not in README.md beside that command"
    ]
    no_global = SAMPLE.replace("`--config FILE`", "none")
    assert undocumented(no_global, SAMPLE_TREE) == [
        "`creditctl (global option) --config` is not in README.md beside that command"
    ]


def test_an_option_elsewhere_does_not_document_a_command():
    moved = SAMPLE.replace(" [--key K]", "").replace("draws from", "draws (`--key`) from")
    assert undocumented(moved, SAMPLE_TREE) == []  # the list item names the command
    elsewhere = SAMPLE.replace(" [--key K]", "").replace("Global options:", "See `--key`. Global:")
    assert "`credits deduct --key` is not in README.md beside that command" in undocumented(
        elsewhere, SAMPLE_TREE
    )


def test_the_table_may_not_name_what_does_not_exist():
    invented = SAMPLE.replace("[--key K]", "[--key K] [--force]")
    assert unknown(invented, SAMPLE_TREE) == [
        "`credits deduct USER AMOUNT [--ref R] [--key K] [--force]`: `credits deduct` has no "
        "option --force"
    ]
    renamed = SAMPLE.replace("| `credits deduct", "| `spend")
    assert unknown(renamed, SAMPLE_TREE) == [
        "`spend USER AMOUNT [--ref R] [--key K]` in the command table names no creditctl command"
    ]


def test_readme_documents_every_make_target():
    makefile = MAKEFILE.read_text(encoding="utf-8")
    targets = {
        t
        for line in makefile.splitlines()
        if line.startswith(".PHONY:")
        for t in line.split(":", 1)[1].split()
    }
    assert {"test", "test-fast", "lint", "fmt"} <= targets
    text = README.read_text(encoding="utf-8")
    missing = sorted(t for t in targets if f"`make {t}`" not in text)
    assert not missing, "README.md does not document make " + ", ".join(missing)


def test_readme_stands_alone():
    text = README.read_text(encoding="utf-8")
    outside = [f"{ROOT.parent}/", "../"]
    found = [where for where in outside if where in text]
    assert not found, f"README.md refers to paths outside the repository: {found}"
