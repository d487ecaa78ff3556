"""Input past any limit, or empty where a value is needed, is refused with one line and exit 2.

Each of these was an `error: unexpected ...` with exit 1: numbers past Python's 4,300-digit
int() limit, a time to live that overflows a timedelta, moments whose offset takes them past
year 9999 or before year 1, a search the database cannot match; and an empty date was read as
"never" or "all time".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from helpers import one_error_line, snapshot

from creditctl.errors import InvalidInput
from creditctl.parsing.times import parse_when

DIGITS = "1" * 5000
SHOWN_DIGITS = f"'{'1' * 60}'... (5000 characters)"
TOO_LONG_AMOUNT = (
    "error: amount of 5000 digits is larger than the limit of 1000000 credits (credits.max_amount)"
)
TTL = "error: duration '999999999999d' is longer than the limit of 7 days"
RANGE = "is out of range; give a moment from 0001-01-02 to 9999-12-30 (UTC)"
LATE, EARLY = "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"
EMPTY = "is empty; give a date (YYYY-MM-DD) or an ISO date-time, or leave the option out"

REFUSALS = [
    (("credits", "reserve", "u1", "1", "--ttl", "999999999999d"), TTL),
    (("run", "u1", "1", "--ttl", "999999999999d", "--", "true"), TTL),
    (("credits", "deduct", "u1", DIGITS), TOO_LONG_AMOUNT),
    (("credits", "check", "u1", DIGITS), TOO_LONG_AMOUNT),
    (("credits", "grant", "u1", DIGITS, "--reason", "x"), TOO_LONG_AMOUNT),
    (("credits", "capture", "1", DIGITS), TOO_LONG_AMOUNT),
    (
        ("credits", "adjust", "u1", f"-{DIGITS}", "--reason", "x"),
        "error: delta of 5000 digits is larger than the limit of 1000000 credits "
        "(credits.max_amount)",
    ),
    (
        ("credits", "reverse", DIGITS, "--reason", "x"),
        f"error: entry id must be a whole number from 1 to 2147483647, got {SHOWN_DIGITS}",
    ),
    (
        ("credits", "capture", DIGITS),
        f"error: hold id must be a whole number from 1 to 2147483647, got {SHOWN_DIGITS}",
    ),
    (
        ("credits", "release", DIGITS),
        f"error: hold id must be a whole number from 1 to 2147483647, got {SHOWN_DIGITS}",
    ),
    (
        ("credits", "grant", "u1", "5", "--reason", "x", "--expires", LATE),
        f"error: expiry '{LATE}' {RANGE}",
    ),
    (("credits", "history", "u1", "--since", LATE), f"error: --since '{LATE}' {RANGE}"),
    (("credits", "history", "u1", "--until", EARLY), f"error: --until '{EARLY}' {RANGE}"),
    (("webhooks", "list", "--since", LATE), f"error: --since '{LATE}' {RANGE}"),
    (
        ("users", "search", "a" * 100_000),
        "error: search text is longer than 254 characters, longer than any email; shorten it",
    ),
    (
        ("credits", "balance", "u" * 300),
        "error: user must be a user id or an email of at most 254 characters, got 300 characters",
    ),
    (
        ("credits", "grant", "u1", "5", "--reason", "x", "--expires", ""),
        f"error: expiry {EMPTY}",
    ),
    (("credits", "history", "u1", "--since", ""), f"error: --since {EMPTY}"),
    (("credits", "history", "u1", "--until", ""), f"error: --until {EMPTY}"),
    (("webhooks", "list", "--since", ""), f"error: --since {EMPTY}"),
    (("webhooks", "replay", "--since", ""), f"error: --since {EMPTY}"),
    (("webhooks", "backfill", "--since", ""), f"error: --since {EMPTY}"),
]


@pytest.fixture
def alice(cli):
    assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
    return "u1"


@pytest.mark.parametrize(
    ("command", "message"), REFUSALS, ids=[" ".join(c[:2]) for c, _ in REFUSALS]
)
def test_refused_with_one_line_and_nothing_written(cli, alice, engine, command, message):
    before = snapshot(engine)
    # A key, so backfill gets as far as reading its --since (it needs one to reach Stripe).
    result = cli(*command, env={"STRIPE_API_KEY": "sk_test_not_used"})
    assert result.exit_code == 2, result.output
    assert one_error_line(result.stderr) == message
    assert result.stdout == ""
    assert snapshot(engine) == before


def test_the_edges_of_the_range_are_accepted_and_stored(cli, alice, engine):
    granted = cli("credits", "grant", "u1", "5", "--reason", "far", "--expires", "9999-12-30")
    assert granted.exit_code == 0, granted.output
    balance = cli("credits", "balance", "u1", "--json")
    assert balance.exit_code == 0, balance.output
    history = cli(
        "credits", "history", "u1", "--since", "0001-01-02", "--until", "9999-12-30", "--json"
    )
    assert history.exit_code == 0, history.output
    assert [row["description"] for row in json.loads(history.stdout)][-1] == "far"


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("9999-12-30", datetime(9999, 12, 30, tzinfo=UTC)),
        ("0001-01-02T05:00:00+05:00", datetime(1, 1, 2, tzinfo=UTC)),
        ("2026-12-01T12:00:00Z", datetime(2026, 12, 1, 12, tzinfo=UTC)),
    ],
)
def test_moments_inside_the_range(text, moment):
    assert parse_when(text) == moment


@pytest.mark.parametrize("text", ["9999-12-31", "9999-12-30T00:00:01Z", "0001-01-01", " "])
def test_moments_outside_the_range_or_empty(text):
    with pytest.raises(InvalidInput):
        parse_when(text)
