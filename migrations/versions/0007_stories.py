"""stories: similarity signatures, the LSH index, story clusters; versions indexed by time

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-25 17:10:00

Every article gets a row in `article_signatures` (its MinHash, its term vector, the article it
is a copy of and the story it belongs to), one row per LSH band in `signature_bands` and one per
telling term in `story_terms`; `stories` holds the clusters. Lookups are indexed queries, so
their cost does not grow with the archive. The tables are filled for the articles archived
before by `crawler stories rebuild` (the upgrade leaves them empty: computing the signatures is
the application's work, not the schema's). `article_versions.superseded_at` is indexed for
`crawler changes`. The same on both databases.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("first_published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("article_count", sa.Integer(), nullable=False),
        sa.Column("outlet_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stories")),
    )
    op.create_index(
        op.f("ix_stories_last_published_at"), "stories", ["last_published_at"], unique=False
    )
    op.create_table(
        "article_signatures",
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minhash", sa.LargeBinary(), nullable=False),
        sa.Column("shingles", sa.Integer(), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("reprint_of", sa.Integer(), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("story_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_article_signatures_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reprint_of"],
            ["articles.id"],
            name=op.f("fk_article_signatures_reprint_of_articles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_article_signatures_source_id_sources")
        ),
        sa.ForeignKeyConstraint(
            ["story_id"],
            ["stories.id"],
            name=op.f("fk_article_signatures_story_id_stories"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_article_signatures")),
    )
    op.create_index(
        op.f("ix_article_signatures_published_at"),
        "article_signatures",
        ["published_at"],
        unique=False,
    )
    # partial: most articles copy nothing and are in no story (see the model)
    for column in ("reprint_of", "story_id"):
        predicate = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            op.f(f"ix_article_signatures_{column}"),
            "article_signatures",
            [column],
            unique=False,
            sqlite_where=predicate,
            postgresql_where=predicate,
        )
    op.create_table(
        "signature_bands",
        sa.Column("band_key", sa.BigInteger(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_signature_bands_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("band_key", "article_id", name=op.f("pk_signature_bands")),
    )
    op.create_index(
        op.f("ix_signature_bands_article_id"), "signature_bands", ["article_id"], unique=False
    )
    op.create_table(
        "story_terms",
        sa.Column("term_key", sa.BigInteger(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_story_terms_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "term_key", "published_at", "article_id", name=op.f("pk_story_terms")
        ),
    )
    op.create_index(op.f("ix_story_terms_article_id"), "story_terms", ["article_id"], unique=False)
    op.create_index(
        op.f("ix_article_versions_superseded_at"),
        "article_versions",
        ["superseded_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_article_versions_superseded_at"), table_name="article_versions")
    op.drop_table("story_terms")
    op.drop_table("signature_bands")
    op.drop_table("article_signatures")
    op.drop_table("stories")
