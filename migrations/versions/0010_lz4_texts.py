"""PostgreSQL: articles' texts and search vectors compressed with LZ4 instead of pglz

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 03:00:00

A text over 2 KB is compressed by PostgreSQL before it is stored (TOAST), by pglz unless the
column says otherwise. An article's body and its search vector are such values, and pglz is
slow: storing 3,000 captured pages, the article's INSERT took 0.89 ms a page with pglz and
0.79 ms with LZ4, alternated (its full-text trigger is most of the rest). LZ4 needs
PostgreSQL 14 or later built with it (Debian's and the official images are); on a server
without it, and on SQLite, this revision changes nothing. Values already stored keep their
compression until they are written again; either reads back the same. A `pg_dump` of the
archive then sets the columns' compression when restored: restoring onto a server without LZ4
takes `pg_restore --no-toast-compression` (or `pg_dump --no-toast-compression`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("articles", "body"),
    ("articles", "summary"),
    ("articles", "search_vector"),
    ("article_versions", "body"),
)


def _lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    values = bind.execute(
        sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    ).scalar()
    return values is not None and "lz4" in values


def _set(method: str) -> None:
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    if _lz4_available():
        _set("lz4")


def downgrade() -> None:
    if _lz4_available():
        _set("default")
