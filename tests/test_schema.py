"""The ledger's rules in the schema: raw SQL written around the ORM is refused by the database.

Also: the models and the migrations agree (Alembic autogenerate finds nothing to do).
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from helpers import new_user

from creditctl.db.models import metadata

NOW = "'2026-01-10 12:00:00'"


@pytest.fixture
def rows(engine, policy):
    """One user with grant 1 and entry 1 (from user creation), and one open hold."""
    new_user(engine, policy, "u1")
    new_user(engine, policy, "u2")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO holds (user_id, amount, captured, status, created_at, expires_at) "
                f"VALUES ('u1', 5, 0, 'open', {NOW}, {NOW})"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO ledger_entries (user_id, type, amount, balance_after, quantity, "
                "description, actor, idempotency_key, created_at) VALUES "
                f"('u1', 'usage', 0, 105, 1, '', 'raw', 'key-1', {NOW})"
            )
        )
    return engine


def _entry(
    type_: str = "usage",
    amount: int = 0,
    balance_after: int = 105,
    key: str = "NULL",
    user: str = "u1",
    reverses: str = "NULL",
) -> str:
    return (
        "INSERT INTO ledger_entries (user_id, type, amount, balance_after, quantity, "
        "description, actor, idempotency_key, reverses_entry_id, created_at) VALUES "
        f"('{user}', '{type_}', {amount}, {balance_after}, 0, '', 'raw', {key}, {reverses}, "
        f"{NOW})"
    )


def _user(email_key: str, balance: int = 0, held: int = 0, user_id: str = "u3") -> str:
    return (
        "INSERT INTO users (id, email, email_key, plan, balance, held, created_at) VALUES "
        f"('{user_id}', 'x@example.com', '{email_key}', 'free', {balance}, {held}, {NOW})"
    )


def _grant(amount: int, remaining: int, source: str = "bonus") -> str:
    return (
        "INSERT INTO grants (user_id, source, amount, remaining, created_at) VALUES "
        f"('u1', '{source}', {amount}, {remaining}, {NOW})"
    )


def _hold(amount: int, captured: int, status: str = "open") -> str:
    return (
        "INSERT INTO holds (user_id, amount, captured, status, created_at, expires_at) "
        f"VALUES ('u1', {amount}, {captured}, '{status}', {NOW}, {NOW})"
    )


REFUSED = {
    "negative balance": "UPDATE users SET balance = -1 WHERE id = 'u1'",
    "balance past the limit": "UPDATE users SET balance = 1000000001 WHERE id = 'u1'",
    "negative held": "UPDATE users SET held = -1 WHERE id = 'u1'",
    "new user with negative balance": _user("neg@example.com", balance=-5),
    "duplicate email_key": _user("u1@example.com"),
    "email_key not lower case": _user("Mixed@Example.com"),
    "remaining above amount": _grant(10, 11),
    "negative remaining": _grant(10, -1),
    "grant of zero": _grant(0, 0),
    "unknown grant source": _grant(5, 5, source="gift"),
    "remaining raised past amount": "UPDATE grants SET remaining = amount + 1",
    "duplicate idempotency key for a user": _entry(key="'key-1'"),
    "unknown entry type": _entry(type_="gift"),
    "negative balance_after": _entry(balance_after=-1),
    "entry amount past the limit": _entry(amount=1_000_000_001),
    "entry reversed twice": None,  # filled in by the test: needs two reversals of one entry
    "captured above amount": _hold(5, 6),
    "hold of zero": _hold(0, 0),
    "unknown hold status": _hold(5, 0, status="lost"),
    "negative allocation": None,
    "entry for an unknown user": _entry(user="ghost"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_database_refuses_bad_rows(rows, case):
    statements = [REFUSED[case]]
    if case == "entry reversed twice":
        statements = [_entry(reverses="1"), _entry(reverses="1")]
    elif case == "negative allocation":
        hold = "(SELECT max(id) FROM holds)"
        statements = [
            f"INSERT INTO hold_allocations (hold_id, grant_id, amount) VALUES ({hold}, 1, -1)"
        ]
    with pytest.raises(sa.exc.IntegrityError), rows.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


ACCEPTED = {
    "same key for another user": _entry(key="'key-1'", user="u2", balance_after=105),
    "grant fully spent": _grant(10, 0),
    "grant untouched": _grant(10, 10),
    "hold fully captured": _hold(5, 5, status="captured"),
    "user at zero": _user("zero@example.com"),
    "one reversal": _entry(reverses="1"),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_database_accepts_the_edge_of_each_rule(rows, case):
    """Control: the same statements with legal values go in, so the refusals above mean what
    they say."""
    with rows.begin() as conn:
        conn.execute(sa.text(ACCEPTED[case]))


def test_models_and_migrations_agree(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_a_model_change_without_migration_is_noticed(engine):
    """Control: the comparison does see a column the migrations lack."""
    changed = sa.MetaData()
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["users"].append_column(sa.Column("nickname", sa.String(20)))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, changed)
    assert [(d[0], d[3].name) for d in differences] == [("add_column", "nickname")]


def _migrate(engine, revision: str) -> None:
    from alembic import command

    from creditctl.db.engine import write
    from creditctl.db.migrate import alembic_config

    with write(engine) as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        if revision == "head":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)


def _stored_event(conn, event_id: str, reason: str, customer: object) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO webhook_events (id, type, stripe_created, payload, source, received_at, "
            f"status, attempts, ignored_reason) VALUES (:id, 'invoice.paid', {NOW}, :payload, "
            f"'webhook', {NOW}, 'ignored', 1, :reason)"
        ),
        {
            "id": event_id,
            "reason": reason,
            "payload": json.dumps({"data": {"object": {"customer": customer}}}),
        },
    )


def test_the_migration_turns_waiting_notes_into_data(engine):
    """Events stored before revision 0005 wait as data afterwards: a status and waiting_for."""
    _migrate(engine, "0004")
    deferred = "price p of invoice in_1 maps to no plan until subscription sub_9 is recorded"
    with engine.begin() as conn:
        _stored_event(conn, "evt_deferred", "deferred: " + deferred, "cus_1")
        _stored_event(
            conn,
            "evt_unmapped",
            "invoice in_2 of subscription sub_2 maps to no user",
            {"id": "cus_2"},
        )
        _stored_event(conn, "evt_other", "no handler for event type charge.refunded", "cus_3")
    _migrate(engine, "head")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, status, waiting_for, ignored_reason FROM webhook_events ORDER BY id"
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("evt_deferred", "deferred", "sub_9", deferred),
        ("evt_other", "ignored", None, "no handler for event type charge.refunded"),
        ("evt_unmapped", "unmapped", "cus_2", "invoice in_2 of subscription sub_2 maps to no user"),
    ]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE webhook_events SET status = 'lost'"))
