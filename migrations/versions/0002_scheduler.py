"""scheduler: a lease row per source so that a source never runs twice at once

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_leases",
        sa.Column("source_name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["crawl_runs.id"],
            name=op.f("fk_source_leases_run_id_crawl_runs"),
        ),
        sa.PrimaryKeyConstraint("source_name", name=op.f("pk_source_leases")),
    )


def downgrade() -> None:
    op.drop_table("source_leases")
