"""The daemon's jobs: plain functions that call one domain function each.

Monthly resets, nightly reconciliation and the hold sweep join here in a later issue.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from creditctl.webhooks import WebhookConfig, replay

log = logging.getLogger("creditctl.scheduler")


def retry_failed_webhooks(engine: Engine, config: WebhookConfig) -> int:
    """Re-run failed webhook events through the exactly-once path; returns how many now pass."""
    outcomes = replay(engine, config, failed=True)
    fixed = sum(1 for outcome in outcomes if outcome.ran and not outcome.failed)
    if outcomes:
        log.info("retried %d failed webhook event(s): %d now pass", len(outcomes), fixed)
    return fixed
