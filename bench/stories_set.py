"""The labelled test set of copies and stories, and how the archive's clustering scores on it.

The set: every article of the mirrors (crawler/mirror/sites/*, as tests/fixtures/expected.jsonl
records them: KCNA Watch's copies of Pyongyang Times articles, Islam Times and Al Mayadeen
English on the 19 July 2024 meeting, UrduPoint on Shoigu's July 2023 visit), plus variations:
edited copies (words changed, a paragraph dropped, a dateline added; one at another URL of the
same outlet; one stored before its original), the same event told in other words by another
outlet, and different events sharing the stories' names (Kim Jong Un, Putin, Matsegora, Choe
Son Hui) inside their time windows. Each article carries its true copy group and story.

`evaluate` stores the set through the archive's own path (archive_article, then index_article,
as the store pipeline does) and scores what the index made of it: pairwise precision and recall
of copies and of stories, and B-cubed precision, recall and F1 of stories.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from crawler.db.models import ArticleSignature, Source
from crawler.db.queries import archive_article
from crawler.db.session import Archive
from crawler.items import ArticleItem
from crawler.pipelines.deduplicate import dedup_keys
from crawler.stories import index_article

EXPECTED = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "expected.jsonl"
MIRROR_BASES = {
    "kcna_watch": "https://kcnawatch.org",
    "pyongyang_times": "http://www.pyongyangtimes.com.kp",
    "urdupoint": "https://www.urdupoint.com",
    "islam_times": "https://www.islamtimes.com",
    "al_mayadeen": "https://english.almayadeen.net",
}


@dataclass(frozen=True)
class Labelled:
    key: str
    outlet: str
    url: str
    title: str
    body: tuple[str, ...]
    published_at: datetime
    copy_of: str  # the key of the copy group (its own key when it copies nothing)
    story: str  # the key of its true story (its own key when it is alone)
    original_source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def item(self) -> ArticleItem:
        item = ArticleItem(
            outlet=self.outlet,
            url=self.url,
            title=self.title,
            body=list(self.body),
            published_at=self.published_at,
            original_source=self.original_source,
            language="en",
        )
        dedup_keys(item)
        return item


# The true stories of the mirror articles, by a distinctive part of their URL.
MIRROR_LABELS = {
    "287305": ("pt40311", "ratification"),
    "bbs=40311": ("pt40311", "ratification"),
    "284951": ("pt40224", "beloussov"),
    "bbs=40224": ("pt40224", "beloussov"),
    "283960": ("pt40402", "kim-chaek"),
    "bbs=40402": ("pt40402", "kim-chaek"),
    "286102": ("farming", "farming"),
    "1707439": ("up1707439", "shoigu-visit"),
    "1706918": ("up1706918", "shoigu-visit"),
    "1706345": ("up1706345", "parade-watch"),
    "1148702": ("it1148702", "lebanon"),
    "1148653": ("it1148653", "krivoruchko"),
    "1148421": ("it1148421", "tehran-water"),
    "redraws-the-map": ("am-treaty-map", "am-treaty-map"),
    "kim-jong-un-hosts-russia": ("am-krivoruchko", "krivoruchko"),
    "south-korea-summons": ("am-summons", "am-summons"),
}


def mirror_articles() -> list[Labelled]:
    """The mirrors' articles as their spiders read them, with their true labels."""
    found = []
    for line in EXPECTED.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        url = record["url"].replace("{{BASE}}", MIRROR_BASES[record["spider"]])
        key = next(k for k in MIRROR_LABELS if k in url)
        copy_of, story = MIRROR_LABELS[key]
        if record["published_at"]:
            published = datetime.fromisoformat(record["published_at"]).astimezone(UTC)
        else:  # a day: midnight in Pyongyang
            day = datetime.fromisoformat(record["published_date"])
            published = day.replace(tzinfo=ZoneInfo("Asia/Pyongyang")).astimezone(UTC)
        found.append(
            Labelled(
                key=key,
                outlet=record["spider"],
                url=url,
                title=record["title"],
                body=tuple(record["body"]),
                published_at=published,
                copy_of=copy_of,
                story=story,
                original_source=record["original_source"],
            )
        )
    return found


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# The same events in other words (another outlet's own report), and different events that
# share the stories' names, inside their time windows. Written for this set.
OTHER_WORDS = [
    Labelled(
        "wire-krivoruchko",
        "wire_a",
        "https://wire-a.example/2024/07/19/kim-receives-russian-military-delegation",
        "Kim receives Russian military delegation headed by Krivoruchko",
        (
            "North Korean leader Kim Jong Un received a visiting Russian military delegation "
            "led by Deputy Defence Minister Aleksey Krivoruchko in Pyongyang on Friday, state "
            "news agency KCNA said.",
            "The two sides talked about expanding defence cooperation to protect their common "
            "security interests, and Kim passed his greetings to Vladimir Putin.",
            "Kim voiced backing for Moscow's war in Ukraine and praised the June summit at "
            "which the two countries signed a mutual defence treaty.",
        ),
        _when("2024-07-19T16:30:00"),
        "wire-krivoruchko",
        "krivoruchko",
    ),
    Labelled(
        "wire-ratification",
        "wire_b",
        "https://wire-b.example/news/russian-embassy-pyongyang-treaty-in-force",
        "Russian embassy in Pyongyang celebrates treaty's entry into force",
        (
            "Moscow's envoy to North Korea, Alexandr Matsegora, threw a reception in Pyongyang "
            "to celebrate the exchange of ratification instruments for the Comprehensive "
            "Strategic Partnership treaty.",
            "Choe Ryong Hae, Choe Son Hui and Kim Yo Jong were among the guests, according to "
            "North Korean state media.",
            "Matsegora said the ratified treaty opens a new chapter in relations between "
            "Russia and the DPRK.",
        ),
        _when("2024-12-11T09:00:00"),
        "wire-ratification",
        "ratification",
    ),
    Labelled(
        "wire-shoigu",
        "wire_a",
        "https://wire-a.example/2023/07/27/shoigu-kim-weapons-exhibition",
        "Shoigu and Kim tour weapons exhibition in Pyongyang",
        (
            "Russian Defence Minister Sergei Shoigu, on a visit to North Korea for the "
            "anniversary of the Korean War armistice, toured an exhibition of weapons with "
            "Kim Jong Un, KCNA reported.",
            "Shoigu handed Kim a letter from Vladimir Putin and the two discussed defence and "
            "security matters, the agency said.",
        ),
        _when("2023-07-27T12:00:00"),
        "wire-shoigu",
        "shoigu-visit",
    ),
    Labelled(
        "wire-beloussov",
        "wire_b",
        "https://wire-b.example/news/belousov-delegation-feted-pyongyang",
        "North Korean defence ministry fetes Belousov's delegation",
        (
            "North Korea's defence ministry held a banquet at the April 25 House of Culture "
            "for a Russian military delegation led by Defence Minister Andrei Beloussov, with "
            "Kim Jong Un attending, state media reported.",
            "Defence minister No Kwang Chol welcomed the delegation's visit to Pyongyang.",
        ),
        _when("2024-11-30T03:00:00"),
        "wire-beloussov",
        "beloussov",
    ),
    # different events, shared names
    Labelled(
        "other-kim-factory",
        "wire_a",
        "https://wire-a.example/2024/07/20/kim-visits-tile-factory",
        "Kim Jong Un visits tile factory in Pyongyang",
        (
            "Kim Jong Un, general secretary of the Workers' Party of Korea, visited a newly "
            "built tile factory in Pyongyang and praised its production lines, KCNA said.",
            "He called for building materials to be supplied to the regional development "
            "projects in every county.",
        ),
        _when("2024-07-20T02:00:00"),
        "other-kim-factory",
        "other-kim-factory",
    ),
    Labelled(
        "other-putin-vietnam",
        "wire_b",
        "https://wire-b.example/news/putin-talks-vietnam-president-moscow",
        "Putin holds talks with Vietnam's president in Moscow",
        (
            "Russian President Vladimir Putin received Vietnam's president at the Kremlin on "
            "Friday for talks on trade, energy and military cooperation.",
            "The two leaders agreed to expand oil and gas projects and to increase flights "
            "between Moscow and Hanoi.",
        ),
        _when("2024-07-19T13:00:00"),
        "other-putin-vietnam",
        "other-putin-vietnam",
    ),
    Labelled(
        "other-choe-matsegora",
        "wire_a",
        "https://wire-a.example/2024/12/11/choe-son-hui-matsegora-culture",
        "Choe Son Hui and Matsegora discuss cultural exchanges",
        (
            "DPRK Foreign Minister Choe Son Hui met Russian ambassador Alexandr Matsegora to "
            "discuss a programme of cultural exchanges for next year, KCNA said.",
            "The plan includes tours by art troupes, film weeks and exchanges of students "
            "between universities in Pyongyang and Moscow.",
        ),
        _when("2024-12-11T06:00:00"),
        "other-choe-matsegora",
        "other-choe-matsegora",
    ),
    Labelled(
        "other-kozlov",
        "wire_b",
        "https://wire-b.example/news/kim-meets-kozlov-economic-commission",
        "Kim Jong Un meets Russian minister Kozlov on economic commission",
        (
            "Kim Jong Un met Russian Natural Resources Minister Alexander Kozlov, who is in "
            "Pyongyang for a session of the intergovernmental commission on trade and "
            "economic cooperation.",
            "They discussed agriculture, fisheries, tourism and a new bridge over the Tuman "
            "River, according to state media.",
        ),
        _when("2024-11-29T10:00:00"),
        "other-kozlov",
        "other-kozlov",
    ),
]

_SWAPS = {
    "said": "stated",
    "the": "the",
    "and": "as well as",
    "meeting": "talks",
    "leader": "chief",
    "military": "armed forces",
    "Russian": "Russia's",
}


def edited_copy(
    original: Labelled, key: str, outlet: str, url: str, seed: int, hours: float = 6
) -> Labelled:
    """Another outlet's copy of a text: a dateline added, the last paragraph dropped (when there
    are more than three), about one word in twenty-five changed."""
    rng = random.Random(seed)
    paragraphs = list(original.body[:-1] if len(original.body) > 3 else original.body)
    edited = []
    for paragraph in paragraphs:
        tokens = paragraph.split(" ")
        for i, token in enumerate(tokens):
            if rng.random() < 0.04:
                tokens[i] = _SWAPS.get(token, token.upper())
        edited.append(" ".join(tokens))
    edited[0] = f"{outlet.upper()} -- " + edited[0]
    return replace(
        original,
        key=key,
        outlet=outlet,
        url=url,
        body=tuple(edited),
        published_at=original.published_at + timedelta(hours=hours),
        original_source=None,
    )


def labelled_set() -> list[Labelled]:
    """The whole set, in the order it is stored (a copy comes before its original once)."""
    mirror = {a.key: a for a in mirror_articles()}
    copies = [
        edited_copy(mirror["1148653"], "copy-it1148653", "wire_c", "https://wire-c.example/a/1", 1),
        edited_copy(
            mirror["kim-jong-un-hosts-russia"],
            "copy-am-krivoruchko",
            "wire_c",
            "https://wire-c.example/a/2",
            2,
        ),
        edited_copy(mirror["287305"], "copy-pt40311", "wire_c", "https://wire-c.example/a/3", 3),
        # the same outlet at another URL, lightly edited
        edited_copy(
            mirror["1707439"],
            "copy-up1707439",
            "urdupoint",
            "https://www.urdupoint.com/en/world/kim-meets-shoigu-pyongyang-1707501.html",
            4,
            hours=2,
        ),
    ]
    # the copy of Islam Times' report is stored before the report itself
    early = copies[0]
    ordered = [early, *mirror.values(), *copies[1:], *OTHER_WORDS]
    return ordered


@dataclass
class Scores:
    copy_precision: float
    copy_recall: float
    story_precision: float
    story_recall: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    articles: int
    copy_pairs: int
    story_pairs: int

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in vars(self).items()}


def _pairs(labels: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, list[str]] = {}
    for key, label in labels.items():
        groups.setdefault(label, []).append(key)
    return {frozenset(p) for members in groups.values() for p in combinations(members, 2)}


def pairwise(truth: dict[str, str], predicted: dict[str, str]) -> tuple[float, float]:
    """Precision and recall over pairs of articles put together."""
    true_pairs, found_pairs = _pairs(truth), _pairs(predicted)
    hits = len(true_pairs & found_pairs)
    precision = hits / len(found_pairs) if found_pairs else 1.0
    recall = hits / len(true_pairs) if true_pairs else 1.0
    return precision, recall


def bcubed(truth: dict[str, str], predicted: dict[str, str]) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 (each article's cluster against its true class)."""
    by_truth: dict[str, set[str]] = {}
    by_found: dict[str, set[str]] = {}
    for key in truth:
        by_truth.setdefault(truth[key], set()).add(key)
        by_found.setdefault(predicted[key], set()).add(key)
    precision = recall = 0.0
    for key in truth:
        found, true = by_found[predicted[key]], by_truth[truth[key]]
        both = len(found & true)
        precision += both / len(found)
        recall += both / len(true)
    precision /= len(truth)
    recall /= len(truth)
    return precision, recall, 2 * precision * recall / (precision + recall)


def store_set(archive: Archive, articles: Iterable[Labelled]) -> dict[str, int]:
    """Store the articles as a crawl would (one transaction each); their ids by key."""
    ids: dict[str, int] = {}
    sources: dict[str, int] = {}
    for article in articles:
        with archive.transaction() as session:
            if article.outlet not in sources:
                source_id = session.scalar(select(Source.id).where(Source.name == article.outlet))
                if source_id is None:
                    row = Source(name=article.outlet, base_url=f"https://{article.outlet}.example")
                    session.add(row)
                    session.flush()
                    source_id = row.id
                sources[article.outlet] = source_id
            _, stored = archive_article(session, sources[article.outlet], article.item())
            index_article(session, stored.id)
            ids[article.key] = stored.id
    return ids


def predicted_labels(
    archive: Archive, ids: dict[str, int]
) -> tuple[dict[str, str], dict[str, str]]:
    """What the index says: each key's copy group (its root) and story."""
    key_of = {v: k for k, v in ids.items()}
    with archive.sessions() as session:
        rows = session.execute(
            select(
                ArticleSignature.article_id,
                ArticleSignature.reprint_of,
                ArticleSignature.story_id,
            ).where(ArticleSignature.article_id.in_(list(ids.values())))
        ).all()
    copies = {key_of[r.article_id]: str(r.reprint_of or r.article_id) for r in rows}
    stories = {
        key_of[r.article_id]: f"s{r.story_id}" if r.story_id else f"a{r.article_id}" for r in rows
    }
    return copies, stories


def evaluate(archive: Archive, articles: list[Labelled] | None = None) -> Scores:
    """Store the labelled set into an empty archive and score the copies and stories found."""
    articles = articles if articles is not None else labelled_set()
    ids = store_set(archive, articles)
    return score(archive, articles, ids)


def score(archive: Archive, articles: list[Labelled], ids: dict[str, int]) -> Scores:
    copies, stories = predicted_labels(archive, ids)
    true_copies = {a.key: a.copy_of for a in articles}
    true_stories = {a.key: a.story for a in articles}
    copy_p, copy_r = pairwise(true_copies, copies)
    story_p, story_r = pairwise(true_stories, stories)
    b_p, b_r, b_f1 = bcubed(true_stories, stories)
    return Scores(
        copy_p,
        copy_r,
        story_p,
        story_r,
        b_p,
        b_r,
        b_f1,
        len(articles),
        len(_pairs(true_copies)),
        len(_pairs(true_stories)),
    )
