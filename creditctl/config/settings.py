"""Settings: built-in defaults < creditctl.toml < .env < environment < flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creditctl.config import values as check
from creditctl.config.masking import mask, mask_url
from creditctl.config.values import MAX_CREDITS
from creditctl.errors import ConfigError, InvalidInput

DEFAULT_CONFIG_FILE = "creditctl.toml"
DEFAULT_STRIPE_API_VERSION = "2026-10-28.endive"
UNLIMITED = "unlimited"


@dataclass(frozen=True)
class Key:
    """One setting: its dotted toml name, environment variable, default and parser."""

    name: str
    env: str | None
    default: Any
    parse: Callable[[str, Any], Any]
    secret: bool = False
    help: str = ""


KEYS: tuple[Key, ...] = (
    Key("database.url", "CREDITCTL_DATABASE_URL", "sqlite:///creditctl.db", check.database_url),
    Key(
        "database.busy_timeout_ms",
        "CREDITCTL_BUSY_TIMEOUT_MS",
        30000,
        check.whole_number(0, 600000),
    ),
    Key("credits.welcome_grant", "CREDITCTL_WELCOME_GRANT", 5, check.whole_number(0, 1_000_000)),
    Key(
        "credits.low_balance_threshold",
        "CREDITCTL_LOW_BALANCE_THRESHOLD",
        10,
        check.whole_number(0, 1_000_000_000),
    ),
    Key("credits.default_plan", "CREDITCTL_DEFAULT_PLAN", "free", check.text),
    Key(
        "credits.max_amount",
        "CREDITCTL_MAX_AMOUNT",
        1_000_000,
        check.whole_number(1, 1_000_000_000),
    ),
    Key("credits.hold_ttl", "CREDITCTL_HOLD_TTL", "30m", check.text),
    Key(
        "credits.upgrade_hint",
        "CREDITCTL_UPGRADE_HINT",
        "run `creditctl stripe checkout {user} --plan pro` for a bigger plan, "
        "or ask an operator for a grant",
        check.text,
    ),
    Key("stripe.api_key", "STRIPE_API_KEY", "", check.secret, secret=True),
    Key("stripe.api_version", "STRIPE_API_VERSION", DEFAULT_STRIPE_API_VERSION, check.text),
    Key("stripe.api_base", "STRIPE_API_BASE", "https://api.stripe.com", check.text),
    Key("stripe.webhook_secret", "STRIPE_WEBHOOK_SECRET", (), check.secret_list, secret=True),
    Key(
        "stripe.success_url",
        "CREDITCTL_SUCCESS_URL",
        "https://example.com/billing/success",
        check.text,
    ),
    Key(
        "stripe.cancel_url",
        "CREDITCTL_CANCEL_URL",
        "https://example.com/billing/cancel",
        check.text,
    ),
    Key(
        "stripe.portal_return_url",
        "CREDITCTL_PORTAL_RETURN_URL",
        "https://example.com/billing",
        check.text,
    ),
    Key(
        "webhooks.tolerance_seconds",
        "CREDITCTL_WEBHOOK_TOLERANCE",
        300,
        check.whole_number(1, 86400),
    ),
    Key(
        "webhooks.max_body_bytes",
        "CREDITCTL_WEBHOOK_MAX_BODY",
        262144,
        check.whole_number(1024, 10_000_000),
    ),
    Key("webhooks.fetch_latest", "CREDITCTL_WEBHOOK_FETCH_LATEST", False, check.boolean),
    Key(
        "webhooks.body_timeout_seconds",
        "CREDITCTL_WEBHOOK_BODY_TIMEOUT",
        10,
        check.whole_number(1, 300),
    ),
    Key(
        "billing.past_due_grace_days",
        "CREDITCTL_PAST_DUE_GRACE_DAYS",
        7,
        check.whole_number(0, 3650),
    ),
    Key("daemon.host", "CREDITCTL_DAEMON_HOST", "127.0.0.1", check.text),
    Key("daemon.port", "CREDITCTL_DAEMON_PORT", 8787, check.whole_number(1, 65535)),
)
KEYS_BY_NAME = {k.name: k for k in KEYS}

DEFAULT_PLANS: dict[str, dict[str, Any]] = {
    "free": {"credits": 100, "features": ["basic_posts", "analytics"], "amount": 0},
    "pro": {
        "credits": 1000,
        "features": ["basic_posts", "analytics", "advanced_workflows", "scheduling"],
        "amount": 1900,
    },
    "pro_plus": {
        "credits": 5000,
        "features": ["basic_posts", "analytics", "advanced_workflows", "scheduling", "ads"],
        "amount": 4900,
    },
    "ultimate": {"credits": UNLIMITED, "features": ["*"], "amount": 9900},
}
PLAN_FIELDS = {
    "credits",
    "features",
    "amount",
    "currency",
    "interval",
    "lookup_key",
    "rollover",
    "name",
}
INTERVALS = {"day", "week", "month", "year"}


@dataclass(frozen=True)
class PlanSpec:
    """A plan as the configuration declares it."""

    name: str
    credits: int | None  # None: unlimited
    features: tuple[str, ...]
    amount: int = 0
    currency: str = "usd"
    interval: str = "month"
    lookup_key: str = ""
    rollover: bool = False
    display_name: str = ""

    @property
    def unlimited(self) -> bool:
        return self.credits is None

    def has_feature(self, feature: str) -> bool:
        return "*" in self.features or feature in self.features


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Any] = field(repr=False)  # holds the secrets: never in a repr
    sources: Mapping[str, str]
    plans: Mapping[str, PlanSpec]
    config_file: Path | None = None
    secrets: frozenset[str] = field(default_factory=frozenset)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def database_url(self) -> str:
        return self.values["database.url"]

    def masked(self) -> dict[str, Any]:
        """Every effective value, with secrets replaced by a mask."""
        shown: dict[str, Any] = {}
        for key in KEYS:
            value = self.values[key.name]
            if key.secret:
                value = mask(value)
            elif key.name == "database.url":
                value = mask_url(value)
            shown[key.name] = value
        return shown


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict) and dotted != "plans":
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; pass an existing file to "
            "--config or unset CREDITCTL_CONFIG"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8") from None
    except ValueError:  # tomllib's int() of a number past 4,300 digits
        raise ConfigError(
            f"config file {path} holds a number too long to read; no setting takes one so large"
        ) from None
    except RecursionError:
        raise ConfigError(f"config file {path} nests arrays or tables too deeply") from None


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    try:
        return {k: v for k, v in dotenv_values(path).items() if v is not None}
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f".env file {path} cannot be read as UTF-8 text") from None


def _config_path(flag: str | None, environ: Mapping[str, str]) -> Path | None:
    if flag:
        return Path(flag)
    if environ.get("CREDITCTL_CONFIG"):
        return Path(environ["CREDITCTL_CONFIG"])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_settings(
    config_file: str | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_file: str | None = None,
) -> Settings:
    """Build the effective settings from every source, validating each key."""
    environ = os.environ if environ is None else environ
    path = _config_path(config_file, environ)
    document = _read_toml(path) if path else {}
    toml_values = _flatten(document)
    plans_table = toml_values.pop("plans", None)
    unknown = sorted(set(toml_values) - set(KEYS_BY_NAME))
    if unknown:
        raise ConfigError(
            f"config key {unknown[0]} is not a known setting "
            f"(in {path}); see creditctl.toml.example for the keys"
        )
    dotenv = _read_dotenv(Path(dotenv_file or environ.get("CREDITCTL_ENV_FILE", ".env")))
    layers = [
        ("flag", dict(flags or {})),
        ("environment", {k.name: environ[k.env] for k in KEYS if k.env and k.env in environ}),
        (".env", {k.name: dotenv[k.env] for k in KEYS if k.env and k.env in dotenv}),
        (str(path) if path else "toml", toml_values),
    ]
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in KEYS:
        values[key.name], sources[key.name] = key.default, "default"
        for source, layer in layers:
            if layer.get(key.name) is not None:
                values[key.name] = key.parse(key.name, layer[key.name])
                sources[key.name] = source
                break
    plans = parse_plans(plans_table if plans_table is not None else DEFAULT_PLANS)
    if values["credits.default_plan"] not in plans:
        raise ConfigError(
            f"config key credits.default_plan names plan "
            f"{values['credits.default_plan']!r}, which is not declared in [plans]"
        )
    from creditctl.parsing.times import parse_duration

    try:
        parse_duration(values["credits.hold_ttl"])
    except InvalidInput:
        raise ConfigError(
            "config key credits.hold_ttl must be a duration such as 30m, "
            f"2h or 90s, got {values['credits.hold_ttl']!r}"
        ) from None
    return Settings(values=values, sources=sources, plans=plans, config_file=path)


def parse_plans(table: Any) -> dict[str, PlanSpec]:
    """Validate the [plans] table into PlanSpecs."""
    if not isinstance(table, dict) or not table:
        raise ConfigError("config key plans must be a table of plans, e.g. [plans.free]")
    return {name: _parse_plan(name, spec) for name, spec in table.items()}


def _parse_plan(name: str, spec: Any) -> PlanSpec:
    where = f"plans.{name}"
    check.plain(f"plans.{name!r}", name)
    if not isinstance(spec, dict):
        raise ConfigError(f"config key {where} must be a table")
    unknown = sorted(set(spec) - PLAN_FIELDS)
    if unknown:
        raise ConfigError(
            f"config key {where}.{unknown[0]} is not a known plan field "
            f"(known: {', '.join(sorted(PLAN_FIELDS))})"
        )
    credits = spec.get("credits")
    if credits == UNLIMITED:
        credits = None
    elif (
        isinstance(credits, bool) or not isinstance(credits, int) or not 0 <= credits <= MAX_CREDITS
    ):
        # Bounded by the schema: a balance never exceeds MAX_CREDITS, so neither may a period.
        raise ConfigError(
            f"config key {where}.credits must be a whole number from 0 to {MAX_CREDITS} or "
            f'"unlimited", got {check.shown(credits)}'
        )
    features = spec.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ConfigError(f"config key {where}.features must be a list of strings")
    for feature in features:
        check.plain(f"{where}.features", feature)
    interval = spec.get("interval", "month")
    if interval not in INTERVALS:
        raise ConfigError(
            f"config key {where}.interval must be one of "
            f"{', '.join(sorted(INTERVALS))}, got {interval!r}"
        )
    amount = check.whole_number(0, 100_000_000)(f"{where}.amount", spec.get("amount", 0))
    return PlanSpec(
        name=name,
        credits=credits,
        features=tuple(features),
        amount=amount,
        currency=check.text(f"{where}.currency", spec.get("currency", "usd")).lower(),
        interval=interval,
        lookup_key=check.plain(
            f"{where}.lookup_key",
            check.text(f"{where}.lookup_key", spec.get("lookup_key", f"creditctl_{name}")),
        ),
        rollover=check.boolean(f"{where}.rollover", spec.get("rollover", False)),
        display_name=check.plain(
            f"{where}.name",
            check.text(f"{where}.name", spec.get("name", name.replace("_", " ").title())),
        ),
    )
