"""Source leases on the archive under test: taken atomically, renewed, released, taken over."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import timedelta

from sqlalchemy import select

from crawler.context import ensure_source
from crawler.db.models import CrawlRun, SourceLease, utcnow
from crawler.db.session import Archive
from crawler.scheduler import lease
from tests.test_scheduler_config import source

TTL = timedelta(minutes=2)


def test_a_free_lease_is_taken_and_a_held_one_refused(archive):
    with archive.transaction() as session:
        assert lease.try_acquire(session, "kcna_watch", "a", TTL)
    with archive.transaction() as session:
        assert not lease.try_acquire(session, "kcna_watch", "b", TTL)
        assert not lease.try_acquire(session, "kcna_watch", "a", TTL)  # not re-entrant
        assert lease.try_acquire(session, "urdupoint", "b", TTL)  # another source is free
    with archive.sessions() as session:
        assert session.get(SourceLease, "kcna_watch").holder == "a"


def test_renew_and_release_only_by_the_holder(archive):
    with archive.transaction() as session:
        assert lease.try_acquire(session, "kcna_watch", "a", timedelta(seconds=5))
    with archive.transaction() as session:
        before = session.get(SourceLease, "kcna_watch").expires_at
        assert not lease.renew(session, "kcna_watch", "b", TTL)
        assert lease.renew(session, "kcna_watch", "a", TTL)
    with archive.transaction() as session:
        assert session.get(SourceLease, "kcna_watch").expires_at > before
        assert not lease.release(session, "kcna_watch", "b")
        assert lease.release(session, "kcna_watch", "a")
    with archive.transaction() as session:
        assert session.get(SourceLease, "kcna_watch") is None
        assert lease.try_acquire(session, "kcna_watch", "b", TTL)


def test_an_expired_lease_is_taken_over_and_its_run_closed(archive):
    kcna = source("kcna_watch")
    source_id = ensure_source(archive, kcna)
    with archive.transaction() as session:
        first = lease.acquire_for_run(session, "kcna_watch", source_id, "a", TTL, "scheduled")
    with archive.transaction() as session:
        assert lease.acquire_for_run(session, "kcna_watch", source_id, "b", TTL, "retry") is None
        held = lease.current(session, "kcna_watch")
        assert held is not None and (held.holder, held.run_id) == ("a", first)
        # the holder dies: its lease runs out
        session.get(SourceLease, "kcna_watch").expires_at = utcnow() - timedelta(seconds=1)
    with archive.transaction() as session:
        second = lease.acquire_for_run(session, "kcna_watch", source_id, "b", TTL, "retry")
    assert second is not None and second != first
    with archive.sessions() as session:
        old, new = session.get(CrawlRun, first), session.get(CrawlRun, second)
        assert old.status == "interrupted" and old.finished_at is not None
        assert "died" in old.error_log
        assert (new.status, new.trigger, new.finished_at) == ("running", "retry", None)
        assert session.get(SourceLease, "kcna_watch").run_id == second


def test_sweep_frees_expired_leases_and_those_of_dead_local_processes(archive):
    kcna = source("kcna_watch")
    source_id = ensure_source(archive, kcna)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_holder = f"{socket.gethostname()}:{int(dead.stdout)}:deadbeef"
    alive_holder = f"{socket.gethostname()}:{os.getppid()}:cafe0000"
    elsewhere = "another-host.example:1:00000000"
    with archive.transaction() as session:
        run_id = lease.acquire_for_run(session, "kcna_watch", source_id, dead_holder, TTL, "manual")
        assert lease.try_acquire(session, "urdupoint", alive_holder, TTL)
        assert lease.try_acquire(session, "islam_times", elsewhere, TTL)
        assert lease.try_acquire(session, "al_mayadeen", elsewhere, timedelta(seconds=1))
        session.get(SourceLease, "al_mayadeen").expires_at = utcnow() - timedelta(seconds=1)
    with archive.transaction() as session:
        assert lease.sweep(session, me="me") == ["al_mayadeen", "kcna_watch"]
    with archive.sessions() as session:
        assert sorted(session.scalars(select(SourceLease.source_name))) == [
            "islam_times",
            "urdupoint",
        ]
        assert session.get(CrawlRun, run_id).status == "interrupted"


def race(archive: Archive, name: str, takers: int = 8) -> list[str]:
    """Let `takers` threads, each with its own connection, try to take one lease at once."""
    start = threading.Barrier(takers)
    winners: list[str] = []
    failures: list[BaseException] = []

    def take(holder: str) -> None:
        try:
            start.wait()
            with archive.transaction() as session:
                if lease.try_acquire(session, name, holder, TTL):
                    winners.append(holder)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=take, args=(f"h{i}",)) for i in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return winners


def test_only_one_of_many_concurrent_takers_wins(db_url):
    archive = Archive(db_url, migrate=False)
    try:
        for round_ in range(4):
            name = f"source_{round_}"
            if round_ % 2:  # an expired lease to take over rather than a free one
                with archive.transaction() as session:
                    assert lease.try_acquire(session, name, "dead", timedelta(seconds=1))
                    session.get(SourceLease, name).expires_at = utcnow() - timedelta(seconds=5)
            winners = race(archive, name)
            assert len(winners) == 1, winners
            with archive.sessions() as session:
                assert session.get(SourceLease, name).holder == winners[0]
    finally:
        archive.dispose()
