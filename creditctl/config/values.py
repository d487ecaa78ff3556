"""The parsers of setting values: each checks one key's value and names the key when it refuses.

A value of the wrong type is described by its type, never shown: it may be a secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from creditctl.config.database_url import check_database_url
from creditctl.errors import ConfigError
from creditctl.parsing.text import control_character

# The schema's bound on a balance and on any one amount (db/models.py MAX_CREDITS), repeated
# here so loading the configuration needs no SQLAlchemy; tests/test_settings.py checks they agree.
MAX_CREDITS = 1_000_000_000
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
_KINDS = {
    bool: "true or false",
    int: "a number",
    float: "a number",
    list: "a list",
    dict: "a table",
}


def kind(value: Any) -> str:
    """What a value is, in TOML's words: said instead of the value, which may be a secret."""
    return "a string" if isinstance(value, str) else _KINDS.get(type(value), "a date or time")


def shown(value: Any) -> str:
    """A value quoted for an error about a key that holds no secret, cut short if long."""
    quoted = repr(value)
    return quoted if len(quoted) <= 60 else f"{quoted[:60]}..."


def whole_number(minimum: int, maximum: int) -> Callable[[str, Any], int]:
    def parse(key: str, value: Any) -> int:
        raw = str(value).strip()
        if isinstance(value, bool) or not _WHOLE_NUMBER.fullmatch(raw):
            raise ConfigError(f"config key {key} must be a whole number, got {shown(value)}")
        # A number of more digits than the bound has is out of range; int() would also refuse
        # past 4,300 digits.
        if len(raw.lstrip("+-").lstrip("0")) > len(str(maximum)) or not (
            minimum <= int(raw) <= maximum
        ):
            raise ConfigError(f"config key {key} must be between {minimum} and {maximum}")
        return int(raw)

    return parse


def text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"config key {key} must be a string, not {kind(value)}")
    return value


def database_url(key: str, value: Any) -> str:
    if not isinstance(value, str):  # the value is not shown: a URL may hold a password
        raise ConfigError(
            f"config key {key} must be a string such as sqlite:///creditctl.db, not {kind(value)}"
        )
    return check_database_url(value)


def secret(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"config key {key} must be a string, not {kind(value)} (not shown)")
    return value.strip()


def boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    answer = str(value).strip().lower()
    if answer in {"1", "true", "yes", "on"}:
        return True
    if answer in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"config key {key} must be true or false, got {shown(value)}")


def secret_list(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        given = kind(value) if not isinstance(value, list) else "a list holding other things"
        raise ConfigError(
            f"config key {key} must be a string or a list of strings, not {given} (not shown)"
        )
    return tuple(v.strip() for v in items if v.strip())


def plain(where: str, value: str) -> str:
    """Plan names and features are printed in tables: no control characters."""
    found = control_character(value)
    if found:
        raise ConfigError(f"config key {where} contains {found}; remove it")
    return value
