"""`creditctl account USER`: the support view."""

from __future__ import annotations

from creditctl.cli.context import current
from creditctl.cli.options import Json, UserArg
from creditctl.cli.output import emit_json, key_values, say, table, warn


def account(user: UserArg, json: Json = False) -> None:
    """One screen with a user's balance, plan, subscription, holds and recent usage.

    Example: creditctl account alice@example.com
    """
    from creditctl.support.account_view import account_view

    ctx = current()
    view = account_view(ctx.engine, user, policy=ctx.policy)
    if json:
        emit_json(view)
        return
    b, p, s, u = view["balance"], view["plan"], view["subscription"], view["user"]
    key_values(
        [
            ("user", f"{u['id']}  {u['email']}" + (f"  ({u['name']})" if u["name"] else "")),
            ("stripe customer", u["stripe_customer_id"] or "-"),
            ("plan", f"{p['name']} ({p['credits_per_period']} credits a period)"),
            ("features", ", ".join(p["features"])),
            ("subscription", s["status"]),
            ("renews", s["renews_at"] or "-"),
            ("available", "unlimited" if b["unlimited"] else b["available"]),
            ("  plan credits", b["plan_credits"]),
            ("  bonus credits", b["bonus_credits"]),
            ("held", b["held"]),
        ]
    )
    if view["holds"]:
        say("")
        table(
            view["holds"],
            ("hold_id", "amount", "reference", "expires_at", "state"),
            title="open holds",
        )
    say("")
    table(
        view["recent_usage"],
        ("id", "created_at", "type", "quantity", "amount", "reference"),
        title="recent usage",
        empty="no usage yet",
    )
    warn(view["warnings"])
