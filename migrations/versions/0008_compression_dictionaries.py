"""payload compression with a zstd dictionary per outlet

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 17:10:00

Pages of one outlet share most of their markup; a payload compressed against the outlet's
dictionary (crawler/db/payloads.py) names it in `payloads.dictionary_id`. Payloads stored before
this revision keep a NULL there: plain zstd, read as before. A downgrade first rewrites every
dictionary-compressed payload as plain zstd, so nothing archived becomes unreadable.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import zstandard
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_payloads_dictionary_id_compression_dictionaries"


def upgrade() -> None:
    op.create_table(
        "compression_dictionaries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name="fk_compression_dictionaries_source_id_sources",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_compression_dictionaries"),
    )
    op.create_index(
        "ix_compression_dictionaries_source_id", "compression_dictionaries", ["source_id"]
    )
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a constraint only by copying the table (Alembic's batch mode), here every
        # archived byte, to add one nullable column; its ADD COLUMN takes the reference inline.
        op.execute(
            f"ALTER TABLE payloads ADD COLUMN dictionary_id INTEGER CONSTRAINT {FOREIGN_KEY} "
            "REFERENCES compression_dictionaries (id)"
        )
    else:
        op.add_column("payloads", sa.Column("dictionary_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            FOREIGN_KEY, "payloads", "compression_dictionaries", ["dictionary_id"], ["id"]
        )


def downgrade() -> None:
    bind = op.get_bind()
    payloads = sa.table(
        "payloads",
        sa.column("sha256", sa.String()),
        sa.column("content", sa.LargeBinary()),
        sa.column("dictionary_id", sa.Integer()),
    )
    dictionaries = sa.table(
        "compression_dictionaries", sa.column("id", sa.Integer()), sa.column("content")
    )
    plain = zstandard.ZstdDecompressor()
    compressor = zstandard.ZstdCompressor(level=3)
    for dictionary_id, stored in bind.execute(sa.select(dictionaries.c.id, dictionaries.c.content)):
        raw = zstandard.ZstdCompressionDict(
            plain.decompress(stored), dict_type=zstandard.DICT_TYPE_RAWCONTENT
        )
        decompressor = zstandard.ZstdDecompressor(dict_data=raw)
        rows = bind.execute(
            sa.select(payloads.c.sha256, payloads.c.content).where(
                payloads.c.dictionary_id == dictionary_id
            )
        ).all()
        for sha256, content in rows:
            bind.execute(
                payloads.update()
                .where(payloads.c.sha256 == sha256)
                .values(content=compressor.compress(decompressor.decompress(content)))
            )
    # the column's foreign key goes with it (PostgreSQL drops it, SQLite's batch copy omits it)
    with op.batch_alter_table("payloads") as batch:
        batch.drop_column("dictionary_id")
    op.drop_index("ix_compression_dictionaries_source_id", "compression_dictionaries")
    op.drop_table("compression_dictionaries")
