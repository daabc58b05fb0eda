"""The schema's history: processes started together on one archive, the job store's table, and
the models agreeing with the migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from crawler.db.models import Base
from crawler.db.session import (
    alembic_config,
    broken_foreign_keys,
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


def test_0006_fills_in_the_local_day_and_precision_of_archived_articles(empty_db_url):
    """Before 0006 a day-only date was stored as midnight local time, in UTC."""
    engine = make_engine(empty_db_url)
    try:
        upgrade(engine, "0004")
        seen = datetime(2025, 1, 1, tzinfo=UTC)
        with engine.begin() as conn:
            for source_id, name in ((1, "kcna_watch"), (2, "urdupoint"), (3, "elsewhere")):
                conn.execute(
                    text(
                        "INSERT INTO sources (id, name, base_url, created_at) "
                        "VALUES (:i, :n, :u, :t)"
                    ),
                    {"i": source_id, "n": name, "u": f"https://{name}.example", "t": seen},
                )
            for article_id, source_id, published in (
                (1, 1, datetime(2024, 12, 11, 15, 0, tzinfo=UTC)),  # 12/12/2024 in Pyongyang
                (2, 2, datetime(2023, 7, 26, 8, 40, tzinfo=UTC)),  # 13:40 in Karachi
                (3, 3, datetime(2024, 5, 1, 0, 0, tzinfo=UTC)),  # no known zone: UTC
                (4, 1, None),
            ):
                conn.execute(
                    text(
                        "INSERT INTO articles (id, source_id, url, canonical_url, title, "
                        "published_at, body, partial, content_hash, version, first_seen_at, "
                        "last_seen_at, updated_at) VALUES (:i, :s, :u, :c, 'T', :p, 'B', "
                        "false, :h, 2, :t, :t, :t)"
                    ),
                    {
                        "i": article_id,
                        "s": source_id,
                        "u": f"https://x.example/{article_id}",
                        "c": f"https://x.example/{article_id}",
                        "p": published,
                        "h": "0" * 64,
                        "t": seen,
                    },
                )
            conn.execute(
                text(
                    "INSERT INTO article_versions (id, article_id, version, title, published_at, "
                    "body, partial, content_hash, first_seen_at, superseded_at) VALUES "
                    "(1, 1, 1, 'T', :p, 'B', false, :h, :t, :t)"
                ),
                {"p": datetime(2024, 12, 10, 15, 0, tzinfo=UTC), "h": "0" * 64, "t": seen},
            )
        upgrade(engine)
        with engine.connect() as conn:
            articles = conn.execute(
                text("SELECT id, published_date, published_precision FROM articles ORDER BY id")
            ).all()
            versions = conn.execute(
                text("SELECT published_date, published_precision FROM article_versions")
            ).all()
        assert [(row[0], str(row[1]) if row[1] else None, row[2]) for row in articles] == [
            (1, "2024-12-12", "day"),
            (2, "2023-07-26", "time"),
            (3, "2024-05-01", "day"),
            (4, None, None),
        ]
        assert [(str(row[0]), row[1]) for row in versions] == [("2024-12-11", "day")]
    finally:
        engine.dispose()


def test_schema_head_read_from_the_files_is_alembics_head():
    assert schema_head() is not None
    assert schema_head() == head_revision(make_engine("sqlite://"))


def test_the_foreign_key_check_after_a_migration_finds_what_sqlites_pragma_finds(tmp_path):
    # SQLite migrates with foreign keys off; the check after it reads each referencing column
    # in order (the pragma's random lookups took over 10 minutes on 1,000,000 articles)
    engine = make_engine(f"sqlite:///{tmp_path / 'archive.db'}")
    try:
        upgrade(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.exec_driver_sql(
                "INSERT INTO sources (id, name, base_url, created_at)"
                " VALUES (1, 'kcna_watch', 'https://kcna.example', '2025-01-01 00:00:00')"
            )
            conn.exec_driver_sql(
                "INSERT INTO articles (id, source_id, url, canonical_url, title, body, partial,"
                " content_hash, version, first_seen_at, last_seen_at, updated_at) VALUES (1, 1,"
                " 'u1', 'u1', 'T', 'B', 0, 'h', 1, '2025-01-01', '2025-01-01', '2025-01-01'),"
                " (2, 7, 'u2', 'u2', 'T', 'B', 0, 'h', 1, '2025-01-01', '2025-01-01', '2025-01-01')"
            )
            assert broken_foreign_keys(conn) == [("articles", "source_id", 7)]
            conn.exec_driver_sql("INSERT INTO topics (id, name) VALUES (5, 'a'), (6, 'b')")
            conn.exec_driver_sql(
                "INSERT INTO article_topics (article_id, topic_id) VALUES (1, 5), (9, 5), (9, 6)"
            )
            found = broken_foreign_keys(conn)
            pragma = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            assert sorted(found) == [
                ("article_topics", "article_id", 9),
                ("articles", "source_id", 7),
            ]
            # the pragma names the same tables (a row per referencing row: the topics' twice)
            assert sorted({row[0] for row in pragma}) == ["article_topics", "articles"]
            conn.exec_driver_sql("DELETE FROM article_topics WHERE article_id = 9")
            conn.exec_driver_sql("UPDATE articles SET source_id = 1")
            assert broken_foreign_keys(conn) == []
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            conn.rollback()
    finally:
        engine.dispose()


def test_the_foreign_key_check_refuses_a_reference_to_a_column_that_is_not_unique(tmp_path):
    # a migration that lost a parent's key leaves references no lookup can check: the
    # pragma's error, not a pass
    engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.exec_driver_sql("CREATE TABLE parent (x INTEGER, y INTEGER UNIQUE)")
            conn.exec_driver_sql(
                "CREATE TABLE child"
                " (p INTEGER REFERENCES parent (y), q INTEGER REFERENCES parent (x))"
            )
            conn.exec_driver_sql("INSERT INTO parent VALUES (1, 1)")
            conn.exec_driver_sql("INSERT INTO child VALUES (1, 1)")
            with pytest.raises(OperationalError, match="foreign key mismatch"):
                broken_foreign_keys(conn)
            conn.exec_driver_sql("DROP TABLE child")
            conn.exec_driver_sql("CREATE TABLE child (p INTEGER REFERENCES parent (y))")
            conn.exec_driver_sql("INSERT INTO child VALUES (1), (2)")
            assert broken_foreign_keys(conn) == [("child", "p", 2)]
    finally:
        engine.dispose()


def _compression(engine, table: str, column: str) -> str:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT attcompression FROM pg_attribute WHERE attrelid = CAST(:t AS regclass)"
                " AND attname = :c"
            ),
            {"t": table, "c": column},
        ).scalar_one()


def test_0010_stores_articles_texts_with_lz4_on_postgresql_and_changes_nothing_on_sqlite(
    empty_db_url,
):
    engine = make_engine(empty_db_url)
    columns = [
        ("articles", "body"),
        ("articles", "summary"),
        ("articles", "search_vector"),
        ("article_versions", "body"),
    ]
    try:
        upgrade(engine, "0009")
        before: list[str] = []
        compare_schema = None
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                compare_schema = conn.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master ORDER BY name"
                ).all()
        else:
            with engine.connect() as conn:
                methods = conn.execute(
                    text(
                        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
                    )
                ).scalar()
            if methods is None or "lz4" not in methods:
                # PostgreSQL 13 or older, or built without LZ4: the revision changes nothing
                upgrade(engine, "0010")
                assert current_revision(engine) == "0010"
                return
            before = [_compression(engine, t, c) for t, c in columns]
            assert before == [""] * len(columns)  # the server's default (pglz)
        upgrade(engine, "0010")
        assert current_revision(engine) == "0010"
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                after = conn.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master ORDER BY name"
                ).all()
            assert after == compare_schema
            return
        assert [_compression(engine, t, c) for t, c in columns] == ["l"] * len(columns)
        # an article stored now is compressed by LZ4 and reads back as it was written
        body = " ".join(f"paragraph {n} of a long article about the treaty" for n in range(400))
        with engine.begin() as conn:
            now = datetime.now(UTC)
            source = conn.execute(
                text(
                    "INSERT INTO sources (name, base_url, created_at)"
                    " VALUES ('s', 'http://s', :n) RETURNING id"
                ),
                {"n": now},
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO articles (source_id, url, canonical_url, title, body, partial,"
                    " content_hash, version, first_seen_at, last_seen_at, updated_at)"
                    " VALUES (:s, 'http://s/1', 'http://s/1', 't', :b, false, 'h', 1, :n, :n, :n)"
                ),
                {"s": source, "b": body, "n": now},
            )
        with engine.connect() as conn:
            stored, method, words = conn.execute(
                text(
                    "SELECT body, pg_column_compression(body),"
                    " search_vector @@ plainto_tsquery('simple', 'treaty') FROM articles"
                )
            ).one()
        assert (stored, method, words) == (body, "lz4", True)
        command.downgrade(alembic_config(engine), "0009")
        assert [_compression(engine, t, c) for t, c in columns] == before
        with engine.connect() as conn:
            assert conn.execute(text("SELECT body FROM articles")).scalar_one() == body
    finally:
        engine.dispose()


def _postings(engine: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        bands = conn.execute(text("SELECT band_key, article_id FROM signature_bands ORDER BY 1, 2"))
        terms = conn.execute(text("SELECT term_key, article_id FROM story_terms ORDER BY 1, 2"))
        return [tuple(r) for r in bands], [tuple(r) for r in terms]


def _referenced(engine: Any, table: str) -> list[str]:
    return sorted(key["referred_table"] for key in inspect(engine).get_foreign_keys(table))


def test_0011_keeps_the_postings_with_their_signature_by_a_trigger_not_foreign_keys(
    empty_db_url,
):
    # the postings lose their foreign keys (checked for each of an article's 33 rows) and
    # keep every row; deleting a signature, or the article (whose key cascades to its
    # signature), deletes its postings as the keys' cascade did; the downgrade puts them back
    engine = make_engine(empty_db_url)
    try:
        upgrade(engine, "0010")
        now = datetime(2026, 11, 1, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sources (id, name, base_url, created_at)"
                    " VALUES (1, 's', 'http://s', :n)"
                ),
                {"n": now},
            )
            for article in (1, 2, 3):
                conn.execute(
                    text(
                        "INSERT INTO articles (id, source_id, url, canonical_url, title, body,"
                        " partial, content_hash, version, first_seen_at, last_seen_at,"
                        " updated_at) VALUES (:a, 1, :u, :c, 't', 'b', false, 'h', 1, :n, :n, :n)"
                    ),
                    {
                        "a": article,
                        "u": f"http://s/{article}",
                        "c": f"http://s/{article}",
                        "n": now,
                    },
                )
                conn.execute(
                    text(
                        "INSERT INTO article_signatures (article_id, source_id, published_at,"
                        " minhash, shingles, terms) VALUES (:a, 1, :n, :m, 3, '{}')"
                    ),
                    {"a": article, "n": now, "m": bytes(8)},
                )
                for key in (10, 20):
                    conn.execute(
                        text("INSERT INTO signature_bands VALUES (:k, :a)"),
                        {"k": key + article, "a": article},
                    )
                    conn.execute(
                        text("INSERT INTO story_terms VALUES (:k, :n, :a)"),
                        {"k": key + article, "n": now, "a": article},
                    )
        before = _postings(engine)
        assert _referenced(engine, "signature_bands") == ["articles"]
        upgrade(engine)
        assert current_revision(engine) == "0011"
        assert _postings(engine) == before
        assert _referenced(engine, "signature_bands") == _referenced(engine, "story_terms") == []
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                kinds = conn.exec_driver_sql(
                    "SELECT name, sql LIKE '%WITHOUT ROWID%' FROM sqlite_master"
                    " WHERE name IN ('signature_bands', 'story_terms') ORDER BY name"
                ).all()
            assert [tuple(k) for k in kinds] == [("signature_bands", 1), ("story_terms", 1)]
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM article_signatures WHERE article_id = 1"))
            conn.execute(text("DELETE FROM articles WHERE id = 2"))
        kept = ([(13, 3), (23, 3)], [(13, 3), (23, 3)])
        assert _postings(engine) == kept
        command.downgrade(alembic_config(engine), "0010")
        assert _referenced(engine, "signature_bands") == ["articles"]
        assert _referenced(engine, "story_terms") == ["articles"]
        assert _postings(engine) == kept
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM articles WHERE id = 3"))
        assert _postings(engine) == ([], [])
    finally:
        engine.dispose()
