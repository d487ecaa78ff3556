"""Alembic environment: runs on the connection handed over by db.migrate, or on an engine."""

from alembic import context

from creditctl.db.engine import make_engine, write
from creditctl.db.models import metadata

config = context.config


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = config.attributes.get("engine")
    if engine is None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise SystemExit("alembic: set sqlalchemy.url, or run `creditctl db upgrade`")
        engine = make_engine(url)
    with write(engine) as conn:
        run(conn)
