"""search and topics: the full-text index of articles, topics and article tags

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00

The full-text index is the one part of the schema that differs by database, by nature: each
engine has its own full-text machinery and neither has the other's.

- SQLite: an FTS5 external-content table `articles_fts` over articles.title and articles.body
  (rowid = articles.id), kept in step by triggers on articles, tokenised by `unicode61` with
  diacritics removed (case-folds every script, splits on anything that is not a letter or
  digit). crawler/read/search.py ranks by bm25 with the title weighing ten times the body.
- PostgreSQL: a `search_vector` tsvector column (title weight A, body weight B) with a GIN index,
  kept in step by a trigger. A trigger rather than a generated column so that the frequent
  updates that touch neither title nor body (last_seen_at) do not re-tokenise the article.
  The 'simple' configuration (lower-casing, no stemming, no stop words) because the archive mixes
  English, Korean, Russian, Arabic and Urdu: a language's stemmer would mangle the others.
  Hyphens are indexed as spaces, like FTS5 does.

Both are filled from the articles already archived. Caution for later migrations: an Alembic batch
operation that recreates `articles` on SQLite drops its triggers; recreate them afterwards.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UP = [
    """
    CREATE VIRTUAL TABLE articles_fts USING fts5(
        title, body,
        content='articles', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN
        INSERT INTO articles_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END
    """,
    """
    CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
    END
    """,
    # Only a change of the indexed text re-indexes (not last_seen_at, version, ...).
    """
    CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, body ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
        INSERT INTO articles_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END
    """,
    "INSERT INTO articles_fts(articles_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS articles_fts_update",
    "DROP TRIGGER IF EXISTS articles_fts_delete",
    "DROP TRIGGER IF EXISTS articles_fts_insert",
    "DROP TABLE IF EXISTS articles_fts",
]

# Hyphens become spaces so that "Kim Jong-un" is indexed as the words kim, jong, un in a row,
# as FTS5 does: the phrase "Kim Jong Un" then finds it (PostgreSQL's parser would otherwise
# index the compound 'jong-un' in a position of its own).
POSTGRESQL_VECTOR = (
    "setweight(to_tsvector('simple', translate(coalesce({row}title, ''), '-', ' ')), 'A') || "
    "setweight(to_tsvector('simple', translate(coalesce({row}body, ''), '-', ' ')), 'B')"
)
POSTGRESQL_UP = [
    "ALTER TABLE articles ADD COLUMN search_vector tsvector",
    f"""
    CREATE FUNCTION articles_search_vector_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.search_vector := {POSTGRESQL_VECTOR.format(row="NEW.")};
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER articles_search_vector BEFORE INSERT OR UPDATE OF title, body ON articles
    FOR EACH ROW EXECUTE FUNCTION articles_search_vector_update()
    """,
    f"UPDATE articles SET search_vector = {POSTGRESQL_VECTOR.format(row='')}",
    "CREATE INDEX ix_articles_search_vector ON articles USING gin (search_vector)",
]
POSTGRESQL_DOWN = [
    "DROP INDEX IF EXISTS ix_articles_search_vector",
    "DROP TRIGGER IF EXISTS articles_search_vector ON articles",
    "DROP FUNCTION IF EXISTS articles_search_vector_update()",
    "ALTER TABLE articles DROP COLUMN IF EXISTS search_vector",
]


def _run(statements: dict[str, list[str]]) -> None:
    dialect = op.get_bind().dialect.name
    if dialect not in statements:
        raise NotImplementedError(f"no full-text index for {dialect}; use SQLite or PostgreSQL")
    for statement in statements[dialect]:
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("name", name=op.f("uq_topics_name")),
    )
    op.create_table(
        "article_topics",
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_article_topics_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_article_topics_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("article_id", "topic_id", name=op.f("pk_article_topics")),
    )
    op.create_index("ix_article_topics_topic_article", "article_topics", ["topic_id", "article_id"])
    # Not in a batch block: on SQLite that could recreate `articles` and lose the FTS triggers.
    op.create_index("ix_articles_source_published", "articles", ["source_id", "published_at"])
    _run({"sqlite": SQLITE_UP, "postgresql": POSTGRESQL_UP})


def downgrade() -> None:
    _run({"sqlite": SQLITE_DOWN, "postgresql": POSTGRESQL_DOWN})
    op.drop_index("ix_articles_source_published", table_name="articles")
    op.drop_index("ix_article_topics_topic_article", table_name="article_topics")
    op.drop_table("article_topics")
    op.drop_table("topics")
