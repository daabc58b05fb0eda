"""Schedules from the sources file: bad intervals and cron lines are rejected naming the source;
triggers follow crontab's own weekday numbers; the `schedule` command refuses bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from crawler.config import ConfigError, SourceConfig, load_sources
from crawler.scheduler.cron import crontab_days
from crawler.scheduler.jobs import effective_jitter, job_name, source_of, trigger_for
from tests.conftest import run_cli

SPIDERS = {"kcna_watch", "urdupoint"}


def source(name: str = "kcna_watch", **settings: object) -> SourceConfig:
    return SourceConfig(name=name, base_url="https://example.org", **settings)  # type: ignore[arg-type]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ('every = "every hour"', "bad every"),
        ('every = "-5m"', "bad every"),
        ('every = "0s"', "bad every"),
        ('every = "5 minutes"', "bad every"),
        ('cron = "0 */2 * *"', "bad cron expression '0 */2 * *': expected 5 fields"),
        ('cron = "0 25 * * *"', "bad cron expression"),
        ('cron = "0 9 * * 8"', "day of week '8'"),
        ('cron = "0 9 * * fri-mon"', "runs backwards"),
        ('cron = "*/0 * * * *"', "bad cron expression"),
        ("cron = 5", "cron must be a string"),
        ('every = "1h"\ncron = "0 * * * *"', "either every or cron"),
        ('timeout = "forever"', "bad timeout"),
        ('timeout = "0m"', "bad timeout"),
        ('stale_after = "3 days"', "bad stale_after"),
    ],
)
def test_bad_schedules_are_rejected_naming_the_source(tmp_path, setting, reason):
    path = write(
        tmp_path,
        '[sources.urdupoint]\nbase_url = "https://u.example"\n\n'
        f'[sources.kcna_watch]\nbase_url = "https://k.example"\n{setting}\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_sources(path, known_spiders=SPIDERS)
    message = str(caught.value)
    assert str(path) in message and "source 'kcna_watch'" in message and reason in message


def test_good_schedules_are_read(tmp_path):
    path = write(
        tmp_path,
        '[sources.kcna_watch]\nbase_url = "https://k.example"\nevery = "45s"\n'
        'timeout = "10m"\nstale_after = "1d12h"\n\n'
        '[sources.urdupoint]\nbase_url = "https://u.example"\ncron = "30 6 * * 1-5"\n',
    )
    sources = load_sources(path, known_spiders=SPIDERS).sources
    kcna, urdu = sources["kcna_watch"], sources["urdupoint"]
    assert (kcna.every, kcna.cron, kcna.timeout) == (
        timedelta(seconds=45),
        None,
        timedelta(minutes=10),
    )
    assert kcna.stale_after == timedelta(hours=36)
    assert (urdu.every, urdu.cron, urdu.timeout) == (None, "30 6 * * 1-5", timedelta(hours=1))


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("*", "*"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("0,6", "sun,sat"),
        ("5-7", "sun,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("MON-Fri", "mon,tue,wed,thu,fri"),
    ],
)
def test_weekdays_mean_what_they_mean_in_crontab(field, days):
    assert crontab_days(field) == days


def test_cron_trigger_fires_on_crontab_weekdays_in_utc():
    trigger = trigger_for(source(every=None, cron="0 9 * * 1-5"), timedelta(0))
    assert isinstance(trigger, CronTrigger)
    saturday = datetime(2026, 1, 3, 12, 0, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, saturday)
    assert fire == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # Monday, not Tuesday
    friday_evening = datetime(2026, 1, 9, 10, 0, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, friday_evening) == datetime(
        2026, 1, 12, 9, 0, tzinfo=UTC
    )
    sunday = trigger_for(source(every=None, cron="15 0 * * 0"), timedelta(0))
    assert sunday.get_next_fire_time(None, saturday) == datetime(2026, 1, 4, 0, 15, tzinfo=UTC)


def test_interval_trigger_and_jitter_at_most_a_tenth_of_the_interval():
    trigger = trigger_for(source(every=timedelta(seconds=45)), timedelta(seconds=30))
    assert isinstance(trigger, IntervalTrigger)
    assert trigger.interval == timedelta(seconds=45) and trigger.jitter == 4.5
    hourly = source(every=timedelta(hours=1))
    assert effective_jitter(hourly, timedelta(seconds=30)) == 30
    assert trigger_for(hourly, timedelta(0)).jitter is None
    assert job_name(hourly, timedelta(seconds=30)) == "kcna_watch: every 1h, jitter 30s"
    changed = source(every=timedelta(hours=2))
    assert job_name(changed, timedelta(seconds=30)) != job_name(hourly, timedelta(seconds=30))
    assert source_of("source:kcna_watch") == source_of("retry:kcna_watch") == "kcna_watch"
    assert source_of("somebody-elses-job") is None


def test_schedule_refuses_a_bad_sources_file_naming_the_source(tmp_path, db_url):
    path = write(tmp_path, '[sources.kcna_watch]\nbase_url = "https://k.example"\nevery = "1x"\n')
    result = run_cli("schedule", db_url=db_url, sources=path, timeout=60)
    assert result.returncode == 2
    assert "kcna_watch" in result.stderr and "bad every" in result.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [("--grace-period", "soon"), ("--lease-ttl", "0"), ("--misfire-grace", "1 hour")],
)
def test_schedule_refuses_bad_options(tmp_path, db_url, option, value):
    path = write(tmp_path, '[sources.kcna_watch]\nbase_url = "https://k.example"\n')
    result = run_cli("schedule", option, value, db_url=db_url, sources=path, timeout=60)
    assert result.returncode == 2 and option in result.stderr
