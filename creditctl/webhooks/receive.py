"""Receiving Stripe webhooks: verify the signature over the raw body, store the event first.

An event is verified against every configured endpoint secret and stored (its Stripe id is
the primary key) in a transaction of its own before any handler runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from creditctl.clock import utcnow
from creditctl.db.engine import write
from creditctl.errors import InvalidEvent, InvalidSignature
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.processing import Outcome, process
from creditctl.webhooks.store import store

# --- verification ------------------------------------------------------------------------------


def verify(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int,
    now: float | None = None,
) -> dict[str, Any]:
    """The event in `payload` if its signature matches one secret within the tolerance.

    Raises InvalidSignature (or InvalidEvent for a signed body that is not an event); no
    message carries the header, the signature or a secret.
    """
    import stripe

    now = time.time() if now is None else now
    if not header:
        raise InvalidSignature("missing Stripe-Signature header")
    timestamp = _signed_at(header)
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature(f"signature timestamp is outside the tolerance of {tolerance} s")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("body is not UTF-8 text") from None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
        except stripe.SignatureVerificationError:
            continue
        return _event(text)
    raise InvalidSignature("signature matches no configured webhook secret")


def _signed_at(header: str) -> int:
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            return int(value)
    raise InvalidSignature("malformed Stripe-Signature header: no timestamp")


def _event(text: str) -> dict[str, Any]:
    try:
        event = json.loads(text)
    except ValueError:
        raise InvalidEvent("body is not JSON") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("created"), int)
        or not isinstance(event.get("data"), dict)
    ):
        raise InvalidEvent("body is not a Stripe event (id, type, created and data expected)")
    return event


# --- storing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """The answer to one delivery: stored (new or repeat) and what processing did."""

    event_id: str
    type: str
    new: bool
    outcome: Outcome


def receive(
    engine: Engine,
    payload: bytes,
    header: str | None,
    config: WebhookConfig,
    *,
    now: datetime | None = None,
) -> Receipt:
    """Verify, store (committed), then process one delivery through the exactly-once path."""
    event = verify(payload, header, config.secrets, tolerance=config.tolerance)
    with write(engine) as conn:
        new = store(conn, event, payload.decode("utf-8"), now=now or utcnow())
    outcome = process(engine, event["id"], config)
    return Receipt(event["id"], event["type"], new, outcome)
