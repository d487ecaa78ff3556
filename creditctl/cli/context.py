"""What every command needs, built once per invocation and only when first asked for."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from creditctl.errors import InvalidInput


@dataclass
class AppContext:
    config_file: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    operator_flag: str | None = None
    create_database: bool = False  # only init and db upgrade may create a SQLite file
    long_lived: bool = False  # the daemon: pooled connections are checked before use

    @cached_property
    def settings(self):
        from creditctl.config.settings import load_settings

        return load_settings(self.config_file, flags=self.flags)

    @cached_property
    def engine(self):
        from creditctl.db.engine import make_engine

        return make_engine(
            self.settings.database_url,
            self.settings["database.busy_timeout_ms"],
            create=self.create_database,
            long_lived=self.long_lived,
        )

    @cached_property
    def database(self):
        """The database for the fast path, which opens the full engine only if it must."""
        from creditctl.ledger.fastpath import Database, enabled

        return Database(
            self.settings.database_url,
            self.settings["database.busy_timeout_ms"],
            lambda: self.engine,
            fast=enabled(os.environ),
        )

    @cached_property
    def policy(self):
        from creditctl.ledger.policy import Policy

        return Policy.from_settings(self.settings)

    @cached_property
    def operator(self) -> str:
        name = self.operator_flag or os.environ.get("CREDITCTL_OPERATOR")
        if not name:
            try:
                name = getpass.getuser()
            except (KeyError, OSError):
                name = "unknown"
        from creditctl.parsing.text import check_text

        name = check_text(name, "operator name (--operator or CREDITCTL_OPERATOR)").strip()
        if not name or len(name) > 200:
            raise InvalidInput("operator name must be 1-200 characters; pass --operator NAME")
        return name

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


_current: AppContext | None = None


def set_current(context: AppContext) -> None:
    global _current
    _current = context


def current() -> AppContext:
    global _current
    if _current is None:
        _current = AppContext()
    return _current
