"""What a crawl loads and keeps: components switched off are not even imported."""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import subprocess
import sys
import weakref
from pathlib import Path

from scrapy.settings import default_settings

from tests.conftest import LOOPBACK, ROOT, run_python, write_sources

SWITCHED_OFF = {
    "EXTENSIONS": {
        "scrapy.extensions.telnet.TelnetConsole",
        "scrapy.extensions.remote_control.RemoteControl",
    },
    "DOWNLOADER_MIDDLEWARES": {"scrapy.downloadermiddlewares.cookies.CookiesMiddleware"},
}
# what those would import (0.14 s of a crawl's start-up)
HEAVY = ("aiohttp", "twisted.conch", "tldextract")


def test_components_switched_off_are_not_imported():
    # every component Scrapy would build, loaded as Scrapy loads it, in a fresh interpreter
    code = f"""
import json, sys
from scrapy.utils.misc import load_object
from crawler.config import project_settings
settings = project_settings()
found = {{}}
for name in {sorted(SWITCHED_OFF)!r}:
    found[name] = sorted(settings.get_component_priority_dict_with_base(name))
    for path in found[name]:
        load_object(path)
    found[name + " replaced"] = sorted(k for k, v in settings[name].items() if v is None)
found["imported"] = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps(found))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout)
    assert found.pop("imported") == []
    for name, off in SWITCHED_OFF.items():
        scrapy_own = set(getattr(default_settings, f"{name}_BASE"))
        assert off <= scrapy_own  # still Scrapy's names: the test checks something
        assert not off & set(found[name])
        # everything else of Scrapy's is still there, but for what the project replaces
        assert scrapy_own - off - set(found[f"{name} replaced"]) <= set(found[name])


def test_the_archive_model_loads_no_postgresql_dialect_until_a_postgresql_engine_is_made():
    # the partial indexes' predicate for PostgreSQL made SQLAlchemy import its dialect in every
    # crawl and archive writer, on SQLite too (50 ms of start-up); it is given with the engine
    code = """
import json, sys
from sqlalchemy.schema import CreateIndex
from sqlalchemy.dialects import sqlite
from crawler.db import models
from crawler.db.session import make_engine
found = {"before": "sqlalchemy.dialects.postgresql" in sys.modules}
make_engine("sqlite://")
found["sqlite engine"] = "sqlalchemy.dialects.postgresql" in sys.modules
table = models.ArticleSignature.__table__
found["sqlite ddl"] = sorted(
    str(CreateIndex(i).compile(dialect=sqlite.dialect())) for i in table.indexes
)
make_engine("postgresql://crawler@127.0.0.1:9/archive")
make_engine("postgresql://crawler@127.0.0.1:9/archive")  # idempotent
from sqlalchemy.dialects import postgresql
found["postgresql ddl"] = sorted(
    str(CreateIndex(i).compile(dialect=postgresql.dialect())) for i in table.indexes
)
print(json.dumps(found))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout)
    assert found["before"] is False and found["sqlite engine"] is False
    for dialect in ("sqlite ddl", "postgresql ddl"):
        assert [" ".join(ddl.split()) for ddl in found[dialect]] == [
            "CREATE INDEX ix_article_signatures_published_at ON article_signatures (published_at)",
            "CREATE INDEX ix_article_signatures_reprint_of ON article_signatures (reprint_of)"
            " WHERE reprint_of IS NOT NULL",
            "CREATE INDEX ix_article_signatures_story_id ON article_signatures (story_id)"
            " WHERE story_id IS NOT NULL",
        ]


def test_a_crawl_and_its_writer_on_sqlite_load_no_postgresql_dialect_when_storing():
    # the crawl's process signs each article (crawler.stories.signing) without the story
    # index's SQL, and the index (in the writer) builds its PostgreSQL-only statements, which
    # need the dialect's ARRAY, only when asked to: on SQLite neither imports the dialect
    code = """
import json, sys
from crawler.pipelines.store import StorePipeline
from crawler.stories.signing import text_signature
signature = text_signature("Kim meets Shoigu", "Kim Jong Un met Sergei Shoigu in Pyongyang today.")
found = {"crawl": sorted(m for m in ("crawler.stories.index", "sqlalchemy.dialects.postgresql")
                         if m in sys.modules)}
from crawler.db.session import Archive
from crawler.stories import index
found["writer"] = "sqlalchemy.dialects.postgresql" in sys.modules
index._insert_signature_array()
found["postgresql statement"] = "sqlalchemy.dialects.postgresql" in sys.modules
found["minhash"] = len(signature.minhash)
print(json.dumps(found))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {
        "crawl": [],
        "writer": False,
        "postgresql statement": True,
        "minhash": 126 * 4,
    }


def test_crawl_run_from_the_command_line_imports_no_typer(monkeypatch):
    # crawler/cli/quick.py parses `crawl`'s options itself and calls crawler/cli/crawling.py,
    # which needs no typer (14 ms of start-up); typer's own command calls the same function
    code = """
import json, sys
from crawler.cli import quick
command = quick.COMMANDS["crawl"]
parsed = quick.parse(command, ["kcna_watch", "--no-progress", "-s", "X=1"])
__import__("crawler.cli." + command.module)
work = getattr(sys.modules["crawler.cli." + command.module], command.run)
import inspect
found = {"typer": "typer" in sys.modules, "parsed": sorted(parsed)}
found["parameters"] = sorted(inspect.signature(work).parameters)
print(json.dumps(found))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout)
    assert found["typer"] is False
    assert set(found["parsed"]) <= set(found["parameters"])
    from crawler.cli import crawl as typer_command

    typer_parameters = inspect.signature(typer_command.crawl).parameters
    assert sorted(typer_parameters) == found["parameters"]
    # the typer command hands every option on under its own name
    handed: dict[str, object] = {}
    import crawler.cli.crawling as crawling

    monkeypatch.setattr(crawling, "crawl", lambda **options: handed.update(options))
    values = {name: f"value of {name}" for name in typer_parameters}
    typer_command.crawl(**values)
    assert handed == values


def test_a_crawl_collects_garbage_less_often_and_gives_the_collector_back():
    from crawler.runner import CRAWL_GC_THRESHOLD, crawl_gc

    class Node:
        other: Node

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with crawl_gc():
        assert gc.get_threshold() == (CRAWL_GC_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > frozen  # start-up's objects are set apart
        # a cycle made during the crawl is still collected
        first, second = Node(), Node()
        first.other, second.other = second, first
        ref = weakref.ref(first)
        del first, second
        gc.collect()
        assert ref() is None
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_crawl_starts_with_the_collector_paused_and_crawls_with_it_on():
    from crawler.cli.crawling import collector_paused
    from crawler.runner import crawl_gc

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()  # start-up's objects outlive it: nothing to collect
        with crawl_gc():
            assert gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with contextlib.suppress(RuntimeError), collector_paused():
        raise RuntimeError("a crawl that fails as it starts")
    assert gc.isenabled()  # given back as it was, even then


def crawl_in_its_own_process(setup: str, db_url: str, kcna, tmp_path) -> Path:
    """`crawler crawl kcna_watch` of the mirror in a child process that first runs `setup`
    (Python that writes what it sees to the file named `path`); that file, once the crawl has
    finished and stored the mirror's 4 articles."""
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": kcna.base_url})
    seen = tmp_path / "seen"
    code = (
        "import sys\npath = sys.argv[1]\n"
        f"{setup}\n"
        'from crawler.cli import main\nsys.argv = ["crawler", *sys.argv[2:]]\nmain()\n'
    )
    result = run_python(
        "-c",
        code,
        str(seen),
        "crawl",
        "kcna_watch",
        "--no-progress",
        *LOOPBACK,
        db_url=db_url,
        sources=sources,
    )
    assert result.returncode == 0, result.stderr
    assert "finished in" in result.stderr and ", 4 new," in result.stderr  # stored by the writer
    return seen


def test_a_crawl_command_runs_its_start_up_without_the_collector(db_url, kcna, tmp_path):
    setup = """
import atexit, contextlib, gc, json
import crawler.runner
found = {}
real = crawler.runner.crawl_gc
@contextlib.contextmanager
def recording():
    found["at the crawl"] = gc.isenabled()
    with real():
        found["while crawling"] = gc.isenabled()
        yield
crawler.runner.crawl_gc = recording
def report():
    found["after"] = gc.isenabled()
    with open(path, "w") as out:
        json.dump(found, out)
atexit.register(report)
"""
    seen = crawl_in_its_own_process(setup, db_url, kcna, tmp_path)
    assert json.loads(seen.read_text()) == {
        "at the crawl": False,
        "while crawling": True,
        "after": True,
    }


def test_a_crawl_opens_the_archive_once_in_its_own_process(db_url, kcna, tmp_path):
    # The command opens the archive (migrating or refusing it) and its crawls use that one:
    # no second engine, first connection and schema check (about 30 ms of start-up on
    # PostgreSQL). The archive writer, a process of its own, opens its own.
    setup = """
import json
from crawler.db import session
real = session.Archive.__init__
def counting(self, url, **options):
    with open(path, "a") as opened:  # the command may end by os._exit
        print(json.dumps(url), file=opened)
    real(self, url, **options)
session.Archive.__init__ = counting
"""
    opened = crawl_in_its_own_process(setup, db_url, kcna, tmp_path)
    assert [json.loads(line) for line in opened.read_text().splitlines()] == [db_url]


def test_a_crawls_own_process_reaches_postgresql_through_the_light_driver(db_url, kcna, tmp_path):
    # psycopg2 is imported in 5-10 ms where psycopg 3 takes 55, on the way to the first request;
    # the archive writer, a process of its own, stores every page through psycopg 3.
    setup = """
import atexit, json
from crawler.db import session
drivers = []
real = session.Archive.__init__
def recording(self, url, **options):
    real(self, url, **options)
    drivers.append(self.engine.driver)
session.Archive.__init__ = recording
def report():
    loaded = {name: name in sys.modules for name in ("psycopg", "psycopg2")}
    with open(path, "w") as out:
        json.dump({"drivers": drivers, **loaded}, out)
atexit.register(report)
"""
    seen = crawl_in_its_own_process(setup, db_url, kcna, tmp_path)
    found = json.loads(seen.read_text())
    if db_url.startswith("postgresql"):
        assert found == {"drivers": ["psycopg2"], "psycopg": False, "psycopg2": True}
    else:
        assert found == {"drivers": ["pysqlite"], "psycopg": False, "psycopg2": False}


def test_a_crawl_imports_scrapys_tls_context_factory_before_the_archives_modules(tmp_path):
    # Its deprecated aliases call `inspect.stack()` as they are made, which looks at every
    # module loaded: made before SQLAlchemy, the models and the driver are, 40 ms less start-up.
    # The crawl's imports come before its sources are read, so an unknown source shows them.
    result = run_python(
        "-X",
        "importtime",
        "-m",
        "crawler.cli",
        "crawl",
        "no_such_source",
        db_url=f"sqlite:///{tmp_path / 'archive.db'}",
        timeout=120,
    )
    assert result.returncode != 0 and "no source named 'no_such_source'" in result.stderr
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    first = imported.index("scrapy.core.downloader.contextfactory")
    for later in ("sqlalchemy", "crawler.db.models", "crawler.db.session"):
        assert later in imported
        assert imported.index(later) > first, later


def test_a_command_and_the_archive_writer_leave_their_objects_to_the_process_end():
    # Torn down by the interpreter, a crawl's objects went through the collector once more:
    # 0.25 to 0.35 s between a crawl's end and its exit. Set apart when the work is done (the
    # command's own end, failed or not, and the writer's once it has closed the archive).
    probe = (
        "import atexit, gc, sys; "
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, file=sys.stderr))"
    )
    main = "from crawler.cli import main; sys.argv = ['crawler', *sys.argv[1:]]; main()"
    command = run_python("-c", f"{probe}; {main}", "crawl", "no_such_source", timeout=120)
    assert command.returncode == 2, command.stderr
    assert "no source named 'no_such_source'" in command.stderr
    assert "frozen True" in command.stderr
    # the writer, its input closed before it was given an archive: it stops, and exits 0
    writer = run_python(
        "-c",
        f"{probe}; import crawler.db.writer as w; sys.exit(w.main())",
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert writer.returncode == 0, writer.stderr
    assert "frozen True" in writer.stderr
