"""Receiving Stripe webhooks: verify the signature over the raw body, store the event first.

An event is verified against every configured endpoint secret and stored (its Stripe id is
the primary key) in a transaction of its own before any handler runs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from creditctl.clock import utcnow
from creditctl.db.engine import write
from creditctl.errors import InvalidEvent, InvalidSignature
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.processing import Outcome, process
from creditctl.webhooks.store import store

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
LAST_CREATED = 253402300799  # 9999-12-31T23:59:59Z: the latest `created` a timestamp holds
MAX_DEPTH = 100  # Stripe's objects, expanded, nest a dozen levels; deeper is not an event
MAX_ID_CHARS, MAX_TYPE_CHARS, MAX_VERSION_CHARS = 255, 128, 64

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
    if not header.isascii():
        raise InvalidSignature("malformed Stripe-Signature header: not ASCII")
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
        except (stripe.SignatureVerificationError, ValueError, TypeError):
            continue
        return _event(text)
    raise InvalidSignature("signature matches no configured webhook secret")


def _signed_at(header: str) -> int:
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and _TIMESTAMP.fullmatch(value):
            return int(value)
    raise InvalidSignature("malformed Stripe-Signature header: no timestamp")


def _event(text: str) -> dict[str, Any]:
    """The signed body as an event the store can hold, or InvalidEvent saying why not."""
    try:
        event = json.loads(text)
    except ValueError:
        raise InvalidEvent("body is not JSON") from None
    except RecursionError:
        raise InvalidEvent(f"body is JSON nested deeper than {MAX_DEPTH} levels") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("created"), int)
        or not isinstance(event.get("data"), dict)
    ):
        raise InvalidEvent("body is not a Stripe event (id, type, created and data expected)")
    _check_fields(event)
    _check_content(event)
    return event


def _check_fields(event: dict[str, Any]) -> None:
    version = event.get("api_version")
    if not 0 < len(event["id"]) <= MAX_ID_CHARS or not 0 < len(event["type"]) <= MAX_TYPE_CHARS:
        raise InvalidEvent(
            f"event id or type is empty or too long ({MAX_ID_CHARS} and {MAX_TYPE_CHARS} "
            "characters at most)"
        )
    if isinstance(event["created"], bool) or not 0 <= event["created"] <= LAST_CREATED:
        raise InvalidEvent("event created is not a Unix time between 1970 and 9999")
    if version is not None and (not isinstance(version, str) or len(version) > MAX_VERSION_CHARS):
        raise InvalidEvent(
            f"event api_version is not a string of at most {MAX_VERSION_CHARS} characters"
        )


def _check_content(event: dict[str, Any]) -> None:
    """No nesting past MAX_DEPTH; no string the database cannot store (NUL, lone surrogate)."""
    stack: list[tuple[Any, int]] = [(event, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value or not (value.isascii() or _encodable(value)):
                raise InvalidEvent(
                    "event holds text that is not storable (a NUL or a lone UTF-16 surrogate)"
                )
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise InvalidEvent(f"body is JSON nested deeper than {MAX_DEPTH} levels")
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        stack.extend((item, depth + 1) for item in items)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    try:
        with write(engine) as conn:
            new = store(conn, event, payload.decode("utf-8"), now=now or utcnow())
    except sa.exc.DataError as exc:
        # A value the checks above let through but the column refuses: retrying cannot help.
        raise InvalidEvent(
            f"the store cannot hold this event ({type(exc.orig).__name__})"
        ) from None
    outcome = process(engine, event["id"], config)
    return Receipt(event["id"], event["type"], new, outcome)
