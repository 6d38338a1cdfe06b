"""The BEIR loader on small files written here, and its errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import secondopinion
from secondopinion.beir import (
    BeirFormatError,
    load_beir,
    load_corpus,
    load_demo_corpus,
    load_demo_queries,
    load_qrels,
    load_queries,
)


def write_dataset(root: Path, corpus: str, queries: str, qrels: str, split: str = "test") -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    (root / "queries.jsonl").write_text(queries, encoding="utf-8")
    (root / "qrels" / f"{split}.tsv").write_text(qrels, encoding="utf-8")
    return root


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


CORPUS = jsonl(
    {"_id": "d1", "title": "Ibuprofen", "text": "An NSAID.", "metadata": {"url": "x"}},
    {"_id": 2, "text": "No title here."},
    {"_id": "d3", "title": "", "text": "Empty title. Line\u2028separator inside."},
)
QUERIES = jsonl({"_id": "q1", "text": "what is ibuprofen"}, {"_id": "q2", "text": "unjudged"})
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\t2\t0\nq1\td3\t-1\n"


def test_reads_a_dataset(tmp_path):
    data = load_beir(write_dataset(tmp_path, CORPUS, QUERIES, QRELS), split="test")
    assert data.split == "test"
    assert data.corpus.ids == ["d1", "2", "d3"]
    assert data.corpus.titles == ["Ibuprofen", "", ""]
    assert data.corpus.texts[2] == "Empty title. Line\u2028separator inside."
    assert len(data.corpus) == 3
    assert data.corpus.indexable_texts() == [
        "Ibuprofen An NSAID.",
        "No title here.",
        "Empty title. Line\u2028separator inside.",
    ]
    assert data.queries == {"q1": "what is ibuprofen", "q2": "unjudged"}
    assert data.qrels == {"q1": {"d1": 2, "2": 0, "d3": -1}}
    assert list(data.judged_queries()) == [("q1", "what is ibuprofen")]


def test_tolerates_blank_lines_crlf_bom_and_no_header(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b'\xef\xbb\xbf{"_id": "a", "text": "x"}\r\n\n{"_id": "b", "text": "y"}')
    assert load_corpus(corpus).ids == ["a", "b"]
    qrels = tmp_path / "q.tsv"
    qrels.write_text("q1\ta\t1\r\n\nq1\tb\t0\n")
    assert load_qrels(qrels) == {"q1": {"a": 1, "b": 0}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"_id": "a", "text": "x"}\n{"_id": "a"', r"corpus.jsonl:2: invalid JSON"),
        ('["a", "b"]\n', r"corpus.jsonl:1: expected a JSON object, got list"),
        ('{"text": "x"}\n', r'corpus.jsonl:1: "_id" must be a string, got missing'),
        ('{"_id": true, "text": "x"}\n', r'corpus.jsonl:1: "_id" must be a string, got a bool'),
        ('{"_id": "", "text": "x"}\n', r'corpus.jsonl:1: "_id" is empty'),
        ('{"_id": "a"}\n', r'corpus.jsonl:1: missing "text"'),
        ('{"_id": "a", "text": "x", "title": 3}\n', r'corpus.jsonl:1: "title" must be a string'),
        (
            '{"_id": "a", "text": "x"}\n\n{"_id": "a", "text": "y"}\n',
            r"corpus.jsonl:3: document id 'a' already used on line 1",
        ),
    ],
)
def test_corpus_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "corpus.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BeirFormatError, match=message) as info:
        load_corpus(path)
    assert info.value.path == str(path)


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_bytes(b'{"_id": "q", "text": "ok"}\n{"_id": "r", "text": "\xff"}\n')
    with pytest.raises(BeirFormatError, match=r"queries.jsonl:2: not UTF-8"):
        load_queries(path)


def test_query_errors(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text(jsonl({"_id": "q", "text": "a"}, {"_id": "q", "text": "b"}))
    with pytest.raises(
        BeirFormatError, match=r"queries.jsonl:2: query id 'q' already used on line 1"
    ):
        load_queries(path)
    path.write_text(jsonl({"_id": "q", "text": None}))
    with pytest.raises(BeirFormatError, match=r'queries.jsonl:1: missing "text"'):
        load_queries(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("query-id\tcorpus-id\tscore\nq1 d1 1\n", r"t.tsv:2: expected 3 tab-separated fields"),
        ("q1\td1\t1\tx\n", r"t.tsv:1: expected 3 tab-separated fields .* got 4"),
        ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", r"t.tsv:2: relevance must be an integer"),
        ("q1\td1\t1\nq1\td1\t2\n", r"t.tsv:2: query 'q1' judges document 'd1' twice"),
        ("q1\t\t1\n", r"t.tsv:1: empty query or document id"),
    ],
)
def test_qrels_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "t.tsv"
    path.write_text(content)
    with pytest.raises(BeirFormatError, match=message):
        load_qrels(path)


def test_missing_files_say_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="no BEIR dataset folder"):
        load_beir(tmp_path / "absent")
    root = write_dataset(tmp_path, CORPUS, QUERIES, QRELS, split="dev")
    (root / "qrels" / "train.tsv").write_text(QRELS)
    with pytest.raises(
        FileNotFoundError, match=r"no qrels for split 'test'.*splits there: dev, train"
    ):
        load_beir(root, split="test")
    (root / "corpus.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"no corpus file at .*corpus.jsonl"):
        load_beir(root, split="dev")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="the folder has no qrels/"):
        load_beir(empty, split="test")


def test_judged_query_missing_from_queries_is_an_error(tmp_path):
    root = write_dataset(tmp_path, CORPUS, QUERIES, QRELS + "q9\td1\t1\n")
    with pytest.raises(BeirFormatError, match=r"test.tsv: 1 judged queries are not in .*'q9'"):
        load_beir(root)


def test_demo_data_ships_with_the_package():
    corpus = load_demo_corpus()
    assert 35 <= len(corpus) <= 45
    assert len(set(corpus.ids)) == len(corpus)
    assert all(corpus.titles) and all(len(text) > 80 for text in corpus.texts)
    package_dir = Path(secondopinion.__file__).parent
    assert (package_dir / "data" / "demo_corpus.jsonl").is_file()
    queries = load_demo_queries()
    assert len(queries) >= 5
    answered = [q for q in queries if q.answer is not None]
    assert all(q.answer in corpus.ids for q in answered)
    assert any(q.answer is None for q in queries)  # an off-topic query to refuse
    assert len({q.query for q in queries}) == len(queries)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SECONDOPINION_SLOW") != "1", reason="SECONDOPINION_SLOW=1")
@pytest.mark.parametrize(
    ("name", "split", "docs", "judged", "pairs"),
    [("scifact", "train", 5183, 809, 919), ("nfcorpus", "dev", 3633, 324, 11385)],
)
def test_real_datasets(name, split, docs, judged, pairs):
    root = Path(os.environ.get("SECONDOPINION_DATA", Path(__file__).parents[2] / "shared" / "data"))
    if not (root / name).is_dir():
        pytest.skip(f"{root / name} not present")
    data = load_beir(root / name, split=split)
    assert len(data.corpus) == docs
    assert len(list(data.judged_queries())) == judged
    assert sum(len(d) for d in data.qrels.values()) == pairs
