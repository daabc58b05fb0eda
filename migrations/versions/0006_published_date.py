"""publication day and precision: the outlet's own calendar day and whether it gave a time

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-25 17:30:00

A page that shows only a date (KCNA Watch's `12/12/2024`) was stored as midnight in the outlet's
time zone, in UTC: `2024-12-11 15:00 UTC`, a day early for a reader, and missed by
`--since 2024-12-12`. `published_date` keeps the publication's calendar day where it was
published and `published_precision` says whether a time of day was given ("time") or only the
day ("day"). Articles already archived are filled in from `published_at` with the time zone of
their outlet: a local time of exactly midnight is a day shown without a time, as the clean
pipeline decides for new articles.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The outlets' time zones when this revision was written (their spiders' `timezone`); an
# outlet not named here is read in UTC.
OUTLET_TIME_ZONES = {
    "kcna_watch": "Asia/Pyongyang",
    "pyongyang_times": "Asia/Pyongyang",
    "urdupoint": "Asia/Karachi",
    "islam_times": "Asia/Tehran",
    "al_mayadeen": "Asia/Beirut",
}
BATCH = 1000


def upgrade() -> None:
    for table in ("articles", "article_versions"):
        op.add_column(table, sa.Column("published_date", sa.Date(), nullable=True))
        op.add_column(table, sa.Column("published_precision", sa.String(8), nullable=True))
    op.create_index("ix_articles_published_date", "articles", ["published_date"])
    bind = op.get_bind()
    sources = sa.table("sources", sa.column("id", sa.Integer), sa.column("name", sa.String))
    zones = {
        source_id: ZoneInfo(OUTLET_TIME_ZONES.get(name, "UTC"))
        for source_id, name in bind.execute(sa.select(sources.c.id, sources.c.name))
    }
    articles = _table("articles")
    versions = _table("article_versions")
    _backfill(
        bind,
        articles,
        sa.select(articles.c.id, articles.c.source_id, articles.c.published_at),
        zones,
    )
    _backfill(
        bind,
        versions,
        sa.select(versions.c.id, articles.c.source_id, versions.c.published_at).join(
            articles, articles.c.id == versions.c.article_id
        ),
        zones,
    )


def _table(name: str) -> sa.Table:
    columns = [
        sa.column("id", sa.Integer),
        sa.column("published_at", sa.DateTime(timezone=True)),
        sa.column("published_date", sa.Date),
        sa.column("published_precision", sa.String),
    ]
    if name == "articles":
        columns.append(sa.column("source_id", sa.Integer))
    else:
        columns.append(sa.column("article_id", sa.Integer))
    return sa.table(name, *columns)


def _backfill(bind: sa.Connection, table: sa.Table, rows: sa.Select, zones: dict) -> None:
    """Fill the day and precision of every dated row, in batches of ids."""
    last_id = 0
    while True:
        batch = bind.execute(
            rows.where(table.c.id > last_id, table.c.published_at.is_not(None))
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not batch:
            return
        last_id = batch[-1][0]
        updates = []
        for row_id, source_id, published_at in batch:
            instant = _aware(published_at)
            local = instant.astimezone(zones.get(source_id, ZoneInfo("UTC")))
            precision = "day" if local.time() == datetime.min.time() else "time"
            updates.append({"row_id": row_id, "day": local.date(), "precision": precision})
        bind.execute(
            table.update()
            .where(table.c.id == sa.bindparam("row_id"))
            .values(
                published_date=sa.bindparam("day"), published_precision=sa.bindparam("precision")
            ),
            updates,
        )


def _aware(value: datetime | str) -> datetime:
    # SQLite hands back the stored text or a naive datetime, both in UTC
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def downgrade() -> None:
    op.drop_index("ix_articles_published_date", table_name="articles")
    for table in ("articles", "article_versions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("published_precision")
            batch.drop_column("published_date")
