"""Alembic environment: the engine comes from the application, never from alembic.ini.

Migrations of one archive are serialised: processes started together on a fresh archive (two
schedulers, a scheduler and a manual crawl) would otherwise each find the schema missing and race
to create it. The whole upgrade is one transaction that first takes the database's write lock
(SQLite: BEGIN IMMEDIATE) or a transaction-scoped advisory lock (PostgreSQL); the one that waited
then reads the version its predecessor committed and has nothing left to do.
"""

from alembic import context
from sqlalchemy import Connection, Engine

from crawler.config import database_url
from crawler.db.models import Base
from crawler.db.session import make_engine

config = context.config
target_metadata = Base.metadata

# pg_advisory_xact_lock key: any constant that no other code of this project locks on.
MIGRATION_LOCK = 0x6372_6177_6C65_72  # "crawler"


def lock_for_migration(connection: Connection) -> None:
    """Hold the archive's migration lock until this transaction ends."""
    if connection.dialect.name == "sqlite":
        # pysqlite has not begun a transaction yet (it only does before DML); begin one that
        # holds the write lock from the start, so that DDL and the version row commit together.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")


def run_migrations() -> None:
    engine: Engine | None = config.attributes.get("engine")
    owned = engine is None
    if engine is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or database_url())
    try:
        with engine.begin() as connection:
            lock_for_migration(connection)
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=True,  # SQLite needs batch mode to alter tables
                compare_type=True,
            )
            context.run_migrations()
    finally:
        if owned:
            engine.dispose()


run_migrations()
