"""DenseIndex against numpy brute force; HybridRetriever against fusing by hand."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from tiny_models import random_text

from secondopinion import BM25Index, Embedder, fuse_rrf, fuse_weighted
from secondopinion.retrieve import DenseIndex, HybridRetriever, HybridTimings

N_DOCS = 150


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(11)
    texts = [random_text(rng, int(rng.integers(3, 40))) for _ in range(N_DOCS)]
    return [f"doc{i}" for i in range(N_DOCS)], texts


@pytest.fixture(scope="module")
def dense(corpus, embedder) -> DenseIndex:
    ids, texts = corpus
    # ef_construction and ef well above the corpus size: the graph search is exact.
    return DenseIndex.build(texts, ids, embedder=embedder, ef_construction=400, ef=400)


QUERIES = ["protein cell", "cancer risk in patient study", "the", "blood pressure dose"]


def brute_force(embedder, texts, query, k):
    docs = embedder.encode(texts).astype(np.float64)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    q = embedder.encode([query])[0].astype(np.float64)
    q /= np.linalg.norm(q)
    sims = docs @ q
    order = sorted(range(len(texts)), key=lambda i: (-sims[i], i))[:k]
    return order, sims[order]


@pytest.mark.parametrize("query", QUERIES)
def test_dense_matches_brute_force(dense, corpus, embedder, query):
    _, texts = corpus
    hits = dense.search(query, k=20)
    want, sims = brute_force(embedder, texts, query, 20)
    np.testing.assert_allclose(hits.scores, sims, atol=1e-5)
    # ef above the corpus size makes the graph search exhaustive: the same documents.
    assert set(hits.indices.tolist()) == set(want)
    assert hits.ids.tolist() == [f"doc{i}" for i in hits.indices.tolist()]
    s = hits.scores.astype(np.float64)
    assert np.all(np.diff(s) <= 0)
    ties = np.flatnonzero(np.diff(s) == 0)
    assert np.all(hits.indices[ties] < hits.indices[ties + 1])


def test_dense_k_beyond_corpus_and_ef_override(dense):
    assert len(dense.search("protein", k=10 * N_DOCS)) == N_DOCS
    low = dense.search("protein", k=5, ef=1)  # ef below k: hnswlib searches with k
    assert len(low) == 5
    assert dense.ef == 400  # a per-query ef leaves the default alone


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"texts": []}, ValueError),
        ({"texts": ["a", "b"], "ids": ["x", "x"]}, ValueError),
        ({"texts": ["a", "b"], "ids": ["x"]}, ValueError),
        ({"texts": ["a", 3]}, TypeError),
        ({"texts": "a single string"}, TypeError),
        ({"texts": ["a"], "m": 0}, ValueError),
    ],
)
def test_dense_build_bad_input(embedder, kwargs, error):
    with pytest.raises(error):
        DenseIndex.build(embedder=embedder, **kwargs)


@pytest.mark.parametrize(
    "query, error", [("", ValueError), ("  \n", ValueError), (None, TypeError)]
)
def test_dense_bad_query(dense, query, error):
    with pytest.raises(error, match="query"):
        dense.search(query)


def test_dense_save_load_round_trip(dense, embedder, tmp_path):
    dense.save(tmp_path)
    again = DenseIndex.load(tmp_path, embedder=embedder)
    assert again.ef == dense.ef and again.m == dense.m and len(again) == len(dense)
    for q in QUERIES:
        a, b = dense.search(q, k=30), again.search(q, k=30)
        assert a.indices.tolist() == b.indices.tolist()
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.ids.tolist() == b.ids.tolist()


def test_dense_load_refuses_corrupt_or_foreign(dense, embedder, model_dirs, tmp_path):
    dense.save(tmp_path)
    graph = tmp_path / "dense.hnsw"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        DenseIndex.load(tmp_path, embedder=embedder)
    dense.save(tmp_path)
    other = Embedder(model_dirs(kind="embedder", seed=5, pooling="cls"))
    object.__setattr__(other.config, "name", "another-embedder")
    with pytest.raises(ValueError, match="another-embedder"):
        DenseIndex.load(tmp_path, embedder=other)
    (tmp_path / "dense.json").write_text("{not json")
    with pytest.raises(ValueError, match="dense.json"):
        DenseIndex.load(tmp_path, embedder=embedder)
    with pytest.raises(FileNotFoundError):
        DenseIndex.load(tmp_path / "nowhere", embedder=embedder)


def test_dense_concurrent_ef_does_not_leak(dense):
    """Threads asking for different ef get what a lone search with that ef gets."""
    jobs = [(q, ef) for q in QUERIES for ef in (1, 3, 400)] * 3
    serial = [dense.search(q, k=3, ef=ef).indices.tolist() for q, ef in jobs]
    results: list[list[int] | None] = [None] * len(jobs)
    barrier = threading.Barrier(8)

    def worker(t):
        barrier.wait()
        for j in range(t, len(jobs), 8):
            q, ef = jobs[j]
            results[j] = dense.search(q, k=3, ef=ef).indices.tolist()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == serial


@pytest.fixture(scope="module")
def bm25(corpus) -> BM25Index:
    ids, texts = corpus
    return BM25Index.build(texts, ids=ids)


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
@pytest.mark.parametrize("query", QUERIES[:2] + ["qqqq zzzz"])
def test_hybrid_is_fusion_of_the_two_legs(bm25, dense, fusion, query):
    retriever = HybridRetriever(bm25, dense, n_bm25=30, n_dense=20, fusion=fusion)
    timings = HybridTimings()
    got = retriever.retrieve(query, 25, timings=timings)
    legs = [bm25.search(query, k=30), dense.search(query, k=20)]
    if fusion == "rrf":
        want = fuse_rrf(legs, k=60, limit=25)
    else:
        want = fuse_weighted(legs, norm="minmax", limit=25)
    assert got.indices.tolist() == want.indices.tolist()
    np.testing.assert_array_equal(got.stage_ranks, want.stage_ranks)
    # stage_ranks[0] is BM25's rank by hand.
    bm25_rank = {d: r + 1 for r, d in enumerate(legs[0].indices.tolist())}
    assert got.stage_ranks[0].tolist() == [bm25_rank.get(d, 0) for d in got.indices.tolist()]
    assert all(v >= 0 for v in vars(timings).values()) and timings.embed > 0


def test_hybrid_defaults_and_bad_input(bm25, dense, corpus, embedder):
    retriever = HybridRetriever(bm25, dense)
    assert len(retriever.retrieve("protein cell", 40)) == 40  # both legs go 40 deep
    with pytest.raises(ValueError, match="query"):
        retriever.retrieve("")
    with pytest.raises(ValueError, match="candidates"):
        retriever.retrieve("protein", 0)
    with pytest.raises(ValueError, match="fusion"):
        HybridRetriever(bm25, dense, fusion="max")
    with pytest.raises(ValueError, match="weights"):
        HybridRetriever(bm25, dense, weights=(1.0, -1.0))
    ids, texts = corpus
    other = BM25Index.build(texts[:10], ids=ids[:10])
    with pytest.raises(ValueError, match="same documents"):
        HybridRetriever(other, dense)
