"""`make bench`: creditctl's hot paths beside a floor measured in the same run.

Prints a table and writes it to bench/RESULTS.md. PostgreSQL figures are
measured when a server answers at $CREDITCTL_BENCH_PG (default: the local one).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from bench import imports as bench_imports

PG_ADMIN = os.environ.get("CREDITCTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
CLI_RUNS = 21
INPROCESS_SECONDS = 6.0
ROUNDS = 12
WORKERS, ATTEMPTS, CREDITS = 8, 500, 2000


def _prepare(url: str, credits: int, user_id: str = "bench") -> None:
    from creditctl.accounts.plans import load_plans
    from creditctl.accounts.users import add_user
    from creditctl.config.settings import load_settings
    from creditctl.db.engine import make_engine
    from creditctl.db.migrate import upgrade
    from creditctl.ledger.corrections import grant
    from creditctl.ledger.policy import Policy

    engine = make_engine(url)
    upgrade(engine)
    load_plans(engine, load_settings(environ={}).plans)
    add_user(
        engine,
        f"{user_id}@example.com",
        user_id=user_id,
        actor="bench",
        policy=Policy(welcome_grant=0),
        plan="pro",
    )
    grant(engine, user_id, credits, actor="bench", reason="bench credits")
    engine.dispose()


def _rate(step, seconds: float = INPROCESS_SECONDS) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        done += 1
    return done / (time.perf_counter() - start)


def _rates(ours, floor, rounds: int = ROUNDS) -> tuple[float, float]:
    """Both rates, measured in alternating rounds so a change in the machine's load falls
    on both alike."""
    slice_ = INPROCESS_SECONDS / rounds
    pairs = [(_rate(ours, slice_), _rate(floor, slice_)) for _ in range(rounds)]
    return statistics.mean(p[0] for p in pairs), statistics.mean(p[1] for p in pairs)


def inprocess(url: str) -> tuple[float, float]:
    """Domain-layer deducts per second (creditctl.ledger.spending.deduct: the rules of
    creditctl.ledger.rules on the engine's pooled connection, running the same pre-rendered
    statements as the CLI's fast path), and the raw driver's on a second user."""
    from bench import raw
    from creditctl.db.engine import make_engine
    from creditctl.ledger.policy import Policy
    from creditctl.ledger.spending import deduct

    _add_bench_user(url, "rawuser")
    engine, policy = make_engine(url), Policy()
    if url.startswith("sqlite"):
        conn = raw.sqlite_connect(url.split(":///", 1)[1])
        by_hand = raw.sqlite_deduct
    else:
        import psycopg

        conn = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
        by_hand = raw.pg_deduct
    ours, floor_rate = _rates(
        lambda: deduct(engine, "bench", 1, actor="bench", policy=policy),
        lambda: by_hand(conn, "rawuser", 1),
    )
    conn.close()
    engine.dispose()
    return ours, floor_rate


def _add_bench_user(url: str, user_id: str) -> None:
    from creditctl.accounts.users import add_user
    from creditctl.db.engine import make_engine
    from creditctl.ledger.corrections import grant
    from creditctl.ledger.policy import Policy

    engine = make_engine(url)
    add_user(
        engine,
        f"{user_id}@example.com",
        user_id=user_id,
        actor="bench",
        policy=Policy(welcome_grant=0),
        plan="pro",
    )
    grant(engine, user_id, 1_000_000, actor="bench", reason="bench credits")
    engine.dispose()


def _contend(url: str, user_id: str, attempts: int, results) -> None:
    from creditctl.db.engine import make_engine
    from creditctl.errors import InsufficientCredits
    from creditctl.ledger.policy import Policy
    from creditctl.ledger.spending import deduct

    engine, policy, ok = make_engine(url), Policy(), 0
    for _ in range(attempts):
        try:
            deduct(engine, user_id, 1, actor="bench", policy=policy)
            ok += 1
        except InsufficientCredits:
            pass
    engine.dispose()
    results.put(ok)


def contention(url: str) -> dict:
    """8 processes deduct 1 credit 500 times each from one user holding 2,000."""
    from creditctl.accounts.users import add_user
    from creditctl.db.engine import make_engine
    from creditctl.ledger.audit import verify
    from creditctl.ledger.balances import balance
    from creditctl.ledger.corrections import grant
    from creditctl.ledger.policy import Policy

    engine = make_engine(url)
    add_user(
        engine,
        "contended@example.com",
        user_id="contended",
        actor="bench",
        policy=Policy(welcome_grant=0),
        plan="pro",
    )
    grant(engine, "contended", CREDITS, actor="bench", reason="bench credits")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_contend, args=(url, "contended", ATTEMPTS, results))
        for _ in range(WORKERS)
    ]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    successes = sum(results.get() for _ in workers)
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    final = balance(engine, "contended").available
    clean = verify(engine)["ok"]
    engine.dispose()
    return {
        "attempts_per_s": WORKERS * ATTEMPTS / elapsed,
        "successes": successes,
        "final_balance": final,
        "audit_ok": clean,
    }


def holds_rate(url: str) -> float:
    from creditctl.db.engine import make_engine
    from creditctl.ledger.holds import capture, reserve
    from creditctl.ledger.policy import Policy

    engine, policy = make_engine(url), Policy()

    def pair() -> None:
        hold = reserve(engine, "bench", 2, ttl=timedelta(minutes=5), actor="bench", policy=policy)
        capture(engine, hold.hold_id, 1, actor="bench")

    rate = _rate(pair)
    engine.dispose()
    return rate


def cli_wall(db_path: Path) -> tuple[float, float, float]:
    """Median whole-process seconds of `creditctl credits deduct` on the fast path, the same
    command with CREDITCTL_FASTPATH=0 (the full path, through SQLAlchemy), and the stdlib
    script; the three are run in turn, so the machine's load falls on them alike."""
    creditctl = shutil.which("creditctl", path=str(Path(sys.executable).parent)) or "creditctl"
    env = {
        **os.environ,
        "CREDITCTL_DATABASE_URL": f"sqlite:///{db_path}",
        "CREDITCTL_CONFIG": "",
        "CREDITCTL_OPERATOR": "bench",
    }
    deduct = [creditctl, "credits", "deduct", "bench", "1"]
    fast, full, floor = [], [], []
    for _ in range(CLI_RUNS):
        fast.append(_wall(deduct, {**env, "CREDITCTL_FASTPATH": "1"}))
        full.append(_wall(deduct, {**env, "CREDITCTL_FASTPATH": "0"}))
        floor.append(
            _wall([sys.executable, str(HERE / "raw.py"), str(db_path), "rawuser", "1"], env)
        )
    return statistics.median(fast), statistics.median(full), statistics.median(floor)


def _wall(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _pg_database():
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL not reachable at {PG_ADMIN} ({exc}); PostgreSQL figures skipped")
        return None, None
    name = f"creditctl_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return admin, name


def measure() -> tuple[list[tuple[str, str, str, str]], str]:
    """The table's rows, and the import-time table of `credits deduct`."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        url = f"sqlite:///{db_path}"
        _prepare(url, 1_000_000)
        ours, floor = inprocess(url)
        rows.append(
            (
                "SQLite: in-process deducts/s (spending.deduct vs stdlib sqlite3)",
                f"{ours:,.0f}",
                f"{floor:,.0f}",
                f"{ours / floor:.2f}x (target >= 0.5x)",
            )
        )
        fast, full, cli_floor = cli_wall(db_path)
        rows.append(
            (
                "SQLite: CLI `credits deduct` wall time, median of 21",
                f"{fast * 1000:.0f} ms",
                f"{cli_floor * 1000:.0f} ms",
                f"{fast / cli_floor:.1f}x (target <= 16x)",
            )
        )
        rows.append(
            (
                "SQLite: the same with CREDITCTL_FASTPATH=0 (full path), median of 21",
                f"{full * 1000:.0f} ms",
                f"fast path {fast * 1000:.0f} ms",
                f"the fast path saves {(full - fast) * 1000:.0f} ms ({full / fast:.1f}x)",
            )
        )
        imports = bench_imports.table(db_path)
        rows.append(("SQLite: reserve+capture pairs/s", f"{holds_rate(url):,.0f}", "-", "-"))
        c = contention(url)
        rows.append(
            (
                "SQLite: 8 processes x 500 deducts on one user holding 2,000",
                f"{c['attempts_per_s']:,.0f} attempts/s",
                f"successes {c['successes']} (must be {CREDITS})",
                f"final balance {c['final_balance']}, audit "
                f"{'clean' if c['audit_ok'] else 'FAILED'}",
            )
        )
    admin, name = _pg_database()
    if admin is not None:
        url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
        try:
            _prepare(url, 1_000_000)
            ours, floor = inprocess(url)
            rows.append(
                (
                    "PostgreSQL: in-process deducts/s (spending.deduct vs raw psycopg 3)",
                    f"{ours:,.0f}",
                    f"{floor:,.0f}",
                    f"{ours / floor:.2f}x (target >= 0.8x)",
                )
            )
            rows.append(
                ("PostgreSQL: reserve+capture pairs/s", f"{holds_rate(url):,.0f}", "-", "-")
            )
            c = contention(url)
            rows.append(
                (
                    "PostgreSQL: 8 processes x 500 deducts on one user holding 2,000",
                    f"{c['attempts_per_s']:,.0f} attempts/s",
                    f"successes {c['successes']} (must be {CREDITS})",
                    f"final balance {c['final_balance']}, audit "
                    f"{'clean' if c['audit_ok'] else 'FAILED'}",
                )
            )
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
    return rows, imports


def render(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| measure | creditctl | floor / check | ratio / result |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


NOTES = """\
The in-process deducts run creditctl.ledger.spending.deduct: the rules of
creditctl.ledger.rules on a connection from the engine's pool, with the statements rendered
into creditctl/ledger/_fastsql.py, the very texts `credits deduct` runs on the bare driver.
`CREDITCTL_FASTPATH=0` makes the CLI take the full path (SQLAlchemy's engine), to compare.

What the command imports (`python -m bench.imports`; each module's own time under
`-X importtime`, summed by package, which inflates every figure alike). With the fast path
SQLAlchemy is not loaded; what remains is creditctl's own modules (the CLI imports every
command group to build itself) and Typer, which since 0.29 imports pydantic to convert any
command's parameters. Skipping Typer for the three hot commands would take a dispatcher in
front of creditctl.cli.app; the figures say what it could save:"""


def main() -> None:
    from bench import webhooks

    rows, imports = measure()
    table = render(rows)
    print(table)
    print(f"\n{imports}")
    latency = webhooks.table()
    print(
        f"\nWebhook answer latency, signed deliveries to `creditctl daemon` on loopback "
        f"(target: p99 < 100 ms for a new event):\n{latency}"
    )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cpu = os.cpu_count()
    RESULTS.write_text(
        f"# Benchmark results\n\nLast `make bench`: {stamp}, {cpu} CPUs, "
        f"Python {sys.version.split()[0]}.\n\n{table}\n\n{NOTES}\n\n{imports}\n\n"
        "Webhook answer latency, signed deliveries to `creditctl daemon` on loopback "
        f"(target: p99 < 100 ms for a new event):\n\n{latency}\n"
    )
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
