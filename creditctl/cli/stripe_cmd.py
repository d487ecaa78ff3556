"""`creditctl stripe ...`: Checkout and billing-portal links, and the user's Stripe customer."""

from __future__ import annotations

from typing import Annotated

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json, UserArg
from creditctl.cli.output import emit_json, note, say

app = typer.Typer(
    help="Checkout and billing-portal links for a user, and their Stripe customer."
    "\n\nExample: creditctl stripe checkout alice@example.com --plan pro",
    no_args_is_help=True,
)

PlanOption = Annotated[
    str, typer.Option("--plan", help="The plan to subscribe to.", show_default=False)
]


def gateway():
    """The Stripe gateway for this invocation (the key is read on the first call)."""
    from creditctl.billing.gateway import Gateway

    return Gateway.from_settings(current().settings)


@app.command("checkout")
def checkout_command(
    user: UserArg,
    plan: PlanOption,
    success_url: Annotated[
        str | None,
        typer.Option(
            "--success-url",
            help="Where Checkout sends the user after paying (default: stripe.success_url).",
        ),
    ] = None,
    cancel_url: Annotated[
        str | None,
        typer.Option(
            "--cancel-url",
            help="Where Checkout sends the user who backs out (default: stripe.cancel_url).",
        ),
    ] = None,
    json: Json = False,
) -> None:
    """Print a Checkout link that starts a subscription to PLAN for USER.

    Example: creditctl stripe checkout alice@example.com --plan pro
    """
    from creditctl.billing.links import checkout_link

    ctx = current()
    link = checkout_link(
        ctx.engine,
        gateway(),
        user,
        plan,
        success_url=success_url or ctx.settings["stripe.success_url"],
        cancel_url=cancel_url or ctx.settings["stripe.cancel_url"],
    )
    if json:
        emit_json(link.as_dict())
        return
    say(link.url)
    note(
        f"checkout session {link.session_id} for {link.user_id} "
        f"(customer {link.customer_id}), plan {link.plan}"
    )


@app.command("portal")
def portal_command(
    user: UserArg,
    return_url: Annotated[
        str | None,
        typer.Option(
            "--return-url",
            help="Where the portal sends the user back (default: stripe.portal_return_url).",
        ),
    ] = None,
    json: Json = False,
) -> None:
    """Print a billing-portal link where USER manages payment methods and invoices.

    Example: creditctl stripe portal alice@example.com --return-url https://example.com/account
    """
    from creditctl.billing.links import portal_link

    ctx = current()
    link = portal_link(
        ctx.engine,
        gateway(),
        user,
        return_url=return_url or ctx.settings["stripe.portal_return_url"],
    )
    if json:
        emit_json(link.as_dict())
        return
    say(link.url)
    note(f"portal session {link.session_id} for {link.user_id} (customer {link.customer_id})")


@app.command("customer")
def customer_command(user: UserArg, json: Json = False) -> None:
    """Make sure USER has a Stripe customer and print its id (created once, then reused).

    Example: creditctl stripe customer alice@example.com --json
    """
    from creditctl.billing.customers import ensure_customer

    customer = ensure_customer(current().engine, gateway(), user)
    if json:
        emit_json(customer.as_dict())
        return
    say(customer.customer_id)
    note(f"{customer.user_id}: Stripe customer {customer.customer_id} ({customer.action})")
