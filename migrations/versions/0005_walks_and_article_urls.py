"""nothing lost: article URLs with their state, discovery walks, the run's walk, articles by URL

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 17:20:00

`article_urls` holds every article address of a source and where it stands (pending, archived,
rejected): a URL is known only once its article is archived, in the same transaction as its
snapshot. `source_walks` records how far each discovery walk got, so a walk cut short resumes
instead of stopping at the first page already archived. `crawl_runs.walk` says so per run.

The upgrade fills `article_urls` from the archive as it is: every article's URL and canonical
URL, and the addresses of the snapshots articles were made from, are archived. A URL that was
only snapshotted (its article never stored) is not: the next crawl fetches it again.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5_000


def upgrade() -> None:
    op.create_table(
        "article_urls",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=True),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_article_urls_article_id_articles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name=op.f("fk_article_urls_snapshot_id_snapshots")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_article_urls_source_id_sources")
        ),
        sa.PrimaryKeyConstraint("source_id", "url", name=op.f("pk_article_urls")),
    )
    op.create_index("ix_article_urls_source_state", "article_urls", ["source_id", "state"])
    op.create_table(
        "source_walks",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("entry_url", sa.Text(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("covered", sa.Boolean(), nullable=False),
        sa.Column("next_url", sa.Text(), nullable=True),
        sa.Column("next_page", sa.Integer(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["crawl_runs.id"], name=op.f("fk_source_walks_run_id_crawl_runs")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_source_walks_source_id_sources")
        ),
        sa.PrimaryKeyConstraint("source_id", "entry_url", name=op.f("pk_source_walks")),
    )
    with op.batch_alter_table("crawl_runs") as batch:
        batch.add_column(sa.Column("walk", sa.String(length=200), nullable=True))
    op.create_index("ix_articles_source_url", "articles", ["source_id", "url"])
    _fill_article_urls()


def _fill_article_urls() -> None:
    """Every address an archived article is known by, as `archived`."""
    bind = op.get_bind()
    found: dict[tuple[int, str], tuple[int, int | None]] = {}
    for source_id, article_id, url, canonical, snapshot_id in bind.execute(
        sa.text("SELECT source_id, id, url, canonical_url, snapshot_id FROM articles ORDER BY id")
    ):
        for address in (url, canonical):
            found.setdefault((source_id, address), (article_id, snapshot_id))
    # the addresses of every snapshot an article (or an earlier version of one) was made from
    for source_id, article_id, snapshot_id, requested, final in bind.execute(
        sa.text(
            "SELECT s.source_id, a.id, s.id, s.requested_url, s.final_url FROM snapshots s "
            "JOIN (SELECT id, snapshot_id FROM articles UNION "
            "SELECT article_id, snapshot_id FROM article_versions) a ON a.snapshot_id = s.id "
            "ORDER BY s.id"
        )
    ):
        for address in (requested, final):
            found.setdefault((source_id, address), (article_id, snapshot_id))
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    rows = [
        {
            "source_id": source_id,
            "url": url,
            "state": "archived",
            "article_id": article_id,
            "snapshot_id": snapshot_id,
            "attempts": 0,
            "found_at": now,
            "updated_at": now,
        }
        for (source_id, url), (article_id, snapshot_id) in found.items()
    ]
    table = sa.table(
        "article_urls",
        *(
            sa.column(name)
            for name in (
                "source_id",
                "url",
                "state",
                "article_id",
                "snapshot_id",
                "attempts",
                "found_at",
                "updated_at",
            )
        ),
    )
    for start in range(0, len(rows), BATCH):
        bind.execute(table.insert(), rows[start : start + BATCH])


def downgrade() -> None:
    op.drop_index("ix_articles_source_url", table_name="articles")
    with op.batch_alter_table("crawl_runs") as batch:
        batch.drop_column("walk")
    op.drop_table("source_walks")
    op.drop_index("ix_article_urls_source_state", table_name="article_urls")
    op.drop_table("article_urls")
