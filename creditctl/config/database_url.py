"""database.url read once, without importing SQLAlchemy, for every side that connects.

`parse_database_url` is the one definition of the URLs creditctl accepts: the configuration
checks it when it loads (a mistyped URL is a configuration error for every command, `config
show` included, before anything connects), the engine (creditctl.db.engine) and the ledger's
bare driver (creditctl.ledger.drivers) connect with what it answers, so a URL one of them
accepts is never one another reads differently or steps aside from.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from creditctl.config.masking import mask_url
from creditctl.errors import ConfigError

BACKENDS = {"sqlite", "postgres", "postgresql"}
# Schemes, in any case, and the dialect each one names.
DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "postgresql+psycopg": "postgresql",
}


@dataclass(frozen=True)
class DatabaseUrl:
    """An accepted database.url, and what each side connects with."""

    dialect: str  # "sqlite" or "postgresql"
    sqlalchemy: str  # for the engine: the scheme in lower case, PostgreSQL's routed to psycopg 3
    # The file sqlite3 opens; None when only the engine reads the URL (in memory, options).
    sqlite_file: str | None = None
    libpq: str | None = None  # the URL psycopg connects with: postgresql://...

    @property
    def shown(self) -> str:
        """The URL as errors show it (the engine's, without a password)."""
        return mask_url(self.sqlalchemy)


def parse_database_url(url: str) -> DatabaseUrl:
    """The URL as creditctl reads it; else a ConfigError naming what is wrong."""
    scheme, separator, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not separator or not scheme:
        raise not_a_url(url)
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
    if DRIVERS[scheme] == "sqlite":
        return DatabaseUrl("sqlite", f"{scheme}://{rest}", sqlite_file=_sqlite_file(rest))
    _check_hosts(url, rest)
    return DatabaseUrl("postgresql", f"postgresql+psycopg://{rest}", libpq=f"postgresql://{rest}")


def check_database_url(url: str) -> str:
    """The URL if creditctl can connect with it; else a ConfigError naming what is wrong."""
    parse_database_url(url)
    return url


def _sqlite_file(rest: str) -> str | None:
    """The path of sqlite:///path, decoded as SQLAlchemy decodes it."""
    if not rest.startswith("/") or "?" in rest:
        return None
    return unquote(rest[1:]) or None


def _check_hosts(url: str, rest: str) -> None:
    try:
        urlsplit(url.strip())
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        raise not_a_url(url) from None
    netloc = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    for host in netloc.split(","):  # libpq accepts several hosts: h1:5432,h2:5433
        port = host.rpartition("]")[2] if host.startswith("[") else host
        if host.startswith("[") and "]" not in host:
            raise not_a_url(url)
        if ":" in port:
            _check_port(port.rpartition(":")[2])


def _check_port(port: str) -> None:
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        shown = port if len(port) <= 20 else f"{port[:20]}..."
        raise ConfigError(f"database.url has port {shown!r}; give a port from 1 to 65535")


def not_a_url(url: str) -> ConfigError:
    return ConfigError(
        f"database.url {mask_url(url)!r} is not a database URL; use "
        "sqlite:///path/to/file.db or postgresql://user@host/db"
    )
