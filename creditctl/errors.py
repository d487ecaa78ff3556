"""The errors creditctl raises on purpose, each tied to one stable exit code.

Exit codes are part of the interface render scripts depend on; see README.md.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_STRIPE = 6
EXIT_CONFIG = 7
EXIT_UNSETTLED = 8


class CreditctlError(Exception):
    """Base of every error that is reported to the user as one line."""

    exit_code = EXIT_UNEXPECTED

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(CreditctlError):
    """An argument broke a rule: bad amount, malformed email, missing reason."""

    exit_code = EXIT_USAGE


class InsufficientCredits(CreditctlError):
    """A deduct, reserve or negative adjustment asked for more than is available."""

    exit_code = EXIT_REFUSED


class FeatureNotInPlan(CreditctlError):
    """The user's plan does not include the feature asked about."""

    exit_code = EXIT_REFUSED


class PaymentOverdue(CreditctlError):
    """The subscription's payment failed and the grace period for usage is over."""

    exit_code = EXIT_REFUSED


class NotFound(CreditctlError):
    """A user, entry, hold, plan or event named on the command line does not exist."""

    exit_code = EXIT_NOT_FOUND


class UnknownUser(NotFound):
    """No user has that id or email."""


class Conflict(CreditctlError):
    """The request contradicts what is already recorded."""

    exit_code = EXIT_CONFLICT


class IdempotencyConflict(Conflict):
    """An idempotency key was reused for a different request."""


class HoldSettled(Conflict):
    """A capture or release named a hold that is already captured, released or expired."""


class DuplicateUser(Conflict):
    """A user with that email or id already exists."""


class AlreadyReversed(Conflict):
    """A ledger entry can be reversed once."""


class StripeFailure(CreditctlError):
    """Stripe or the network between us failed."""

    exit_code = EXIT_STRIPE


class ConfigError(CreditctlError):
    """The configuration is invalid or a required setting is missing."""

    exit_code = EXIT_CONFIG


class DatabaseUnavailable(ConfigError):
    """The database cannot be opened, does not answer, or cannot do its work (disk full)."""


class DatabaseBusy(DatabaseUnavailable):
    """The database stayed locked past the busy timeout, or a lock or statement timeout ran out."""


class SchemaOutOfDate(ConfigError):
    """The database has not been initialised or upgraded to this version."""


class ChargeUnsettled(CreditctlError):
    """`run`'s command succeeded but its hold could not be captured; the hold is left open."""

    exit_code = EXIT_UNSETTLED


class InvalidSignature(InvalidInput):
    """A webhook's Stripe-Signature is missing, matches no endpoint secret, or is too old or new."""


class InvalidEvent(InvalidInput):
    """A signed webhook body is not a Stripe event (no id, type or created)."""


class UnknownEvent(NotFound):
    """No stored webhook event has that id."""
