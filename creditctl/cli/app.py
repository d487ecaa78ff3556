"""The root command: wires the command groups together and maps errors to exit codes."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from creditctl.cli import (
    account_cmd,
    audit_cmd,
    config_cmd,
    credits_cmd,
    daemon_cmd,
    db_cmd,
    features_cmd,
    holds_cmd,
    plans_cmd,
    run_cmd,
    stripe_cmd,
    subscriptions_cmd,
    users_cmd,
    webhooks_cmd,
)
from creditctl.cli.context import AppContext, current, set_current
from creditctl.errors import EXIT_UNEXPECTED, CreditctlError

DEBUG_VARIABLE = "CREDITCTL_DEBUG"
_PASS_THROUGH = (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt)


def report(exc: BaseException, as_json: bool = False) -> int:
    """The one place an error becomes a line on stderr and an exit code.

    With --json the refusal is also data on stdout, so a script reading JSON sees why.
    """
    exc = _database_failure(exc) or exc
    if isinstance(exc, CreditctlError):
        from creditctl.cli.output import printable

        sys.stderr.write(f"error: {printable(exc.message)}\n")
        if as_json:
            from creditctl.cli.output import emit_json

            emit_json(
                {
                    "error": exc.message,
                    "exit_code": exc.exit_code,
                    "kind": type(exc).__name__,
                    **exc.details,
                }
            )
        return exc.exit_code
    if os.environ.get(DEBUG_VARIABLE):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.write(
        f"error: unexpected {type(exc).__name__}; set {DEBUG_VARIABLE}=1 to see the traceback\n"
    )
    return EXIT_UNEXPECTED


def _database_failure(exc: BaseException) -> CreditctlError | None:
    """A database error no layer translated (the bare-driver fast path's), in words, or None."""
    if type(exc).__module__.partition(".")[0] not in {"sqlalchemy", "sqlite3", "psycopg"}:
        return None
    from creditctl.db.failures import database_failure  # no SQLAlchemy: a lean command's too

    context = current()
    url = context.settings.database_url if "settings" in context.__dict__ else None
    return database_failure(exc, url)


def _usage_line(exc: typer.TyperException) -> int:
    """Typer's usage errors as one line, like every other error."""
    path = getattr(getattr(exc, "ctx", None), "command_path", "creditctl").split()
    command = " ".join(["creditctl", *path[1:]])  # the program's name, however it was run
    sys.stderr.write(f"error: {exc.format_message()} (see `{command} --help`)\n")
    return exc.exit_code


def _wants_json(ctx) -> bool:
    args = [*getattr(ctx, "_protected_args", []), *ctx.args]
    return "--json" in (args[: args.index("--")] if "--" in args else args)


class CreditctlGroup(TyperGroup):
    def invoke(self, ctx):
        as_json = _wants_json(ctx)
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:
            if getattr(exc, "exit_code", None) != 2 or type(exc).__name__ == "NoArgsIsHelpError":
                raise
            raise typer.Exit(_usage_line(exc)) from None
        except _PASS_THROUGH:
            raise
        except Exception as exc:  # noqa: BLE001 - every error is reported the same way
            raise typer.Exit(report(exc, as_json)) from None
        finally:
            current().close()


app = typer.Typer(
    cls=CreditctlGroup,
    help="Credits ledger and Stripe billing back office.\n\n"
    "Example: creditctl credits deduct alice@example.com 1 --ref render-42",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    config: Annotated[
        str | None,
        typer.Option(
            "--config", help="Config file (default: $CREDITCTL_CONFIG or ./creditctl.toml)."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database URL; overrides CREDITCTL_DATABASE_URL and the file.",
        ),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator", help="Who is acting (default: $CREDITCTL_OPERATOR or the OS user)."
        ),
    ] = None,
) -> None:
    """Credits ledger and Stripe billing back office.

    Example: creditctl --config creditctl.toml account alice@example.com
    """
    flags = {"database.url": database_url} if database_url is not None else {}
    set_current(AppContext(config_file=config, flags=flags, operator_flag=operator))


app.command("init")(db_cmd.init)
app.command("account")(account_cmd.account)
app.command("run")(run_cmd.run)
app.add_typer(db_cmd.app, name="db")
app.add_typer(config_cmd.app, name="config")
app.add_typer(users_cmd.app, name="users")
app.add_typer(credits_cmd.app, name="credits")
app.add_typer(holds_cmd.app, name="holds")
app.add_typer(features_cmd.app, name="features")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(plans_cmd.app, name="plans")
app.add_typer(stripe_cmd.app, name="stripe")
app.add_typer(subscriptions_cmd.app, name="subscriptions")
app.add_typer(webhooks_cmd.app, name="webhooks")
app.command("daemon")(daemon_cmd.daemon)


def main() -> None:
    try:
        app()
    except _PASS_THROUGH:
        raise
    except Exception as exc:  # noqa: BLE001 - last resort, e.g. an error while parsing
        sys.exit(report(exc))
