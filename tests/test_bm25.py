"""BM25Index against a plain-Python implementation of Lucene's BM25 over the
analyzer's tokens, plus edge cases, persistence and corrupt files."""

from __future__ import annotations

import math
import os
import random
import struct
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secondopinion import BM25Index
from secondopinion import bm25 as bm25_module
from secondopinion.hits import Hits

VOCAB = (
    "ibuprofen acetaminophen dose dosage dosing children child adults adult mechanism "
    "inhibits inhibition cyclooxygenase fever pain running runs run the of and is to "
    "liver kidney safety Safety SAFETY overdose weight kg mg"
).split()


def random_corpus(rng: random.Random, n: int, max_len: int = 30) -> list[str]:
    return [" ".join(rng.choices(VOCAB, k=rng.randint(0, max_len))) for _ in range(n)]


def reference_scores(index: BM25Index, docs: list[str], query: str, k1: float, b: float):
    """Lucene BM25 in plain Python (float64) over the index's own analyzer."""
    tokens = [index.analyzer.tokenize(d) for d in docs]
    n = len(tokens)
    avgdl = sum(map(len, tokens)) / n
    df = Counter(t for toks in tokens for t in set(toks))
    q_tokens = index.analyzer.tokenize(query)
    scores = []
    for toks in tokens:
        tf = Counter(toks)
        s = 0.0
        for t in q_tokens:  # repeated query terms count again
            if tf[t]:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                s += idf * tf[t] / (tf[t] + k1 * (1 - b + b * len(toks) / avgdl))
        scores.append(s)
    return np.array(scores)


def assert_matches_reference(index, docs, query, k, k1=0.9, b=0.4, **override):
    ref = reference_scores(index, docs, query, k1, b)
    dense = index.scores(query, **override)
    np.testing.assert_allclose(dense, ref, rtol=1e-5, atol=0)
    hits = index.search(query, k, **override)
    matching = int((ref > 0).sum())
    assert len(hits) == min(k, matching)
    np.testing.assert_allclose(hits.scores, ref[hits.indices], rtol=1e-5, atol=0)
    assert np.all(hits.scores > 0)
    # sorted by score, ties by lower index
    for a, c in zip(range(len(hits) - 1), range(1, len(hits)), strict=True):
        assert hits.scores[a] > hits.scores[c] or (
            hits.scores[a] == hits.scores[c] and hits.indices[a] < hits.indices[c]
        )
    # nothing left out scores better than what was returned (up to float32 rounding)
    if len(hits):
        rest = np.setdiff1d(np.arange(len(docs)), hits.indices)
        if rest.size:
            assert ref[rest].max() <= ref[hits.indices].min() * (1 + 1e-5)
    return hits


QUERIES = [
    "ibuprofen dosage for children",
    "Running safety",
    "liver liver kidney",
    "mechanism of cyclooxygenase inhibition",
    "the of and",
    "unknownword",
    "",
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("query", QUERIES)
def test_scores_equal_reference(seed, query):
    docs = random_corpus(random.Random(seed), 60)
    index = BM25Index.build(docs)
    assert_matches_reference(index, docs, query, k=10)
    assert_matches_reference(index, docs, query, k=1000)


@settings(max_examples=40, deadline=None)
@given(
    docs=st.lists(
        st.lists(st.sampled_from(VOCAB), max_size=12).map(" ".join), min_size=1, max_size=25
    ),
    query=st.lists(st.sampled_from(VOCAB + ["zzz"]), max_size=6).map(" ".join),
    k=st.integers(1, 30),
    k1=st.floats(0, 3),
    b=st.floats(0, 1),
)
def test_reference_property(docs, query, k, k1, b):
    index = BM25Index.build(docs, k1=k1, b=b)
    assert_matches_reference(index, docs, query, k, k1=k1, b=b)


@pytest.mark.parametrize("stemmer", ["porter", "english", None])
@pytest.mark.parametrize("stopwords", ["english", None, ["ibuprofen"]])
@pytest.mark.parametrize("lowercase", [True, False])
def test_analyzer_settings_reach_scoring(stemmer, stopwords, lowercase):
    docs = random_corpus(random.Random(7), 40)
    index = BM25Index.build(docs, stemmer=stemmer, stopwords=stopwords, lowercase=lowercase)
    assert index.analyzer.stemmer == stemmer
    assert index.analyzer.lowercase is lowercase
    for query in ("Safety running dosing", "the ibuprofen SAFETY"):
        assert_matches_reference(index, docs, query, k=15)


def test_k1_b_override_equals_fresh_index():
    docs = random_corpus(random.Random(3), 80)
    default = BM25Index.build(docs)
    for k1, b in [(1.2, 0.75), (0.0, 0.4), (2.0, 0.0), (0.5, 1.0)]:
        fresh = BM25Index.build(docs, k1=k1, b=b)
        for q in QUERIES:
            got = default.search(q, 20, k1=k1, b=b)
            want = fresh.search(q, 20)
            np.testing.assert_array_equal(got.indices, want.indices)
            np.testing.assert_array_equal(got.scores, want.scores)
            np.testing.assert_array_equal(default.scores(q, k1=k1, b=b), fresh.scores(q))
    # one override alone keeps the other default
    np.testing.assert_array_equal(
        default.search("liver pain", 5, b=0.75).scores,
        default.search("liver pain", 5, k1=0.9, b=0.75).scores,
    )


def test_search_batch_equals_search():
    docs = random_corpus(random.Random(4), 200)
    index = BM25Index.build(docs)
    queries = [" ".join(random.Random(i).choices(VOCAB, k=4)) for i in range(100)] + QUERIES
    for threads in (1, 3):
        batch = index.search_batch(queries, k=7, threads=threads, k1=1.1)
        assert len(batch) == len(queries)
        for q, hits in zip(queries, batch, strict=True):
            single = index.search(q, 7, k1=1.1)
            np.testing.assert_array_equal(hits.indices, single.indices)
            np.testing.assert_array_equal(hits.scores, single.scores)
            np.testing.assert_array_equal(hits.ids, single.ids)
    assert index.search_batch([], k=5) == []


def test_concurrent_python_threads():
    docs = random_corpus(random.Random(5), 300)
    index = BM25Index.build(docs)
    queries = [" ".join(random.Random(i).choices(VOCAB, k=3)) for i in range(200)]
    expected = [index.search(q, 10) for q in queries]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda q: index.search(q, 10), queries))
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(e.indices, g.indices)
        np.testing.assert_array_equal(e.scores, g.scores)


def test_hits_types_and_ids():
    index = BM25Index.build(["ibuprofen", "acetaminophen ibuprofen", "pain"], ids=["a", "b", 7])
    hits = index.search("ibuprofen", 10)
    assert isinstance(hits, Hits)
    assert hits.indices.dtype == np.int64 and hits.scores.dtype == np.float32
    assert hits.ids.dtype == object and hits.ids.tolist() == ["a", "b"]
    assert index.ids.tolist() == ["a", "b", "7"]
    with pytest.raises(ValueError, match="read-only"):
        index.ids[0] = "z"
    assert list(hits)[0][0] == "a"


def test_ties_break_by_lower_index_in_every_selection_path():
    # Identical documents tie. Few postings in a large corpus: selection among
    # the touched documents; more: a scan of all scores, cleared either along
    # the postings or wholesale.
    filler = [f"filler{i} words" + (" mid" if i % 10 == 0 else "") for i in range(3000)]
    docs = filler[:1000] + ["rare term"] + filler[1000:2000] + ["rare term"] + filler[2000:]
    docs += ["rare term"] * 3
    index = BM25Index.build(docs)
    sparse = index.search("rare", 4)  # 5 postings among 3005 documents
    assert sparse.indices.tolist() == [1000, 2001, 3002, 3003]
    everything = index.search("words rare", 5000)  # every document matches
    assert len(everything) == len(docs)
    assert everything.indices[:5].tolist() == [1000, 2001, 3002, 3003, 3004]
    # then the two-term filler documents (shorter than the "mid" ones), by index
    assert everything.indices[5:10].tolist() == [1, 2, 3, 4, 5]
    middle = index.search("mid", 1000)  # 300 postings
    assert middle.indices.tolist() == [i for i in range(len(docs)) if "mid" in docs[i]]
    for query in ("rare", "words rare", "mid", "mid rare"):
        assert_matches_reference(index, docs, query, k=50)
    # and the scratch space is clean after each path: repeat in another order
    assert index.search("rare", 4).indices.tolist() == [1000, 2001, 3002, 3003]


def test_repeated_query_terms_count_again():
    index = BM25Index.build(["ibuprofen dose", "acetaminophen", "ibuprofen ibuprofen fever"])
    once = index.scores("ibuprofen")
    np.testing.assert_allclose(index.scores("ibuprofen Ibuprofen"), 2 * once, rtol=1e-6)


def test_one_document_corpus():
    index = BM25Index.build(["Ibuprofen dosage for children"])
    hits = index.search("ibuprofen", k=10)
    # N = df = 1: idf = ln(1 + 0.5 / 1.5); |d| = avgdl, so tf / (tf + k1)
    assert hits.indices.tolist() == [0]
    assert hits.scores[0] == pytest.approx(math.log(4 / 3) / (1 + 0.9), rel=1e-6)


def test_documents_without_terms_are_allowed():
    index = BM25Index.build(["", "the of and", "pain"])
    assert index.doc_lengths.tolist() == [0, 0, 1]
    assert index.search("pain", 10).indices.tolist() == [2]
    assert index.num_docs == 3 and len(index) == 3


@pytest.mark.parametrize("query", ["", "   ", "the of and", "zzzunknown", "!!!"])
def test_queries_without_known_terms_give_empty_hits(query):
    index = BM25Index.build(["ibuprofen dose", "acetaminophen"])
    hits = index.search(query, 10)
    assert len(hits) == 0 and hits.indices.dtype == np.int64 and hits.scores.dtype == np.float32
    assert not index.scores(query).any()


def test_k_larger_than_corpus():
    index = BM25Index.build(["pain relief", "pain", "fever"])
    assert index.search("pain", 1_000_000).indices.tolist() == [1, 0]


def test_empty_corpus_raises():
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Index.build([])


def test_duplicate_ids_raise_naming_the_duplicate():
    with pytest.raises(ValueError, match=r"duplicate document id 'x' \(documents 0 and 2\)"):
        BM25Index.build(["a", "b", "c"], ids=["x", "y", "x"])
    with pytest.raises(ValueError, match="duplicate document id '1'"):
        BM25Index.build([{"_id": "1", "text": "a"}, {"_id": "1", "text": "b"}])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda ix: ix.search("pain", 0), ValueError, "k must be >= 1"),
        (lambda ix: ix.search("pain", -3), ValueError, "k must be >= 1"),
        (lambda ix: ix.search("pain", 2.5), TypeError, "k must be an int"),
        (lambda ix: ix.search("pain", True), TypeError, "k must be an int"),
        (lambda ix: ix.search(b"pain", 5), TypeError, "query must be str"),
        (lambda ix: ix.search("pain", 5, k1=-1), ValueError, "k1"),
        (lambda ix: ix.search("pain", 5, k1=float("inf")), ValueError, "k1"),
        (lambda ix: ix.search("pain", 5, b=1.5), ValueError, "b must be"),
        (lambda ix: ix.search("pain", 5, b=float("nan")), ValueError, "b must be"),
        (lambda ix: ix.search_batch("pain", 5), TypeError, "queries"),
        (lambda ix: ix.search_batch(["pain", 3], 5), TypeError, r"queries\[1\]"),
        (lambda ix: ix.search_batch(["pain"], 5, threads=0), ValueError, "threads"),
    ],
)
def test_bad_search_arguments(call, error, match):
    index = BM25Index.build(["pain relief", "fever"])
    with pytest.raises(error, match=match):
        call(index)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"texts": "one string"}, TypeError, "single str"),
        ({"texts": ["a", 3]}, TypeError, r"texts\[1\]"),
        ({"texts": ["a", "b"], "ids": ["x"]}, ValueError, "ids has 1 entries"),
        ({"texts": ["a", "b"], "ids": ["x", 1.5]}, TypeError, r"ids\[1\]"),
        ({"texts": ["a", "b"], "titles": ["t"]}, ValueError, "titles has 1"),
        ({"texts": [{"text": "a"}, {"text": "b", "id": "2"}]}, ValueError, r"texts\[0\]"),
        ({"texts": [{"text": "a", "id": "1"}, "b"]}, TypeError, r"texts\[1\]"),
        ({"texts": ["a"], "k1": -0.1}, ValueError, "k1"),
        ({"texts": ["a"], "b": 2}, ValueError, "b must be"),
        ({"texts": ["a"], "stemmer": "snowball"}, ValueError, "stemmer"),
        ({"texts": ["a"], "threads": 0}, ValueError, "threads"),
    ],
)
def test_bad_build_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        BM25Index.build(**kwargs)


def test_titles_and_dicts_index_title_with_text():
    titles = ["Ibuprofen", "Acetaminophen", "Fever"]
    texts = ["dosage for children", "liver safety", "in adults"]
    joined = BM25Index.build([f"{t} {x}" for t, x in zip(titles, texts, strict=True)])
    separate = BM25Index.build(texts, titles=titles)
    untitled = BM25Index.build(texts, titles=[None, None, None])
    np.testing.assert_array_equal(
        untitled.scores("children"), BM25Index.build(texts).scores("children")
    )
    pairs = list(enumerate(zip(titles, texts, strict=True)))
    dicts = BM25Index.build([{"id": f"d{i}", "title": t, "text": x} for i, (t, x) in pairs])
    beir = BM25Index.build([{"_id": f"d{i}", "title": t, "text": x} for i, (t, x) in pairs])
    for q in ("ibuprofen children", "fever adults", "safety"):
        want = joined.scores(q)
        for other in (separate, dicts, beir):
            np.testing.assert_array_equal(other.scores(q), want)
    assert dicts.ids.tolist() == ["d0", "d1", "d2"] == beir.ids.tolist()
    # explicit ids override the ones inside the documents
    assert BM25Index.build([{"id": "x", "text": "a"}], ids=["y"]).ids.tolist() == ["y"]


def test_build_is_independent_of_threads_and_batches(tmp_path, monkeypatch):
    docs = random_corpus(random.Random(9), 1500, max_len=12)
    one = BM25Index.build(docs, threads=1)
    monkeypatch.setattr(bm25_module, "BUILD_BATCH_DOCS", 700)
    many = BM25Index.build(docs, threads=3)
    one.save(tmp_path / "one.bm25")
    many.save(tmp_path / "many.bm25")
    assert (tmp_path / "one.bm25").read_bytes() == (tmp_path / "many.bm25").read_bytes()


def test_progress_bar_goes_to_stderr(capsys):
    BM25Index.build(["pain", "fever"], show_progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "BM25 index" in err
    BM25Index.build(["pain", "fever"])
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- persistence


@pytest.fixture
def saved(tmp_path):
    docs = random_corpus(random.Random(11), 120)
    ids = [f"doc-{i}-é" for i in range(len(docs))]
    index = BM25Index.build(
        docs, ids, k1=1.3, b=0.6, stemmer="english", stopwords=["kidney", "of"], lowercase=False
    )
    path = tmp_path / "index.bm25"
    index.save(path)
    return index, path


@pytest.mark.parametrize("use_mmap", [True, False])
def test_save_load_round_trip(saved, use_mmap, tmp_path):
    index, path = saved
    loaded = BM25Index.load(path, mmap=use_mmap)
    assert loaded.ids.tolist() == index.ids.tolist()
    assert (loaded.k1, loaded.b) == (index.k1, index.b)
    assert loaded.analyzer.stopwords == ("kidney", "of")
    assert loaded.analyzer.stemmer == "english" and loaded.analyzer.lowercase is False
    assert (loaded.num_docs, loaded.num_terms, loaded.num_postings) == (
        index.num_docs,
        index.num_terms,
        index.num_postings,
    )
    np.testing.assert_array_equal(loaded.doc_lengths, index.doc_lengths)
    for q in QUERIES + ["Safety SAFETY kidney"]:
        a, b = index.search(q, 25), loaded.search(q, 25)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.ids, b.ids)
    # saving the loaded index reproduces the file
    loaded.save(tmp_path / "again.bm25")
    assert (tmp_path / "again.bm25").read_bytes() == path.read_bytes()
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]


def test_loaded_index_outlives_its_file(saved):
    index, path = saved
    loaded = BM25Index.load(path)
    path.unlink()
    np.testing.assert_array_equal(loaded.search("liver", 5).scores, index.search("liver", 5).scores)


def _sections(blob: bytes) -> dict[int, tuple[int, int]]:
    count = struct.unpack_from("<I", blob, 28)[0]
    out = {}
    for i in range(count):
        sid, _, offset, n, _ = struct.unpack_from("<IIQQQ", blob, 64 + 32 * i)
        out[sid] = (offset, n)
    return out


def _reseal(blob: bytearray) -> bytearray:
    """Recompute both CRCs (zlib's CRC-32), as a crafted file would."""
    header_size = struct.unpack_from("<I", blob, 24)[0]
    struct.pack_into("<I", blob, 32, zlib.crc32(bytes(blob[header_size:])))
    struct.pack_into("<I", blob, 36, 0)
    struct.pack_into("<I", blob, 36, zlib.crc32(bytes(blob[:header_size])))
    return blob


def test_checksums_are_zlib_crc32(saved):
    _, path = saved
    blob = path.read_bytes()
    assert blob[:8] == b"\x89SOBM25\n"
    assert _reseal(bytearray(blob)) == bytearray(blob)
    assert struct.unpack_from("<Q", blob, 16)[0] == len(blob)


def _load_error(path, data: bytes) -> str:
    path.write_bytes(data)
    for use_mmap in (True, False):
        with pytest.raises(ValueError) as info:
            BM25Index.load(path, mmap=use_mmap)
        assert str(path) in str(info.value)
    return str(info.value)


def test_flipped_bytes_are_detected(saved, tmp_path):
    _, path = saved
    blob = path.read_bytes()
    rng = random.Random(0)
    positions = [8, 16, 24, 30, 33, 37, 64, 70, 100] + rng.sample(range(128, len(blob)), 40)
    for pos in positions:
        bad = bytearray(blob)
        bad[pos] ^= 0x5A
        _load_error(tmp_path / "flipped.bm25", bytes(bad))


def test_truncated_files_are_detected(saved, tmp_path):
    _, path = saved
    blob = path.read_bytes()
    for size in (1, 7, 8, 40, 63, 64, 200, len(blob) // 2, len(blob) - 1):
        message = _load_error(tmp_path / "short.bm25", blob[:size])
        assert "truncated" in message or "signature" in message
    assert "trailing" in _load_error(tmp_path / "long.bm25", blob + b"\0")


def test_foreign_files_are_refused(tmp_path):
    rng = random.Random(1)
    for data in (bytes(rng.getrandbits(8) for _ in range(5000)), b"PK\x03\x04" + b"\0" * 100):
        assert "not a secondopinion BM25 index" in _load_error(tmp_path / "x.bin", data)
    assert "empty" in _load_error(tmp_path / "empty.bm25", b"")


def test_wrong_magic_and_newer_version(saved, tmp_path):
    _, path = saved
    blob = bytearray(path.read_bytes())
    wrong = bytearray(blob)
    wrong[1:7] = b"XXXXXX"
    assert "signature" in _load_error(tmp_path / "magic.bm25", bytes(wrong))
    newer = bytearray(blob)
    struct.pack_into("<I", newer, 8, 2)
    assert "version 2" in _load_error(tmp_path / "v2.bm25", bytes(_reseal(newer)))


def test_crafted_files_with_valid_checksums_are_refused(saved, tmp_path):
    # Structural checks stand behind the checksum: an out-of-range document
    # index would otherwise be an out-of-bounds write during search.
    _, path = saved
    blob = path.read_bytes()
    sections = _sections(blob)
    offset, _ = sections[4]  # post_docs
    bad = bytearray(blob)
    struct.pack_into("<I", bad, offset, 10**6)
    assert "out of range" in _load_error(tmp_path / "docs.bm25", bytes(_reseal(bad)))

    offset, _ = sections[3]  # post_offsets
    bad = bytearray(blob)
    struct.pack_into("<Q", bad, offset + 8, 2**40)
    assert "ascending" in _load_error(tmp_path / "offsets.bm25", bytes(_reseal(bad)))

    bad = bytearray(blob)
    struct.pack_into("<Q", bad, 64 + 8, 2**50)  # section 1's offset, beyond the file
    assert "outside the file" in _load_error(tmp_path / "table.bm25", bytes(_reseal(bad)))

    ids_at, _ = sections[9]  # id_bytes: "doc-0-é" then "doc-1-é", equal lengths
    bad = bytearray(blob)
    length = len("doc-0-é".encode())
    bad[ids_at + length : ids_at + 2 * length] = bad[ids_at : ids_at + length]
    assert "duplicate document id 'doc-0-é'" in _load_error(
        tmp_path / "dup.bm25", bytes(_reseal(bad))
    )


def test_resealed_random_mutations_never_crash(saved, tmp_path):
    # Past the checksum (recomputed here), any change either still forms a
    # valid index or is refused with ValueError; never a crash. Mutations
    # target the header, the section table and the starts of all sections.
    _, path = saved
    blob = path.read_bytes()
    targets = list(range(8, 64 + 32 * 11))
    for offset, n in _sections(blob).values():
        targets += list(range(offset, min(len(blob), offset + min(n * 8, 64))))
    rng = random.Random(2)
    target = tmp_path / "mutant.bm25"
    loaded = refused = 0
    for _ in range(300):
        bad = bytearray(blob)
        for pos in rng.sample(targets, rng.randint(1, 3)):
            bad[pos] = rng.choice([0, 1, 0x7F, 0xFF, bad[pos] ^ (1 << rng.randrange(8))])
        target.write_bytes(bytes(_reseal(bad)))
        try:
            index = BM25Index.load(target, mmap=rng.random() < 0.5)
        except ValueError:
            refused += 1
            continue
        loaded += 1
        for q in QUERIES:
            index.search(q, 10)
            index.scores(q)
    assert refused > 100 and loaded > 10  # both outcomes exercised


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        BM25Index.load(tmp_path / "nope.bm25")
    with pytest.raises(ValueError, match="not a regular file"):
        BM25Index.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        BM25Index.build(["a"]).save(tmp_path / "no" / "such" / "dir.bm25")
