"""scheduler job store: the table APScheduler keeps its jobs in, owned by the schema

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 16:10:00

APScheduler's SQLAlchemy job store creates its table when it starts, if missing. Two schedulers
starting at once on a fresh archive raced to create it and one died with "table scheduler_jobs
already exists". The table is now created here, with the job store's own definition (see
apscheduler/jobstores/sqlalchemy.py, 3.x), so a scheduler only ever finds it. An archive where a
scheduler already made it keeps that table as it is. A downgrade drops the table with the jobs in
it; a scheduler started afterwards schedules every source afresh.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "scheduler_jobs"


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table(TABLE):
        return
    op.create_table(
        TABLE,
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25), index=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
