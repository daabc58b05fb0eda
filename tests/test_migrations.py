"""The schema's history: processes started together on one archive, the job store's table, and
the models agreeing with the migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import inspect

from crawler.db.models import Base
from crawler.db.session import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    migration_transaction,
    modelled,
    schema_head,
    upgrade,
)
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
        assert current_revision(engine) == head_revision(engine)
        tables = set(inspect(engine).get_table_names())
        assert {"articles", "snapshots", "crawl_runs", "source_leases", JOBS_TABLE} <= tables
    finally:
        engine.dispose()


def test_an_upgrade_waits_for_one_under_way_and_finds_nothing_left_to_do(empty_db_url):
    first, second = make_engine(empty_db_url), make_engine(empty_db_url)
    failures: list[BaseException] = []

    def upgrade_second() -> None:
        try:
            upgrade(second)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    waiting = threading.Thread(target=upgrade_second)
    try:
        with migration_transaction(first) as connection:
            # the first has migrated everything but not committed yet
            config = alembic_config(first)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            waiting.start()
            time.sleep(1.5)
            assert waiting.is_alive(), "the second upgrade did not wait for the first"
        waiting.join(timeout=60)
        assert not waiting.is_alive()
        # without the lock it would have read "no schema" and failed creating the tables
        assert failures == []
        assert current_revision(second) == head_revision(second)
    finally:
        first.dispose()
        second.dispose()


def test_the_models_and_the_migrations_describe_the_same_schema(db_url):
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": modelled}
            )
            assert compare_metadata(context, Base.metadata) == []
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
        indexes = inspect(engine).get_indexes(JOBS_TABLE)
        assert [index["column_names"] for index in indexes] == [["next_run_time"]]
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
        assert current_revision(engine) == head_revision(engine)
        with engine.connect() as conn:
            rows = conn.execute(store.jobs_t.select()).all()
        assert [(row.id, row.job_state) for row in rows] == [("source:x", b"state")]
    finally:
        engine.dispose()


def test_schema_head_read_from_the_files_is_alembics_head():
    assert schema_head() is not None
    assert schema_head() == head_revision(make_engine("sqlite://"))
