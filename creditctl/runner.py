"""`creditctl run`: hold credits, run a command, capture on success, release otherwise.

The domain decides and settles; what the operator should hear comes back in a `RunOutcome`
for the CLI to print. A successful command whose charge cannot be recorded raises
ChargeUnsettled (exit 8) and leaves its hold open to be captured by hand.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from creditctl.clock import iso
from creditctl.errors import (
    ChargeUnsettled,
    CreditctlError,
    DatabaseUnavailable,
    HoldSettled,
    InsufficientCredits,
    InvalidInput,
)
from creditctl.ledger.holds import HoldResult, capture, release, reserve
from creditctl.ledger.policy import Policy
from creditctl.ledger.spending import deduct

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# What a database that is locked, restarting or unreachable raises; worth another try.
DATABASE_ERRORS = (sa.exc.DBAPIError, DatabaseUnavailable)
T = TypeVar("T")


@dataclass(frozen=True)
class RunOutcome:
    """What `run` did: the code to exit with (the command's own) and what to tell the operator."""

    exit_code: int
    hold_id: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Retry:
    """How a settlement meets a failing database: `attempts` tries with `pauses` between them,
    no new try once `deadline` seconds have passed (each try also waits the busy timeout)."""

    attempts: int = 5
    pauses: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    deadline: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def pause(self, attempt: int) -> float:
        return self.pauses[min(attempt - 1, len(self.pauses) - 1)]


def run_with_hold(
    engine: Engine,
    user: str,
    amount: int,
    command: Sequence[str],
    *,
    ttl: timedelta,
    actor: str,
    policy: Policy,
    ref: str | None = None,
    retry: Retry | None = None,
) -> RunOutcome:
    """Hold, run, then capture on exit 0 or release; the exit code is 128 + N after signal N."""
    if not command:
        raise InvalidInput(
            "no command given; put it after --, e.g. creditctl run USER 1 -- render.sh scene.blend"
        )
    retry = retry or Retry()
    signals: list[int] = []
    running: list[subprocess.Popen] = []

    def forward(signum: int, _frame: object) -> None:
        signals.append(signum)
        for child in running:
            child.send_signal(signum)

    # Handlers go in before the hold is taken, so an interrupt at any moment releases it.
    # A signal creditctl was started ignoring (nohup, `&` in a script) is ignored by the child
    # too; catching it would only mark a finished command as interrupted and leave it unpaid.
    previous = {
        s: signal.signal(s, forward) for s in FORWARDED if signal.getsignal(s) is not signal.SIG_IGN
    }
    try:
        hold = reserve(engine, user, amount, ttl=ttl, actor=actor, policy=policy, ref=ref)
        code = _run(engine, hold.hold_id, command, signals, running, actor=actor)
        # Decided when the command ended: a signal during the settlement changes nothing.
        if code == 0 and not signals:
            warnings = charge(engine, hold, actor=actor, policy=policy, ref=ref, retry=retry)
        else:
            warnings = _give_back(engine, hold, actor=actor, retry=retry)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return RunOutcome(code if code >= 0 else 128 - code, hold.hold_id, tuple(warnings))


def _run(
    engine: Engine,
    hold_id: int,
    command: Sequence[str],
    signals: list[int],
    running: list[subprocess.Popen],
    *,
    actor: str,
) -> int:
    """The command's exit status; -N when interrupted by signal N before or while it ran."""
    if signals:  # interrupted before the command started: it never runs
        return -signals[0]
    try:
        running.append(subprocess.Popen(list(command)))
    except OSError as exc:
        release(engine, hold_id, actor=actor)
        raise InvalidInput(
            f"cannot run {command[0]!r}: {exc.strerror}; nothing was charged"
        ) from None
    if signals:  # arrived while the command was starting
        running[0].send_signal(signals[-1])
    return running[0].wait()


def charge(
    engine: Engine,
    hold: HoldResult,
    *,
    actor: str,
    policy: Policy,
    ref: str | None,
    retry: Retry,
) -> list[str]:
    """Charge a successful command: capture its hold, or deduct anew if the hold lapsed.

    Only a hold that expired or was released leads to a new deduct: one already captured
    (by the command itself, say) is paid for. Returns the warnings for the operator.
    """
    try:
        # Keyed, so a try whose commit succeeded unseen is replayed, not refused, by the next.
        _retrying(
            lambda: capture(engine, hold.hold_id, actor=actor, key=f"run-capture-{hold.hold_id}"),
            retry,
        )
        return []
    except HoldSettled as exc:
        status, captured = exc.details.get("status"), exc.details.get("captured")
    except DATABASE_ERRORS as exc:
        raise ChargeUnsettled(
            f"the command succeeded but its charge could not be recorded ({_reason(exc)}); "
            f"hold {hold.hold_id} still holds {hold.amount} credits of {hold.user_id}: run "
            f"`creditctl credits capture {hold.hold_id}` before it expires at "
            f"{iso(hold.expires_at)}, or the command goes unpaid",
            hold_id=hold.hold_id,
            amount=hold.amount,
            expires_at=iso(hold.expires_at),
        ) from None
    if status == "captured":
        return [
            f"hold {hold.hold_id} was already captured ({captured} of {hold.amount} credits) "
            "while the command ran, e.g. by the command itself; run charged nothing more"
        ]
    return _deduct_anew(engine, hold, str(status), actor=actor, policy=policy, ref=ref, retry=retry)


def _deduct_anew(
    engine: Engine,
    hold: HoldResult,
    status: str,
    *,
    actor: str,
    policy: Policy,
    ref: str | None,
    retry: Retry,
) -> list[str]:
    """The hold expired or was released while the command ran: charge it now if credits allow."""
    key = f"run-hold-{hold.hold_id}"
    why = "expired before the command finished" if status == "expired" else f"was {status}"
    try:
        # No description: the same request as `credits deduct USER N --ref R --key K`, so the
        # command suggested below can only ever replay this one.
        posting = _retrying(
            lambda: deduct(
                engine, hold.user_id, hold.amount, actor=actor, policy=policy, ref=ref, key=key
            ),
            retry,
        )
    except InsufficientCredits:
        return [
            f"hold {hold.hold_id} {why} and the credits are no longer there; "
            "nothing was charged. Use a longer --ttl"
        ]
    except DATABASE_ERRORS as exc:
        with_ref = f" --ref {ref}" if ref else ""
        raise ChargeUnsettled(
            f"the command succeeded but its charge could not be recorded ({_reason(exc)}); "
            f"hold {hold.hold_id} {why}: run `creditctl credits deduct {hold.user_id} "
            f"{hold.amount}{with_ref} --key {key}` to charge it",
            hold_id=hold.hold_id,
            amount=hold.amount,
        ) from None
    return [
        f"hold {hold.hold_id} {why}; charged its {hold.amount} credits with a new deduct "
        f"(entry {posting.entry_id})" + (". Use a longer --ttl" if status == "expired" else "")
    ]


def _give_back(engine: Engine, hold: HoldResult, *, actor: str, retry: Retry) -> list[str]:
    """Release the hold of a command that failed; if the database refuses, its TTL will."""
    try:
        _retrying(lambda: release(engine, hold.hold_id, actor=actor), retry)
    except HoldSettled:
        pass  # expired, or settled by the command itself: nothing is left to give back
    except DATABASE_ERRORS as exc:
        return [
            f"hold {hold.hold_id} could not be released ({_reason(exc)}); its "
            f"{hold.amount} credits come back when it expires at {iso(hold.expires_at)}"
        ]
    return []


def _retrying(operation: Callable[[], T], retry: Retry) -> T:
    started = time.monotonic()
    for attempt in range(1, retry.attempts + 1):
        try:
            return operation()
        except DATABASE_ERRORS:
            if attempt == retry.attempts or time.monotonic() - started >= retry.deadline:
                raise
            retry.sleep(retry.pause(attempt))
    raise AssertionError("unreachable")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, CreditctlError):
        text = exc.message
    elif isinstance(exc, sa.exc.DBAPIError):
        text = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "no answer"
    else:
        text = type(exc).__name__
    return text[:200]
