"""Copies and stories: how well they are found, and what they cost per stored article.

Quality: the labelled set of bench/stories_set.py (the mirrors' articles plus edited copies,
the same events in other words and different events sharing names) is stored into a fresh
archive through the archive's own path; prints pairwise precision and recall of copies and of
stories, B-cubed precision/recall/F1 of stories, and the similarity figures the thresholds were
chosen from (the lowest Jaccard of a true copy pair, the highest of any other pair).

Cost: a SQLite archive of N synthetic articles (default 10,000 and 1,000,000) is built by bulk
inserts: articles (short texts), their signatures, LSH bands and story terms, published at a
constant rate of 270 articles a day (so a busy archive: the story window then holds ~1,600
articles whatever N is, and only the archive's size changes between the two runs). Story
terms are drawn from a Zipf vocabulary whose head is the real terms of the labelled set, so a
new article finds candidates in its window as it would in a real archive. Then articles with
realistic texts (sentences of the mirrors' articles, 150-700 words) are stored one transaction
each, alternately as today (archive_article) and with the index (archive_article +
index_article), and the medians per article are compared.

    python bench/stories.py [--articles 10000 1000000] [--stored 200] [--workdir DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import text
from wordfreq import top_n_list

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stories_set import evaluate, labelled_set  # noqa: E402
from crawler.db.queries import Outcome, archive_article  # noqa: E402
from crawler.db.session import Archive  # noqa: E402
from crawler.items import ArticleItem  # noqa: E402
from crawler.pipelines.deduplicate import dedup_keys  # noqa: E402
from crawler.stories import index_article  # noqa: E402
from crawler.stories import signatures as sig  # noqa: E402
from crawler.stories.index import STORY_THRESHOLD, STORY_WINDOW  # noqa: E402
from crawler.stories.terms import INDEX_TERMS, cosine, term_key, term_vector  # noqa: E402

PER_DAY = 270
START = datetime(2015, 1, 1, tzinfo=UTC)
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
OUTLETS = ("kcna_watch", "pyongyang_times", "urdupoint", "islam_times", "al_mayadeen")
SYNTHETIC_TERMS = 20
CHUNK = 50_000


def quality() -> None:
    articles = labelled_set()
    with tempfile.TemporaryDirectory() as tmp:
        archive = Archive(f"sqlite:///{tmp}/labelled.db")
        scores = evaluate(archive, articles)
        archive.dispose()
    print(
        f"labelled set: {scores.articles} articles, {scores.copy_pairs} true copy pairs, "
        f"{scores.story_pairs} true story pairs"
    )
    print(
        f"  copies : pairwise precision {scores.copy_precision:.3f}, "
        f"recall {scores.copy_recall:.3f}"
    )
    print(
        f"  stories: pairwise precision {scores.story_precision:.3f}, "
        f"recall {scores.story_recall:.3f}; B-cubed precision {scores.bcubed_precision:.3f}, "
        f"recall {scores.bcubed_recall:.3f}, F1 {scores.bcubed_f1:.3f}"
    )
    shingles = {a.key: sig.shingles("\n\n".join(a.body)) for a in articles}
    vectors = {a.key: term_vector(a.title, "\n\n".join(a.body)) for a in articles}
    copy_j, other_j, story_c, other_c = [], [], [], []
    for a, b in itertools.combinations(articles, 2):
        j = sig.jaccard(shingles[a.key], shingles[b.key])
        (copy_j if a.copy_of == b.copy_of else other_j).append(j)
        if abs(a.published_at - b.published_at) <= STORY_WINDOW and a.copy_of != b.copy_of:
            c = cosine(vectors[a.key], vectors[b.key])
            (story_c if a.story == b.story else other_c).append(c)
    print(
        f"  Jaccard of 5-word shingles: true copies {min(copy_j):.3f}..{max(copy_j):.3f}, "
        f"other pairs at most {max(other_j):.3f} (threshold {sig.COPY_THRESHOLD})"
    )
    print(
        f"  cosine within {STORY_WINDOW.days} days (copies aside): same story "
        f"{min(story_c):.3f}..{max(story_c):.3f} (median {statistics.median(story_c):.3f}), "
        f"other events at most {max(other_c):.3f}, "
        f"{sum(c >= STORY_THRESHOLD for c in other_c)} of {len(other_c)} at or above the "
        f"threshold {STORY_THRESHOLD}"
    )


def _sentences() -> list[str]:
    found = []
    for article in labelled_set():
        for paragraph in article.body:
            found += [s.strip() + "." for s in paragraph.split(". ") if len(s) > 30]
    return found


def _vocabulary(rng: random.Random) -> tuple[list[int], list[float]]:
    """Term keys (the labelled set's real terms first, then synthetic ones) and Zipf weights."""
    real: list[str] = []
    for article in labelled_set():
        for term in term_vector(article.title, "\n\n".join(article.body)):
            if term not in real:
                real.append(term)
    rng.shuffle(real)
    terms = real + [f"synthetic{i}" for i in range(200_000)]
    weights = [1.0 / (rank + 3) for rank in range(len(terms))]
    return [term_key(t) for t in terms], list(itertools.accumulate(weights))


def build(path: Path, count: int, seed: int = 7) -> None:
    """A migrated SQLite archive holding `count` synthetic indexed articles."""
    Archive(f"sqlite:///{path}").dispose()
    rng = random.Random(seed)
    keys, cumulative = _vocabulary(rng)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    triggers = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name='articles'"
    ).fetchall()
    for name, _ in triggers:  # the FTS index of synthetic texts is not what is measured
        db.execute(f"DROP TRIGGER {name}")
    for index in ("ix_signature_bands_article_id", "ix_story_terms_article_id"):
        db.execute(f"DROP INDEX {index}")
    for n, name in enumerate(OUTLETS, 1):
        db.execute(
            "INSERT INTO sources (id, name, base_url, created_at) VALUES (?, ?, ?, ?)",
            (n, name, f"https://{name}.example", START.strftime(SQLITE_TIME)),
        )
    bands = np.empty((count, sig.BANDS), dtype=np.int64)
    started = time.perf_counter()
    for chunk_start in range(0, count, CHUNK):
        chunk = range(chunk_start + 1, min(count, chunk_start + CHUNK) + 1)
        articles, signatures, story_terms = [], [], []
        for article_id in chunk:
            when = START + timedelta(days=article_id / PER_DAY)
            stamp = when.strftime(SQLITE_TIME)
            source = article_id % len(OUTLETS) + 1
            body = " ".join(rng.choices(("said", "the", "minister", "talks", "visit"), k=40))
            url = f"https://{OUTLETS[source - 1]}.example/a/{article_id}"
            articles.append(
                (
                    article_id,
                    source,
                    url,
                    url,
                    f"Synthetic article {article_id}",
                    stamp,
                    body,
                    f"{article_id:064x}",
                    1,
                    stamp,
                    stamp,
                    stamp,
                    False,
                )
            )
            term_keys = sorted(set(rng.choices(keys, cum_weights=cumulative, k=SYNTHETIC_TERMS)))
            weight = round(1 / len(term_keys) ** 0.5, 6)
            vector = {f"k{k}": weight for k in term_keys}
            signatures.append(
                (
                    article_id,
                    source,
                    stamp,
                    rng.randbytes(sig.NUM_PERM * 4),
                    200,
                    json.dumps(vector),
                )
            )
            story_terms += [(k, stamp, article_id) for k in term_keys[:INDEX_TERMS]]
        db.executemany(
            "INSERT INTO articles (id, source_id, url, canonical_url, title, published_at, body,"
            " content_hash, version, first_seen_at, last_seen_at, updated_at, partial)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            articles,
        )
        db.executemany(
            "INSERT INTO article_signatures (article_id, source_id, published_at, minhash,"
            " shingles, terms) VALUES (?, ?, ?, ?, ?, ?)",
            signatures,
        )
        db.executemany(
            "INSERT INTO story_terms (term_key, published_at, article_id) VALUES (?, ?, ?)",
            story_terms,
        )
        bands[chunk_start : chunk_start + len(chunk)] = np.frombuffer(
            rng.randbytes(len(chunk) * sig.BANDS * 8), dtype=np.int64
        ).reshape(len(chunk), sig.BANDS)
        db.commit()
        print(f"    {chunk[-1]:,} articles ({time.perf_counter() - started:.0f} s)", flush=True)
    # bands inserted in key order: the primary key's B-tree is appended to, not shuffled
    flat_keys = bands.ravel()
    order = np.argsort(flat_keys, kind="stable")
    article_ids = (order // sig.BANDS + 1).astype(np.int64)
    for start in range(0, len(order), CHUNK * sig.BANDS // 4):
        part = slice(start, start + CHUNK * sig.BANDS // 4)
        db.executemany(
            "INSERT INTO signature_bands (band_key, article_id) VALUES (?, ?)",
            zip(flat_keys[order[part]].tolist(), article_ids[part].tolist(), strict=True),
        )
        db.commit()
    db.execute("CREATE INDEX ix_signature_bands_article_id ON signature_bands (article_id)")
    db.execute("CREATE INDEX ix_story_terms_article_id ON story_terms (article_id)")
    for _, sql in triggers:
        db.execute(sql)
    db.commit()
    db.execute("ANALYZE")
    db.close()
    print(f"    built in {time.perf_counter() - started:.0f} s, {path.stat().st_size / 1e9:.2f} GB")


def new_articles(count: int, first_id: int, seed: int = 11) -> list[ArticleItem]:
    """Articles with news-like texts, each about something of its own, dated inside the
    archive's span: sentences of English words drawn with their real frequencies (wordfreq),
    names made up per article, and now and then a sentence of the labelled set's articles.
    Texts and URLs depend on `first_id`, so that a reused archive (--reuse) gets new articles,
    not the ones an earlier run stored (those would be unchanged, and nothing indexed)."""
    rng = random.Random(seed * 1_000_003 + first_id)
    sentences = _sentences()
    words = top_n_list("en", 30_000)
    cumulative = list(itertools.accumulate(1.0 / (rank + 10) for rank in range(len(words))))
    items = []
    for n in range(count):
        names = [
            "".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3)).title()
            for _ in range(4)
        ]
        body: list[str] = []
        length, target = 0, rng.randint(150, 700)
        while length < target:
            paragraph = []
            for _ in range(rng.randint(2, 4)):
                if rng.random() < 0.1:
                    paragraph.append(rng.choice(sentences))
                    continue
                chosen = rng.choices(words, cum_weights=cumulative, k=rng.randint(10, 25))
                chosen.insert(rng.randrange(len(chosen)), rng.choice(names))
                paragraph.append(" ".join(chosen).capitalize() + ".")
            body.append(" ".join(paragraph))
            length += len(body[-1].split())
        outlet = OUTLETS[n % len(OUTLETS)]
        item = ArticleItem(
            outlet=outlet,
            url=f"https://{outlet}.example/new/{seed}/{first_id}/{n}",
            title=f"{names[0]} and {names[1]} " + " ".join(rng.sample(words[200:3000], 5)),
            body=body,
            published_at=START + timedelta(days=rng.uniform(1, first_id / PER_DAY)),
            language="en",
        )
        dedup_keys(item)
        items.append(item)
    return items


def measure(path: Path, stored: int) -> dict[str, tuple[float, float]]:
    """Median ms per stored article, as today and with signatures, LSH and clustering: wall
    time and this process's CPU time (the machine may be shared: CPU time is not inflated by
    other processes, wall time is)."""
    archive = Archive(f"sqlite:///{path}")
    with archive.sessions() as session:
        last = session.execute(text("SELECT max(id) FROM articles")).scalar_one()
    items = new_articles(stored * 2, last)
    times: dict[str, tuple[list[float], list[float]]] = {"today": ([], []), "indexed": ([], [])}
    for n, item in enumerate(items):
        with_index = n % 2 == 1
        source_id = OUTLETS.index(item.outlet) + 1
        wall, cpu = time.perf_counter(), time.process_time()
        with archive.transaction() as session:
            outcome, ref = archive_article(session, source_id, item)
            if with_index and outcome is not Outcome.UNCHANGED:
                index_article(session, ref.id)
        walls, cpus = times["indexed" if with_index else "today"]
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    archive.dispose()
    return {
        mode: (statistics.median(walls), statistics.median(cpus))
        for mode, (walls, cpus) in times.items()
    }


def signature_cost(count: int = 200) -> float:
    """Median ms to compute one article's shingles, MinHash, bands and term vector."""
    times = []
    for item in new_articles(count, 10_000, seed=3):
        body = "\n\n".join(item.body)
        started = time.perf_counter()
        values = sig.minhash(sig.shingles(body))
        sig.band_keys(values)
        term_vector(item.title or "", body)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--stored", type=int, default=200, help="articles stored per mode")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="keep and reuse built archives")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    if not args.skip_quality:
        quality()
    print(f"signature + term vector of one article: median {signature_cost():.2f} ms (CPU)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stories-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for count in args.articles:
        path = workdir / f"stories-{count}.db"
        if not (args.reuse and path.exists()):
            for stale in workdir.glob(f"stories-{count}.db*"):
                stale.unlink()
            print(f"building a synthetic archive of {count:,} articles in {path}")
            build(path, count)
        figures = measure(path, args.stored)
        for n, kind in enumerate(("wall", "CPU")):
            today, indexed = figures["today"][n], figures["indexed"][n]
            print(
                f"{count:>9,} articles, {kind:>4} time: store as today {today:.2f} ms, with "
                f"copies and stories {indexed:.2f} ms: +{indexed - today:.2f} ms per article "
                f"(medians of {args.stored} each)"
            )
        if not args.reuse:
            for built in workdir.glob(f"stories-{count}.db*"):
                built.unlink()


if __name__ == "__main__":
    main()
