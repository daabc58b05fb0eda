"""The generic spider's extraction on the 91 generic_news pages, scored like the Article
Extraction Benchmark (bench/extraction.py prints the same figures and the time per page)."""

from __future__ import annotations

import pytest

from bench.extraction import PageScore, generic_spider, page_scores, score_pages, totals

# Measured 0.9744 / 0.9829 / 0.9786 (trafilatura alone: F1 0.962, precision mode 0.973).
FLOOR_F1 = 0.977
FLOOR_PRECISION = 0.972
FLOOR_RECALL = 0.981
# The ten worst pages when measured: (precision, recall). A drop of more than 0.01 on any of
# them is a regression to look at, even while the average stays above the floor.
WORST_PAGES = {
    "/entertainment/2019/11/florida-man-exists-south-dakota-hold-my-beer-meth-were-on-it.html": (
        0.931,
        0.700,
    ),
    "/en-180816.html": (0.868, 0.825),
    "/news-and-events/Ascom-business-news/Ascom-announces-a-strategic-distribution-partnership-"
    "with-GE-Healthcare-in-Europe-for-intensive-care-units.html": (0.746, 1.000),
    "/blogs/blog-briefing-room/news/"
    "471031-new-york-man-pleads-guilty-to-threatening-to-kill-omar": (0.758, 0.980),
    "/news-and-events/Ascom-business-news/ascom-and-draeger-introduce-integrated-clinical-alarm-"
    "management-solution-in-north-america-to-improve-patient-care.html": (0.752, 1.000),
    "/articles/2019/11/18/daily-deals-more-black-friday-deals-are-live-including-ps4-dualshock-"
    "controller-apple-airpods-and-watches-and-more": (0.974, 0.811),
    "/marker/milan-design-week-2018-michael-anastassiades-light-installation-flos/": (0.812, 0.983),
    "/7908/bike-style-book-soundtrack-review/": (0.856, 1.000),
    "/dare-to-play-3-october-pack-2/": (0.964, 0.890),
    "/homenews/news/"
    "471033-south-dakota-governor-doubles-down-on-meth-were-on-it-anti-drug-campaign": (
        0.888,
        0.989,
    ),
}


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PageScore]:
    spider = generic_spider(tmp_path_factory.mktemp("extraction"))
    return {score.path: score for score in score_pages(spider)}


def test_body_f1_stays_above_the_floor(scores):
    precision, recall, f1 = totals(list(scores.values()))
    assert len(scores) == 91
    assert f1 >= FLOOR_F1, (precision, recall, f1)
    assert precision >= FLOOR_PRECISION and recall >= FLOOR_RECALL


@pytest.mark.parametrize("path", sorted(WORST_PAGES))
def test_worst_pages_do_not_get_worse(scores, path):
    precision, recall = WORST_PAGES[path]
    score = scores[path]
    assert (score.precision or 0) >= precision - 0.01, score
    assert (score.recall or 0) >= recall - 0.01, score


def test_metric_counts_shingles_like_the_benchmark():
    text = "one two three four five"
    assert page_scores(text, text) == (1.0, 1.0)
    # two shingles expected; one of them found, plus one shingle that is not expected
    assert page_scores(text, "one two three four six") == (0.5, 0.5)
    assert page_scores(text, "") == (None, 0.0)
