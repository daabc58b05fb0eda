"""The similarity signature: the project's MinHash is datasketch's, value for value."""

from __future__ import annotations

import json
import random
import zlib
from collections import Counter

import numpy as np
import pytest
from datasketch import MinHash

from crawler.stories import signatures as sig
from tests.conftest import ROOT, run_python

PINNED_VALUES = [2406846677, 1117061338, 1017539784, 423631407]
PINNED_BAND = -6304845197792265454


def _shingle_sets() -> list[set[str]]:
    rng = random.Random(7)
    sizes = [0, 1, 2, 5, 300, 700, sig._CHUNK + 17]
    return [
        {
            " ".join(f"{rng.choice('abcdef')}{rng.randint(0, 10**6)}" for _ in range(5))
            for _ in range(n)
        }
        for n in sizes
    ]


@pytest.mark.parametrize("shingle_set", _shingle_sets(), ids=lambda s: f"{len(s)}-shingles")
def test_minhash_equals_datasketch_affine32_with_crc32(shingle_set):
    reference = MinHash(
        num_perm=sig.NUM_PERM, seed=sig.SEED, hashfunc=zlib.crc32, scheme="affine32"
    )
    if shingle_set:
        reference.update_batch([s.encode("utf-8") for s in shingle_set])
    mine = sig.minhash(shingle_set)
    assert mine.dtype == np.uint32 and mine.shape == (sig.NUM_PERM,)
    assert np.array_equal(mine, np.asarray(reference.hashvalues, dtype=np.uint32))


def test_stored_signatures_do_not_drift():
    # values stored in archives: a change of numpy's generator or of the hashing would silently
    # split every copy group, so the first values and a band key of a fixed text are pinned
    values = sig.minhash(sig.shingles("Kim Jong Un met the Russian defence minister in Pyongyang"))
    assert values[:4].tolist() == PINNED_VALUES
    assert sig.band_keys(values)[0] == PINNED_BAND
    assert sig.from_bytes(sig.to_bytes(values)).tolist() == values.tolist()


def test_stored_values_give_the_estimate_and_band_keys_of_the_array():
    # the archive writer compares and bands the stored bytes, without numpy
    sets = [s for s in _shingle_sets() if s]
    arrays = [sig.minhash(s) for s in sets]
    arrays.append(arrays[-1].copy())
    arrays[-1][::3] = 7  # a third of the values changed: an estimate neither 0 nor 1
    for first in arrays:
        assert sig.band_keys(sig.to_bytes(first)) == sig.band_keys(first)
        for second in arrays:
            expected = float((first == second).mean())
            assert sig.estimate(sig.to_bytes(first), sig.to_bytes(second)) == expected
            assert sig.estimate(first, memoryview(sig.to_bytes(second))) == expected
    assert 0 < sig.estimate(arrays[-1], arrays[-2]) < 1


def test_a_crawl_imports_no_heavy_library_before_it_stores_an_article():
    # datasketch (with scipy) is not used at all; numpy loads with the first article
    code = (
        "import sys, crawler.stories.index, crawler.pipelines.store, crawler.runner; "
        "print(sorted(m for m in ('datasketch', 'scipy', 'numpy', 'wordfreq') if m in sys.modules))"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_usage_list_is_wordfreqs_read_without_importing_wordfreq():
    # a signed article reads wordfreq's list, but wordfreq's import (0.13 s) is never paid
    heavy = ("wordfreq", "langcodes", "ftfy")
    code = (
        "import sys; from crawler.stories.signing import text_signature; "
        "text_signature('Kim meets Putin', 'The minister and the delegation met in Moscow.'); "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

    from wordfreq import get_frequency_dict

    from crawler.stories.terms import _frequencies

    expected = get_frequency_dict("en", wordlist="small")
    read = _frequencies()
    assert len(read) == len(expected) > 20_000
    # every word with the very same float (the IDF of every stored vector depends on it)
    assert all(read[word] == frequency for word, frequency in expected.items())


def test_a_term_weighs_double_where_it_reads_as_a_name_anywhere_in_the_text():
    import math

    from crawler.stories.terms import ENTITY_WEIGHT, term_vector

    def ratio(title: str, body: str, term: str) -> float:
        """The term's weight over the weight of "zuvelk" (said twice, never as a name)."""
        vector = term_vector(title, body, None, size=1000)
        return vector[term] / vector["zuvelk"]

    def expected(count: int, boost: float) -> object:
        # both words are unknown to the usage list: their IDF is the same (weights are stored
        # to 6 decimals)
        return pytest.approx((1 + math.log(count)) * boost / (1 + math.log(2)), rel=1e-5)

    plain = "The zuvelk and the marbeck met. Zuvelk was here. Marbeck too."
    # capitalised at a sentence's start only: an ordinary word
    assert ratio("", plain, "marbeck") == expected(2, 1.0)
    # capitalised inside a sentence once: a name wherever it appears
    assert ratio("", plain + " Then the Marbeck left.", "marbeck") == expected(3, ENTITY_WEIGHT)
    # upper case (with a digit too) is a name even where a sentence starts
    assert ratio("", plain + " MARBECK said so.", "marbeck") == expected(3, ENTITY_WEIGHT)
    assert ratio("", plain + " 3MARBECK said so.", "3marbeck") == expected(1, ENTITY_WEIGHT)
    # the title's first word starts a sentence too; counts add up over title and body
    assert ratio("Marbeck", plain, "marbeck") == expected(3, 1.0)


def test_shingles_made_from_bytes_are_the_shingles_encoded():
    from bench.stories_set import labelled_set

    texts = ["\n\n".join(article.body) for article in labelled_set()]
    assert any(not text.isascii() for text in texts) and any(text.isascii() for text in texts)
    texts += [
        "",
        "   ",
        "one",
        "Kim Jong Un met",
        "Kim Jong Un met Shoigu",
        "Kim Jong Un met Shoigu today",
        "snake_case and digits 2024 stay words; U.S.-DPRK talks, Kim's aide\tsaid\n\nso [again].",
        "“Quoted” words — with a dash, and a curly ’apostrophe’ — are folded first",
        "Ким Чен Ын встретился с министром обороны России в Пхеньяне сегодня",
        "ASCII text ending in a stray byte of punctuation !!! ~~~ ###",
        "\x00\x7f control\x1fbytes\x0bare not words either",
        "ｆｕｌｌ ＷＩＤＴＨ ﬁnal words fold to ASCII",  # NFKC: the ASCII way, from non-ASCII
    ]
    for text in texts:
        expected = {shingle.encode("utf-8") for shingle in sig.shingles(text)}
        assert sig.shingle_bytes(text) == expected, text[:60]
        assert np.array_equal(sig.minhash(sig.shingle_bytes(text)), sig.minhash(sig.shingles(text)))


def _reference_count_terms(
    text: str, repeat: int, counts: Counter[str], entities: set[str]
) -> None:
    """The definition `terms._count_terms` keeps: every word looked at in its place."""
    from crawler.stories import terms

    pairs = terms._TOKEN.findall(text)
    for _, token in pairs:
        counts[terms._folded(token)] += repeat
    first = True
    for gap, token in pairs:
        if not token.islower():
            starts_sentence = first or terms._SENTENCE_END.search(gap) is not None
            if (token[0].isupper() and not starts_sentence) or (len(token) > 1 and token.isupper()):
                entities.add(token)
        first = False


def test_terms_counted_from_bytes_and_sentence_starts_are_the_terms_counted_word_by_word():
    # _count_terms splits an ASCII text's bytes and finds the words starting sentences by one
    # search; the result must be what looking at every word in its place gives
    from bench.stories_set import labelled_set
    from crawler.stories import terms

    texts = [text for article in labelled_set() for text in (article.title, *article.body)]
    # and the bodies of 91 publishers' articles (tests/fixtures/generic_news)
    expected = ROOT / "tests" / "fixtures" / "generic_news" / "expected.jsonl"
    texts += [json.loads(line)["body"] for line in expected.read_text().splitlines()]
    assert any(not text.isascii() for text in texts) and any(text.isascii() for text in texts)
    texts += [
        "",
        "'",
        "Marbeck",
        '"Marbeck said," said Marbeck. Marbeck! "Marbeck" and: Marbeck; then Marbeck',
        " Leading space: Zuvelk met ZUVELK and Zuvelk's aide. U.S.-DPRK talks; U.S. aid",
        "rock'n'roll isn't rock'n roll; Kim's aides' talks ' stray 'quotes' O'Brien d'Artagnan",
        "snake_case A_B _Under 2024 3MARBECK x’y Ким Чен Ын встретился. Ким в Пхеньяне",
        "“Quoted” Words — with a dash… and? Words again. words",
    ]
    for text in texts:
        counts: Counter[str] = Counter()
        entities: set[str] = set()
        terms._count_terms(text, 2, counts, entities)
        expected_counts: Counter[str] = Counter()
        expected_entities: set[str] = set()
        _reference_count_terms(text, 2, expected_counts, expected_entities)
        assert (counts, entities) == (expected_counts, expected_entities), text[:60]
