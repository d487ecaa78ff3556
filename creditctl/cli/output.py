"""Printing: data to stdout (a table, lines, or --json), messages to stderr."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from creditctl.parsing.text import CONTROL, SURROGATE

# Cells a spreadsheet would run as a formula (OWASP's CSV injection list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, sort_keys=False) + "\n")


def say(text: str) -> None:
    """A line of data for people (stdout)."""
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    """A message about what happened (stderr)."""
    sys.stderr.write(text + "\n")


def warn(warnings: Iterable[str]) -> None:
    for warning in warnings:
        note(f"warning: {warning}")


def table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    """A Rich table on stdout, or a note when there are no rows."""
    if not rows:
        note(empty)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Text, not str: a stored "[red]" is shown as typed, not read as Rich markup.
    grid = Table(title=Text(title) if title else None, show_lines=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(Text(_shown(row.get(c))) for c in columns))
    # Piped output is not squeezed to 80 columns; scripts wanting data use --json or csv.
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200).print(grid)


def printable(text: str) -> str:
    """Text with any control character shown as an escape, for printing what is stored."""
    escaped = CONTROL.sub(lambda found: ascii(found.group())[1:-1], text)
    return SURROGATE.sub(lambda found: ascii(found.group())[1:-1], escaped)


def _shown(value: Any) -> str:
    return "" if value is None else printable(str(value))


def csv_cell(value: Any) -> Any:
    """A text cell that starts like a formula gets a leading quote; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    writer = csv.DictWriter(
        sys.stdout, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)


def key_values(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for name, value in pairs:
        say(f"{name.ljust(width)}  {_shown(value)}")
