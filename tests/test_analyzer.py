"""The analyzer against independent references: PyStemmer (Snowball), Python's
unicodedata / str.lower(), and the published Lucene English stop set."""

from __future__ import annotations

import unicodedata
from concurrent.futures import ThreadPoolExecutor

import pytest

from secondopinion import Analyzer, _core
from secondopinion.bm25 import ENGLISH_STOPWORDS

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, copied from its source.
LUCENE_ENGLISH_STOP = (
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with"
).split()

WORDS = [
    "running", "relational", "generously", "caresses", "ponies", "happily", "conditional",
    "hopefulness", "electricity", "agreed", "sized", "troubled", "formalize", "dying",
    "generalizations", "oscillators", "studies", "knightly", "skies", "news", "proceed",
]  # fmt: skip


def plain(**kwargs) -> Analyzer:
    return Analyzer(**{"stemmer": None, "stopwords": None, **kwargs})


def test_english_stop_list_is_lucenes():
    assert sorted(ENGLISH_STOPWORDS) == sorted(LUCENE_ENGLISH_STOP)
    assert Analyzer().stopwords == tuple(sorted(LUCENE_ENGLISH_STOP))


def test_default_pipeline():
    assert Analyzer().tokenize("The Running relational DOGS, and it was fine!") == [
        "run",
        "relat",
        "dog",
        "fine",
    ]


@pytest.mark.parametrize("algorithm", ["porter", "english"])
def test_stemmer_equals_pystemmer(algorithm):
    Stemmer = pytest.importorskip("Stemmer")  # PyStemmer: the test extra's reference

    reference = Stemmer.Stemmer(algorithm)
    analyzer = Analyzer(stemmer=algorithm, stopwords=None)
    assert analyzer.tokenize(" ".join(WORDS)) == reference.stemWords(WORDS)


def test_porter_and_porter2_differ_where_expected():
    assert Analyzer(stemmer="porter").tokenize("running relational") == ["run", "relat"]
    assert Analyzer(stemmer="porter").tokenize("generously") == ["gener"]
    assert Analyzer(stemmer="english").tokenize("generously") == ["generous"]


def test_no_stemmer_keeps_words():
    assert plain().tokenize("Running relational") == ["running", "relational"]
    assert plain().stemmer is None


def test_stop_words_removed_before_stemming():
    # "is" and "this" are stop words; "thing" is not, nor is its stem.
    assert Analyzer(stemmer=None).tokenize("this is a thing") == ["thing"]
    # every Lucene stop word disappears, in any case
    text = " ".join(LUCENE_ENGLISH_STOP + [w.upper() for w in LUCENE_ENGLISH_STOP])
    assert Analyzer().tokenize(text) == []


def test_stop_words_match_after_lowercasing_only():
    # With lower-casing off, "The" is not the stop word "the" (Lucene's behaviour).
    assert Analyzer(lowercase=False, stemmer=None).tokenize("The the") == ["The"]


def test_custom_and_disabled_stop_words():
    custom = Analyzer(stopwords=["ibuprofen", "dose"], stemmer=None)
    assert custom.tokenize("the ibuprofen dose for children") == ["the", "for", "children"]
    assert custom.stopwords == ("dose", "ibuprofen")
    assert plain().tokenize("the a") == ["the", "a"]


def test_lowercase_switch():
    assert plain().tokenize("DOGS Σοφία") == ["dogs", "σοφία"]
    assert plain(lowercase=False).tokenize("DOGS Σοφία") == ["DOGS", "Σοφία"]


def test_unicode_scripts():
    text = "ΣΟΦΊΑ ПРИВЕТ Café NAÏVE Über ÆØÅ Ǆemal İstanbul"
    assert plain().tokenize(text) == [
        "σοφία",
        "привет",
        "café",
        "naïve",
        "über",
        "æøå",
        "ǆemal",
        "istanbul",  # simple mapping of U+0130, as Java's Character.toLowerCase
    ]


def test_combining_marks_stay_in_words():
    assert plain().tokenize("cafe\u0301 au lait") == ["cafe\u0301", "au", "lait"]


def test_separators_and_digits():
    assert plain().tokenize("covid-19, 3.14 x_y e-mail (IL-6)") == [
        "covid",
        "19",
        "3",
        "14",
        "x",
        "y",
        "e",
        "mail",
        "il",
        "6",
    ]
    assert plain().tokenize("") == []
    assert plain().tokenize(" \t\n.,;!") == []


def _expected_word(cp: int) -> str | None:
    """What 'a<cp>b' becomes: one word (lower-cased) or None for a separator."""
    c = chr(cp)
    if unicodedata.category(c)[0] not in "LNM":
        return None
    lower = "i" if cp == 0x130 else c.lower()
    return "a" + (lower if len(lower) == 1 else c) + "b"


def test_every_code_point_against_unicodedata():
    # The tables come from one Unicode version; if this Python has another,
    # compare only the long-stable blocks (Latin, Greek, Cyrillic, Armenian).
    same = _core.analyzer_unicode_version() == unicodedata.unidata_version
    limit = 0x110000 if same else 0x0590
    cps = [cp for cp in range(0x80, limit)]
    text = " ".join(f"a{chr(cp)}b" for cp in cps)
    expected: list[str] = []
    for cp in cps:
        word = _expected_word(cp)
        expected += ["a", "b"] if word is None else [word]
    assert plain().tokenize(text) == expected


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [
        (b"abc\xffdef", ["abc", "def"]),  # invalid byte
        (b"\xc0\xafx", ["x"]),  # overlong "/"
        (b"ab\xe2\x82", ["ab"]),  # truncated sequence
        (b"a\xed\xa0\x80b", ["a", "b"]),  # encoded surrogate
        (b"a\xf4\x90\x80\x80b", ["a", "b"]),  # above U+10FFFF
        (b"a\x80\x80b", ["a", "b"]),  # stray continuation bytes
        ("é\U0001d400x".encode(), ["é\U0001d400x"]),  # valid 2- and 4-byte letters
        ("a\ufffdb".encode(), ["a", "b"]),  # a real U+FFFD separates too
    ],
)
def test_ill_formed_utf8_separates(raw, tokens):
    assert plain().tokenize(raw) == tokens


def test_lone_surrogate_in_str_separates():
    assert plain().tokenize("ab\ud800cd") == ["ab", "cd"]


def test_bad_arguments():
    with pytest.raises(TypeError, match="text"):
        Analyzer().tokenize(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stemmer"):
        Analyzer(stemmer="lancaster")
    with pytest.raises(ValueError, match="stopwords"):
        Analyzer(stopwords="french")
    with pytest.raises(TypeError, match=r"stopwords\[1\]"):
        Analyzer(stopwords=["a", 1])  # type: ignore[list-item]


def test_threads_share_an_analyzer():
    # Snowball stemmers are not thread-safe; each thread must get its own.
    analyzer = Analyzer(stopwords=None)
    text = " ".join(WORDS * 50)
    expected = analyzer.tokenize(text)
    assert expected[:2] == ["run", "relat"]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(analyzer.tokenize, [text] * 64))
    assert all(r == expected for r in results)
