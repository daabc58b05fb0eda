"""The web interface and the JSON API, one FastAPI application over a read-only archive."""

from __future__ import annotations

import itertools
import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import psycopg
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from crawler.config import SourcesFile
from crawler.read.search import MARK_END, MARK_START, SearchError
from crawler.read.web import charts, queries
from crawler.read.web.archive import ReadOnlyArchive
from crawler.read.web.diff import version_diff
from crawler.read.web.guard import Guard
from crawler.read.web.queries import MAX_LIMIT, WebError

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
# What an archived page may load when shown: nothing from anywhere (its images, styles and
# scripts were not archived), only what it carries inline; and it runs in a sandbox: no
# script, an opaque origin (never the interface's), no forms, no top navigation.
SNAPSHOT_POLICY = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "media-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
# C0 controls (but tab and newline), DEL and C1 controls: shown as visible symbols, so an
# escape sequence in a title is seen for what it is.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MARKS = re.compile(f"[{MARK_START}{MARK_END}]")
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many items.")]
StoryId = Annotated[int | None, Query(ge=1, description="Only the articles of this story.")]
MinOutlets = Annotated[
    int, Query(alias="min-outlets", ge=1, description="Stories reported by N outlets or more.")
]
Text = Annotated[str | None, Query()]
AllCopies = Annotated[
    bool, Query(alias="all-copies", description="Every copy of a text as a hit of its own.")
]


@dataclass(frozen=True)
class WebConfig:
    database_url: str
    sources: SourcesFile
    token: str | None = None
    failures: int = 3  # runs that must all fail before a source is unhealthy


def _escaped_control(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def visible(text: str) -> str:
    """`text` with control characters written out (ESC as \\x1b), so an escape sequence in a
    title is seen for what it is rather than acted on or dropped."""
    return _CONTROLS.sub(_escaped_control, text)


def _finalize(value: Any) -> Any:
    """Every value a template prints: control characters marked up as visible codes."""
    if isinstance(value, str) and not isinstance(value, Markup) and _CONTROLS.search(value):
        pieces = _CONTROLS.split(value)
        codes = [_escaped_control(m) for m in _CONTROLS.finditer(value)]
        out = escape(pieces[0])
        for code, piece in zip(codes, pieces[1:], strict=True):
            out += Markup('<span class="ctl">{}</span>').format(code) + escape(piece)
        return out
    return value


def marked(snippet: str) -> Markup:
    """A snippet escaped, its highlighted words in <mark>."""
    parts = _MARKS.split(snippet)
    return Markup("").join(
        Markup("<mark>{}</mark>").format(_finalize(part)) if n % 2 else escape(_finalize(part))
        for n, part in enumerate(parts)
    )


def when(value: str | datetime | None) -> str:
    """An instant as 'YYYY-MM-DD HH:MM UTC'."""
    if not value:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def published(
    value: str | datetime | None,
    outlet: str,
    day: str | date | None = None,
    precision: str | None = None,
) -> str:
    """A publication as the article page shows it: the outlet's local date when it gave only
    the day, else its local time."""
    local = queries.local_published(value, outlet, day, precision)
    return local["shown"] if local else "-"


def story_span(story: dict[str, Any]) -> str:
    """A story's first and last publication, each as the article page shows its article's."""
    ends = []
    for key in ("first_published_at", "last_published_at"):
        moment = datetime.fromisoformat(story[key])
        article = next(
            (
                a
                for a in story["articles"]
                if a["published_at"] and datetime.fromisoformat(a["published_at"]) == moment
            ),
            None,
        )
        if article is None:  # an article placed by when it was seen: no publication date
            ends.append(when(moment))
            continue
        day, precision = article.get("published_date"), article.get("published_precision")
        ends.append(published(moment, article["outlet"], day, precision))
    return " – ".join(ends)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"


def make_templates() -> Environment:
    env = Environment(
        loader=PackageLoader("crawler.read.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(marked=marked, when=when, duration=duration, visible=visible)
    env.globals.update(
        outcome_colours=charts.OUTCOME_COLOURS,
        link=link,
        published=published,
        story_span=story_span,
    )
    return env


def link(path: str, **params: Any) -> str:
    """`path` with the non-empty parameters as its query string."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{path}?{query}" if query else path


def create_app(config: WebConfig, archive: ReadOnlyArchive | None = None) -> FastAPI:
    """The application; it opens the archive read-only (or uses the one given)."""
    archive = archive or ReadOnlyArchive(config.database_url)
    queries.outlet_timezones()  # loads the spiders once, before the first request waits for it
    templates = make_templates()

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status)

    def login_page(path: str, query: list[tuple[str, str]], wrong: bool) -> str:
        return templates.get_template("login.html").render(path=path, query=query, wrong=wrong)

    app = FastAPI(
        title="News archive",
        summary="Read-only access to the news archive: search, articles with their versions "
        "and snapshots, sources, runs, figures.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,  # Swagger UI loads its assets from a CDN; the archive may be offline
        redoc_url=None,
    )
    app.state.archive = archive
    app.add_middleware(Guard, token=config.token, login_page=login_page)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    session = archive.sessions  # one session a request, closed at the end of its `with`

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def error_response(request: Request, status: int, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"error": message, "status": status}, status_code=status)
        return render("error.html", status=status, status_code=status, message=message)

    @app.exception_handler(WebError)
    async def on_web_error(request: Request, exc: WebError) -> Response:
        return error_response(request, exc.status, exc.message)

    @app.exception_handler(SearchError)
    async def on_search_error(request: Request, exc: SearchError) -> Response:
        return error_response(request, 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"][1:]) or "request"
            problems.append(f"{where}: {error['msg']}")
        return error_response(request, 400, "; ".join(problems))

    async def on_unreachable(request: Request, exc: Exception) -> Response:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
        orig = exc.orig if isinstance(exc, OperationalError) else exc  # the driver's error
        reason = str(orig).splitlines()[0] if orig is not None else type(exc).__name__
        return error_response(request, 503, f"the archive cannot be read now: {reason}")

    # SQLAlchemy's, and the drivers' own from the queries run by crawler/db/reader.py
    for unreachable in (OperationalError, sqlite3.OperationalError, psycopg.OperationalError):
        app.add_exception_handler(unreachable, on_unreachable)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        logger.exception("%s %s failed", request.method, request.url.path)
        return error_response(request, 500, f"internal error ({type(exc).__name__}); see the log")

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no such page: {request.url.path}"
        elif exc.status_code == 405:
            message = (
                f"{request.method} is not allowed on {request.url.path}: the archive is read-only"
            )
        return error_response(request, exc.status_code, message)

    # --- pages ---------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/search", status_code=307)

    @app.get("/search", response_class=HTMLResponse, tags=["pages"])
    def search_page(
        q: Text = None,
        outlet: Text = None,
        topic: Text = None,
        since: Text = None,
        until: Text = None,
        story: StoryId = None,
        all_copies: AllCopies = False,
        cursor: Text = None,
        limit: Limit = 20,
    ) -> HTMLResponse:
        """The search page (HTML)."""
        form = {
            "q": q or "",
            "outlet": outlet,
            "topic": topic,
            "since": since,
            "until": until,
            "story": story,
            "all_copies": all_copies,
        }
        with session() as db:
            outlets, topics = queries.outlet_names(db), queries.topic_names(db)
            context: dict[str, Any] = {"form": form, "outlets": outlets, "topics": topics}
            try:
                filters = queries.article_filter(db, outlet, topic, since, until, story)
                if story is not None:
                    context["story"] = queries.story_record(db, story)
                if q and q.strip():
                    context["page"] = queries.search_page(db, q, filters, cursor, limit, all_copies)
                else:
                    context["latest"] = queries.articles_page(db, filters, cursor, limit)
            except (WebError, SearchError) as exc:
                message = exc.message if isinstance(exc, WebError) else str(exc)
                return render("search.html", status=400, error=message, **context)
        return render("search.html", limit=limit, **context)

    @app.get("/articles/{article_id}", response_class=HTMLResponse, tags=["pages"])
    def article_page(article_id: int) -> HTMLResponse:
        """An article with its versions, their differences and its snapshots (HTML)."""
        with session() as db:
            article = queries.article_record(db, article_id)
        versions = article["versions"]
        changes = [
            (newer, version_diff(older, newer)) for older, newer in itertools.pairwise(versions)
        ]
        return render("article.html", article=article, changes=changes)

    @app.get("/snapshots/{snapshot_id}", response_class=HTMLResponse, tags=["pages"])
    def snapshot_page(snapshot_id: int) -> HTMLResponse:
        """An archived page shown as it was, in a sandboxed frame (HTML)."""
        with session() as db:
            snapshot, _ = queries.snapshot_of(db, snapshot_id)
            article_id = queries.snapshot_article(db, snapshot)
        return render("snapshot.html", snapshot=snapshot, article_id=article_id)

    @app.get("/raw/snapshots/{snapshot_id}", tags=["pages"])
    def snapshot_raw(snapshot_id: int) -> Response:
        """The archived bytes, served under a sandbox policy: no script, an opaque origin."""
        with session() as db:
            snapshot, body = queries.snapshot_of(db, snapshot_id)
        media = _content_type(snapshot.headers, body, snapshot.final_url)
        return Response(
            body,
            media_type=media,
            headers={
                "Content-Security-Policy": SNAPSHOT_POLICY,
                "X-Frame-Options": "SAMEORIGIN",
                "Cross-Origin-Resource-Policy": "same-origin",
                "Cache-Control": "private, max-age=3600",
            },
        )

    @app.get("/raw/snapshots/{snapshot_id}/download", tags=["pages"])
    def snapshot_download(snapshot_id: int) -> Response:
        """The archived bytes as a file."""
        with session() as db:
            snapshot, body = queries.snapshot_of(db, snapshot_id)
        return Response(
            body,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="snapshot-{snapshot.id}.html"',
                "Content-Security-Policy": SNAPSHOT_POLICY,
                "X-Archive-Sha256": snapshot.sha256,
            },
        )

    @app.get("/sources", response_class=HTMLResponse, tags=["pages"])
    def sources_page() -> HTMLResponse:
        """Every source: schedule, health, fallbacks, charts and last runs (HTML)."""
        with session() as db:
            overview = queries.sources_overview(db, config.sources, config.failures)
        for source in overview:
            source["articles_chart"] = charts.per_day_bars(
                f"articles per day, {source['source']}", source["articles_per_day"]
            )
            source["outcomes_chart"] = charts.outcome_bars(
                f"runs per day by outcome, {source['source']}", source["run_outcomes"]
            )
        total: dict[str, int] = {}
        for source in overview:
            for day, count in source["articles_per_day"].items():
                total[day] = total.get(day, 0) + count
        return render(
            "sources.html",
            sources=overview,
            total_chart=charts.per_day_bars("articles per day, all outlets", total),
            days=list(total),
        )

    @app.get("/runs", response_class=HTMLResponse, tags=["pages"])
    def runs_page(
        source: Text = None, status: Text = None, cursor: Text = None, limit: Limit = 50
    ) -> HTMLResponse:
        """Every run, newest first (HTML)."""
        with session() as db:
            page = queries.runs_page(db, source, status, cursor, limit)
            names = queries.outlet_names(db)
        return render(
            "runs.html",
            page=page,
            source=source,
            wanted_status=status,
            limit=limit,
            names=names,
            statuses=queries.RUN_STATUSES,
        )

    @app.get("/stories", response_class=HTMLResponse, tags=["pages"])
    def stories_page(
        since: Text = None,
        until: Text = None,
        topic: Text = None,
        outlet: Text = None,
        min_outlets: MinOutlets = 1,
        cursor: Text = None,
        limit: Limit = 50,
    ) -> HTMLResponse:
        """Stories newest first, with their outlets and articles (HTML; `crawler stories`)."""
        form = {
            "since": since,
            "until": until,
            "topic": topic,
            "outlet": outlet,
            "min_outlets": min_outlets,
            "limit": limit,
        }
        with session() as db:
            context: dict[str, Any] = {
                "form": form,
                "outlets": queries.outlet_names(db),
                "topics": queries.topic_names(db),
            }
            try:
                filters = queries.story_filter(db, since, until, topic, outlet, min_outlets)
                context["page"] = queries.stories_page(db, filters, cursor, limit)
            except WebError as exc:
                return render("stories.html", status=exc.status, error=exc.message, **context)
        return render("stories.html", **context)

    @app.get("/stories/{story_id}", response_class=HTMLResponse, tags=["pages"])
    def story_page(story_id: int) -> HTMLResponse:
        """One story: its outlets and articles, earliest first (HTML)."""
        with session() as db:
            story = queries.story_record(db, story_id)
        return render("story.html", story=story)

    @app.get("/changes", response_class=HTMLResponse, tags=["pages"])
    def changes_page(
        since: Text = None,
        outlet: Text = None,
        topic: Text = None,
        cursor: Text = None,
        limit: Limit = 100,
    ) -> HTMLResponse:
        """Every article edited since then, with a word diff, newest first (HTML;
        `crawler changes`)."""
        form = {"since": since or "7d", "outlet": outlet, "topic": topic, "limit": limit}
        with session() as db:
            context: dict[str, Any] = {
                "form": form,
                "outlets": queries.outlet_names(db),
                "topics": queries.topic_names(db),
            }
            try:
                page = queries.edits_since(db, since, outlet, topic, cursor, limit)
            except WebError as exc:
                return render("changes.html", status=exc.status, error=exc.message, **context)
        return render("changes.html", page=page, first_page=not cursor, **context)

    # --- API -----------------------------------------------------------------------------------

    @app.get("/api/search", tags=["api"])
    def api_search(
        q: Annotated[str, Query(description="The query, in `crawler search` syntax.")],
        outlet: Text = None,
        topic: Text = None,
        since: Annotated[str | None, Query(description="Published on or after (ISO).")] = None,
        until: Annotated[str | None, Query(description="Published before (ISO).")] = None,
        story: StoryId = None,
        all_copies: AllCopies = False,
        cursor: Annotated[str | None, Query(description="next_cursor of a page.")] = None,
        limit: Limit = 20,
    ) -> dict[str, Any]:
        """Ranked full-text search: the total of hits (copies of one text are one hit, with
        their number, unless `all-copies`), a page of hits, and the next page's cursor."""
        with session() as db:
            filters = queries.article_filter(db, outlet, topic, since, until, story)
            page = queries.search_page(db, q, filters, cursor, limit, all_copies)
        for hit in page.hits:
            hit["snippet"] = _MARKS.sub(
                lambda m: "<mark>" if m.group() == MARK_START else "</mark>", hit["snippet"]
            )
        return {
            "query": page.query,
            "total": page.total,
            "offset": page.offset,
            "hits": page.hits,
            "next_cursor": page.next_cursor,
        }

    @app.get("/api/articles", tags=["api"])
    def api_articles(
        outlet: Text = None,
        topic: Text = None,
        since: Text = None,
        until: Text = None,
        story: StoryId = None,
        cursor: Text = None,
        limit: Limit = 20,
    ) -> dict[str, Any]:
        """Articles, newest archived first, with the CLI's filters."""
        with session() as db:
            filters = queries.article_filter(db, outlet, topic, since, until, story)
            return queries.articles_page(db, filters, cursor, limit)

    @app.get("/api/articles/{article_id}", tags=["api"])
    def api_article(article_id: int) -> dict[str, Any]:
        """One article with every version (and its diff) and every snapshot."""
        with session() as db:
            article = queries.article_record(db, article_id)
        for snapshot in article["snapshots"]:
            snapshot["raw_url"] = f"/raw/snapshots/{snapshot['id']}"
        return article

    @app.get("/api/stories", tags=["api"])
    def api_stories(
        since: Annotated[
            str | None,
            Query(description="Reported on or after: 2d, 12h back, a day (local) or a time."),
        ] = None,
        until: Annotated[
            str | None,
            Query(description="Begun on or before a day (local), or before 2d, 12h or a time."),
        ] = None,
        topic: Text = None,
        outlet: Text = None,
        min_outlets: MinOutlets = 1,
        cursor: Annotated[str | None, Query(description="next_cursor of a page.")] = None,
        limit: Limit = 50,
    ) -> dict[str, Any]:
        """Stories newest first, each as `crawler stories --json` gives it."""
        with session() as db:
            filters = queries.story_filter(db, since, until, topic, outlet, min_outlets)
            return queries.stories_page(db, filters, cursor, limit)

    @app.get("/api/stories/{story_id}", tags=["api"])
    def api_story(story_id: int) -> dict[str, Any]:
        """One story with its articles, earliest first."""
        with session() as db:
            return queries.story_record(db, story_id)

    @app.get("/api/changes", tags=["api"])
    def api_changes(
        since: Annotated[
            str | None, Query(description="Edits since: 2d, 12h back, or ISO (default 7d).")
        ] = None,
        outlet: Text = None,
        topic: Text = None,
        cursor: Annotated[str | None, Query(description="next_cursor of a page.")] = None,
        limit: Limit = 100,
    ) -> dict[str, Any]:
        """Every edit made since then, newest first, as `crawler changes --json` gives it."""
        with session() as db:
            page = queries.edits_since(db, since, outlet, topic, cursor, limit)
        return {
            "since": page.since.isoformat(),
            "changes": [e.as_dict() for e in page.edits],
            "next_cursor": page.next_cursor,
        }

    @app.get("/api/sources", tags=["api"])
    def api_sources() -> dict[str, Any]:
        """Every source: schedule, next run, health, fallback counts, last runs, charts' data."""
        with session() as db:
            return {"sources": queries.sources_overview(db, config.sources, config.failures)}

    @app.get("/api/runs", tags=["api"])
    def api_runs(
        source: Text = None, status: Text = None, cursor: Text = None, limit: Limit = 50
    ) -> dict[str, Any]:
        """Crawl runs, newest first."""
        with session() as db:
            return queries.runs_page(db, source, status, cursor, limit)

    @app.get("/api/stats", tags=["api"])
    def api_stats(topic: Text = None) -> dict[str, Any]:
        """Per outlet and per topic figures (`crawler stats --json`)."""
        from crawler.read.stats import collect_stats

        with session() as db:
            queries.article_filter(db, None, topic, None, None)
            return collect_stats(db, topic=topic or None).as_dict()

    @app.get("/api/topics", tags=["api"])
    def api_topics() -> dict[str, Any]:
        """The topics and how many articles each tags."""
        with session() as db:
            return {"topics": queries.topics_list(db)}

    return app


def _content_type(headers: dict[str, Any], body: bytes, url: str) -> str:
    """The Content-Type to show a stored response under: as served (text/html when it gave
    none), but UTF-8 where the crawler read it as UTF-8 because the declared charset misreads
    the bytes (crawler.middlewares.CharsetMiddleware), so the page shows as it was read."""
    from scrapy.http import HtmlResponse

    from crawler.middlewares import corrected_encoding

    declared = "text/html"
    for name, values in headers.items():
        if name.lower() == "content-type":
            value = values[0] if isinstance(values, list) and values else values
            if isinstance(value, str) and value.strip():
                declared = value.strip()
    if not declared.lower().startswith(("text/html", "application/xhtml")):
        return declared
    response = HtmlResponse(url, body=body, headers=headers)
    if corrected_encoding(response) is not None:
        return declared.split(";")[0] + "; charset=utf-8"
    return declared
