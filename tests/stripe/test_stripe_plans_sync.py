"""`plans sync` and `plans list` against the recorded-response server."""

from __future__ import annotations

import json

PAID = ("pro", "pro_plus", "ultimate")


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _write_config(tmp_path, pro_amount=1900, pro_credits=1000, interval="month") -> str:
    path = tmp_path / "creditctl.toml"
    path.write_text(f"""
[plans.free]
credits = 100
features = ["basic_posts", "analytics"]
[plans.pro]
credits = {pro_credits}
features = ["basic_posts", "analytics", "advanced_workflows", "scheduling"]
amount = {pro_amount}
interval = "{interval}"
[plans.pro_plus]
credits = 5000
features = ["basic_posts", "analytics", "advanced_workflows", "scheduling", "ads"]
amount = 4900
[plans.ultimate]
credits = "unlimited"
features = ["*"]
amount = 9900
""")
    return str(path)


def test_dry_run_shows_differences_and_changes_nothing(cli, recorded, recorded_env):
    result = cli("plans", "sync", "--dry-run", "--json", env=recorded_env)
    body = _json(result)
    assert body["dry_run"] is True
    created = {(c["plan"], c["object"]) for c in body["changes"] if c["action"] == "create"}
    assert created == {(p, o) for p in PAID for o in ("product", "price")}
    assert "free" not in {c["plan"] for c in body["changes"]}
    assert recorded.requests("POST") == []
    assert recorded.objects("product") == [] and recorded.objects("price") == []
    plans = {p["name"]: p for p in _json(cli("plans", "list", "--local", "--json"))}
    assert plans["pro"]["stripe_price_id"] is None


def test_sync_creates_products_and_prices_then_is_a_no_op(cli, recorded, recorded_env):
    body = _json(cli("plans", "sync", "--json", env=recorded_env))
    assert {c["plan"] for c in body["changes"]} == set(PAID)

    products = {p["id"]: p for p in recorded.objects("product")}
    assert set(products) == {"creditctl_pro", "creditctl_pro_plus", "creditctl_ultimate"}
    product_post = recorded.requests("POST", "/v1/products")[0]
    assert product_post.params == {
        "id": "creditctl_pro",
        "name": "Pro",
        "active": "true",
        "metadata[plan]": "pro",
        "metadata[credits]": "1000",
    }
    assert product_post.idempotency_key.startswith("creditctl-product.create-")
    price_posts = {r.params["lookup_key"]: r for r in recorded.requests("POST", "/v1/prices")}
    assert price_posts["creditctl_pro"].params == {
        "product": "creditctl_pro",
        "unit_amount": "1900",
        "currency": "usd",
        "recurring[interval]": "month",
        "lookup_key": "creditctl_pro",
        "metadata[plan]": "pro",
        "metadata[credits]": "1000",
    }
    assert price_posts["creditctl_ultimate"].params["metadata[credits]"] == "unlimited"
    keys = [r.idempotency_key for r in recorded.requests("POST")]
    assert len(set(keys)) == len(keys) == 6

    plans = {p["name"]: p for p in _json(cli("plans", "list", "--json", env=recorded_env))}
    prices = {p["lookup_key"]: p["id"] for p in recorded.objects("price")}
    assert plans["pro"]["stripe_product_id"] == "creditctl_pro"
    assert plans["pro"]["stripe_price_id"] == prices["creditctl_pro"]
    assert plans["pro"]["drift"] == "in step"
    assert plans["free"]["drift"] == "local only (free plan)"

    recorded.clear_requests()
    again = cli("plans", "sync", env=recorded_env)
    assert again.exit_code == 0, again.output
    assert "in step" in again.stderr
    assert recorded.requests("POST") == []


def test_changed_amount_makes_a_new_price_and_archives_the_old(
    cli, recorded, recorded_env, tmp_path
):
    assert cli("plans", "sync", env=recorded_env).exit_code == 0
    old = next(p for p in recorded.objects("price") if p["lookup_key"] == "creditctl_pro")
    env = {**recorded_env, "CREDITCTL_CONFIG": _write_config(tmp_path, pro_amount=2900)}

    listed = {p["name"]: p for p in _json(cli("plans", "list", "--json", env=env))}
    assert listed["pro"]["drift"].startswith("DRIFT")
    assert listed["pro"]["stripe_side_amount"] == 1900
    recorded.clear_requests()
    dry = _json(cli("plans", "sync", "--dry-run", "--json", env=env))
    assert [(c["plan"], c["object"], c["action"]) for c in dry["changes"]] == [
        ("pro", "price", "replace"),
        ("pro", "local", "record"),
    ]
    assert "unit_amount 1900 -> 2900" in dry["changes"][0]["detail"]
    assert recorded.requests("POST") == []

    _json(cli("plans", "sync", "--json", env=env))
    created, archived = recorded.requests("POST")
    assert created.path == "/v1/prices"
    assert created.params["transfer_lookup_key"] == "true"
    assert created.params["lookup_key"] == "creditctl_pro"
    assert created.params["unit_amount"] == "2900"
    assert (archived.path, archived.params) == (f"/v1/prices/{old['id']}", {"active": "false"})
    prices = {p["id"]: p for p in recorded.objects("price")}
    assert prices[old["id"]]["unit_amount"] == 1900  # never edited in place
    assert prices[old["id"]]["active"] is False and prices[old["id"]]["lookup_key"] is None
    new = next(p for p in prices.values() if p["lookup_key"] == "creditctl_pro")
    plans = {p["name"]: p for p in _json(cli("plans", "list", "--local", "--json", env=env))}
    assert plans["pro"]["stripe_price_id"] == new["id"] and plans["pro"]["amount"] == 2900

    recorded.clear_requests()
    assert _json(cli("plans", "sync", "--json", env=env))["changes"] == []
    assert recorded.requests("POST") == []


def test_changed_interval_also_replaces_the_price(cli, recorded, recorded_env, tmp_path):
    assert cli("plans", "sync", env=recorded_env).exit_code == 0
    env = {**recorded_env, "CREDITCTL_CONFIG": _write_config(tmp_path, interval="year")}
    recorded.clear_requests()
    _json(cli("plans", "sync", "--json", env=env))
    created = recorded.requests("POST", "/v1/prices")
    assert [r.params["recurring[interval]"] for r in created] == ["year"]
    assert created[0].params["transfer_lookup_key"] == "true"


def test_changed_credits_update_metadata_without_a_new_price(cli, recorded, recorded_env, tmp_path):
    assert cli("plans", "sync", env=recorded_env).exit_code == 0
    price = next(p for p in recorded.objects("price") if p["lookup_key"] == "creditctl_pro")
    env = {**recorded_env, "CREDITCTL_CONFIG": _write_config(tmp_path, pro_credits=1200)}
    recorded.clear_requests()
    _json(cli("plans", "sync", "--json", env=env))
    posts = {(r.path, tuple(sorted(r.params.items()))) for r in recorded.requests("POST")}
    assert posts == {
        (
            "/v1/products/creditctl_pro",
            (
                ("active", "true"),
                ("metadata[credits]", "1200"),
                ("metadata[plan]", "pro"),
                ("name", "Pro"),
            ),
        ),
        (
            f"/v1/prices/{price['id']}",
            (("active", "true"), ("metadata[credits]", "1200"), ("metadata[plan]", "pro")),
        ),
    }
    assert len(recorded.objects("price")) == 3


def test_sync_retries_a_500_and_a_dropped_answer_into_one_object(cli, recorded, recorded_env):
    recorded.fail_next("500", path="/v1/products")
    recorded.fail_next("drop", path="/v1/prices")
    body = _json(cli("plans", "sync", "--json", env=recorded_env))
    assert len(body["changes"]) == 9
    assert len(recorded.objects("product")) == 3 and len(recorded.objects("price")) == 3
    first_product = [
        r for r in recorded.requests("POST", "/v1/products") if r.params["id"] == "creditctl_pro"
    ]
    assert len(first_product) == 2
    assert first_product[0].idempotency_key == first_product[1].idempotency_key
    first_price = recorded.requests("POST", "/v1/prices")[:2]
    assert first_price[0].idempotency_key == first_price[1].idempotency_key
