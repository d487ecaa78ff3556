"""`creditctl config show`: the effective settings, secrets masked."""

from __future__ import annotations

import typer

from creditctl.cli.context import current
from creditctl.cli.options import Json
from creditctl.cli.output import emit_json, table

app = typer.Typer(
    help="Configuration.\n\nExample: creditctl config show --json", no_args_is_help=True
)


@app.command("show")
def show_command(json: Json = False) -> None:
    """Print every effective setting and where it came from; secrets are masked.

    Example: creditctl --config creditctl.toml config show
    """
    settings = current().settings
    values = settings.masked()
    plans = {
        name: {
            "credits": "unlimited" if spec.unlimited else spec.credits,
            "features": list(spec.features),
            "amount": spec.amount,
            "currency": spec.currency,
            "interval": spec.interval,
            "lookup_key": spec.lookup_key,
        }
        for name, spec in settings.plans.items()
    }
    if json:
        emit_json(
            {
                "config_file": str(settings.config_file) if settings.config_file else None,
                "settings": values,
                "sources": dict(settings.sources),
                "plans": plans,
            }
        )
        return
    rows = [{"key": k, "value": v, "source": settings.sources[k]} for k, v in values.items()]
    table(rows, ("key", "value", "source"), title="settings")
    table(
        [{"plan": n, **p} for n, p in plans.items()],
        ("plan", "credits", "amount", "currency", "interval", "lookup_key", "features"),
        title="plans",
    )
