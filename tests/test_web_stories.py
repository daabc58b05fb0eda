"""`crawler web`'s stories and changes through HTTP, on the backend under test: `/api/stories`
and `/api/stories/ID` as `crawler stories --json` gives them, with its filters and a cursor;
`/api/changes` as `crawler changes --json`; search within a story; the pages' HTML escaped; the
token over the new routes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import fresh_archive_url, run_cli
from tests.web import HOSTILE_TITLE, TOKEN, ServedStories, serve_stories, start_web

# bench/stories_set.py's keys of the mirrors' articles
MEETING = ("1148653", "kim-jong-un-hosts-russia")  # islam_times, al_mayadeen
SHOIGU = ("1706918", "1707439")  # urdupoint, twice
RATIFICATION = ("287305", "bbs=40311")  # kcna_watch copies pyongyang_times
STORIES = 5


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedStories]:
    folder = tmp_path_factory.mktemp("web-stories")
    archive_urls = fresh_archive_url(request, folder / "archive.db")
    db_url = next(archive_urls)
    yield from serve_stories(db_url, folder / "web.log")
    next(archive_urls, None)


@pytest.fixture(scope="module")
def client(served: ServedStories) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as opened:
        yield opened


def _story_with(stories: list[dict], article_id: int) -> dict:
    return next(s for s in stories if article_id in [a["id"] for a in s["articles"]])


def test_stories_are_what_the_cli_gives_newest_first(client, served):
    response = client.get("/api/stories")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    page = response.json()
    cli = run_cli("stories", "--json", db_url=served.db_url)
    assert cli.returncode == 0, cli.stderr
    assert page == {"stories": json.loads(cli.stdout), "next_cursor": None}
    stories = page["stories"]
    assert len(stories) == STORIES
    newest = [s["last_published_at"] for s in stories]
    assert newest == sorted(newest, reverse=True)
    ids = served.corpus.articles
    meeting = _story_with(stories, ids[MEETING[0]])
    members = {a["id"] for a in meeting["articles"]}
    assert members == {ids[MEETING[0]], ids[MEETING[1]], served.corpus.hostile_copy}
    assert meeting["first_reporter"] == "al_mayadeen" and meeting["outlets"][0] == "al_mayadeen"
    assert meeting["outlet_count"] == 3 and meeting["article_count"] == 3
    hostile = next(a for a in meeting["articles"] if a["id"] == served.corpus.hostile_copy)
    assert hostile["title"] == HOSTILE_TITLE and hostile["reprint_of"] == ids[MEETING[1]]
    ratification = _story_with(stories, ids[RATIFICATION[0]])
    copy = next(a for a in ratification["articles"] if a["id"] == ids[RATIFICATION[0]])
    assert copy["reprint_of"] == ids[RATIFICATION[1]]


def test_one_story_by_id_and_an_unknown_one(client, served):
    stories = client.get("/api/stories").json()["stories"]
    for story in stories:
        assert client.get(f"/api/stories/{story['id']}").json() == story
    missing = client.get("/api/stories/999999")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no story with id 999999", "status": 404}


def test_stories_take_the_clis_filters(client, served):
    ids = served.corpus.articles
    for params, cli_args in (
        ({"outlet": "al_mayadeen"}, ["--outlet", "al_mayadeen"]),
        ({"topic": served.corpus.topic}, ["--topic", served.corpus.topic]),
        ({"min-outlets": 3}, ["--min-outlets", "3"]),
        ({"since": "2024-11-01"}, ["--since", "2024-11-01"]),
        ({"until": "2024-11-01"}, ["--until", "2024-11-01"]),
    ):
        found = client.get("/api/stories", params=params).json()["stories"]
        cli = run_cli("stories", "--json", *cli_args, db_url=served.db_url)
        assert found == json.loads(cli.stdout), params
        assert 0 < len(found) < STORIES, params
    by_outlet = client.get("/api/stories", params={"outlet": "al_mayadeen"}).json()["stories"]
    assert [s["id"] for s in by_outlet] == [_story_with(by_outlet, ids[MEETING[1]])["id"]]
    by_topic = client.get("/api/stories", params={"topic": served.corpus.topic}).json()
    assert {a["id"] for a in by_topic["stories"][0]["articles"]} == {ids[k] for k in SHOIGU}
    recent = client.get("/api/stories", params={"since": "1d"}).json()["stories"]
    assert recent == []  # every story is of 2024


def test_stories_page_by_cursor(client):
    everything = client.get("/api/stories").json()["stories"]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/stories", params=params).json()
        assert len(page["stories"]) <= 2
        seen += page["stories"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == everything
    first = client.get("/api/stories", params={"limit": 2}).json()
    other = client.get(
        "/api/stories", params={"limit": 2, "min-outlets": 2, "cursor": first["next_cursor"]}
    )
    assert other.status_code == 400 and "cursor belongs to other filters" in other.json()["error"]


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/api/stories", {"outlet": "nowhere"}, "no outlet 'nowhere'"),
        ("/api/stories", {"topic": "nothing"}, "no topic 'nothing'"),
        ("/api/stories", {"since": "yesterday"}, "since 'yesterday' is not a duration"),
        ("/api/stories", {"min-outlets": 0}, "min-outlets"),
        ("/api/stories", {"cursor": "garbage"}, "cursor 'garbage'"),
        ("/api/changes", {"since": "soon"}, "since 'soon' is not a duration"),
        ("/api/changes", {"outlet": "nowhere"}, "no outlet 'nowhere'"),
        ("/api/changes", {"limit": 1000}, "limit"),
        ("/api/search", {"q": "Shoigu", "story": 999999}, "no story 999999"),
        ("/api/search", {"q": "Shoigu", "story": "x"}, "story"),
    ],
)
def test_bad_parameters_are_400_naming_them(client, path, params, words):
    response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]


def test_changes_are_what_the_cli_gives_newest_first(client, served):
    response = client.get("/api/changes")
    assert response.status_code == 200
    page = response.json()
    cli = run_cli("changes", "--json", db_url=served.db_url)
    assert cli.returncode == 0, cli.stderr
    assert page["changes"] == json.loads(cli.stdout)
    edits = page["changes"]
    corpus = served.corpus
    # the title a day ago, the hostile body 26 hours ago, the body two days ago; not 30 days ago
    assert [(e["article_id"], e["to_version"]) for e in edits] == [
        (corpus.edited, 3),
        (corpus.hostile_edit, 2),
        (corpus.edited, 2),
    ]
    stamps = [e["changed_at"] for e in edits]
    assert stamps == sorted(stamps, reverse=True)
    title, hostile, body = edits
    assert title["changes"] == [
        {
            "field": "title",
            "diff": "Plant [-fulfils-] {+overfulfils+} plan",
            "old": "Plant fulfils plan",
            "new": "Plant overfulfils plan",
        }
    ]
    assert body["changes"][0]["field"] == "body"
    assert "made [-30-] {+40+} machines" in body["changes"][0]["diff"]
    assert "{+<script>alert(1)</script>" in hostile["changes"][0]["diff"]


def test_changes_take_since_outlet_and_topic(client, served):
    corpus = served.corpus
    older = client.get("/api/changes", params={"since": "60d"}).json()["changes"]
    assert [e["article_id"] for e in older][-1] == corpus.old_edit and len(older) == 4
    dated = client.get("/api/changes", params={"since": "2000-01-01"}).json()
    assert dated["since"].startswith("2000-01-01T00:00:00") and len(dated["changes"]) == 4
    kcna = client.get("/api/changes", params={"outlet": "kcna_watch"}).json()["changes"]
    assert {e["article_id"] for e in kcna} == {corpus.edited} and len(kcna) == 2
    one = client.get("/api/changes", params={"limit": 1}).json()["changes"]
    assert [e["to_version"] for e in one] == [3]
    tagged = client.get("/api/changes", params={"topic": corpus.topic}).json()["changes"]
    assert tagged == []  # the tagged article was never edited


def test_search_and_articles_within_a_story(client, served):
    ids = served.corpus.articles
    stories = client.get("/api/stories").json()["stories"]
    meeting = _story_with(stories, ids[MEETING[0]])
    everywhere = client.get("/api/search", params={"q": "Shoigu"}).json()
    assert {h["story_id"] for h in everywhere["hits"]} - {None, meeting["id"]}
    within = client.get("/api/search", params={"q": "Shoigu", "story": meeting["id"]}).json()
    assert within["hits"] and {h["story_id"] for h in within["hits"]} == {meeting["id"]}
    assert within["total"] <= meeting["article_count"]
    listed = client.get("/api/articles", params={"story": meeting["id"]}).json()["articles"]
    assert {a["id"] for a in listed} == {a["id"] for a in meeting["articles"]}


def test_pages_show_stories_and_changes_escaped(client, served):
    stories = client.get("/stories")
    assert stories.status_code == 200
    html = stories.text
    assert 'href="/stories" aria-current="page">Stories' in html
    assert 'href="/changes">Changes' in html
    assert HOSTILE_TITLE not in html and "&lt;script&gt;document.title" in html
    assert '<span class="ctl">\\x1b</span>' in html
    for story in client.get("/api/stories").json()["stories"]:
        assert f'href="/stories/{story["id"]}"' in html
        for article in story["articles"]:
            assert f'href="/articles/{article["id"]}"' in html
    assert html.count('class="copy-of"') == 4  # three mirror copies and the hostile one
    story_id = client.get("/api/stories", params={"outlet": "al_mayadeen"}).json()["stories"][0]
    one = client.get(f"/stories/{story_id['id']}")
    assert one.status_code == 200 and 'first: <strong class="first">al_mayadeen' in one.text
    assert f'href="/search?story={story_id["id"]}"' in one.text
    assert client.get("/stories/999999").status_code == 404
    bad = client.get("/stories", params={"outlet": "nowhere"})
    assert bad.status_code == 400 and "no outlet &#39;nowhere&#39;" in bad.text
    changes = client.get("/changes")
    assert changes.status_code == 200
    assert "<ins>&lt;script&gt;alert(1)&lt;/script&gt;" in changes.text
    assert "<script>alert" not in changes.text
    assert "<del>fulfils</del> <ins>overfulfils</ins>" in changes.text
    within = client.get("/search", params={"story": story_id["id"]})
    assert within.status_code == 200 and 'id="within-story"' in within.text
    assert within.text.count('class="hit"') == story_id["article_count"]


def test_the_token_guards_the_new_routes(served, tmp_path):
    guarded = start_web(served.db_url, tmp_path / "web.log", token=TOKEN)
    try:
        with httpx.Client(base_url=guarded.url, timeout=30) as client:
            for path in ("/api/stories", "/api/stories/1", "/api/changes"):
                refused = client.get(path)
                assert refused.status_code == 401 and "token" in refused.json()["error"]
                assert HOSTILE_TITLE not in refused.text
                allowed = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
                assert allowed.status_code in (200, 404), path
            for path in ("/stories", "/changes", "/search?story=1"):
                page = client.get(path)
                assert page.status_code == 401 and "needs a token" in page.text
                assert "Plant" not in page.text and "Shoigu" not in page.text
    finally:
        guarded.stop()


def test_changes_page_by_cursor(client, served):
    everything = client.get("/api/changes", params={"since": "60d"}).json()
    assert len(everything["changes"]) == 4 and everything["next_cursor"] is None
    seen, cursors = [], [None]
    while True:
        params = {"since": "60d", "limit": 1} | ({"cursor": cursors[-1]} if cursors[-1] else {})
        page = client.get("/api/changes", params=params).json()
        assert len(page["changes"]) == 1, page  # no empty last page
        seen += page["changes"]
        if not page["next_cursor"]:
            break
        cursors.append(page["next_cursor"])
    assert seen == everything["changes"] and len(cursors) == 4
    first = client.get("/api/changes", params={"since": "60d", "limit": 1}).json()
    other = client.get(
        "/api/changes",
        params={"since": "60d", "outlet": "kcna_watch", "cursor": first["next_cursor"]},
    )
    assert other.status_code == 400 and "cursor belongs to other filters" in other.json()["error"]
    bad = client.get("/api/changes", params={"cursor": "garbage"})
    assert bad.status_code == 400 and "cursor 'garbage'" in bad.json()["error"]
    # the page: the newest edit, then an `Older →` link to the next
    html = client.get("/changes", params={"since": "60d", "limit": 1}).text
    assert html.count('class="edit diff"') == 1 and "older ones on the next page" in html
    last = {"since": "60d", "limit": 1, "cursor": cursors[-1]}
    older = client.get("/changes", params=last).text
    assert 'rel="next"' not in older and f'id="edit-{served.corpus.old_edit}-2"' in older


def test_day_only_dates_on_stories_and_changes(client, served):
    ids = served.corpus.articles
    stories = client.get("/api/stories").json()["stories"]
    ratification = _story_with(stories, ids[RATIFICATION[0]])
    kcna = next(a for a in ratification["articles"] if a["id"] == ids[RATIFICATION[0]])
    # KCNA Watch gave 12/12/2024: midnight in Pyongyang, the 11th in UTC
    assert kcna["published_at"].startswith("2024-12-11T15:00")
    assert (kcna["published_date"], kcna["published_precision"]) == ("2024-12-12", "day")
    html = client.get(f"/stories/{ratification['id']}").text
    assert html.count('<span class="published">2024-12-12</span>') == 2
    assert '<span class="span">2024-12-12 – 2024-12-12</span>' in html
    assert "2024-12-11" not in html
    # the copy's page: its original ("also published by") and its story's two articles
    html = client.get(f"/articles/{ids[RATIFICATION[0]]}").text
    assert html.count('<span class="published">2024-12-12</span>') == 3
    assert "2024-12-12 – 2024-12-12 · <a" in html and "2024-12-11" not in html
    meeting = _story_with(stories, ids[MEETING[1]])
    html = client.get(f"/stories/{meeting['id']}").text
    # a time: the outlet's local time, as the article page shows it (11:59 UTC in Beirut)
    assert '<span class="published">2024-07-19 14:59 (EEST)</span>' in html
    listed = client.get("/stories").text
    assert '<span class="published">2024-12-12</span>' in listed
    assert "15:00 UTC" not in listed
    edits = client.get("/api/changes").json()["changes"]
    edited = next(e for e in edits if e["article_id"] == served.corpus.edited)
    assert (edited["published_date"], edited["published_precision"]) == ("2024-12-12", "day")
    changes = client.get("/changes").text
    assert changes.count('published <span class="published">2024-12-12</span>') == 2
    article = client.get(f"/articles/{served.corpus.edited}").text
    assert '<dd id="published">2024-12-12 <span class="hint">(date only' in article


def test_search_total_counts_copies_of_a_text_once(client, served):
    ids = served.corpus.articles
    copy, original = ids[RATIFICATION[0]], ids[RATIFICATION[1]]
    query = {"q": "ambassador reception"}
    folded = client.get("/api/search", params=query).json()
    everything = client.get("/api/search", params=query | {"all-copies": "true"}).json()
    assert {copy, original} <= {h["id"] for h in everything["hits"]}
    assert everything["total"] == len(everything["hits"])
    shown = [h for h in folded["hits"] if h["id"] in (copy, original)]
    assert len(shown) == 1 and shown[0]["copies"] == 1
    texts = {h["reprint_of"] or h["id"] for h in everything["hits"]}
    assert len(texts) < everything["total"]  # two reprint pairs match
    assert folded["total"] == len(folded["hits"]) == len(texts)
    # paged one hit at a time, the total is what the pages go through
    seen, cursor = [], None
    while True:
        params = query | {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/search", params=params).json()
        assert page["total"] == folded["total"] and len(page["hits"]) == 1, page
        seen += page["hits"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [h["id"] for h in seen] == [h["id"] for h in folded["hits"]]
    html = client.get("/search", params=query).text
    assert f'<p class="total" id="total">{folded["total"]} article' in html
    assert html.count('class="hit"') == folded["total"]
    every = client.get("/search", params=query | {"all-copies": "true"}).text
    assert every.count('class="hit"') == everything["total"]


def test_stories_until_a_day_is_that_local_day_inclusive(client, served):
    """The meeting's first report: 19 July 2024 at 11:59 UTC (14:59 in Beirut); the reception
    on ratification: 12 December in Pyongyang, 11 December 15:00 in UTC."""
    ids = served.corpus.articles
    for option, day, key, wanted in (
        ("--until", "2024-07-19", MEETING[1], True),
        ("--until", "2024-07-18", MEETING[1], False),
        ("--since", "2024-12-12", RATIFICATION[0], True),
        ("--since", "2024-12-13", RATIFICATION[0], False),
    ):
        cli = run_cli("stories", "--json", option, day, db_url=served.db_url)
        assert cli.returncode == 0, cli.stderr
        found = json.loads(cli.stdout)
        members = {a["id"] for s in found for a in s["articles"]}
        assert (ids[key] in members) is wanted, (option, day)
        api = client.get("/api/stories", params={option.removeprefix("--"): day}).json()
        assert api["stories"] == found, (option, day)
