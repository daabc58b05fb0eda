"""The story index's postings kept with their signature by a trigger, not by foreign keys

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 06:20:00

An article's signature comes with 21 band rows (`signature_bands`) and 12 term rows
(`story_terms`). Each of those rows had a foreign key to `articles`, checked as it was written:
33 lookups of the same article for every article stored. On PostgreSQL each is a trigger's
query, and the statement writing a signature and its postings took 0.35 ms a page with them,
0.21 ms without (3,000 captured pages replayed, alternated).

What the keys kept is kept otherwise: postings are only ever written together with their
signature, which keeps its own foreign key to `articles`, so they never name a missing
article; and a trigger deletes an article's postings when its signature goes, as the keys'
ON DELETE CASCADE did (deleting an article deletes its signature, by that key's cascade, and
so its postings). On SQLite both tables are copied (a foreign key cannot be dropped there),
WITHOUT ROWID as they were.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = "article_signatures_drop_postings"
# table -> (its key columns, typed; the foreign key's name)
POSTINGS = {
    "signature_bands": (
        (("band_key", sa.BigInteger()), ("article_id", sa.Integer())),
        "fk_signature_bands_article_id_articles",
    ),
    "story_terms": (
        (
            ("term_key", sa.BigInteger()),
            ("published_at", sa.DateTime(timezone=True)),
            ("article_id", sa.Integer()),
        ),
        "fk_story_terms_article_id_articles",
    ),
}
_DELETES = " ".join(f"DELETE FROM {table} WHERE article_id = OLD.article_id;" for table in POSTINGS)


def _copy(table: str, foreign_key: bool) -> None:
    """SQLite: the table again, WITHOUT ROWID, with or without its foreign key."""
    columns, key_name = POSTINGS[table]
    names = [name for name, _ in columns]
    constraints: list[sa.Constraint] = [sa.PrimaryKeyConstraint(*names, name=f"pk_{table}")]
    if foreign_key:
        constraints.append(
            sa.ForeignKeyConstraint(
                ["article_id"], ["articles.id"], name=key_name, ondelete="CASCADE"
            )
        )
    op.create_table(
        f"{table}_copy",
        *(sa.Column(name, type_, nullable=False) for name, type_ in columns),
        *constraints,
        sqlite_with_rowid=False,
    )
    listed = ", ".join(names)
    op.execute(
        f"INSERT INTO {table}_copy ({listed}) SELECT {listed} FROM {table} ORDER BY {listed}"
    )
    op.drop_index(f"ix_{table}_article_id", table_name=table)
    op.drop_table(table)
    op.rename_table(f"{table}_copy", table)
    op.create_index(f"ix_{table}_article_id", table, ["article_id"], unique=False)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, (_, key_name) in POSTINGS.items():
        if dialect == "sqlite":
            _copy(table, foreign_key=False)
        else:
            op.drop_constraint(key_name, table, type_="foreignkey")
    if dialect == "sqlite":
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON article_signatures BEGIN {_DELETES} END"
        )
    else:
        op.execute(
            f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN {_DELETES} RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON article_signatures"
            f" FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(
        f"DROP TRIGGER {TRIGGER}" + ("" if dialect == "sqlite" else " ON article_signatures")
    )
    if dialect != "sqlite":
        op.execute(f"DROP FUNCTION {TRIGGER}()")
    for table, (_, key_name) in POSTINGS.items():
        if dialect == "sqlite":
            _copy(table, foreign_key=True)
        else:
            op.create_foreign_key(
                key_name, table, "articles", ["article_id"], ["id"], ondelete="CASCADE"
            )
