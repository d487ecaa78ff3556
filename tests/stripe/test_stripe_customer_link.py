"""Linking a user to a Stripe customer: one customer per user, never one shared by two users."""

from __future__ import annotations

import json

import sqlalchemy as sa

from creditctl.accounts.users import add_user
from creditctl.billing.customers import Linked, link
from creditctl.db.tables import users


def _customers(engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(users.c.id, users.c.stripe_customer_id)).all())


def _two_users(engine, policy) -> None:
    for user in ("u1", "u2"):
        add_user(engine, f"{user}@example.com", user_id=user, actor="t", policy=policy, plan="free")


def test_a_user_without_a_customer_is_linked(engine, policy):
    _two_users(engine, policy)
    with engine.begin() as conn:
        assert link(conn, "u1", "cus_a", replace=False) == Linked("cus_a")
    assert _customers(engine) == {"u1": "cus_a", "u2": None}


def test_the_users_customer_is_kept_unless_replaced(engine, policy):
    _two_users(engine, policy)
    with engine.begin() as conn:
        link(conn, "u1", "cus_a", replace=False)
        assert link(conn, "u1", "cus_b", replace=False) == Linked("cus_a")
        assert link(conn, "u1", "cus_a", replace=True) == Linked("cus_a")
    assert _customers(engine)["u1"] == "cus_a"
    with engine.begin() as conn:
        assert link(conn, "u1", "cus_b", replace=True) == Linked("cus_b")
    assert _customers(engine) == {"u1": "cus_b", "u2": None}


def test_a_customer_another_user_holds_is_refused_and_nothing_changes(engine, policy):
    _two_users(engine, policy)
    with engine.begin() as conn:
        link(conn, "u2", "cus_a", replace=False)
        assert link(conn, "u1", "cus_a", replace=False) == Linked(None, holder="u2")
        assert link(conn, "u1", "cus_a", replace=True) == Linked(None, holder="u2")
        link(conn, "u1", "cus_b", replace=False)
        assert link(conn, "u1", "cus_a", replace=True) == Linked("cus_b", holder="u2")
    assert _customers(engine) == {"u1": "cus_b", "u2": "cus_a"}


def test_stripe_customer_refuses_a_customer_linked_to_another_user(
    cli, recorded, recorded_env, engine
):
    """u1's own customer in Stripe (found by email and metadata) is held here by u2."""
    assert cli("users", "add", "a@example.com", "--id", "u1").exit_code == 0
    assert cli("users", "add", "b@example.com", "--id", "u2").exit_code == 0
    made = json.loads(cli("stripe", "customer", "u1", "--json", env=recorded_env).stdout)
    with engine.begin() as conn:
        conn.execute(users.update().where(users.c.id == "u1").values(stripe_customer_id=None))
        conn.execute(
            users.update().where(users.c.id == "u2").values(stripe_customer_id=made["customer_id"])
        )
    refused = cli("stripe", "customer", "u1", "--json", env=recorded_env)
    message = f"Stripe customer {made['customer_id']} already belongs to user u2"
    assert refused.exit_code == 5
    assert refused.stderr == f"error: {message}\n"
    assert json.loads(refused.stdout) == {"error": message, "exit_code": 5, "kind": "Conflict"}
    assert _customers(engine) == {"u1": None, "u2": made["customer_id"]}
