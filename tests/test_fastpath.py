"""The bare-driver fast path: same SQL as the ledger, same results, steps aside when unsure."""

import pytest

from creditctl.accounts.users import add_user
from creditctl.clock import utcnow
from creditctl.db.tables import entries
from creditctl.ledger import drivers, fastpath, fastsql_build, rules
from creditctl.ledger._fastsql import STATEMENTS
from creditctl.ledger.audit import verify
from creditctl.ledger.balances import balance as full_balance
from creditctl.ledger.history import history


def test_rendered_statements_are_current():
    with open(fastsql_build.TARGET) as handle:
        assert handle.read() == fastsql_build.source(), (
            "creditctl/ledger/_fastsql.py is stale: run python -m creditctl.ledger.fastsql_build"
        )


class Recording:
    """An executor that records the parameters of every statement it passes on."""

    def __init__(self, ex):
        self.ex, self.params = ex, {}

    def one(self, name, params):
        self.params[name] = params
        return self.ex.one(name, params)

    def run(self, name, params):
        self.params[name] = params
        return self.ex.run(name, params)

    def __getattr__(self, name):
        return getattr(self.ex, name)


def test_a_ledger_entry_is_written_with_every_column(engine, database_url, policy):
    """sqlite3 and psycopg ignore a named parameter no statement uses: the columns deduct gives,
    the columns the rendered INSERT names and the table's columns are one list."""
    assert tuple(c.name for c in entries.columns if c.name != "id") == rules.ENTRY_COLUMNS
    add_user(engine, "e@example.com", user_id="e1", actor="t", policy=policy, plan="free")
    seen = []

    def deduct(ex):
        seen.append(Recording(ex))
        return rules.deduct(seen[-1], "e1", 1, actor="t", policy=policy, now=utcnow(), key="k")

    drivers.on_url(database_url, 5000, deduct, write=True)
    assert sorted(seen[0].params["insert_entry"]) == sorted(rules.ENTRY_COLUMNS)
    for dialect in STATEMENTS.values():
        sql = dialect["insert_entry"][0]
        named = sql.partition("(")[2].partition(")")[0].split(", ")
        assert tuple(named) == rules.ENTRY_COLUMNS
    with pytest.raises(TypeError, match="unknown_column"):
        rules.entry_values(**seen[0].params["insert_entry"], unknown_column=1)


def _database(engine, database_url):
    return fastpath.Database(database_url, 5000, lambda: engine)


def test_fast_deduct_matches_the_ledger(engine, database_url, policy):
    add_user(engine, "fast@example.com", user_id="f1", actor="t", policy=policy, plan="free")
    db = _database(engine, database_url)
    posting = fastpath.deduct(db, "FAST@example.com", 7, actor="t", policy=policy, ref="r1")
    assert (posting.user_id, posting.amount, posting.balance_after) == ("f1", -7, 98)
    last = history(engine, "f1")[-1]
    assert (last["id"], last["type"], last["amount"], last["reference"]) == (
        posting.entry_id,
        "usage",
        -7,
        "r1",
    )
    assert fastpath.balance(db, "f1").available == full_balance(engine, "f1").available == 98
    assert verify(engine)["ok"]


def test_fast_deduct_replays_a_key_through_the_ledger(engine, database_url, policy):
    add_user(engine, "k@example.com", user_id="k1", actor="t", policy=policy, plan="free")
    db = _database(engine, database_url)
    first = fastpath.deduct(db, "k1", 2, actor="t", policy=policy, key="job-1")
    again = fastpath.deduct(db, "k1", 2, actor="t", policy=policy, key="job-1")
    assert again.replayed and again.entry_id == first.entry_id
    assert full_balance(engine, "k1").available == 103


def test_unlimited_plan_records_usage_without_spending(engine, database_url, policy):
    add_user(engine, "u@example.com", user_id="u1", actor="t", policy=policy, plan="ultimate")
    posting = fastpath.deduct(_database(engine, database_url), "u1", 500, actor="t", policy=policy)
    assert (posting.amount, posting.unlimited, posting.balance_after) == (0, True, 5)
    assert history(engine, "u1")[-1]["quantity"] == 500
    assert verify(engine)["ok"]
