"""`creditctl daemon`: Stripe's webhook endpoint (Starlette served by uvicorn) and the scheduler.

Starlette and uvicorn are imported by this module only, so `creditctl credits ...` never
loads them. A delivery is verified, stored (committed) and then processed inline in the
same request: the answer has to wait for the handler because a handler failure must be
answered with a 5xx so Stripe retries it (the event is already stored as failed and can
also be replayed). Handlers are a few statements, so the stored-event answer stays well
inside Stripe's timeout (see bench/webhooks.py). The database work runs in the worker
thread pool so the event loop keeps accepting requests.

A body must arrive within `webhooks.body_timeout_seconds` (408 otherwise) and within
`webhooks.max_body_bytes` (413); a client that goes away mid-body is one log line. Anything
wrong with a delivery itself is a 400 (Stripe stops retrying it); only a database that cannot
store it now is a 503. `/healthz` says whether the database answers, never why not: the
reason goes to the log.

SIGTERM and SIGINT stop accepting connections and let in-flight requests finish
(uvicorn's graceful shutdown), then the scheduler stops and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

from sqlalchemy.engine import Engine

from creditctl.errors import (
    ConfigError,
    CreditctlError,
    DatabaseUnavailable,
    InvalidInput,
    SchemaOutOfDate,
)
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.events import last_received_at
from creditctl.webhooks.receive import receive

log = logging.getLogger("creditctl.daemon")
WEBHOOK_PATH = "/webhooks/stripe"
GRACEFUL_SECONDS = 30


def _json(body: dict[str, Any], status: int = 200) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse(body, status_code=status)


class _BodyRefused(Exception):
    """The body was not taken: too big (413) or too slow (408)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def _read_body(request: Any, limit: int, seconds: int) -> bytes:
    """The raw body, read within `seconds` and at most `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _BodyRefused(413, f"body over {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise _BodyRefused(413, f"body over {limit} bytes")
    except TimeoutError:
        # A slow sender holds a connection and a worker: Stripe sends its body at once.
        raise _BodyRefused(408, f"body not received within {seconds} s") from None
    return bytes(body)


def _webhook_endpoint(engine: Engine, config: WebhookConfig) -> Any:
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect

    async def stripe_webhook(request: Any) -> Any:
        try:
            body = await _read_body(request, config.max_body_bytes, config.body_timeout_seconds)
        except _BodyRefused as refused:
            log.warning("webhook refused: %s", refused.reason)
            return _json({"error": refused.reason}, refused.status)
        except ClientDisconnect:
            log.info("webhook delivery dropped: the client disconnected before the body ended")
            return _json({"error": "client disconnected"}, 400)  # nobody is left to read it
        header = request.headers.get("stripe-signature")
        try:
            receipt = await run_in_threadpool(receive, engine, body, header, config)
        except InvalidInput as exc:  # bad signature, or not an event the store can hold
            log.warning("webhook refused: %s", exc.message)
            return _json({"error": exc.message}, 400)
        except CreditctlError as exc:
            log.error("webhook not stored: %s", exc.message)
            return _json({"error": "database unavailable; retry"}, 503)
        except Exception as exc:  # noqa: BLE001 - Stripe retries a 503; no traceback in logs
            log.error("webhook not stored: unexpected %s", type(exc).__name__)
            return _json({"error": "not stored; retry"}, 503)
        outcome = receipt.outcome
        log.info(
            "webhook %s %s: %s%s",
            receipt.event_id,
            receipt.type,
            outcome.status,
            "" if receipt.new else " (repeat delivery)",
        )
        answer = {"id": receipt.event_id, "status": outcome.status, "repeat": not receipt.new}
        if outcome.failed:
            return _json({**answer, "error": "processing failed; stored for retry"}, 500)
        return _json(answer)

    return stripe_webhook


def _health_endpoint(engine: Engine) -> Any:
    from starlette.concurrency import run_in_threadpool

    from creditctl.clock import iso
    from creditctl.db.engine import read

    def check() -> dict[str, Any]:
        with read(engine) as conn:
            return {
                "status": "ok",
                "database": "ok",
                "last_event_received_at": iso(last_received_at(conn)),
            }

    async def healthz(_request: Any) -> Any:
        # The answer is public: why the database is unavailable goes to the log only.
        try:
            return _json(await run_in_threadpool(check))
        except CreditctlError as exc:
            log.warning("health check: %s", exc.message)
        except Exception as exc:  # noqa: BLE001 - a health check answers, it does not crash
            log.warning("health check: unexpected %s", type(exc).__name__)
        return _json({"status": "unavailable", "database": "unavailable"}, 503)

    return healthz


def build_app(engine: Engine, config: WebhookConfig) -> Any:
    """The ASGI application: the webhook endpoint and the health check."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, _webhook_endpoint(engine, config), methods=["POST"]),
            Route("/healthz", _health_endpoint(engine), methods=["GET"]),
        ]
    )


def _check_database(engine: Engine) -> None:
    from creditctl.db.engine import read

    try:
        with read(engine) as conn:
            last_received_at(conn)
    except (DatabaseUnavailable, SchemaOutOfDate):
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a missing webhook_events table
        raise SchemaOutOfDate(
            "the database has no webhook_events table; run "
            f"`creditctl db upgrade` ({type(exc).__name__})"
        ) from None


def run_daemon(
    settings: Any,
    engine: Engine,
    *,
    host: str,
    port: int,
    http: bool = True,
    scheduler: bool = True,
) -> None:
    """Serve webhooks and/or run the scheduled jobs until SIGTERM or SIGINT."""
    if not http and not scheduler:
        raise InvalidInput("--no-http and --no-scheduler together leave nothing to run")
    config = WebhookConfig.from_settings(settings)
    if http and not config.secrets:
        raise ConfigError(
            "STRIPE_WEBHOOK_SECRET is not set; the webhook endpoint cannot "
            "verify Stripe's signatures (comma-separate several while rotating)"
        )
    _check_database(engine)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    jobs = _start_scheduler(engine, config) if scheduler else None
    try:
        if http:
            _serve(build_app(engine, config), host, port)
        else:
            log.info("scheduler running without HTTP; stop with SIGTERM or SIGINT")
            stopped.wait()
    finally:
        if jobs is not None:
            jobs.shutdown(wait=True)
    log.info("daemon stopped")


def _start_scheduler(engine: Engine, config: WebhookConfig) -> Any:
    from creditctl.scheduler.wiring import start

    return start(engine, config)


def _serve(app: Any, host: str, port: int) -> None:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            access_log=True,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
            server_header=False,
        )
    )
    log.info("receiving Stripe webhooks at http://%s:%d%s", host, port, WEBHOOK_PATH)
    server.run()
