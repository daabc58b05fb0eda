"""Alembic environment: the engine comes from the application, never from alembic.ini."""

from alembic import context
from sqlalchemy import Engine

from crawler.config import database_url
from crawler.db.models import Base
from crawler.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    engine: Engine | None = config.attributes.get("engine")
    owned = engine is None
    if engine is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or database_url())
    try:
        with engine.begin() as connection:
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
