"""The schema's history: processes started together on one archive, and the job store's table."""

from __future__ import annotations

import os
import subprocess
import sys

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import inspect

from crawler.db.session import current_revision, head_revision, make_engine, upgrade
from crawler.scheduler.jobs import JOBS_TABLE
from tests.conftest import ROOT


def test_processes_started_together_on_an_empty_archive_migrate_it_once(empty_db_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env["CRAWLER_DATABASE_URL"] = empty_db_url
    upgrades = [
        subprocess.Popen(
            [sys.executable, "-m", "crawler.cli", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in upgrades]
    assert [process.returncode for process in upgrades] == [0] * 4, outputs
    engine = make_engine(empty_db_url)
    try:
        assert current_revision(engine) == head_revision(engine) == "0004"
        tables = set(inspect(engine).get_table_names())
        assert {"articles", "snapshots", "crawl_runs", "source_leases", JOBS_TABLE} <= tables
    finally:
        engine.dispose()


def test_the_scheduler_job_table_is_made_by_the_schema_not_by_a_scheduler(empty_db_url):
    engine = make_engine(empty_db_url)
    try:
        upgrade(engine)
        columns = {c["name"]: c for c in inspect(engine).get_columns(JOBS_TABLE)}
        # what the migration made is the job store's own definition, column for column
        store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
        assert set(columns) == {column.name for column in store.jobs_t.columns}
        assert not columns["job_state"]["nullable"]
        assert inspect(engine).get_pk_constraint(JOBS_TABLE)["constrained_columns"] == ["id"]
    finally:
        engine.dispose()


def test_an_archive_whose_scheduler_made_the_job_table_upgrades_keeping_its_jobs(empty_db_url):
    engine = make_engine(empty_db_url)
    try:
        upgrade(engine, "0003")
        store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
        store.jobs_t.create(engine)  # what APScheduler did on an archive before 0004
        with engine.begin() as conn:
            conn.execute(store.jobs_t.insert().values(id="source:x", job_state=b"state"))
        upgrade(engine)
        assert current_revision(engine) == "0004"
        with engine.connect() as conn:
            rows = conn.execute(store.jobs_t.select()).all()
        assert [(row.id, row.job_state) for row in rows] == [("source:x", b"state")]
    finally:
        engine.dispose()
