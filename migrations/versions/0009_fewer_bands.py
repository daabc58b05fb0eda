"""LSH index of 21 bands of 2 rows; band and term tables WITHOUT ROWID on SQLite

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 01:00:00

Storing an article in a large archive cost mostly the inserts of its LSH band rows, each at a
random place of a large index. 21 bands of 2 MinHash values find a copy at Jaccard 0.5 as
surely as the 42 bands of 3 did (crawler/stories/signatures.py gives the figures), for half
the rows. The band keys are recomputed here from the MinHash stored with every signature, so
no text is read again. On SQLite both index tables become WITHOUT ROWID: a row lives in its
primary key's B-tree only, instead of a rowid table and a key index besides.

The band function is copied here, not imported, so that this revision keeps computing what
it computed when the project's own bands change again.
"""

import hashlib
import struct
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# articles read (and their bands written) at a time
CHUNK = 20_000


def _band_keys(minhash: bytes, bands: int, rows: int) -> list[int]:
    """crawler.stories.signatures.band_keys of the stored values (little-endian uint32)."""
    keys = []
    for band in range(bands):
        chunk = minhash[band * rows * 4 : (band + 1) * rows * 4]
        digest = hashlib.blake2b(struct.pack("<H", band) + chunk, digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return keys


def _signatures(bind: sa.Connection) -> Iterator[list[tuple[int, bytes]]]:
    """(article id, MinHash) of every article with a text, a chunk at a time."""
    last = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT article_id, minhash FROM article_signatures"
                " WHERE shingles > 0 AND article_id > :last ORDER BY article_id LIMIT :size"
            ),
            {"last": last, "size": CHUNK},
        ).all()
        if not rows:
            return
        yield [(row[0], bytes(row[1])) for row in rows]
        last = rows[-1][0]


def _rebuild_bands(bands: int, rows: int, with_rowid: bool) -> None:
    bind = op.get_bind()
    op.drop_index(op.f("ix_signature_bands_article_id"), table_name="signature_bands")
    op.drop_table("signature_bands")
    table = op.create_table(
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
        sqlite_with_rowid=with_rowid,
    )
    assert table is not None
    # SQLite inserts into the key's B-tree: in key order, a chunk walks it once. PostgreSQL
    # appends to a heap and checks each row's article: in article order, those lookups walk
    # `articles` once instead of at random.
    by_article = bind.dialect.name == "postgresql"
    for chunk in _signatures(bind):
        values = sorted(
            {
                (key, article_id)
                for article_id, minhash in chunk
                for key in _band_keys(minhash, bands, rows)
            },
            key=lambda row: (row[1], row[0]) if by_article else row,
        )
        bind.execute(
            table.insert(),
            [{"band_key": key, "article_id": article_id} for key, article_id in values],
        )
    # built once the rows are in: one sort instead of an insert per row
    op.create_index(
        op.f("ix_signature_bands_article_id"), "signature_bands", ["article_id"], unique=False
    )


def _story_terms(with_rowid: bool) -> None:
    """Copy `story_terms` into a table of the given kind (SQLite only)."""
    op.create_table(
        "story_terms_copy",
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
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        "INSERT INTO story_terms_copy (term_key, published_at, article_id)"
        " SELECT term_key, published_at, article_id FROM story_terms"
        " ORDER BY term_key, published_at, article_id"
    )
    op.drop_index(op.f("ix_story_terms_article_id"), table_name="story_terms")
    op.drop_table("story_terms")
    op.rename_table("story_terms_copy", "story_terms")
    op.create_index(op.f("ix_story_terms_article_id"), "story_terms", ["article_id"], unique=False)


def upgrade() -> None:
    _rebuild_bands(bands=21, rows=2, with_rowid=False)
    if op.get_bind().dialect.name == "sqlite":
        _story_terms(with_rowid=False)


def downgrade() -> None:
    _rebuild_bands(bands=42, rows=3, with_rowid=True)
    if op.get_bind().dialect.name == "sqlite":
        _story_terms(with_rowid=True)
