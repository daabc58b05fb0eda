"""Alembic environment: the engine comes from the application, never from alembic.ini.

An upgrade is one transaction holding the archive's migration lock
(`crawler.db.session.migration_transaction`), so processes started together on a fresh archive
migrate it once. A caller that already holds that transaction passes its connection as
`config.attributes["connection"]`.
"""

from alembic import context
from sqlalchemy import Connection, Engine

from crawler.config import database_url
from crawler.db.models import Base
from crawler.db.session import make_engine, migration_transaction, modelled

config = context.config
target_metadata = Base.metadata


def migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
        include_object=modelled,
    )
    context.run_migrations()


def run_migrations() -> None:
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        migrate(given)
        return
    engine: Engine | None = config.attributes.get("engine")
    owned = engine is None
    if engine is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or database_url())
    try:
        with migration_transaction(engine) as connection:
            migrate(connection)
    finally:
        if owned:
            engine.dispose()


run_migrations()
