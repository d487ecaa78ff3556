"""A customer another process created and recorded meanwhile is used, never created again."""

import sqlalchemy as sa

from creditctl.accounts.users import add_user
from creditctl.billing.customers import _stored_customer
from creditctl.billing.request_keys import stripe_write
from creditctl.db.tables import stripe_requests, users


def pending_requests(engine) -> list[str]:
    """Stripe writes whose key is still stored: their answer was never recorded."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(stripe_requests.c.operation)).scalars())


def test_a_creation_recorded_meanwhile_is_not_sent_again(engine, policy):
    add_user(engine, "r@example.com", user_id="u1", actor="t", policy=policy, plan="free")
    with engine.begin() as conn:  # another process created and stored it after we looked
        conn.execute(
            sa.update(users).where(users.c.id == "u1").values(stripe_customer_id="cus_other")
        )
    sent = []
    result = stripe_write(
        engine,
        "customer.create",
        "u1",
        {"email": "r@example.com"},
        lambda params, key: sent.append(key) or {"id": "cus_second"},
        recorded=lambda conn: _stored_customer(conn, "u1"),
    )
    assert result == {"id": "cus_other", "stored": True}
    assert sent == []
    assert pending_requests(engine) == []


def test_the_answer_is_recorded_with_the_key_dropped_in_one_step(engine, policy):
    add_user(engine, "r@example.com", user_id="u1", actor="t", policy=policy, plan="free")

    def record(conn, made):
        conn.execute(
            sa.update(users).where(users.c.id == "u1").values(stripe_customer_id=made["id"])
        )

    result = stripe_write(
        engine,
        "customer.create",
        "u1",
        {"email": "r@example.com"},
        lambda params, key: {"id": "cus_new"},
        record=record,
    )
    assert result == {"id": "cus_new"}
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(users.c.stripe_customer_id).where(users.c.id == "u1")
        ).scalar_one()
    assert stored == "cus_new"
    assert pending_requests(engine) == []
