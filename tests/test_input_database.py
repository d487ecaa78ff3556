"""A database URL creditctl cannot use, or a database that cannot do its work, is one line, exit 7.

Each of these was `error: unexpected X` with exit 1 (a malformed URL crashed `config show`
too): a bad URL, port or driver, a plan the schema cannot hold, a text file given as the
SQLite database, SQLite locked past the busy timeout, a full disk, disk I/O errors, and
PostgreSQL's lock_timeout and statement_timeout. Faults are real: another process holds
the lock, the file size limit of the process (RLIMIT_FSIZE) makes the disk fail, a tiny
tmpfs fills up, a PostgreSQL session holds the row.
"""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import cli_env, creditctl_executable, one_error_line, snapshot
from typer.testing import CliRunner

from creditctl.cli.app import app
from creditctl.errors import DatabaseUnavailable

COMMANDS = [("users", "list"), ("config", "show"), ("credits", "deduct", "u1", "1"), ("init",)]
NOT_A_URL = "is not a database URL; use sqlite:///path/to/file.db or postgresql://user@host/db"
DRIVER = "; creditctl connects with psycopg (postgresql://...) or Python's sqlite3 (sqlite:///...)"
BAD_URLS = [
    ("postgresql://app:pw@[::1", f"error: database.url 'postgresql://app:***@[::1' {NOT_A_URL}"),
    (
        "postgresql://app@127.0.0.1:99999/credits",
        "error: database.url has port '99999'; give a port from 1 to 65535",
    ),
    (
        "postgresql://app@127.0.0.1:0/credits",
        "error: database.url has port '0'; give a port from 1 to 65535",
    ),
    (
        "postgresql://app@h1:5432,h2:5x/credits",
        "error: database.url has port '5x'; give a port from 1 to 65535",
    ),
    ("mysql://x@y/z", "error: database.url uses 'mysql'; creditctl supports sqlite and postgresql"),
    (
        "postgresql+asyncpg://app@db/credits",
        f"error: database.url asks for the driver 'asyncpg'{DRIVER}",
    ),
    (
        "postgresql+psycopg2://app@db/credits",
        f"error: database.url asks for the driver 'psycopg2'{DRIVER}",
    ),
    ("", f"error: database.url '' {NOT_A_URL}"),
]


def run(*args: str, env: dict[str, str] | None = None):
    base = {
        "CREDITCTL_CONFIG": "",
        "CREDITCTL_ENV_FILE": "/nonexistent/.env",
        "CREDITCTL_OPERATOR": "tester",
    }
    return CliRunner().invoke(app, list(args), env={**base, **(env or {})})


@pytest.mark.parametrize(("url", "message"), BAD_URLS, ids=[u or "empty" for u, _ in BAD_URLS])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_database_url_creditctl_cannot_use(tmp_path, monkeypatch, url, message, command):
    monkeypatch.chdir(tmp_path)
    result = run(*command, env={"CREDITCTL_DATABASE_URL": url})
    assert result.exit_code == 7, result.output
    assert one_error_line(result.stderr) == message
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_the_database_url_flag_may_not_be_empty(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("--database-url", "", "users", "list", env={"CREDITCTL_DATABASE_URL": "x"})
    assert result.exit_code == 7
    assert one_error_line(result.stderr) == f"error: database.url '' {NOT_A_URL}"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("sslmode=bogus", 'invalid sslmode value: "bogus"'),
        ("foo=bar", 'invalid connection option "foo"'),
    ],
)
def test_a_connection_option_libpq_refuses(query, reason):
    url = f"postgresql://app:pw@127.0.0.1:5432/credits?{query}"
    result = run("users", "list", env={"CREDITCTL_DATABASE_URL": url})
    assert result.exit_code == 7, result.output
    line = one_error_line(result.stderr)
    assert line.startswith("error: database postgresql+psycopg://app:***@127.0.0.1:5432/credits?")
    assert reason in line and "is unreachable" in line


def test_a_plan_the_schema_cannot_hold_is_refused_before_init_writes(cli, engine, tmp_path):
    config = tmp_path / "big.toml"
    config.write_text('[credits]\ndefault_plan = "big"\n[plans.big]\ncredits = 10000000000\n')
    before = snapshot(engine)
    with engine.connect() as conn:
        plans_before = conn.execute(sa.text("SELECT name, credits FROM plans")).all()
    result = cli("--config", str(config), "init")
    assert result.exit_code == 7, result.output
    assert one_error_line(result.stderr) == (
        "error: config key plans.big.credits must be a whole number from 0 to 1000000000 or "
        '"unlimited", got 10000000000'
    )
    assert snapshot(engine) == before
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name, credits FROM plans")).all() == plans_before


def test_the_largest_plan_the_schema_holds_is_accepted(cli, tmp_path):
    config = tmp_path / "big.toml"
    config.write_text('[credits]\ndefault_plan = "big"\n[plans.big]\ncredits = 1000000000\n')
    result = cli("--config", str(config), "init")
    assert result.exit_code == 0, result.output


def test_the_schema_bound_is_the_one_the_configuration_uses():
    from creditctl.config.values import MAX_CREDITS
    from creditctl.db.models import MAX_CREDITS as SCHEMA_MAX_CREDITS

    assert MAX_CREDITS == SCHEMA_MAX_CREDITS


@pytest.mark.parametrize(
    "command",
    [("users", "list"), ("credits", "deduct", "u1", "1"), ("credits", "balance", "u1"), ("init",)],
    ids=" ".join,
)
def test_a_text_file_given_as_the_sqlite_database(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    text = tmp_path / "notes.db"
    text.write_text("these are my notes, not a database\n")
    result = run(*command, env={"CREDITCTL_DATABASE_URL": f"sqlite:///{text}"})
    assert result.exit_code == 7, result.output
    assert one_error_line(result.stderr) == (
        f"error: database sqlite:///{text} is not a SQLite database (file is not a database); "
        "point database.url at a creditctl database, or at a new file and run `creditctl init`"
    )
    assert text.read_text() == "these are my notes, not a database\n"


# --- SQLite: the lock and the disk, for real -----------------------------------------------

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def sqlite_file(backend, database_url) -> Path:
    if backend != "sqlite":
        pytest.skip("the SQLite file's lock and disk")
    return Path(database_url.removeprefix("sqlite:///"))


def _hold(path: Path, statement: str) -> subprocess.Popen:
    """Another process with a connection open on the file, having run `statement`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), statement],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "ready"
    return holder


def _release(holder: subprocess.Popen) -> None:
    holder.communicate("\n", timeout=30)


FULL_PATH_WRITES = [
    ("credits", "grant", "u1", "5", "--reason", "make-good"),
    ("users", "add", "bob@example.com"),
    ("credits", "reserve", "u1", "5"),
]


@pytest.mark.parametrize("command", FULL_PATH_WRITES, ids=" ".join)
def test_sqlite_locked_past_the_busy_timeout(cli, engine, sqlite_file, command):
    assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
    before = snapshot(engine)
    holder = _hold(sqlite_file, "BEGIN IMMEDIATE")
    try:
        result = cli(*command, env={"CREDITCTL_BUSY_TIMEOUT_MS": "50"})
    finally:
        _release(holder)
    assert result.exit_code == 7, result.output
    assert one_error_line(result.stderr) == (
        f"error: database sqlite:///{sqlite_file} stayed locked by another writer for longer "
        "than database.busy_timeout_ms; nothing was changed; try again, or raise "
        "database.busy_timeout_ms"
    )
    assert snapshot(engine) == before


def _limited(size: int):
    def apply() -> None:
        # Python ignores SIGXFSZ: a write past the limit fails with EFBIG, as a failing disk.
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def _creditctl(args, url: str, cwd: Path, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [creditctl_executable(), *args],
        cwd=cwd,
        env=cli_env(url, cwd),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec_fn,
    )


IO_ERROR = (
    "error: database sqlite:///{path} could not be read or written (disk I/O error, {code}); "
    "check the disk and the file, then try again"
)


@pytest.mark.parametrize("command", FULL_PATH_WRITES, ids=" ".join)
def test_a_disk_io_error_while_writing(cli, engine, sqlite_file, tmp_path, command):
    assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
    before = snapshot(engine)
    holder = _hold(sqlite_file, "SELECT count(*) FROM users")  # keeps the -shm and -wal
    try:
        result = _creditctl(command, f"sqlite:///{sqlite_file}", tmp_path, _limited(8192))
    finally:
        _release(holder)
    assert result.returncode == 7, result.stderr
    assert one_error_line(result.stderr) == IO_ERROR.format(
        path=sqlite_file, code="SQLITE_IOERR_WRITE"
    )
    assert snapshot(engine) == before


def test_a_disk_io_error_while_opening(cli, engine, sqlite_file, tmp_path):
    assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
    engine.dispose()  # no connection left: the next one must create the -shm, and cannot
    result = _creditctl(("users", "list"), f"sqlite:///{sqlite_file}", tmp_path, _limited(8192))
    assert result.returncode == 7, result.stderr
    assert one_error_line(result.stderr) == IO_ERROR.format(
        path=sqlite_file, code="SQLITE_IOERR_SHMSIZE"
    )


def test_a_full_disk_through_the_engine(engine, sqlite_file, policy):
    """The database grows past its limit (PRAGMA max_page_count, set on each connection)."""
    from helpers import new_user

    from creditctl.ledger.corrections import grant

    new_user(engine, policy, "u1")
    sa.event.listen(
        engine,
        "connect",
        lambda conn, _: conn.execute(
            "PRAGMA max_page_count = " + str(conn.execute("PRAGMA page_count").fetchone()[0])
        ),
    )
    engine.dispose()
    with pytest.raises(DatabaseUnavailable) as error:
        for _ in range(1000):  # until a new page is needed
            grant(engine, "u1", 1, actor="tester", reason="r" * 400)
    assert error.value.message == (
        f"database sqlite:///{sqlite_file} cannot grow: the disk is full (database or disk is "
        "full); nothing was changed; free some space and try again"
    )


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A 1 MB tmpfs; only root may mount one, so elsewhere this test is skipped."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_through_the_cli(sqlite_file, tiny_disk, tmp_path):
    path = tiny_disk / "creditctl.db"
    path.write_bytes(sqlite_file.read_bytes())
    url = f"sqlite:///{path}"
    assert (
        _creditctl(("users", "add", "a@example.com", "--id", "u1"), url, tmp_path).returncode == 0
    )
    holder = _hold(path, "SELECT count(*) FROM users")  # the -shm and -wal exist before it fills
    try:
        filler = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(filler, b"\0" * 4096)
        except OSError:  # ENOSPC: the disk is full
            pass
        finally:
            os.close(filler)
        result = _creditctl(("credits", "grant", "u1", "5", "--reason", "x" * 400), url, tmp_path)
    finally:
        _release(holder)
    assert result.returncode == 7, result.stderr
    assert one_error_line(result.stderr) == (
        f"error: database {url} cannot grow: the disk is full (database or disk is full); "
        "nothing was changed; free some space and try again"
    )


# --- PostgreSQL: lock_timeout and statement_timeout -------------------------------------------


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("lock_timeout", "gave up waiting for a lock (canceling statement due to lock timeout)"),
        (
            "statement_timeout",
            "canceled the statement (canceling statement due to statement timeout)",
        ),
    ],
)
@pytest.mark.parametrize("command", FULL_PATH_WRITES[:1] + FULL_PATH_WRITES[2:], ids=" ".join)
def test_postgresql_timeouts(cli, engine, backend, database_url, setting, words, command):
    if backend != "postgresql":
        pytest.skip("PostgreSQL's own timeouts")
    import psycopg

    assert cli("users", "add", "alice@example.com", "--id", "u1").exit_code == 0
    before = snapshot(engine)
    url = f"{database_url}?options=-c%20{setting}%3D100"
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT * FROM users WHERE id = 'u1' FOR UPDATE")
        result = cli(*command, env={"CREDITCTL_DATABASE_URL": url})
        holder.rollback()
    assert result.exit_code == 7, result.output
    line = one_error_line(result.stderr)
    assert line.startswith("error: database postgresql+psycopg://")
    assert f"{setting}%3D100 {words}; nothing was changed; try again, or raise the role's " in line
    assert line.endswith(setting)
    assert snapshot(engine) == before


def test_a_raw_driver_error_is_reported_in_words_too(tmp_path, capsys):
    """An error the bare-driver path let through is translated where errors are reported."""
    from creditctl.cli.app import report
    from creditctl.cli.context import AppContext, set_current

    set_current(AppContext())  # no settings read: the error names no URL
    text = tmp_path / "notes.db"
    text.write_text("not a database\n")
    with pytest.raises(sqlite3.DatabaseError) as error:
        sqlite3.connect(text).execute("SELECT 1 FROM users")
    assert report(error.value) == 7
    assert one_error_line(capsys.readouterr().err) == (
        "error: the database is not a SQLite database (file is not a database); point "
        "database.url at a creditctl database, or at a new file and run `creditctl init`"
    )
