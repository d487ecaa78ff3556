"""APScheduler wiring: which job runs when. Add a job by adding a line to `jobs`.

Several daemon replicas may run; the jobs listed here are safe to run on each of them
(replaying webhooks goes through the exactly-once path). Jobs that must run on one
replica at a time take a database lock when they arrive.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from creditctl.scheduler import jobs as job_functions
from creditctl.webhooks.config import WebhookConfig


def jobs(engine: Engine, config: WebhookConfig) -> list[tuple[str, Any, dict[str, Any]]]:
    """(id, function, interval trigger arguments) of every scheduled job."""
    return [
        (
            "retry_failed_webhooks",
            lambda: job_functions.retry_failed_webhooks(engine, config),
            {"minutes": 5},
        ),
        # Safe on every replica: each user is swept under their row lock, once.
        ("expire_holds", lambda: job_functions.expire_holds(engine), {"minutes": 1}),
    ]


def start(engine: Engine, config: WebhookConfig) -> Any:
    """A started background scheduler running `jobs`; call .shutdown() to stop it."""
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone="UTC")
    for job_id, function, every in jobs(engine, config):
        scheduler.add_job(function, "interval", id=job_id, coalesce=True, max_instances=1, **every)
    scheduler.start()
    return scheduler
