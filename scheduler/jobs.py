"""The daemon's jobs: plain functions that call one domain function each.

Monthly resets and nightly reconciliation join here in a later issue.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from creditctl.ledger.holds import expire
from creditctl.webhooks.config import WebhookConfig
from creditctl.webhooks.processing import replay

log = logging.getLogger("creditctl.scheduler")


def retry_failed_webhooks(engine: Engine, config: WebhookConfig) -> int:
    """Re-run failed webhook events through the exactly-once path; returns how many now pass."""
    outcomes = replay(engine, config, failed=True)
    fixed = sum(1 for outcome in outcomes if outcome.ran and not outcome.failed)
    if outcomes:
        log.info("retried %d failed webhook event(s): %d now pass", len(outcomes), fixed)
    return fixed


def expire_holds(engine: Engine) -> int:
    """Release holds past their time to live (reads already count them released)."""
    swept = expire(engine)
    if swept["entries"]:
        log.info("swept %d user(s): %d entries", swept["users"], swept["entries"])
    return swept["entries"]
