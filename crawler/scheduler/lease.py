"""Source leases: one row per running source, so that a source never runs twice at once.

A lease is taken by a single atomic upsert (inserted when the source is free, taken over when
the holder let it expire), renewed by its holder while the run lasts and deleted at the end.
The same statement works on SQLite and PostgreSQL: ``INSERT ... ON CONFLICT DO UPDATE ...
WHERE expires_at < now RETURNING holder``; a concurrent taker either waits for the row lock
(PostgreSQL) or for the write lock (SQLite) and then finds the lease no longer expired.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crawler.db.errors import one_line
from crawler.db.models import CrawlRun, SourceLease, utcnow
from crawler.db.session import Archive

logger = logging.getLogger(__name__)

ORPHANED = "the scheduler or crawl running it died without finishing it (lease released)"
CUT_SHORT = "the crawl was stopped before it could close its run"
# How long a lease lasts unless renewed (`crawler schedule --lease-ttl`).
DEFAULT_TTL = timedelta(minutes=2)


def new_holder() -> str:
    """A name for this process's leases: host, pid and a random part."""
    return f"{socket.gethostname()[:150]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseInfo:
    source_name: str
    holder: str
    expires_at: datetime
    run_id: int | None


def try_acquire(
    session: Session, source: str, holder: str, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Take the source's lease in one statement; False when someone else holds it unexpired."""
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    # imported here: the PostgreSQL dialect costs a crawl on SQLite a tenth of its start-up
    dialect_module = "postgresql" if dialect == "postgresql" else "sqlite"
    insert = importlib.import_module(f"sqlalchemy.dialects.{dialect_module}").insert
    values = insert(SourceLease).values(
        source_name=source, holder=holder, acquired_at=now, expires_at=now + ttl, run_id=None
    )
    statement = values.on_conflict_do_update(
        index_elements=[SourceLease.source_name],
        set_={
            "holder": values.excluded.holder,
            "acquired_at": values.excluded.acquired_at,
            "expires_at": values.excluded.expires_at,
            "run_id": None,
        },
        where=SourceLease.expires_at < now,
    ).returning(SourceLease.holder)
    return session.execute(statement).scalar_one_or_none() == holder


def take(
    session: Session, source: str, holder: str, ttl: timedelta, now: datetime | None = None
) -> bool:
    """`try_acquire`, closing as interrupted the run of an expired lease it took over."""
    now = now or utcnow()
    expired_run = session.scalar(
        select(SourceLease.run_id).where(
            SourceLease.source_name == source, SourceLease.expires_at < now
        )
    )
    if not try_acquire(session, source, holder, ttl, now):
        return False
    if expired_run is not None:
        _interrupt(session, [expired_run], ORPHANED)
    return True


def acquire_for_run(
    session: Session,
    source: str,
    source_id: int,
    holder: str,
    ttl: timedelta,
    trigger: str,
) -> int | None:
    """Take the lease and open a `running` crawl_runs row under it; None when the source is busy.

    A run left behind by a holder whose lease expired is closed as interrupted.
    """
    now = utcnow()
    if not take(session, source, holder, ttl, now):
        return None
    run = CrawlRun(source_id=source_id, status="running", trigger=trigger, started_at=now)
    session.add(run)
    session.flush()
    attach_run(session, source, holder, run.id)
    return run.id


def renew(session: Session, source: str, holder: str, ttl: timedelta) -> bool:
    """Move the lease's expiry on; False when it is no longer this holder's."""
    result = session.execute(
        update(SourceLease)
        .where(SourceLease.source_name == source, SourceLease.holder == holder)
        .values(expires_at=utcnow() + ttl)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, source: str, holder: str) -> bool:
    """Give the lease up; False when it was not this holder's any more."""
    result = session.execute(
        delete(SourceLease).where(SourceLease.source_name == source, SourceLease.holder == holder)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def current(session: Session, source: str) -> LeaseInfo | None:
    """The source's lease as it stands, expired or not."""
    lease = session.get(SourceLease, source)
    if lease is None:
        return None
    return LeaseInfo(lease.source_name, lease.holder, lease.expires_at, lease.run_id)


def holder_is_dead(holder: str, me: str) -> bool:
    """Whether `holder` was a process of this host that no longer runs (never guessed for
    another host: its lease has to expire)."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname()[:150] or not pid_text.isdigit() or holder == me:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # an earlier process with our pid (a restarted container's pid 1)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def sweep(session: Session, me: str, now: datetime | None = None) -> list[str]:
    """Delete leases that expired or whose holder died on this host, closing their runs as
    interrupted; the sources they covered."""
    now = now or utcnow()
    freed: list[str] = []
    orphans: list[int] = []
    for held in session.scalars(select(SourceLease)).all():
        expired = held.expires_at < now
        if not expired and not holder_is_dead(held.holder, me):
            continue
        condition = [SourceLease.source_name == held.source_name, SourceLease.holder == held.holder]
        if expired:
            condition.append(SourceLease.expires_at < now)  # unless renewed meanwhile
        if session.execute(delete(SourceLease).where(*condition)).rowcount:  # type: ignore[attr-defined]
            freed.append(held.source_name)
            if held.run_id is not None:
                orphans.append(held.run_id)
    _interrupt(session, orphans, ORPHANED)
    return sorted(freed)


def _interrupt(session: Session, run_ids: list[int], reason: str) -> None:
    if not run_ids:
        return
    for run in session.scalars(
        select(CrawlRun).where(CrawlRun.id.in_(run_ids), CrawlRun.status == "running")
    ):
        run.status = "interrupted"
        run.finished_at = utcnow()
        run.error_log = "\n".join(filter(None, [reason, run.error_log]))


class CrawlLeases:
    """The leases a manual `crawler crawl` holds on its sources while it runs.

    A manual crawl and a scheduled one (or two manual ones) of the same source would fetch the
    same pages twice and interleave their runs; the manual crawl takes the same lease a scheduler
    takes before its crawls start and gives it back when they are over. While a source is being
    crawled, `crawler.extensions.LeaseKeeper` renews its lease (and stops that crawl if the lease
    is lost). A crawl that dies leaves a lease that expires (or, on this host, is freed as soon as
    someone sees its process is gone), and its run is then closed as interrupted.
    """

    def __init__(self, archive: Archive, ttl: timedelta = DEFAULT_TTL) -> None:
        self.archive = archive
        self.ttl = ttl
        self.holder = new_holder()
        self.held: list[str] = []

    def acquire(self, sources: list[str]) -> dict[str, LeaseInfo]:
        """Take the sources' leases; the ones held elsewhere, with their lease, are returned."""
        busy: dict[str, LeaseInfo] = {}
        with self.archive.transaction() as session:
            freed = sweep(session, self.holder)
        if freed:
            logger.warning("leases of a dead crawl or scheduler released: %s", ", ".join(freed))
        for source in sources:
            held = None
            while held is None:  # held elsewhere, unless released between the two statements
                with self.archive.transaction() as session:
                    if take(session, source, self.holder, self.ttl):
                        self.held.append(source)
                        break
                    held = current(session, source)
            if held is not None:
                busy[source] = held
        return busy

    def release(self) -> None:
        """Give every lease back; a run still open under one (the crawl was cut short before it
        could close it) is closed as interrupted. When the archive refuses even that (a full
        disk, a vanished database), one line says so: the leases expire (or are freed by the
        next crawl on this host, which sees their holder gone) and their runs are closed then."""
        try:
            with self.archive.transaction() as session:
                for source in self.held:
                    held = current(session, source)
                    if held is not None and held.holder == self.holder and held.run_id:
                        _interrupt(session, [held.run_id], CUT_SHORT)
                    release(session, source, self.holder)
        except Exception as exc:
            logger.error(
                "the leases of %s could not be given back (%s); they expire within %s",
                ", ".join(self.held),
                one_line(exc),
                self.ttl,
            )
        self.held = []


def attach_run(session: Session, source: str, holder: str, run_id: int) -> None:
    """Record which run a lease covers (closed as interrupted if its holder dies)."""
    session.execute(
        update(SourceLease)
        .where(SourceLease.source_name == source, SourceLease.holder == holder)
        .values(run_id=run_id)
    )
