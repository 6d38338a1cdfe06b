"""Top-k against its baselines, measured in the same run.

Each group (input, N, k) holds secondopinion.topk, np.argpartition + a sort of
the k, heapq.nlargest (not at N = 1e6: seconds per call), and scores.max() as
the cost of one numpy pass over the data. The issue's target, at N = 1e6,
k = 100, random: >= 30x faster than argpartition + sort, within 3x of max().

    .venv/bin/python -m pytest benchmarks/bench_topk.py --benchmark-columns=median,rounds \
        --benchmark-sort=name --benchmark-min-rounds=3 --benchmark-max-time=0.5
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest

import secondopinion
from secondopinion import _core

SIZES = [10_000, 100_000, 1_000_000]
KS = [10, 100, 1000]
INPUTS = ["random", "ascending"]
LEVELS = ["portable", "avx2", "avx512"]


def make_scores(kind: str, n: int) -> np.ndarray:
    if kind == "random":
        return np.random.default_rng(0).random(n, dtype=np.float32)
    return np.arange(n, dtype=np.float32)


def argpartition_topk(scores: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(scores, -k)[-k:]
    return part[np.argsort(-scores[part], kind="stable")]


def heapq_topk(values: list[float], k: int) -> list[int]:
    return heapq.nlargest(k, range(len(values)), key=values.__getitem__)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("method", ["secondopinion", "argpartition_sort", "heapq", "numpy_max"])
def test_topk(benchmark, method, kind, n, k):
    benchmark.group = f"topk {kind} N={n:.0e} k={k}"
    scores = make_scores(kind, n)
    if method == "secondopinion":
        _, values = benchmark(secondopinion.topk, scores, k)
        # Sanity, not timed: the same scores as the baseline (positions of
        # tied values may legitimately differ from argpartition's).
        assert np.array_equal(values, scores[argpartition_topk(scores, k)])
    elif method == "argpartition_sort":
        benchmark(argpartition_topk, scores, k)
    elif method == "heapq":
        if n >= 1_000_000:
            pytest.skip("heapq.nlargest takes seconds per call at N = 1e6")
        values = scores.tolist()
        benchmark(heapq_topk, values, k)
    else:
        benchmark(scores.max)


@pytest.mark.parametrize("level", LEVELS)
def test_kernel_levels(benchmark, level):
    """Each kernel on the target case (N = 1e6, k = 100, random)."""
    levels = LEVELS[: LEVELS.index(_core.simd_level()) + 1]
    if level not in levels:
        pytest.skip(f"this CPU runs at most {_core.simd_level()}")
    benchmark.group = "kernel levels N=1e6 k=100 random"
    benchmark(_core.topk_with_level, make_scores("random", 1_000_000), 100, level)


@pytest.mark.parametrize("method", ["topk_batch_all_cpus", "topk_batch_1_thread", "topk_loop"])
def test_batch(benchmark, method):
    benchmark.group = "batch Q=64 N=1e5 k=100 random"
    matrix = np.random.default_rng(1).random((64, 100_000), dtype=np.float32)
    if method == "topk_batch_all_cpus":
        benchmark(secondopinion.topk_batch, matrix, 100)
    elif method == "topk_batch_1_thread":
        benchmark(secondopinion.topk_batch, matrix, 100, threads=1)
    else:
        benchmark(lambda: [secondopinion.topk(row, 100) for row in matrix])
