"""What `creditctl credits deduct` imports, from `python -X importtime`: `python -m bench.imports`.

Prints the total import time of the command, with the fast path and with it switched off
(CREDITCTL_FASTPATH=0), the share of the biggest packages (each module's own time, summed by
package), and whether SQLAlchemy was loaded. They vary with the machine's load: compare the
rows of one run, not runs.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = 5
PACKAGES = ("typer", "pydantic", "pydantic_core", "sqlalchemy", "sqlmodel", "creditctl")
# The CLI's own entry point, run under -X importtime.
ENTRY = "import sys; from creditctl.cli.app import main; sys.argv[0] = 'creditctl'; main()"
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


def importtime(args: list[str], env: dict[str, str]) -> dict[str, int]:
    """Microseconds spent importing each package's own modules, and in all, for one run."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", ENTRY, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    spent: dict[str, int] = {"total": 0}
    for match in _LINE.finditer(result.stderr):
        own, _, _, name = match.groups()
        top = name.split(".")[0]
        spent["total"] += int(own)
        spent[top] = spent.get(top, 0) + int(own)
    return spent


def table(db_path: Path, user: str = "bench") -> str:
    env = {
        **os.environ,
        "CREDITCTL_DATABASE_URL": f"sqlite:///{db_path}",
        "CREDITCTL_CONFIG": "",
        "CREDITCTL_OPERATOR": "bench",
    }
    lines = [
        "| `credits deduct` imports (median of 5, ms) | total | "
        + " | ".join(PACKAGES)
        + " | sqlalchemy loaded |",
        "|---" * (len(PACKAGES) + 3) + "|",
    ]
    for label, switch in (("fast path", "1"), ("CREDITCTL_FASTPATH=0", "0")):
        runs = [
            importtime(["credits", "deduct", user, "1"], {**env, "CREDITCTL_FASTPATH": switch})
            for _ in range(RUNS)
        ]
        cells = [_median_ms(runs, "total"), *(_median_ms(runs, p) for p in PACKAGES)]
        loaded = "yes" if all(r.get("sqlalchemy") for r in runs) else "no"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {loaded} |")
    return "\n".join(lines)


def _median_ms(runs: list[dict[str, int]], key: str) -> str:
    value = statistics.median(r.get(key, 0) for r in runs) / 1000
    return f"{value:.0f}" if value else "-"


def main() -> None:
    from bench.run import _prepare

    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "imports.db"
        _prepare(f"sqlite:///{db_path}", 1_000_000)
        print(table(db_path))


if __name__ == "__main__":
    main()
