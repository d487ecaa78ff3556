"""The tables, the engine factory and the Alembic migrations; installed as creditctl.db."""

if __name__ != "creditctl.db":
    # Imported as a top-level `db` (from the checkout's folder), it would build a second,
    # separate set of tables beside creditctl.db's.
    raise ImportError("this package is creditctl.db; import it as creditctl.db")
