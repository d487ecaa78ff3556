"""database.url checked when the configuration loads, without importing SQLAlchemy.

The engine reads the URL again (db/engine.py); this check makes a mistyped URL a
configuration error for every command, `config show` included, before anything connects.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from creditctl.config.masking import mask_url
from creditctl.errors import ConfigError

BACKENDS = {"sqlite", "postgres", "postgresql"}
DRIVERS = {"sqlite", "sqlite+pysqlite", "postgres", "postgresql", "postgresql+psycopg"}


def check_database_url(url: str) -> str:
    """The URL if creditctl can connect with it; else a ConfigError naming what is wrong."""
    scheme, separator, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not separator or not scheme:
        raise _not_a_url(url)
    backend = scheme.partition("+")[0]
    if backend not in BACKENDS:
        raise ConfigError(
            f"database.url uses {backend!r}; creditctl supports sqlite and postgresql"
        )
    if scheme not in DRIVERS:
        raise ConfigError(
            f"database.url asks for the driver {scheme.partition('+')[2]!r}; creditctl "
            "connects with psycopg (postgresql://...) or Python's sqlite3 (sqlite:///...)"
        )
    if backend != "sqlite":
        _check_hosts(url, rest)
    return url


def _check_hosts(url: str, rest: str) -> None:
    try:
        urlsplit(url)
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        raise _not_a_url(url) from None
    netloc = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    for host in netloc.split(","):  # libpq accepts several hosts: h1:5432,h2:5433
        port = host.rpartition("]")[2] if host.startswith("[") else host
        if host.startswith("[") and "]" not in host:
            raise _not_a_url(url)
        if ":" in port:
            _check_port(port.rpartition(":")[2])


def _check_port(port: str) -> None:
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        shown = port if len(port) <= 20 else f"{port[:20]}..."
        raise ConfigError(f"database.url has port {shown!r}; give a port from 1 to 65535")


def _not_a_url(url: str) -> ConfigError:
    return ConfigError(
        f"database.url {mask_url(url)!r} is not a database URL; use "
        "sqlite:///path/to/file.db or postgresql://user@host/db"
    )
