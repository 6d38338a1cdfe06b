"""The whole pipeline with tiny models: provenance, gate, save/load, threads, bad input."""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict

import numpy as np
import pytest
from tiny_models import random_text

from secondopinion import BM25Index, CrossEncoder
from secondopinion.gate import Evidence, Refusal
from secondopinion.pipeline import Pipeline

N_DOCS = 120
QUERIES = [
    "protein cell growth",
    "cancer risk in patient study",
    "blood dose effect",
    "virus infection immune response",
    "what is the result of the trial",
    "heart disease",
    "the of and",  # stop words only: BM25 returns nothing, dense still does
    "xqzv",
]


@pytest.fixture(scope="module")
def documents() -> list[dict[str, str]]:
    rng = np.random.default_rng(5)
    return [
        {
            "id": f"d{i}",
            "title": random_text(rng, 3),
            "text": random_text(rng, int(rng.integers(4, 50))),
        }
        for i in range(N_DOCS)
    ]


@pytest.fixture(scope="module")
def pipe(documents, embedder, cross_encoder) -> Pipeline:
    return Pipeline.from_corpus(documents, embedder=embedder, cross_encoder=cross_encoder)


def comparable(result):
    """A result without its timings, for equality."""
    d = {k: v for k, v in vars(result).items() if k != "timings_ms"}
    d["type"] = type(result).__name__
    d["candidates"] = [asdict(c) for c in result.candidates]
    d["chunks"] = [asdict(c) for c in result.chunks]
    if isinstance(d.get("best_score"), float) and math.isnan(d["best_score"]):
        d["best_score"] = "nan"
    return d


@pytest.mark.parametrize("query", QUERIES[:4])
def test_provenance_against_each_stage(pipe, embedder, cross_encoder, documents, query):
    result = pipe.search(query, candidates=30, top_n=5, floor=0.0)
    assert isinstance(result, Evidence)
    by_id = {d["id"]: d for d in documents}
    bm25 = pipe.retriever.bm25.search(query, k=30)
    dense = pipe.retriever.dense.search(query, k=30)
    bm25_rank = {d: r + 1 for r, d in enumerate(bm25.ids.tolist())}
    dense_rank = {d: r + 1 for r, d in enumerate(dense.ids.tolist())}
    assert len(result.candidates) == 30
    passages = []
    for c in result.candidates:
        assert c.bm25_rank == bm25_rank.get(c.id, 0)
        assert c.dense_rank == dense_rank.get(c.id, 0)
        assert (c.bm25_score is None) == (c.bm25_rank == 0)
        assert (c.dense_score is None) == (c.dense_rank == 0)
        if c.bm25_rank:
            assert c.bm25_score == pytest.approx(float(bm25.scores[c.bm25_rank - 1]))
        if c.dense_rank:
            assert c.dense_score == pytest.approx(float(dense.scores[c.dense_rank - 1]))
        doc = by_id[c.id]
        assert c.text == doc["text"] and c.title == doc["title"]
        passages.append(f"{doc['title']} {doc['text']}")
    assert sorted(c.fused_rank for c in result.candidates) == list(range(1, 31))
    # The logits are the cross-encoder's own, through its public API.
    logits = cross_encoder.predict([(query, p) for p in passages], activation="none")
    got = [c.ce_logit for c in result.candidates]
    np.testing.assert_allclose(got, logits, rtol=1e-5, atol=1e-5)
    for c in result.candidates:
        assert c.ce_score == pytest.approx(1 / (1 + math.exp(-c.ce_logit)), rel=1e-6)
        assert c.score == c.ce_score  # no learned relevance in the tiny model: the sigmoid
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)
    assert [c.id for c in result.chunks] == [c.id for c in result.candidates[:5]]
    expected_keys = {"bm25", "embed", "hnsw", "fuse", "tokenize", "rerank", "gate", "total"}
    assert set(result.timings_ms) == expected_keys
    assert all(v >= 0 for v in result.timings_ms.values())
    assert result.timings_ms["total"] >= result.timings_ms["rerank"]


def test_gate_semantics_in_the_pipeline(pipe):
    query = QUERIES[1]
    everything = pipe.search(query, candidates=40, top_n=None, floor=0.0)
    scores = [c.score for c in everything.candidates]
    floor = float(np.median(scores))
    for top_n in (None, 0, 1, 3, 100):
        result = pipe.search(query, candidates=40, top_n=top_n, floor=floor)
        clearing = [c.id for c in everything.candidates if c.score >= floor]
        want = clearing if top_n is None else clearing[:top_n]
        assert [c.id for c in result.chunks] == want
        assert [c.id for c in result.candidates] == [c.id for c in everything.candidates]
        assert [c.kept for c in result.candidates] == [c.id in want for c in result.candidates]
    refusal = pipe.search(query, candidates=40, floor=1.0)
    assert isinstance(refusal, Refusal) and refusal.best_score == max(scores)


def test_default_floor_is_the_models_then_half(pipe, documents, embedder, ce_dir, tmp_path):
    assert pipe.search(QUERIES[0], candidates=10).floor == 0.5
    config = json.loads((ce_dir / "secondopinion.json").read_text())
    calibrated = tmp_path / "ce"
    calibrated.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (calibrated / name).symlink_to(ce_dir / name)
    (calibrated / "secondopinion.json").write_text(json.dumps({**config, "floor": 0.123}))
    other = Pipeline(pipe.ids, pipe.titles, pipe.texts, pipe.retriever, CrossEncoder(calibrated))
    assert other.search(QUERIES[0], candidates=10).floor == 0.123
    assert other.search(QUERIES[0], candidates=10, floor=0.9).floor == 0.9


def test_custom_relevance_model(pipe):
    class Constant:
        def score(self, features):
            assert len(features.ce_logit) == len(features.bm25_rank) == len(features.fused_rank)
            return np.linspace(0.9, 0.1, len(features))  # reverse fused order

    other = Pipeline(
        pipe.ids, pipe.titles, pipe.texts, pipe.retriever, pipe.cross_encoder, relevance=Constant()
    )
    result = other.search(QUERIES[0], candidates=9, top_n=None, floor=0.5)
    assert [c.fused_rank for c in result.candidates] == list(range(1, 10))
    assert len(result.chunks) == 5  # 0.9 .. 0.5

    class Broken:
        def score(self, features):
            return np.full(len(features), np.nan)

    broken = Pipeline(
        pipe.ids, pipe.titles, pipe.texts, pipe.retriever, pipe.cross_encoder, relevance=Broken()
    )
    with pytest.raises(ValueError, match="probabilities"):
        broken.search(QUERIES[0], candidates=5)


def test_stop_word_query_still_gets_dense_candidates(pipe):
    result = pipe.search("the of and", candidates=10, floor=0.0)
    assert len(result.candidates) == 10
    assert all(c.bm25_rank == 0 and c.dense_rank > 0 for c in result.candidates)


def test_save_load_round_trip(pipe, embedder, cross_encoder, tmp_path):
    pipe.save(tmp_path / "p")
    again = Pipeline.load(tmp_path / "p", embedder=embedder, cross_encoder=cross_encoder)
    assert again.ids == pipe.ids and again.texts == pipe.texts and again.titles == pipe.titles
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["versions"]["secondopinion"] and manifest["documents"] == N_DOCS
    for q in QUERIES:
        a = pipe.search(q, candidates=25, top_n=5, floor=0.3)
        b = again.search(q, candidates=25, top_n=5, floor=0.3)
        assert comparable(a) == comparable(b)


def _corrupt(folder, name, how):
    path = folder / name
    if how == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x55
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_text("{ this is not json")
    elif how == "delete":
        path.unlink()


@pytest.mark.parametrize(
    "name, how, error",
    [
        ("manifest.json", "garbage", ValueError),
        ("manifest.json", "delete", FileNotFoundError),
        ("docs.jsonl", "truncate", ValueError),
        ("docs.jsonl", "delete", FileNotFoundError),
        ("bm25.idx", "flip", ValueError),
        ("bm25.idx", "truncate", ValueError),
        ("dense.hnsw", "flip", ValueError),
        ("dense.hnsw", "truncate", ValueError),
        ("dense.json", "garbage", ValueError),
    ],
)
def test_corrupt_saved_pipeline(pipe, embedder, cross_encoder, tmp_path, name, how, error):
    folder = tmp_path / "p"
    pipe.save(folder)
    _corrupt(folder, name, how)
    with pytest.raises(error, match=name.split(".")[0]):
        Pipeline.load(folder, embedder=embedder, cross_encoder=cross_encoder)


def test_load_bad_paths_and_versions(pipe, embedder, cross_encoder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved pipeline"):
        Pipeline.load(tmp_path / "missing", embedder=embedder, cross_encoder=cross_encoder)
    pipe.save(tmp_path / "p")
    manifest = tmp_path / "p" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format": 99}))
    with pytest.raises(ValueError, match="format 99"):
        Pipeline.load(tmp_path / "p", embedder=embedder, cross_encoder=cross_encoder)


def test_unknown_model_dir(tmp_path, documents):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        CrossEncoder(tmp_path / "no-such-model")
    from secondopinion import Embedder

    with pytest.raises(FileNotFoundError):
        Pipeline.from_corpus(documents, embedder=Embedder(tmp_path / "nothing"))


@pytest.mark.parametrize(
    "documents, error, match",
    [
        ([], ValueError, "empty"),
        ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], ValueError, "duplicate"),
        ([{"text": "no id"}], ValueError, "id"),
        ([{"id": "a", "text": 3}], TypeError, "text"),
        (["ok", 5], TypeError, r"documents\[1\]"),
        ("a single string", TypeError, "iterable"),
    ],
)
def test_bad_corpus(documents, error, match, embedder, cross_encoder):
    with pytest.raises(error, match=match):
        Pipeline.from_corpus(documents, embedder=embedder, cross_encoder=cross_encoder)


def test_plain_string_documents(embedder, cross_encoder):
    pipe = Pipeline.from_corpus(
        (t for t in ["protein cell", "cancer risk", "blood dose"]),
        embedder=embedder,
        cross_encoder=cross_encoder,
    )
    result = pipe.search("cancer", candidates=5, floor=0.0)
    assert {c.id for c in result.candidates} == {"0", "1", "2"}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"query": ""}, ValueError, "query"),
        ({"query": "   "}, ValueError, "query"),
        ({"query": None}, TypeError, "query"),
        ({"query": "x", "floor": -0.1}, ValueError, "floor"),
        ({"query": "x", "floor": 1.5}, ValueError, "floor"),
        ({"query": "x", "floor": float("nan")}, ValueError, "floor"),
        ({"query": "x", "top_n": -1}, ValueError, "top_n"),
        ({"query": "x", "candidates": 0}, ValueError, "candidates"),
    ],
)
def test_bad_search_arguments(pipe, kwargs, error, match):
    query = kwargs.pop("query")
    with pytest.raises(error, match=match):
        pipe.search(query, **kwargs)


def test_top_n_zero_decides_only(pipe):
    answered = pipe.search(QUERIES[0], candidates=10, top_n=0, floor=0.0)
    assert isinstance(answered, Evidence) and answered.chunks == []
    assert len(answered.candidates) == 10


def test_eight_threads_match_serial(pipe):
    jobs = [(q, f) for q in QUERIES for f in (0.0, 0.5, 1.0)]
    serial = [comparable(pipe.search(q, candidates=15, top_n=4, floor=f)) for q, f in jobs]
    results = [None] * len(jobs)
    barrier = threading.Barrier(8)
    errors = []

    def worker(t):
        barrier.wait()
        try:
            for j in range(t, len(jobs), 8):
                q, f = jobs[j]
                results[j] = comparable(pipe.search(q, candidates=15, top_n=4, floor=f))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert results == serial


def test_search_batch_matches_search(pipe):
    batch = pipe.search_batch(QUERIES, candidates=12, top_n=3, threads=3)
    single = [pipe.search(q, candidates=12, top_n=3) for q in QUERIES]
    assert [comparable(a) for a in batch] == [comparable(b) for b in single]
    with pytest.raises(TypeError):
        pipe.search_batch("one string")


def test_bm25_and_pipeline_share_positions(pipe, documents):
    index = BM25Index.build(
        [f"{d['title']} {d['text']}" for d in documents], ids=[d["id"] for d in documents]
    )
    assert index.ids.tolist() == pipe.retriever.bm25.ids.tolist() == pipe.ids


def test_traces_are_opt_in_and_record_every_candidate(pipe, tmp_path):
    from secondopinion.traces import TraceStore

    assert pipe.traces is None
    store = TraceStore(tmp_path / "traces.db")
    pipe.traces = store
    try:
        results = pipe.search_batch(
            ["alpha query", "beta query"], candidates=7, query_ids=["q1", "q2"], threads=2
        )
    finally:
        pipe.traces = None
    arrays = store.arrays()
    assert len(arrays.doc_ids) == sum(len(r.candidates) for r in results)
    assert set(arrays.query_ids.tolist()) == {"q1", "q2"}
    assert arrays.kept.sum() == sum(len(r.chunks) for r in results if r.status == "evidence")
    store.close()


def test_query_ids_must_match_queries(pipe):
    with pytest.raises(ValueError, match="query_ids"):
        pipe.search_batch(["a", "b"], query_ids=["q1"])
