"""The daemon's jobs, run inline with a frozen clock."""

from datetime import timedelta

from freezegun import freeze_time

from creditctl.accounts.users import add_user
from creditctl.ledger.balances import balance
from creditctl.ledger.holds import open_holds, reserve
from creditctl.scheduler import jobs, wiring
from creditctl.webhooks.config import WebhookConfig


def test_the_daemon_schedules_the_hold_sweep_and_webhook_retries(engine):
    config = WebhookConfig(secrets=("whsec_x",), tolerance=300)
    scheduled = {job_id: every for job_id, _, every in wiring.jobs(engine, config)}
    assert scheduled == {"retry_failed_webhooks": {"minutes": 5}, "expire_holds": {"minutes": 1}}


def test_expire_holds_job_returns_a_lapsed_hold(engine, policy):
    with freeze_time("2026-11-21 10:00:00"):
        add_user(engine, "j@example.com", user_id="j1", actor="t", policy=policy, plan="free")
        reserve(engine, "j1", 30, ttl=timedelta(minutes=1), actor="t", policy=policy)
        assert jobs.expire_holds(engine) == 0
    with freeze_time("2026-11-21 10:02:00"):
        assert jobs.expire_holds(engine) == 1
        assert open_holds(engine, user="j1") == []
        assert balance(engine, "j1").available == 105
        assert jobs.expire_holds(engine) == 0
