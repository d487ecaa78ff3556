"""The one module that talks to Stripe.

Everything goes through the official SDK's `StripeClient` with the API version pinned
in the config, network retries on, and a configurable API base (tests and staging point
it at loopback). The key is read from the settings when the first call is made, never at
import, and never appears in a message. `stripe` itself is imported lazily so commands
that never reach Stripe (`credits ...`) never load it.

Results are plain dicts (`StripeObject.to_dict()`), so the domain never sees SDK types.
Every write takes the idempotency key the caller derived from its operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from creditctl.errors import ConfigError, StripeFailure

MAX_NETWORK_RETRIES = 2
KEY_VARIABLE = "STRIPE_API_KEY"
Params = dict[str, Any]


@dataclass
class Gateway:
    """A Stripe connection described by the settings; the client is built on first use."""

    api_key: str = field(repr=False)
    api_version: str
    api_base: str
    page_size: int = 100
    timeout_seconds: float = 80.0  # the SDK's own default
    retries: int = MAX_NETWORK_RETRIES
    _client: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Any, page_size: int = 100, **limits: Any) -> Gateway:
        return cls(
            api_key=settings["stripe.api_key"],
            api_version=settings["stripe.api_version"],
            api_base=settings["stripe.api_base"],
            page_size=page_size,
            **limits,
        )

    @property
    def v1(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client.v1

    def _connect(self) -> Any:
        if not self.api_key.strip():
            raise ConfigError(
                f"{KEY_VARIABLE} is not set; put the Stripe secret key in the "
                f"environment or .env as {KEY_VARIABLE}=sk_..."
            )
        import stripe

        return stripe.StripeClient(
            self.api_key.strip(),
            stripe_version=self.api_version,
            base_addresses={"api": self.api_base.rstrip("/")},
            max_network_retries=self.retries,
            http_client=stripe.RequestsClient(timeout=self.timeout_seconds),
        )

    # --- the calls ----------------------------------------------------------------------------

    def call(self, request: Callable[[Any], Any]) -> dict[str, Any]:
        """Run one SDK call against `v1`; a Stripe error becomes one StripeFailure line."""
        import stripe

        v1 = self.v1
        try:
            return request(v1).to_dict()
        except stripe.StripeError as exc:
            raise failure(exc, self.api_key) from None

    def write(self, request: Callable[[Any, dict[str, str]], Any], key: str) -> dict[str, Any]:
        """A POST or DELETE carrying the caller's idempotency key."""
        return self.call(lambda v1: request(v1, {"idempotency_key": key}))

    def retrieve(self, request: Callable[[Any], Any]) -> dict[str, Any] | None:
        """A GET of one object; None when Stripe says it does not exist."""
        try:
            return self.call(request)
        except StripeFailure as exc:
            if exc.details.get("http_status") == 404:
                return None
            raise

    def list_all(
        self,
        request: Callable[[Any, Params], Any],
        params: Params,
    ) -> Iterator[dict[str, Any]]:
        """Every object of a list, following `has_more` pages of `page_size`."""
        import stripe

        page_params = {**params, "limit": self.page_size}
        try:
            for item in request(self.v1, page_params).auto_paging_iter():
                yield item.to_dict()
        except stripe.StripeError as exc:
            raise failure(exc, self.api_key) from None

    # customers
    def customers_by_email(self, email: str) -> list[dict[str, Any]]:
        return list(self.list_all(lambda v1, p: v1.customers.list(params=p), {"email": email}))

    def create_customer(self, params: Params, key: str) -> dict[str, Any]:
        return self.write(lambda v1, o: v1.customers.create(params=params, options=o), key)

    # products and prices
    def product(self, product_id: str) -> dict[str, Any] | None:
        return self.retrieve(lambda v1: v1.products.retrieve(product_id))

    def create_product(self, params: Params, key: str) -> dict[str, Any]:
        return self.write(lambda v1, o: v1.products.create(params=params, options=o), key)

    def update_product(self, product_id: str, params: Params, key: str) -> dict[str, Any]:
        return self.write(
            lambda v1, o: v1.products.update(product_id, params=params, options=o), key
        )

    def prices_by_lookup_key(self, lookup_keys: list[str]) -> list[dict[str, Any]]:
        """Prices holding these lookup keys, active or archived (Stripe takes 10 keys a call)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(lookup_keys), 10):
            chunk = lookup_keys[start : start + 10]
            found += self.list_all(lambda v1, p: v1.prices.list(params=p), {"lookup_keys": chunk})
        return found

    def create_price(self, params: Params, key: str) -> dict[str, Any]:
        return self.write(lambda v1, o: v1.prices.create(params=params, options=o), key)

    def update_price(self, price_id: str, params: Params, key: str) -> dict[str, Any]:
        return self.write(lambda v1, o: v1.prices.update(price_id, params=params, options=o), key)

    # checkout and portal
    def create_checkout_session(self, params: Params, key: str) -> dict[str, Any]:
        return self.write(lambda v1, o: v1.checkout.sessions.create(params=params, options=o), key)

    def create_portal_session(self, params: Params, key: str) -> dict[str, Any]:
        return self.write(
            lambda v1, o: v1.billing_portal.sessions.create(params=params, options=o), key
        )

    # subscriptions
    def subscriptions_of(self, customer_id: str) -> list[dict[str, Any]]:
        """All of a customer's subscriptions, canceled ones included."""
        return list(
            self.list_all(
                lambda v1, p: v1.subscriptions.list(params=p),
                {"customer": customer_id, "status": "all"},
            )
        )

    def subscription(self, subscription_id: str) -> dict[str, Any] | None:
        return self.retrieve(lambda v1: v1.subscriptions.retrieve(subscription_id))

    def update_subscription(self, subscription_id: str, params: Params, key: str) -> dict[str, Any]:
        return self.write(
            lambda v1, o: v1.subscriptions.update(subscription_id, params=params, options=o), key
        )

    def cancel_subscription(self, subscription_id: str, key: str) -> dict[str, Any]:
        return self.write(lambda v1, o: v1.subscriptions.cancel(subscription_id, options=o), key)


def failure(exc: Exception, api_key: str) -> StripeFailure:
    """One line with what Stripe said and its request id; the key is scrubbed from it."""
    import stripe

    status = getattr(exc, "http_status", None)
    request_id = getattr(exc, "request_id", None)
    said = getattr(exc, "user_message", None)  # a StripeError's; other errors have none
    if isinstance(exc, stripe.APIConnectionError):
        text = (
            f"could not reach Stripe after {MAX_NETWORK_RETRIES + 1} attempts: "
            f"{_network_reason(said or str(exc))}"
        )
    elif isinstance(exc, stripe.AuthenticationError):
        text = f"Stripe refused the API key; check {KEY_VARIABLE}"
    else:
        text = f"Stripe answered {status}: {_first_line(said or type(exc).__name__)}"
    text += f" (request {request_id})" if request_id else " (no Stripe request id)"
    if api_key.strip():
        text = text.replace(api_key.strip(), "sk_***")
    # Without an answer, or with a 409/5xx, Stripe may have done the work: keep the key.
    ambiguous = status is None or status == 409 or status >= 500
    return StripeFailure(text, http_status=status, request_id=request_id, ambiguous=ambiguous)


_NETWORK_REASONS = (
    "Connection refused",
    "Remote end closed connection",
    "Connection reset",
    "timed out",
    "Name or service not known",
    "Temporary failure in name resolution",
    "No route to host",
    "certificate verify failed",
)


def _network_reason(text: str) -> str:
    """The cause inside the SDK's long network-error text, e.g. "Connection refused"."""
    return next(
        (reason for reason in _NETWORK_REASONS if reason.lower() in text.lower()), "no answer"
    )


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else "no message"
