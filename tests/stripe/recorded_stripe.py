"""A small Stripe stand-in on loopback for what localstripe lacks: prices, Checkout, portal.

Objects start from the canonical shapes in tests/fixtures/stripe_fixtures3.json and take
the fields the request sent. Every request is recorded with its form parameters (flat,
as the SDK encoded them) and headers, so tests assert on exactly what was sent. Like
Stripe, a POST repeated with the same Idempotency-Key gets the first answer back. Faults
can be queued: answer 500, or do the work and then drop the connection (a lost answer).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe_fixtures3.json"
API_KEY = "sk_test_recorded_0123456789abcdefSECRET"
NOW = 1795000000  # a fixed "now" for created and period fields


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]  # flat form or query parameters, e.g. {"metadata[plan]": "pro"}
    headers: dict[str, str]  # lower-case names

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass
class Fault:
    kind: str  # "500", "drop" (work done, answer lost), or an HTTP status to refuse with
    method: str
    path: str  # a regex matched against the request path


@dataclass
class State:
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    replies: dict[str, tuple[dict[str, str], int, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": kind, "message": message, "code": code}}


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0][c]=v` form pairs into nested dicts and lists, as Stripe reads them."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _lists(v) for k, v in node.items()}


def _truthy(value: Any) -> bool:
    return str(value).lower() == "true"


class RecordedStripe:
    """The server; start() it, point STRIPE_API_BASE at .url, then read .requests."""

    def __init__(self, fixtures: Path = FIXTURES) -> None:
        self.templates = json.loads(fixtures.read_text())["resources"]
        self.state = State()
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        self.server: ThreadingHTTPServer | None = None

    # --- control from tests --------------------------------------------------------------------

    def start(self) -> RecordedStripe:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_next(self, kind: str, method: str = "POST", path: str = ".*", times: int = 1) -> None:
        with self.lock:
            self.state.faults += [Fault(kind, method, path) for _ in range(times)]

    def requests(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.state.requests
                if (method is None or r.method == method)
                and (path is None or re.fullmatch(path, r.path))
            ]

    def objects(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(copy.deepcopy(self.state.objects.get(kind, {})).values())

    def clear_requests(self) -> None:
        with self.lock:
            self.state.requests.clear()

    def add_subscription(
        self,
        customer: str,
        price_id: str,
        status: str = "active",
        period_start: int = NOW,
        period_end: int = NOW + 30 * 86400,
    ) -> dict[str, Any]:
        """A subscription as Stripe would hold it after a completed Checkout."""
        with self.lock:
            price = self.state.objects["price"][price_id]
            sub = self._from_template(
                "subscription",
                "sub",
                {
                    "customer": customer,
                    "status": status,
                    "cancel_at_period_end": False,
                    "cancel_at": None,
                    "canceled_at": None,
                    "ended_at": None,
                    "created": NOW,
                    "metadata": {},
                },
            )
            item = copy.deepcopy(self.templates["subscription"]["items"]["data"][0])
            item.update(
                id=f"si_{next(self.counter):06d}",
                subscription=sub["id"],
                price=copy.deepcopy(price),
                current_period_start=period_start,
                current_period_end=period_end,
            )
            item.pop("plan", None)
            sub["items"] = {
                "object": "list",
                "data": [item],
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub['id']}",
            }
            self._store("subscription", sub)
            return copy.deepcopy(sub)

    # --- the API --------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, pairs: list[tuple[str, str]], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], str]:
        """Returns (status, body, fault) where fault is "" or "drop"."""
        recorded = Recorded(method, path, dict(pairs), headers)
        with self.lock:
            self.state.requests.append(recorded)
            fault = self._take_fault(method, path)
            if fault is not None and fault.kind != "drop":
                return (
                    int(fault.kind),
                    {"error": {"type": "api_error", "message": f"injected {fault.kind}"}},
                    "",
                )
            if headers.get("authorization") != f"Bearer {API_KEY}":
                return (
                    401,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": "Invalid API Key provided: sk_test_****",
                        }
                    },
                    "",
                )
            status, body = self._idempotent(method, path, recorded, unflatten(pairs))
        return status, body, "drop" if fault is not None else ""

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.state.faults:
            if fault.method == method and re.fullmatch(fault.path, path):
                self.state.faults.remove(fault)
                return fault
        return None

    def _idempotent(
        self, method: str, path: str, recorded: Recorded, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        key = recorded.idempotency_key if method == "POST" else None
        if key and key in self.state.replies:
            sent, status, body = self.state.replies[key]
            if sent != recorded.params:
                return 400, {
                    "error": {
                        "type": "idempotency_error",
                        "message": "Keys for "
                        "idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                    }
                }
            return status, copy.deepcopy(body)
        try:
            status, body = 200, self._route(method, path, params)
        except StripeError as exc:
            status, body = exc.status, exc.body
        if key:
            self.state.replies[key] = (recorded.params, status, copy.deepcopy(body))
        return status, body

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        for verb, pattern, name in ROUTES:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return getattr(self, name)(params, *match.groups())
        raise StripeError(404, f"Unrecognized request URL ({method}: {path})")

    # --- objects --------------------------------------------------------------------------------

    def _from_template(self, kind: str, prefix: str, values: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(self.templates[kind])
        obj.update(id=f"{prefix}_{next(self.counter):06d}", created=NOW, livemode=False)
        obj.update(values)
        return obj

    def _store(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.state.objects.setdefault(kind, {})[obj["id"]] = obj
        return copy.deepcopy(obj)

    def _get(self, kind: str, object_id: str) -> dict[str, Any]:
        found = self.state.objects.get(kind, {}).get(object_id)
        if found is None:
            raise StripeError(404, f"No such {kind}: '{object_id}'", "resource_missing")
        return found

    def _list(
        self, items: list[dict[str, Any]], params: dict[str, Any], url: str
    ) -> dict[str, Any]:
        limit = int(params.get("limit", 10))
        after = params.get("starting_after")
        if after:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        return {
            "object": "list",
            "url": url,
            "data": copy.deepcopy(items[:limit]),
            "has_more": len(items) > limit,
        }

    # customers
    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._store(
            "customer",
            self._from_template(
                "customer",
                "cus",
                {
                    "email": params.get("email"),
                    "name": params.get("name"),
                    "metadata": params.get("metadata", {}),
                    "discount": None,
                },
            ),
        )

    def list_customers(self, params: dict[str, Any]) -> dict[str, Any]:
        found = [
            c
            for c in self.state.objects.get("customer", {}).values()
            if "email" not in params or c["email"] == params["email"]
        ]
        return self._list(found, params, "/v1/customers")

    def get_customer(self, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._get("customer", customer_id))

    # products
    def create_product(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("id") in self.state.objects.get("product", {}):
            raise StripeError(
                400, f"Product already exists: {params['id']}", "resource_already_exists"
            )
        product = self._from_template(
            "product",
            "prod",
            {
                "name": params["name"],
                "active": _truthy(params.get("active", "true")),
                "metadata": params.get("metadata", {}),
                "default_price": None,
                "description": None,
                "type": "service",
            },
        )
        if params.get("id"):
            product["id"] = params["id"]
        return self._store("product", product)

    def get_product(self, params: dict[str, Any], product_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._get("product", product_id))

    def update_product(self, params: dict[str, Any], product_id: str) -> dict[str, Any]:
        product = self._get("product", product_id)
        product["metadata"].update(params.pop("metadata", {}))
        if "active" in params:
            product["active"] = _truthy(params.pop("active"))
        product.update(params)
        return copy.deepcopy(product)

    # prices
    def create_price(self, params: dict[str, Any]) -> dict[str, Any]:
        self._get("product", params["product"])
        key = params.get("lookup_key")
        holder = next(
            (
                p
                for p in self.state.objects.get("price", {}).values()
                if key and p["lookup_key"] == key
            ),
            None,
        )
        if holder is not None and not _truthy(params.get("transfer_lookup_key")):
            raise StripeError(
                400,
                f"A price (`{holder['id']}`) already uses that lookup key.",
                "lookup_key_already_exists",
            )
        if holder is not None:
            holder["lookup_key"] = None
        recurring = dict(self.templates["price"]["recurring"])
        recurring.update(interval=params["recurring"]["interval"], interval_count=1)
        return self._store(
            "price",
            self._from_template(
                "price",
                "price",
                {
                    "product": params["product"],
                    "unit_amount": int(params["unit_amount"]),
                    "unit_amount_decimal": params["unit_amount"],
                    "currency": params["currency"],
                    "recurring": recurring,
                    "lookup_key": key,
                    "active": True,
                    "metadata": params.get("metadata", {}),
                    "transform_quantity": None,
                },
            ),
        )

    def list_prices(self, params: dict[str, Any]) -> dict[str, Any]:
        keys = params.get("lookup_keys")
        found = [
            p
            for p in self.state.objects.get("price", {}).values()
            if keys is None or p["lookup_key"] in keys
        ]
        return self._list(found, params, "/v1/prices")

    def update_price(self, params: dict[str, Any], price_id: str) -> dict[str, Any]:
        price = self._get("price", price_id)
        if set(params) - {"active", "metadata", "nickname", "lookup_key"}:
            raise StripeError(400, f"Received unknown parameters: {sorted(params)}")
        price["metadata"].update(params.get("metadata", {}))
        if "active" in params:
            price["active"] = _truthy(params["active"])
        return copy.deepcopy(price)

    # checkout and portal
    def create_checkout_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._from_template(
            "checkout.session",
            "cs_test",
            {
                "mode": params.get("mode"),
                "customer": params.get("customer"),
                "client_reference_id": params.get("client_reference_id"),
                "metadata": params.get("metadata", {}),
                "success_url": params.get("success_url"),
                "cancel_url": params.get("cancel_url"),
                "payment_intent": None,
                "subscription": None,
                "status": "open",
            },
        )
        session["url"] = f"https://checkout.stripe.com/c/pay/{session['id']}"
        return self._store("checkout.session", session)

    def create_portal_session(self, params: dict[str, Any]) -> dict[str, Any]:
        self._get("customer", params["customer"])
        session = self._from_template(
            "billing_portal.session",
            "bps",
            {"customer": params["customer"], "return_url": params.get("return_url"), "flow": None},
        )
        session["url"] = f"https://billing.stripe.com/p/session/test_{session['id']}"
        return self._store("billing_portal.session", session)

    # subscriptions
    def get_subscription(self, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._get("subscription", sub_id))

    def list_subscriptions(self, params: dict[str, Any]) -> dict[str, Any]:
        found = [
            s
            for s in self.state.objects.get("subscription", {}).values()
            if s["customer"] == params.get("customer", s["customer"])
            and (params.get("status") == "all" or s["status"] != "canceled")
        ]
        return self._list(found, params, "/v1/subscriptions")

    def update_subscription(self, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
        sub = self._get("subscription", sub_id)
        for change in params.get("items", []):
            item = next(i for i in sub["items"]["data"] if i["id"] == change["id"])
            item["price"] = copy.deepcopy(self._get("price", change["price"]))
        if "cancel_at_period_end" in params:
            sub["cancel_at_period_end"] = _truthy(params["cancel_at_period_end"])
        sub["metadata"].update(params.get("metadata", {}))
        return copy.deepcopy(sub)

    def cancel_subscription(self, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
        sub = self._get("subscription", sub_id)
        sub.update(status="canceled", canceled_at=NOW, ended_at=NOW)
        return copy.deepcopy(sub)


ROUTES = (
    ("POST", r"/v1/customers", "create_customer"),
    ("GET", r"/v1/customers", "list_customers"),
    ("GET", r"/v1/customers/([^/]+)", "get_customer"),
    ("POST", r"/v1/products", "create_product"),
    ("GET", r"/v1/products/([^/]+)", "get_product"),
    ("POST", r"/v1/products/([^/]+)", "update_product"),
    ("POST", r"/v1/prices", "create_price"),
    ("GET", r"/v1/prices", "list_prices"),
    ("POST", r"/v1/prices/([^/]+)", "update_price"),
    ("POST", r"/v1/checkout/sessions", "create_checkout_session"),
    ("POST", r"/v1/billing_portal/sessions", "create_portal_session"),
    ("GET", r"/v1/subscriptions", "list_subscriptions"),
    ("GET", r"/v1/subscriptions/([^/]+)", "get_subscription"),
    ("POST", r"/v1/subscriptions/([^/]+)", "update_subscription"),
    ("DELETE", r"/v1/subscriptions/([^/]+)", "cancel_subscription"),
)


def _handler_for(stripe: RecordedStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            pairs = parse_qsl(
                body if self.command == "POST" else parts.query, keep_blank_values=True
            )
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload, fault = stripe.handle(self.command, parts.path, pairs, headers)
            if fault == "drop":
                self.close_connection = True  # the work is done; the answer is lost
                return
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_recorded{next(stripe.counter):06d}")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
