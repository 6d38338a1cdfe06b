"""Fusion of 2 lists x 1,000 candidates: secondopinion against ranx, numpy and
plain Python, same inputs, same run.

    .venv/bin/python -m pytest benchmarks/bench_fusion.py \\
        --benchmark-columns=median,ops,rounds --benchmark-group-by=group

The lists are drawn from 4,000 documents, so about 250 documents are in both
(1,750 in the union). Every baseline's result is checked against ours before
it is timed. Our result's ids and per-list scores are computed on first use
(FusedHits); the _with_ids and _materialised variants time that too. ranx
compiles with numba on first use; its warm-up rounds absorb that. Target
(issue 2): <= 20 us per fusion for secondopinion.
"""

from __future__ import annotations

import numpy as np
import pytest

from secondopinion import fuse_rrf, fuse_weighted
from secondopinion.hits import Hits

N = 1000
UNIVERSE = 4000
K = 60


def make_hits(rng: np.random.Generator) -> Hits:
    indices = rng.choice(UNIVERSE, size=N, replace=False).astype(np.int64)
    # Distinct scores: ranx and the references order ties differently.
    scores = np.sort(rng.choice(10**7, size=N, replace=False).astype(np.float32) / 1e4)[::-1]
    return Hits(indices, scores.copy(), np.array([f"doc{i}" for i in indices], dtype=object))


@pytest.fixture(scope="module")
def lists() -> list[Hits]:
    rng = np.random.default_rng(2024)
    return [make_hits(rng), make_hits(rng)]


# --- baselines ------------------------------------------------------------------


def rrf_python(ranked: list[list[int]], k: int = K) -> list[tuple[int, float]]:
    """The textbook implementation: a dict, then a sort."""
    fused: dict[int, float] = {}
    for docs in ranked:
        for rank, doc in enumerate(docs, 1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def wsum_minmax_python(
    runs: list[list[tuple[int, float]]], weights: list[float]
) -> list[tuple[int, float]]:
    """Min-max normalise each run; a document missing from a run gets 0 there."""
    fused: dict[int, float] = {}
    normalised = []
    for run in runs:
        lo, hi = min(s for _, s in run), max(s for _, s in run)
        normalised.append({doc: (s - lo) / (hi - lo) for doc, s in run})
    for doc in {doc for run in runs for doc, _ in run}:
        pairs = zip(weights, normalised, strict=True)
        fused[doc] = sum(w * norm.get(doc, 0.0) for w, norm in pairs)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def rrf_numpy(indices: list[np.ndarray], k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised: concatenate, group with np.unique, sum with np.bincount."""
    every = np.concatenate(indices)
    contribution = np.concatenate([1.0 / (k + np.arange(1, len(i) + 1)) for i in indices])
    docs, group = np.unique(every, return_inverse=True)
    fused = np.bincount(group, weights=contribution)
    order = np.lexsort((docs, -fused))
    return docs[order], fused[order]


def ranx_runs(lists: list[Hits]) -> list:
    ranx = pytest.importorskip("ranx")
    return [
        ranx.Run({"q": {str(i): float(s) for i, s in zip(h.indices, h.scores, strict=True)}})
        for h in lists
    ]


def assert_same_fusion(ours, theirs: dict[str, float], rel: float = 1e-6) -> None:
    ours_dict = {str(i): float(s) for i, s in zip(ours.indices, ours.scores, strict=True)}
    assert ours_dict.keys() == theirs.keys()
    for doc, score in theirs.items():
        assert ours_dict[doc] == pytest.approx(score, rel=rel, abs=1e-7)


# --- reciprocal rank fusion -------------------------------------------------------


@pytest.mark.benchmark(group="rrf 2x1000")
def test_rrf_secondopinion(benchmark, lists):
    result = benchmark(fuse_rrf, lists, k=K)
    expected = rrf_python([h.indices.tolist() for h in lists])
    assert result.indices.tolist() == [doc for doc, _ in expected]


@pytest.mark.benchmark(group="rrf 2x1000")
def test_rrf_secondopinion_with_ids(benchmark, lists):
    """Fusion plus materialising every fused document's id (done lazily)."""
    ids = benchmark(lambda: fuse_rrf(lists, k=K).ids)
    assert len(ids) == len(fuse_rrf(lists, k=K))


@pytest.mark.benchmark(group="rrf 2x1000")
def test_rrf_secondopinion_materialised(benchmark, lists):
    """Fusion plus everything FusedHits computes on first use: the ids and each
    document's score in each list (none of the baselines returns these)."""

    def fuse_and_materialise():
        fused = fuse_rrf(lists, k=K)
        return fused.ids, fused.stage_scores

    ids, stage_scores = benchmark(fuse_and_materialise)
    assert stage_scores.shape == (2, len(ids))


@pytest.mark.benchmark(group="rrf 2x1000")
def test_rrf_secondopinion_limit_100(benchmark, lists):
    result = benchmark(fuse_rrf, lists, k=K, limit=100)
    assert len(result) == 100


@pytest.mark.benchmark(group="rrf 2x1000")
def test_rrf_plain_python(benchmark, lists):
    ranked = [h.indices.tolist() for h in lists]
    result = benchmark(rrf_python, ranked)
    assert_same_fusion(fuse_rrf(lists, k=K), {str(d): s for d, s in result})


@pytest.mark.benchmark(group="rrf 2x1000")
def test_rrf_numpy(benchmark, lists):
    docs, fused = benchmark(rrf_numpy, [h.indices for h in lists])
    assert_same_fusion(fuse_rrf(lists, k=K), {str(d): s for d, s in zip(docs, fused, strict=True)})


@pytest.mark.benchmark(group="rrf 2x1000")
def test_rrf_ranx(benchmark, lists):
    import ranx

    runs = ranx_runs(lists)
    fused = benchmark(ranx.fuse, runs, norm=None, method="rrf", params={"k": K})
    assert_same_fusion(fuse_rrf(lists, k=K), dict(fused["q"]))


# --- weighted sum of min-max normalised scores -------------------------------------

WEIGHTS = [0.4, 0.6]


@pytest.mark.benchmark(group="wsum minmax 2x1000")
def test_wsum_secondopinion(benchmark, lists):
    result = benchmark(fuse_weighted, lists, WEIGHTS, norm="minmax")
    assert len(result) > N


@pytest.mark.benchmark(group="wsum minmax 2x1000")
def test_wsum_zscore_secondopinion(benchmark, lists):
    result = benchmark(fuse_weighted, lists, WEIGHTS, norm="zscore")
    assert len(result) > N


@pytest.mark.benchmark(group="wsum minmax 2x1000")
def test_wsum_plain_python(benchmark, lists):
    runs = [list(zip(h.indices.tolist(), h.scores.tolist(), strict=True)) for h in lists]
    result = benchmark(wsum_minmax_python, runs, WEIGHTS)
    assert_same_fusion(fuse_weighted(lists, WEIGHTS), {str(d): s for d, s in result})


@pytest.mark.benchmark(group="wsum minmax 2x1000")
def test_wsum_ranx(benchmark, lists):
    import ranx

    runs = ranx_runs(lists)
    fused = benchmark(ranx.fuse, runs, norm="min-max", method="wsum", params={"weights": WEIGHTS})
    assert_same_fusion(fuse_weighted(lists, WEIGHTS), dict(fused["q"]))
