"""`creditctl run`: hold credits, run a command, capture on success, release otherwise."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.engine import Engine

from creditctl.errors import HoldSettled, InsufficientCredits, InvalidInput
from creditctl.ledger.holds import capture, release, reserve
from creditctl.ledger.policy import Policy
from creditctl.ledger.spending import deduct

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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
) -> int:
    """Returns the command's exit code (128 + N if a signal N ended it)."""
    if not command:
        raise InvalidInput(
            "no command given; put it after --, e.g. creditctl run USER 1 -- render.sh scene.blend"
        )
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
            _capture(
                engine, hold.hold_id, hold.user_id, amount, actor=actor, policy=policy, ref=ref
            )
        else:
            release(engine, hold.hold_id, actor=actor)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code


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


def _capture(
    engine: Engine,
    hold_id: int,
    user_id: str,
    amount: int,
    *,
    actor: str,
    policy: Policy,
    ref: str | None,
) -> None:
    try:
        capture(engine, hold_id, actor=actor)
    except HoldSettled:
        # The hold outlived its TTL while the command ran: charge it now if credits allow.
        try:
            deduct(
                engine,
                user_id,
                amount,
                actor=actor,
                policy=policy,
                ref=ref,
                key=f"run-hold-{hold_id}",
                description=f"run after hold {hold_id} expired",
            )
        except InsufficientCredits:
            sys.stderr.write(
                f"warning: hold {hold_id} expired before the command finished "
                "and the credits are no longer there; nothing was charged. "
                "Use a longer --ttl\n"
            )
