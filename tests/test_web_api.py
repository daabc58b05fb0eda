"""`crawler web`'s JSON API through HTTP, on the backend under test: search with filters and
cursors, articles with versions and snapshots, sources, runs, stats, topics, errors, the token,
and the archive left untouched."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from crawler.db.models import Article, ArticleVersion, Snapshot
from crawler.db.session import Archive
from tests.conftest import fresh_archive_url, run_cli
from tests.web import (
    HOSTILE_TITLE,
    RECENT_ARTICLES,
    SHOIGU_ARTICLES,
    TOKEN,
    CallHome,
    Served,
    serve,
    start_web,
)


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("web-api")
    archive_urls = fresh_archive_url(request, folder / "archive.db")
    db_url = next(archive_urls)
    with CallHome() as home:
        yield from serve(db_url, folder / "web.log", home)
    next(archive_urls, None)


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as opened:
        yield opened


def test_search_gives_the_total_ranked_hits_with_marked_snippets_and_pages_by_cursor(client):
    first = client.get("/api/search", params={"q": "Shoigu", "limit": 10})
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    page = first.json()
    assert page["total"] == SHOIGU_ARTICLES + 1  # and the hostile title
    assert len(page["hits"]) == 10
    hit = page["hits"][0]
    assert {"id", "url", "outlet", "title", "published_at", "snippet"} <= set(hit)
    assert "<mark>Shoigu</mark>" in " ".join(h["snippet"] for h in page["hits"])
    seen = [h["id"] for h in page["hits"]]
    cursor = page["next_cursor"]
    while cursor:
        more = client.get("/api/search", params={"q": "Shoigu", "limit": 10, "cursor": cursor})
        assert more.status_code == 200
        seen += [h["id"] for h in more.json()["hits"]]
        cursor = more.json()["next_cursor"]
    assert len(seen) == len(set(seen)) == SHOIGU_ARTICLES + 1


def test_search_takes_the_clis_filters(client, served):
    by_outlet = client.get("/api/search", params={"q": "Shoigu", "outlet": "urdupoint"}).json()
    assert by_outlet["total"] == 9 and {h["outlet"] for h in by_outlet["hits"]} == {"urdupoint"}
    by_topic = client.get("/api/search", params={"q": "Shoigu", "topic": "dprk-russia"}).json()
    assert sorted(h["id"] for h in by_topic["hits"]) == served.corpus.shoigu[:5]
    dated = client.get(
        "/api/search", params={"q": "Shoigu", "since": "2024-07-05", "until": "2024-07-08"}
    ).json()
    # both ends inclusive, on the publication's own day, as `crawler search` reads them
    assert dated["total"] == 4
    assert {h["published_date"] for h in dated["hits"]} == {
        "2024-07-05",
        "2024-07-06",
        "2024-07-07",
        "2024-07-08",
    }


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"q": "Shoigu", "outlet": "nowhere"}, 400, "no outlet 'nowhere'"),
        ({"q": "Shoigu", "topic": "cats"}, 400, "no topic 'cats'"),
        ({"q": "Shoigu", "since": "yesterday"}, 400, "since 'yesterday' is not a date"),
        ({"q": "Shoigu", "limit": "1000"}, 400, "limit"),
        ({"q": "Shoigu", "cursor": "garbage"}, 400, "cursor 'garbage'"),
        ({"q": "!!!"}, 400, "cannot search for '!!!'"),
        ({"q": "   "}, 400, "empty"),
        ({}, 400, "q: Field required"),
    ],
)
def test_bad_requests_are_json_errors_naming_the_input(client, params, status, words):
    answer = client.get("/api/search", params=params)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert words in answer.json()["error"] and answer.json()["status"] == status


def test_a_cursor_of_another_search_is_refused(client):
    cursor = client.get("/api/search", params={"q": "Shoigu", "limit": 5}).json()["next_cursor"]
    answer = client.get("/api/search", params={"q": "Pyongyang", "cursor": cursor})
    assert answer.status_code == 400 and "another search" in answer.json()["error"]


def test_article_has_every_version_with_its_diff_and_every_snapshot(client, served):
    answer = client.get(f"/api/articles/{served.corpus.edited}")
    assert answer.status_code == 200
    article = answer.json()
    assert article["outlet"] == "kcna_watch" and article["version"] == 2
    first, second = article["versions"]
    assert "more than 30 units" in first["body"] and "more than 40 units" in second["body"]
    assert "-The university has set up more than 30 units." in second["diff"]
    assert "+The university has set up more than 40 units." in second["diff"]
    assert len(article["snapshots"]) == 2
    archive = Archive(served.db_url)
    with archive.sessions() as session:
        stored = session.scalars(select(Snapshot).order_by(Snapshot.id)).all()
        wanted = [s for s in stored if s.final_url == article["url"]]
    archive.dispose()
    assert [s["id"] for s in article["snapshots"]] == [s.id for s in wanted]
    raw = client.get(article["snapshots"][0]["raw_url"])
    assert raw.status_code == 200
    assert hashlib.sha256(raw.content).hexdigest() == article["snapshots"][0]["sha256"]


def test_article_gives_the_local_date_and_topics(client, served):
    day_only = client.get(f"/api/articles/{served.corpus.day_only}").json()
    assert day_only["published_at"] == "2024-12-11T15:00:00+00:00"
    assert day_only["published"]["date"] == "2024-12-12"
    assert day_only["published"]["time"] is None
    assert day_only["published"]["timezone"] == "Asia/Pyongyang"
    tagged = client.get(f"/api/articles/{served.corpus.shoigu[0]}").json()
    assert tagged["topics"] == ["dprk-russia"]
    assert tagged["published"]["time"] == "05:00"  # midnight UTC in Asia/Karachi (UTC+5)
    assert tagged["published"]["timezone"] == "Asia/Karachi"
    listed = client.get("/api/articles", params={"outlet": "kcna_watch"}).json()["articles"]
    day = next(a for a in listed if a["id"] == served.corpus.day_only)
    assert (day["published_date"], day["published_precision"]) == ("2024-12-12", "day")
    latest = client.get("/search", params={"outlet": "kcna_watch"}).text  # no query: the latest
    assert '<span class="published">2024-12-12</span>' in latest and "15:00 UTC" not in latest


def test_a_snapshot_is_served_under_a_sandbox_policy(client, served):
    raw = client.get(f"/raw/snapshots/{served.corpus.hostile_snapshot}")
    policy = raw.headers["content-security-policy"]
    assert policy.startswith("sandbox;") and "default-src 'none'" in policy
    assert "allow-scripts" not in policy and "allow-same-origin" not in policy
    assert raw.headers["x-content-type-options"] == "nosniff"
    download = client.get(f"/raw/snapshots/{served.corpus.hostile_snapshot}/download")
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.content == raw.content


def test_a_utf8_page_declared_latin1_is_shown_as_the_crawler_read_it(client, served):
    raw = client.get(f"/raw/snapshots/{served.corpus.misdeclared_snapshot}")
    assert raw.headers["content-type"] == "text/html; charset=utf-8"
    assert "Lebanon’s" in raw.text
    exact = client.get(f"/raw/snapshots/{served.corpus.misdeclared_snapshot}/download")
    assert (
        exact.content
        == "<html><body><p id='text'>Lebanon’s army said so.</p></body></html>".encode()
    )


def test_hostile_text_comes_back_as_data(client, served):
    article = client.get(f"/api/articles/{served.corpus.hostile}").json()
    assert article["title"] == HOSTILE_TITLE


def test_articles_list_pages_by_cursor_with_filters(client, served):
    seen: list[int] = []
    cursor = None
    while True:
        params = {"outlet": "kcna_watch", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/articles", params=params).json()
        seen += [a["id"] for a in page["articles"]]
        assert {a["outlet"] for a in page["articles"]} == {"kcna_watch"}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(
        [served.corpus.edited, served.corpus.hostile, served.corpus.day_only], reverse=True
    )


def test_unknown_things_are_404_json(client):
    for path, words in (
        ("/api/articles/999999", "no article with id 999999"),
        ("/api/nothing", "no such page: /api/nothing"),
        ("/raw/snapshots/999999", "no snapshot with id 999999"),
    ):
        answer = client.get(path)
        assert answer.status_code == 404 and words in answer.text
    assert client.get("/api/articles/abc").status_code == 400


def test_writes_are_refused(client):
    answer = client.post("/api/search", params={"q": "x"})
    assert answer.status_code == 405 and "read-only" in answer.json()["error"]


def test_sources_runs_stats_topics(client, served):
    sources = {s["source"]: s for s in client.get("/api/sources").json()["sources"]}
    kcna = sources["kcna_watch"]
    assert kcna["articles"] == 3
    assert kcna["fallbacks"] == {"generic/body": 3, "metadata/title": 1}
    assert kcna["failed_of_last_runs"] == [1, 3]
    assert [r["status"] for r in kcna["last_runs"]] == ["finished", "failed", "finished"]
    assert kcna["last_runs"][0]["duration_seconds"] == 75
    assert sum(sum(day.values()) for day in kcna["run_outcomes"].values()) == 3
    assert kcna["schedule"] == "every 2h"  # the bundled sources file

    runs = client.get("/api/runs", params={"limit": 2}).json()
    assert [r["status"] for r in runs["runs"]] == ["finished", "failed"]
    rest = client.get("/api/runs", params={"limit": 2, "cursor": runs["next_cursor"]}).json()
    assert [r["status"] for r in rest["runs"]] == ["finished"] and rest["next_cursor"] is None
    failed = client.get("/api/runs", params={"status": "failed"}).json()["runs"]
    assert [r["error_log"] for r in failed] == ["DNS lookup failed"]
    assert client.get("/api/runs", params={"status": "odd"}).status_code == 400

    stats = client.get("/api/stats").json()
    counts = {o["outlet"]: o["articles"] for o in stats["outlets"]}
    assert counts == {
        "al_mayadeen": 8,
        "islam_times": 8 + 1,
        "kcna_watch": 3,
        "urdupoint": 9 + RECENT_ARTICLES,
    }
    recent = {o["outlet"]: o["last_30_days"] for o in stats["outlets"]}
    assert recent["urdupoint"] == RECENT_ARTICLES
    assert sum(sources["urdupoint"]["articles_per_day"].values()) == RECENT_ARTICLES
    topics = client.get("/api/topics").json()["topics"]
    assert topics == [{"topic": "dprk-russia", "articles": 5, "applied_at": None}]


def test_openapi_describes_the_api(client):
    spec = client.get("/api/openapi.json").json()
    for path in (
        "/api/search",
        "/api/articles",
        "/api/articles/{article_id}",
        "/api/sources",
        "/api/runs",
        "/api/stats",
        "/api/topics",
    ):
        assert "get" in spec["paths"][path]
    names = {p["name"] for p in spec["paths"]["/api/search"]["get"]["parameters"]}
    assert names == {
        "q", "outlet", "topic", "since", "until", "story", "all-copies", "cursor", "limit"
    }  # fmt: skip
    changes = {p["name"] for p in spec["paths"]["/api/changes"]["get"]["parameters"]}
    assert changes == {"since", "outlet", "topic", "cursor", "limit"}


def test_the_archive_is_not_written(client, served):
    archive = Archive(served.db_url)
    with archive.sessions() as session:
        before = (
            session.scalar(select(func.count()).select_from(Article)),
            session.scalar(select(func.count()).select_from(ArticleVersion)),
        )
    archive.dispose()
    for path in ("/api/search?q=Shoigu", f"/api/articles/{served.corpus.edited}", "/sources"):
        assert client.get(path).status_code == 200
    archive = Archive(served.db_url)
    with archive.sessions() as session:
        after = (
            session.scalar(select(func.count()).select_from(Article)),
            session.scalar(select(func.count()).select_from(ArticleVersion)),
        )
    archive.dispose()
    assert before == after


def test_the_token_guards_every_page_and_endpoint(served, tmp_path):
    guarded = start_web(served.db_url, tmp_path / "web.log", token=TOKEN)
    try:
        with httpx.Client(base_url=guarded.url, timeout=30) as client:
            for path in (
                "/api/search?q=Shoigu",
                "/api/openapi.json",
                "/search",
                f"/raw/snapshots/{served.corpus.hostile_snapshot}",
            ):
                answer = client.get(path)
                assert answer.status_code == 401, path
                assert answer.headers["www-authenticate"] == "Bearer"
            assert "needs a token" in client.get("/api/search?q=x").json()["error"]
            assert client.get("/static/style.css").status_code == 200  # for the login page
            wrong = client.get("/api/search?q=x", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            right = client.get(
                "/api/search", params={"q": "Shoigu"}, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert right.status_code == 200 and right.json()["total"] == SHOIGU_ARTICLES + 1
            login = client.get("/search", params={"q": "Shoigu", "token": TOKEN})
            assert login.status_code == 303 and login.headers["location"] == "/search?q=Shoigu"
            assert "HttpOnly" in login.headers["set-cookie"]
            after = client.get("/search", params={"q": "Shoigu"})  # the cookie now
            assert after.status_code == 200 and "Shoigu visit report" in after.text
    finally:
        guarded.stop()


def test_web_refuses_a_public_host_without_a_token(served):
    result = run_cli("web", "--host", "0.0.0.0", "--port", "8765", db_url=served.db_url)
    assert result.returncode == 2
    assert "CRAWLER_WEB_TOKEN" in result.stderr and "0.0.0.0" in result.stderr


def test_web_refuses_a_port_in_use(served):
    port = int(served.url.rsplit(":", 1)[1])
    result = run_cli("web", "--port", str(port), db_url=served.db_url)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_web_refuses_an_archive_file_that_does_not_exist(tmp_path):
    missing = tmp_path / "missing.db"
    result = run_cli("web", "--port", "8766", db_url=f"sqlite:///{missing}")
    assert result.returncode == 2 and "no archive at" in result.stderr
    assert not missing.exists()


def test_web_log_shows_it_serves_read_only(served):
    assert "read-only" in Path(served.server.log).read_text()
