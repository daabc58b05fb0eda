"""One story across outlets: copies (reprints), stories and the feed of edits, on both databases."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from alembic import command
from sqlalchemy import select, update

from bench.stories_set import (
    OTHER_WORDS,
    Labelled,
    edited_copy,
    evaluate,
    labelled_set,
    mirror_articles,
    predicted_labels,
    store_set,
)
from crawler.db import direct
from crawler.db.models import Article, ArticleSignature, SignatureBand, Story, StoryTerm
from crawler.db.session import Archive, alembic_config
from crawler.mirror import MirrorServer, MirrorSet
from crawler.stories import index, index_article, rebuild
from crawler.stories import signatures as sig
from crawler.stories.index import MAX_COPY_CANDIDATES, _band_candidates, numbered_keys
from crawler.stories.signing import text_signature
from tests.conftest import OUTLET_SITES, ROOT, crawl, fresh_archive_url, run_cli, write_sources

# the mirrors' articles, by a part of their URL
KCNA_RATIFICATION = "287305"
PT_RATIFICATION = "bbs=40311"
KCNA_RECEPTION, PT_RECEPTION = "284951", "bbs=40224"
KCNA_KIM_CHAEK, PT_KIM_CHAEK = "283960", "bbs=40402"
ISLAM_TIMES_MEETING = "1148653"
AL_MAYADEEN_MEETING = "kim-jong-un-hosts-russia"
SHOIGU_ARRIVES, SHOIGU_MEETS = "1706918", "1707439"


@dataclass(frozen=True)
class Mirrored:
    db_url: str
    sources: Path
    tmp: Path


@pytest.fixture(scope="module")
def mirrored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mirrored]:
    """An archive of all five mirrors, crawled once for the module (tests keep its links)."""
    tmp = tmp_path_factory.mktemp("stories")
    with MirrorSet(OUTLET_SITES) as mirrors:
        sources = write_sources(tmp / "sources.toml", mirrors.base_urls)
        archive_urls = fresh_archive_url(request, tmp / "archive.db")
        db_url = next(archive_urls)
        try:
            result = crawl("--all", db_url=db_url, sources_file=sources)
            assert result.returncode == 0, result.stdout + result.stderr
            yield Mirrored(db_url, sources, tmp)
        finally:
            next(archive_urls, None)


def _name(url: str, parts: tuple[str, ...]) -> str:
    return next((p for p in parts if p in url), url)


MIRROR_PARTS = (
    KCNA_RATIFICATION,
    PT_RATIFICATION,
    KCNA_RECEPTION,
    PT_RECEPTION,
    KCNA_KIM_CHAEK,
    PT_KIM_CHAEK,
    ISLAM_TIMES_MEETING,
    AL_MAYADEEN_MEETING,
    SHOIGU_ARRIVES,
    SHOIGU_MEETS,
)


def links(db_url: str) -> tuple[dict[str, str], set[frozenset[str]]]:
    """Copies ({copy: original}) and stories (sets of articles), by URL part where known."""
    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            rows = session.execute(
                select(
                    Article.id, Article.url, ArticleSignature.reprint_of, ArticleSignature.story_id
                ).join(ArticleSignature, ArticleSignature.article_id == Article.id)
            ).all()
    finally:
        archive.dispose()
    url_of = {row.id: _name(row.url, MIRROR_PARTS) for row in rows}
    copies = {url_of[r.id]: url_of[r.reprint_of] for r in rows if r.reprint_of is not None}
    stories: dict[int, set[str]] = {}
    for row in rows:
        if row.story_id is not None:
            stories.setdefault(row.story_id, set()).add(url_of[row.id])
    return copies, {frozenset(members) for members in stories.values()}


MIRROR_COPIES = {
    KCNA_RATIFICATION: PT_RATIFICATION,
    KCNA_RECEPTION: PT_RECEPTION,
    KCNA_KIM_CHAEK: PT_KIM_CHAEK,
}
MIRROR_STORIES = {
    frozenset({KCNA_RATIFICATION, PT_RATIFICATION}),
    frozenset({KCNA_RECEPTION, PT_RECEPTION}),
    frozenset({KCNA_KIM_CHAEK, PT_KIM_CHAEK}),
    frozenset({ISLAM_TIMES_MEETING, AL_MAYADEEN_MEETING}),
    frozenset({SHOIGU_ARRIVES, SHOIGU_MEETS}),
}


def test_the_mirrors_copies_point_at_the_publisher_and_the_seed_pairs_are_stories(mirrored):
    copies, stories = links(mirrored.db_url)
    # KCNA Watch republishes The Pyongyang Times on the same day: the publisher is the original
    assert copies == MIRROR_COPIES
    assert stories == MIRROR_STORIES


def test_stories_json_lists_each_story_with_its_articles(mirrored):
    result = run_cli("stories", "--json", db_url=mirrored.db_url)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert len(found) == len(MIRROR_STORIES)
    newest = [s["last_published_at"] for s in found]
    assert newest == sorted(newest, reverse=True)
    meeting = next(s for s in found if any(ISLAM_TIMES_MEETING in a["url"] for a in s["articles"]))
    assert {a["outlet"] for a in meeting["articles"]} == {"islam_times", "al_mayadeen"}
    assert meeting["first_reporter"] == "al_mayadeen"  # 14:59 Beirut is before 21:40 Tehran
    assert meeting["label"] in {a["title"] for a in meeting["articles"]}
    for article in meeting["articles"]:
        assert set(article) >= {"id", "url", "outlet", "title", "published_at", "reprint_of"}
    ratification = next(
        s for s in found if any(KCNA_RATIFICATION in a["url"] for a in s["articles"])
    )
    by_outlet = {a["outlet"]: a for a in ratification["articles"]}
    assert by_outlet["kcna_watch"]["reprint_of"] == by_outlet["pyongyang_times"]["id"]
    assert by_outlet["pyongyang_times"]["reprint_of"] is None
    assert ratification["first_reporter"] == "pyongyang_times"

    two_outlets = run_cli(
        "stories", "--json", "--min-outlets", "2", "--outlet", "islam_times", db_url=mirrored.db_url
    )
    assert [s["id"] for s in json.loads(two_outlets.stdout)] == [meeting["id"]]
    in_2023 = run_cli("stories", "--json", "--until", "2024-01-01", db_url=mirrored.db_url)
    assert [len(s["articles"]) for s in json.loads(in_2023.stdout)] == [2]
    shown = run_cli("stories", db_url=mirrored.db_url)
    assert "2 articles, 2 outlets (al_mayadeen, islam_times); first: al_mayadeen" in shown.stdout
    assert "2 articles, 1 outlet (urdupoint); first: urdupoint" in shown.stdout


def test_stories_rejects_an_unknown_outlet_and_a_bad_date(mirrored):
    unknown = run_cli("stories", "--outlet", "nowhere", db_url=mirrored.db_url)
    assert unknown.returncode == 2 and "no outlet 'nowhere'" in unknown.stderr
    bad = run_cli("changes", "--since", "yesterday", db_url=mirrored.db_url)
    assert bad.returncode == 2 and "--since 'yesterday'" in bad.stderr


def test_show_search_and_export_know_the_copies_and_the_story(mirrored):
    archive = Archive(mirrored.db_url)
    with archive.sessions() as session:
        kcna_id, pt_id = (
            session.scalar(select(Article.id).where(Article.url.contains(part)))
            for part in (KCNA_RATIFICATION, PT_RATIFICATION)
        )
    archive.dispose()
    shown = json.loads(run_cli("show", str(pt_id), "--json", db_url=mirrored.db_url).stdout)
    assert [c["id"] for c in shown["copies"]] == [kcna_id]
    assert shown["reprint_of"] is None and shown["story"]["id"] == shown["story_id"]
    assert {a["id"] for a in shown["story"]["articles"]} == {kcna_id, pt_id}
    text = run_cli("show", str(pt_id), db_url=mirrored.db_url).stdout
    assert "also published by" in text and "kcna_watch" in text

    hits = json.loads(run_cli("search", "Matsegora", "--json", db_url=mirrored.db_url).stdout)
    ratification = [h for h in hits if h["id"] in (kcna_id, pt_id)]
    assert len(ratification) == 1 and ratification[0]["copies"] == 1
    every = json.loads(
        run_cli("search", "Matsegora", "--json", "--all-copies", db_url=mirrored.db_url).stdout
    )
    assert {kcna_id, pt_id} <= {h["id"] for h in every}
    plain = run_cli("search", "Matsegora", db_url=mirrored.db_url).stdout
    assert "+1 copy" in plain

    exported = run_cli("export", "--format", "jsonl", db_url=mirrored.db_url)
    records = {r["id"]: r for r in map(json.loads, exported.stdout.splitlines())}
    assert records[kcna_id]["reprint_of"] == pt_id and records[pt_id]["reprint_of"] is None
    assert records[kcna_id]["story_id"] == records[pt_id]["story_id"] == shown["story_id"]


def test_rebuild_gives_what_incremental_maintenance_gave(mirrored):
    before = links(mirrored.db_url)
    result = run_cli("stories", "rebuild", db_url=mirrored.db_url)
    assert result.returncode == 0, result.stderr
    assert "3 copies, 5 stories" in result.stdout
    assert links(mirrored.db_url) == before


def test_reparse_relinks_an_article_whose_stored_text_had_drifted(mirrored):
    archive = Archive(mirrored.db_url)
    try:
        with archive.transaction() as session:
            kcna_id = session.scalar(
                select(Article.id).where(Article.url.contains(KCNA_RATIFICATION))
            )
            session.execute(
                update(Article).where(Article.id == kcna_id).values(body="A stale text.")
            )
            index_article(session, kcna_id)
    finally:
        archive.dispose()
    drifted, _ = links(mirrored.db_url)
    assert KCNA_RATIFICATION not in drifted
    result = run_cli(
        "reparse", "--outlet", "kcna_watch", db_url=mirrored.db_url, sources=mirrored.sources
    )
    assert result.returncode == 0, result.stderr
    assert links(mirrored.db_url) == (MIRROR_COPIES, MIRROR_STORIES)


def test_warc_import_into_an_empty_archive_links_the_same_copies_and_stories(mirrored, request):
    path = mirrored.tmp / "all.warc.gz"
    exported = run_cli("warc", "export", "-o", str(path), db_url=mirrored.db_url)
    assert exported.returncode == 0, exported.stderr
    target = fresh_archive_url(request, mirrored.tmp / "imported.db")
    imported_url = next(target)
    try:
        result = run_cli("warc", "import", str(path), db_url=imported_url, sources=mirrored.sources)
        assert result.returncode == 0, result.stderr
        assert links(imported_url) == (MIRROR_COPIES, MIRROR_STORIES)
    finally:
        next(target, None)


def _by_key(archive: Archive, ids: dict[str, int]) -> tuple[dict[str, str], dict[str, str]]:
    copies, stories = predicted_labels(archive, ids)
    return copies, stories


def test_an_edited_copy_at_another_outlet_is_linked_to_its_original(archive):
    original = next(a for a in mirror_articles() if a.key == ISLAM_TIMES_MEETING)
    copy = edited_copy(original, "copy", "wire_c", "https://wire-c.example/a/1", seed=1)
    ids = store_set(archive, [original, copy])
    with archive.sessions() as session:
        row = session.get_one(ArticleSignature, ids["copy"])
        assert row.reprint_of == ids[original.key]
        assert 0.5 <= (row.similarity or 0) < 1.0
        assert row.story_id is not None
        assert session.get_one(ArticleSignature, ids[original.key]).story_id == row.story_id


def test_a_copy_stored_before_its_original_is_relinked_when_the_original_arrives(archive):
    original = next(a for a in mirror_articles() if a.key == AL_MAYADEEN_MEETING)
    first_copy = edited_copy(original, "first", "wire_c", "https://wire-c.example/a/1", seed=2)
    second_copy = edited_copy(
        original, "second", "wire_d", "https://wire-d.example/b", seed=3, hours=9
    )
    ids = store_set(archive, [first_copy, second_copy])
    with archive.sessions() as session:
        assert session.get_one(ArticleSignature, ids["second"]).reprint_of == ids["first"]
    ids |= store_set(archive, [original])
    with archive.sessions() as session:
        rows = {
            key: session.get_one(ArticleSignature, article_id) for key, article_id in ids.items()
        }
        assert rows[original.key].reprint_of is None
        assert rows["first"].reprint_of == rows["second"].reprint_of == ids[original.key]
        assert len({r.story_id for r in rows.values()}) == 1
        story = session.get_one(Story, rows["first"].story_id)
        assert story.article_count == 3 and story.outlet_count == 3
        assert story.first_published_at == original.published_at


def test_a_near_copy_at_another_url_of_the_same_outlet_is_a_copy(archive):
    original = next(a for a in mirror_articles() if a.key == SHOIGU_MEETS)
    moved = edited_copy(
        original, "moved", "urdupoint", "https://www.urdupoint.com/en/world/x-1.html", 4
    )
    ids = store_set(archive, [original, moved])
    with archive.sessions() as session:
        assert session.get_one(ArticleSignature, ids["moved"]).reprint_of == ids[original.key]


def test_different_events_sharing_names_are_not_copies_and_stay_apart(archive):
    meeting = next(a for a in mirror_articles() if a.key == AL_MAYADEEN_MEETING)
    others = [a for a in OTHER_WORDS if a.key in ("other-kim-factory", "other-putin-vietnam")]
    store_set(archive, [meeting, *others])
    with archive.sessions() as session:
        rows = session.scalars(select(ArticleSignature)).all()
        assert [r.reprint_of for r in rows] == [None] * 3
        assert [r.story_id for r in rows] == [None] * 3
        assert session.scalar(select(Story.id)) is None
        # the LSH index is in the archive: one row per band
        assert session.scalar(select(SignatureBand.band_key).limit(1)) is not None


def test_the_labelled_set_scores_above_its_floors(archive):
    scores = evaluate(archive)
    assert scores.copy_precision == 1.0 and scores.copy_recall == 1.0
    assert scores.bcubed_f1 >= 0.9
    assert scores.story_recall >= 0.9


def test_rebuild_of_the_labelled_set_equals_what_was_built_as_it_came(archive):
    articles = labelled_set()
    ids = store_set(archive, articles)
    incremental = _by_key(archive, ids)
    assert rebuild(archive) == len(articles)
    rebuilt = _by_key(archive, ids)
    # story ids may differ; the partition and the originals may not
    assert rebuilt[0] == incremental[0]
    assert _partition(rebuilt[1]) == _partition(incremental[1])


def _index_state(archive: Archive) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with archive.sessions() as session:
        signatures = session.execute(
            select(
                ArticleSignature.article_id,
                ArticleSignature.reprint_of,
                ArticleSignature.similarity,
                ArticleSignature.story_id,
            ).order_by(ArticleSignature.article_id)
        ).all()
        stories = session.execute(
            select(
                Story.id,
                Story.label,
                Story.article_count,
                Story.outlet_count,
                Story.first_published_at,
                Story.last_published_at,
            ).order_by(Story.id)
        ).all()
    return [tuple(r) for r in signatures], [tuple(r) for r in stories]


def test_a_new_article_indexed_before_its_signature_is_written_gives_what_the_general_path_gave(
    archive, monkeypatch
):
    # a new article that copies nothing finds its story neighbours before its signature is
    # written and, joining one story alone, is written with it (index._index_new); the general
    # path writes the signature, then links and clusters it: the same index, row for row
    articles = labelled_set()
    store_set(archive, articles)
    joined_alone: list[int] = []  # the articles that joined a story alone (_joined's figures)
    real_values = index._joined_values

    def joined_values(story_id, article_id, when):
        joined_alone.append(article_id)
        return real_values(story_id, article_id, when)

    monkeypatch.setattr(index, "_joined_values", joined_values)
    written: list[int | None] = []  # the story each signature was written with
    # on SQLite a signature is one statement and its bands and terms two more; on PostgreSQL
    # one statement, which also updates the story an article joins alone
    signature_writes = {
        id(index._INSERT_SIGNATURE),
        id(index._insert_signature_array()),
        id(index._insert_signature_joining()),
    }
    real_execute = direct.execute

    def execute(session, statement, params):
        if id(statement) in signature_writes:
            written.append(params["story_id"])
        return real_execute(session, statement, params)

    monkeypatch.setattr(direct, "execute", execute)
    real_index = index.index_article

    def signed(session, article_id, topics_file=None, signature=None, new=None):
        # as the archive writer indexes: with the MinHash the crawl's process computed
        text = index._texts(session, [article_id])[article_id]
        given = text_signature(text.title, text.body, topics_file, vector=False)
        real_index(session, article_id, topics_file, given)

    monkeypatch.setattr(index, "index_article", signed)
    assert rebuild(archive) == len(articles)
    fast = _index_state(archive)
    fast_joins = len(joined_alone)
    # the articles written with their story joined one alone (as did some with copy
    # candidates, through the general path)
    assert 5 <= sum(story is not None for story in written) <= fast_joins
    written.clear()

    def general(session, article_id, topics_file=None, signature=None, new=None):
        text = index._texts(session, [article_id])[article_id]
        shingle_set, values, vector = index._insert_signature(session, text, topics_file, None)
        linked = index._link_copies(session, text, shingle_set, values)
        index._cluster(session, article_id, None if linked else (text.when, vector, text.dated))

    monkeypatch.setattr(index, "index_article", general)
    joined_alone.clear()
    assert rebuild(archive) == len(articles)
    slow = _index_state(archive)
    # the general path joins alone as often (its _cluster ends in _joined then too), each
    # signature written without a story first
    assert fast_joins >= 5 and len(joined_alone) == fast_joins
    assert len(written) == len(articles) and set(written) == {None}

    # story ids are drawn afresh by each rebuild: compare through a renumbering by first use
    def renumbered(state):
        signatures, stories = state
        order: dict[object, int] = {}
        for row in signatures:
            if row[3] is not None:
                order.setdefault(row[3], len(order))
        return (
            [(*row[:3], None if row[3] is None else order[row[3]]) for row in signatures],
            sorted((order[row[0]], *row[1:]) for row in stories),
        )

    assert renumbered(slow) == renumbered(fast)
    assert any(row[3] is not None for row in fast[0]) and any(row[1] for row in fast[0])


def _partition(labels: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for key, label in labels.items():
        groups.setdefault(label, set()).add(key)
    return {frozenset(g) for g in groups.values()}


def test_a_story_outside_the_window_is_another_story(archive):
    meeting = next(a for a in mirror_articles() if a.key == AL_MAYADEEN_MEETING)
    retold = next(a for a in OTHER_WORDS if a.key == "wire-krivoruchko")
    late = replace(retold, key="late", published_at=retold.published_at + timedelta(days=30))
    ids = store_set(archive, [meeting, late])
    with archive.sessions() as session:
        assert session.get_one(ArticleSignature, ids["late"]).story_id is None
        assert session.get_one(ArticleSignature, ids[meeting.key]).story_id is None
    ids |= store_set(archive, [retold])
    with archive.sessions() as session:
        in_window = session.get_one(ArticleSignature, ids[retold.key]).story_id
        assert in_window is not None
        assert session.get_one(ArticleSignature, ids[meeting.key]).story_id == in_window
        # a copy is in its original's story however late it came
        assert session.get_one(ArticleSignature, ids["late"]).story_id == in_window


def run_in_terminal(*args: str, db_url: str) -> str:
    """The command's output as a terminal shows it (run under a pseudo-terminal)."""
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env |= {"CRAWLER_DATABASE_URL": db_url, "TERM": "xterm-256color", "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=120)
    os.close(master)
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_changes_lists_an_edit_between_two_crawls_with_a_word_diff(
    db_url: str, kcna: MirrorServer, sources_file: Path
):
    assert crawl("kcna_watch", db_url=db_url, sources_file=sources_file).returncode == 0
    nothing = run_cli("changes", "--json", db_url=db_url)
    assert nothing.returncode == 0 and json.loads(nothing.stdout) == []
    kcna.edit(
        "/newstream/1732523411-283960/"
        "kim-chaek-university-of-technology-boosts-r-d-links-with-industry/",
        "more than 30 units",
        "more than 40 units",
    )
    result = crawl("kcna_watch", "--refresh", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    listed = run_cli("changes", "--since", "1h", "--json", db_url=db_url)
    assert listed.returncode == 0, listed.stderr
    edits = json.loads(listed.stdout)
    assert len(edits) == 1
    edit = edits[0]
    assert edit["outlet"] == "kcna_watch" and KCNA_KIM_CHAEK in edit["url"]
    assert (edit["from_version"], edit["to_version"]) == (1, 2)
    assert [c["field"] for c in edit["changes"]] == ["body"]
    assert "more than [-30-] {+40+} units" in edit["changes"][0]["diff"]
    text = run_cli("changes", "--outlet", "kcna_watch", db_url=db_url)
    assert "[-30-]" in text.stdout and "{+40+}" in text.stdout
    # on a terminal the removed word is struck through in red, the added one green
    shown = run_in_terminal("changes", db_url=db_url)
    assert re.search(r"\x1b\[[0-9;]*9[0-9;]*m30", shown), shown
    assert re.search(r"\x1b\[[0-9;]*32[0-9;]*m40", shown), shown
    assert "[-30-]" not in shown
    other = run_cli("changes", "--json", "--since", "2999-01-01", db_url=db_url)
    assert json.loads(other.stdout) == []


def _invented(key: str, outlet: str, title: str, body: str, day: int) -> Labelled:
    return Labelled(
        key=key,
        outlet=outlet,
        url=f"https://{outlet}.example/{key}",
        title=title,
        body=(body,),
        published_at=datetime(2024, 7, day, 9, tzinfo=UTC),
        copy_of=key,
        story=key,
    )


def test_an_article_joins_only_the_stories_of_its_neighbours_not_of_every_candidate(archive):
    # Both stories' articles share two telling names (Zorblat Quenrix), so all four are
    # candidates of the last article, but it is about the first story's event only: it must
    # join that story and leave the other alone (candidates that are not neighbours, however
    # they are ordered, take no part).
    first = [
        _invented(
            "a1",
            "wire_a",
            "Zorblat Quenrix meets Mivander",
            "In Pellandra on Monday, Zorblat Quenrix met Mivander Ostrel. Then Zorblat Quenrix "
            "and Mivander Ostrel went to Pellandra hall.",
            1,
        ),
        _invented(
            "a2",
            "wire_b",
            "Mivander Ostrel hosts Zorblat",
            "Mivander Ostrel said that he was with Zorblat Quenrix in Pellandra. Zorblat "
            "Quenrix thanked Mivander Ostrel for the day in Pellandra.",
            1,
        ),
    ]
    second = [
        _invented(
            "b1",
            "wire_a",
            "Tarvossa Plinketh visits Gorvane",
            "Tarvossa Plinketh came to Gorvane Wexley on Friday. Tarvossa Plinketh and Gorvane "
            "Wexley spoke of Dremmel. Tarvossa Plinketh said Gorvane Wexley and Dremmel are old "
            "friends, as Zorblat Quenrix once said.",
            2,
        ),
        _invented(
            "b2",
            "wire_b",
            "Gorvane Wexley with Tarvossa",
            "Gorvane Wexley told Tarvossa Plinketh of Dremmel. Tarvossa Plinketh and Gorvane "
            "Wexley will go to Dremmel, where Gorvane Wexley and Tarvossa Plinketh met Zorblat "
            "Quenrix.",
            2,
        ),
    ]
    last = _invented(
        "c",
        "wire_c",
        "Zorblat Quenrix in Pellandra",
        "It was in Pellandra that Zorblat Quenrix saw Mivander Ostrel again. Zorblat Quenrix, "
        "Mivander Ostrel and all of Pellandra were there.",
        2,
    )
    # and one more of the first story, from an outlet it already has, a day later
    again = replace(last, key="d", outlet="wire_a", url="https://wire_a.example/d")
    again = replace(again, published_at=last.published_at + timedelta(days=1))
    # and one in its own words, from another outlet the story has, the day before its first:
    # it copies nothing and joins the story alone (the story's figures updated from its own,
    # not counted again from its members)
    earlier = _invented(
        "e",
        "wire_b",
        "Pellandra hall for Zorblat Quenrix",
        "Zorblat Quenrix will see Mivander Ostrel in Pellandra, Mivander Ostrel said. Pellandra "
        "hall waits for Zorblat Quenrix and Mivander Ostrel.",
        1,
    )
    earlier = replace(earlier, published_at=first[0].published_at - timedelta(hours=20))
    ids = store_set(archive, [*first, *second, last, again, earlier])
    with archive.sessions() as session:
        story = {key: session.get_one(ArticleSignature, ids[key]).story_id for key in ids}
        assert story["a1"] is not None and story["b1"] is not None
        assert story["a1"] == story["a2"] == story["c"] == story["d"] == story["e"]
        assert session.get_one(ArticleSignature, ids["e"]).reprint_of is None
        assert story["b1"] == story["b2"] != story["a1"]
        stories = {s.id: s for s in session.scalars(select(Story))}
        figures = {
            s.id: (s.article_count, s.outlet_count, s.first_published_at, s.last_published_at)
            for s in stories.values()
        }
        assert figures == {
            story["a1"]: (5, 3, earlier.published_at, again.published_at),
            story["b1"]: (2, 2, second[0].published_at, second[0].published_at),
        }
    # what was kept up to date article by article is what a rebuild computes from scratch
    rebuild(archive)
    with archive.sessions() as session:
        rebuilt = {
            (s.article_count, s.outlet_count, s.first_published_at, s.last_published_at, s.label)
            for s in session.scalars(select(Story))
        }
        assert rebuilt == {(*figures[s.id], s.label) for s in stories.values()}


def _migration(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "migrations" / "versions" / name)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bands(archive: Archive) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    with archive.sessions() as session:
        for key, article_id in session.execute(
            select(SignatureBand.band_key, SignatureBand.article_id)
        ):
            found.setdefault(article_id, set()).add(key)
    return found


def test_0009_recomputes_the_bands_from_the_stored_minhash_and_copies_are_still_found(archive):
    migration = _migration("0009_fewer_bands.py")
    original = next(a for a in mirror_articles() if a.key == ISLAM_TIMES_MEETING)
    others = [a for a in OTHER_WORDS if a.key in ("other-kim-factory", "other-putin-vietnam")]
    ids = store_set(archive, [original, *others])
    with archive.sessions() as session:
        minhashes = dict(
            session.execute(select(ArticleSignature.article_id, ArticleSignature.minhash)).all()
        )
    current = _bands(archive)
    assert set(current) == set(ids.values())
    for article_id, keys in current.items():
        assert len(keys) == sig.BANDS == 21
        # the migration's frozen copy of the band function is the project's own
        assert keys == set(migration._band_keys(minhashes[article_id], sig.BANDS, sig.ROWS))
        assert keys == set(sig.band_keys(sig.from_bytes(minhashes[article_id])))

    command.downgrade(alembic_config(archive.engine), "0008")
    old = _bands(archive)
    assert {article_id: len(keys) for article_id, keys in old.items()} == {
        article_id: 42 for article_id in ids.values()
    }
    assert old[ids[original.key]] == set(migration._band_keys(minhashes[ids[original.key]], 42, 3))

    command.upgrade(alembic_config(archive.engine), "head")
    archive.engine.dispose()
    assert _bands(archive) == current
    if archive.dialect == "sqlite":
        with archive.engine.connect() as conn:
            tables = dict(
                conn.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                    " AND name IN ('signature_bands', 'story_terms')"
                ).all()
            )
        assert sorted(tables) == ["signature_bands", "story_terms"]
        assert all(sql.rstrip().endswith("WITHOUT ROWID") for sql in tables.values())
    # the migrated index finds a copy stored after it
    copy = edited_copy(original, "copy", "wire_c", "https://wire-c.example/a/1", seed=1)
    ids |= store_set(archive, [copy])
    with archive.sessions() as session:
        assert session.get_one(ArticleSignature, ids["copy"]).reprint_of == ids[original.key]


def test_a_text_copied_more_often_than_the_candidate_bound_stays_one_group(archive):
    # a new article is compared with at most MAX_COPY_CANDIDATES articles sharing its bands
    # (those sharing the most): past that many copies of one text, a new copy still joins them
    original = next(a for a in mirror_articles() if a.key == ISLAM_TIMES_MEETING)
    copies = [
        edited_copy(original, f"copy{n}", f"wire_{n}", f"https://wire-{n}.example/a/1", seed=n)
        for n in range(MAX_COPY_CANDIDATES + 6)
    ]
    ids = store_set(archive, [original, *copies])
    with archive.sessions() as session:
        rows = session.scalars(select(ArticleSignature)).all()
    assert len(rows) == len(copies) + 1
    assert {row.reprint_of for row in rows} == {None, ids[original.key]}
    assert [row.article_id for row in rows if row.reprint_of is None] == [ids[original.key]]
    assert len({row.story_id for row in rows}) == 1
    # and the bound holds: the last copy's bands are shared by all the others
    last = next(row for row in rows if row.article_id == ids[copies[-1].key])
    keys = sig.band_keys(sig.from_bytes(last.minhash))
    with archive.sessions() as session:
        found = session.execute(
            _band_candidates(len(keys)),
            numbered_keys(keys) | {"article_id": last.article_id},
        )
        assert len(found.all()) == MAX_COPY_CANDIDATES


def test_stories_are_the_connected_parts_of_the_neighbour_graph_when_all_are_candidates(archive):
    # Every article names the same two people (its heaviest terms, so every other article is a
    # candidate of each) and draws the rest of its words from one or two of four subjects: some
    # pairs are neighbours, most are not, and an article can bridge two stories. Each new
    # article meets many members of stories already formed, of which it compares only until a
    # neighbour brings their story in: the stories must still be exactly the connected parts
    # of the graph of neighbour pairs, computed here over every pair.
    import random

    from crawler.stories.index import STORY_THRESHOLD
    from crawler.stories.terms import cosine

    endings = ("ak", "el", "ir", "ov", "um", "yx", "eb", "id", "og", "ush", "at", "en")
    subjects = [[stem + end for end in endings] for stem in ("quorv", "blensk", "tirad", "omph")]
    generator = random.Random(7)
    articles = []
    for number in range(40):
        # the first two subjects meet in some articles: their stories are bridged
        chosen = generator.choice(([0], [1], [2], [3], [0, 1]))
        words = [w for s in chosen for w in generator.sample(subjects[s], 8)]
        generator.shuffle(words)
        sentences = [f"It was {' and '.join(words[i : i + 3])}." for i in range(0, len(words), 3)]
        body = " ".join(["Zorblat Quenrix was there.", *sentences])
        articles.append(_invented(f"n{number}", f"wire_{number % 3}", words[0], body, 1))
    # the bridges last: they join stories formed apart, merging them
    articles.sort(key=lambda a: a.body[0].count("quorv") > 0 and a.body[0].count("blensk") > 0)
    ids = store_set(archive, articles)
    with archive.sessions() as session:
        rows = session.execute(
            select(ArticleSignature.article_id, ArticleSignature.terms, ArticleSignature.story_id)
        ).all()
    vectors = {row.article_id: row.terms for row in rows}
    # the connected parts of the neighbour graph, over every pair
    part = {article_id: article_id for article_id in vectors}

    def root(article_id: int) -> int:
        while part[article_id] != article_id:
            article_id = part[article_id]
        return article_id

    edges = 0
    for first in vectors:
        for second in vectors:
            if first < second and cosine(vectors[first], vectors[second]) >= STORY_THRESHOLD:
                part[root(first)] = root(second)
                edges += 1
    expected = {}
    for article_id in vectors:
        expected.setdefault(root(article_id), set()).add(article_id)
    expected_stories = {frozenset(p) for p in expected.values() if len(p) > 1}
    found: dict[int, set[int]] = {}
    for row in rows:
        if row.story_id is not None:
            found.setdefault(row.story_id, set()).add(row.article_id)
    assert len(ids) == 40 and edges > 100 and len(expected_stories) >= 3
    assert {frozenset(p) for p in found.values()} == expected_stories


def test_the_index_rows_and_story_candidates_are_the_same_through_either_statement(
    archive, monkeypatch
):
    # PostgreSQL writes an article's signature, bands and terms in one statement (the keys
    # bound as arrays) and reads its story candidates through one LATERAL query; SQLite runs a
    # statement each and one subquery per term. On both databases the rows written must be the
    # article's band keys and telling terms at its time (an undated article has no terms, a
    # wordless one no bands). On PostgreSQL the candidates must be those of the per-term query
    # (on SQLite that is the query `story_candidates` runs), with the bounds on postings per
    # term and on candidates lowered so that both cut.
    from crawler.stories import index
    from crawler.stories.index import _story_candidates, story_candidates, story_window
    from crawler.stories.terms import index_terms, term_key

    monkeypatch.setattr(index, "PER_TERM_SIDE", 2)
    monkeypatch.setattr(index, "MAX_CANDIDATES", 3)
    # the statements are built with the bounds of the moment: built again now, and after
    index._story_candidates.cache_clear()
    index._story_candidates_array.cache_clear()
    articles = labelled_set()
    undated = replace(articles[0], key="undated", url="https://undated.example/1")
    undated = replace(undated, published_at=None)  # type: ignore[arg-type]
    wordless = _invented("wordless", "wire_w", "Zorblat Quenrix speaks", "... -- ...", 2)
    try:
        ids = store_set(archive, [*articles, undated, wordless])
        with archive.sessions() as session:
            signatures = session.execute(
                select(
                    ArticleSignature.article_id,
                    ArticleSignature.minhash,
                    ArticleSignature.shingles,
                    ArticleSignature.terms,
                    ArticleSignature.published_at,
                    Article.published_at.is_not(None).label("dated"),
                ).join(Article, Article.id == ArticleSignature.article_id)
            ).all()
            bands = session.execute(select(SignatureBand.band_key, SignatureBand.article_id)).all()
            terms = session.execute(
                select(StoryTerm.term_key, StoryTerm.article_id, StoryTerm.published_at)
            ).all()
            compared = cut = 0
            for row in signatures:
                mine_bands = {key for key, article_id in bands if article_id == row.article_id}
                mine_terms = {
                    (key, when) for key, article_id, when in terms if article_id == row.article_id
                }
                expected_bands = (
                    set(sig.band_keys(sig.from_bytes(row.minhash))) if row.shingles else set()
                )
                keys = sorted({term_key(t) for t in index_terms(row.terms)}) if row.dated else []
                assert mine_bands == expected_bands
                assert mine_terms == {(key, row.published_at) for key in keys}
                if not keys:
                    assert story_candidates(session, row.article_id, row.published_at, keys) == []
                    continue
                found = story_candidates(session, row.article_id, row.published_at, keys)
                per_term = session.execute(
                    _story_candidates(len(keys)),
                    numbered_keys(keys) | story_window(row.article_id, row.published_at),
                ).all()
                assert sorted((r[0], r[2]) for r in found) == sorted((r[0], r[2]) for r in per_term)
                compared += bool(found)
                cut += len(found) == 3
        assert len(signatures) == 30 and compared > 10 and cut > 5
        shingles = {row.article_id: row.shingles for row in signatures}
        assert shingles[ids["wordless"]] == 0
        assert not any(article_id == ids["undated"] for _, article_id, _ in terms)
    finally:
        index._story_candidates.cache_clear()
        index._story_candidates_array.cache_clear()
