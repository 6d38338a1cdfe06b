"""Fusion against a plain-Python reference, with ranx as a second oracle."""

from __future__ import annotations

import dataclasses
import math
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secondopinion import FusedHits, fuse_rrf, fuse_weighted
from secondopinion.hits import Hits

# --- plain-Python reference ---------------------------------------------------
# Sums run over the lists in their given order, in Python floats (doubles), as
# the core does, then round to float32: results should match bit for bit.


def ref_normalise(scores: list[float], norm: str) -> tuple[list[float], float]:
    """Normalised scores of one list and the value a missing document gets."""
    if not scores:
        return [], 0.0
    hi, lo = max(scores), min(scores)
    if norm == "none":
        return list(scores), lo
    if hi == lo:  # a constant list carries no ranking
        return [0.0] * len(scores), 0.0
    if norm == "minmax":
        shift, scale = lo, hi - lo
    else:
        mean = sum(scores) / len(scores)
        shift = mean
        scale = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    return [(s - shift) / scale for s in scores], (lo - shift) / scale


def ref_fuse(lists, method: str, k: float = 60, weights=None, norm: str = "minmax"):
    """(indices, float32 scores, ranks[n_lists][n], scores[n_lists][n]) of the fusion."""
    n_lists = len(lists)
    weights = [1.0] * n_lists if weights is None else [float(w) for w in weights]
    position = [{int(i): p for p, i in enumerate(ind)} for ind, _ in lists]
    docs = sorted({int(i) for ind, _ in lists for i in ind})
    normalised = [ref_normalise([float(s) for s in sc], norm) for _, sc in lists]
    fused = {}
    for d in docs:
        total = 0.0
        for lst in range(n_lists):
            p = position[lst].get(d)
            if method == "rrf":
                if p is not None:
                    total += weights[lst] / (k + p + 1)
            else:
                values, floor = normalised[lst]
                total += weights[lst] * (values[p] if p is not None else floor)
        fused[d] = float(np.float32(total))
    order = sorted(docs, key=lambda d: (-fused[d], d))
    ranks = [[position[lst].get(d, -1) + 1 for d in order] for lst in range(n_lists)]
    stage = [
        [float(lists[lst][1][position[lst][d]]) if d in position[lst] else math.nan for d in order]
        for lst in range(n_lists)
    ]
    return order, [fused[d] for d in order], ranks, stage


def check_against_reference(result: FusedHits, lists, method: str, **kwargs) -> None:
    limit = kwargs.pop("limit", None)
    order, scores, ranks, stage = ref_fuse(lists, method, **kwargs)
    if limit is not None:
        order, scores = order[:limit], scores[:limit]
        ranks = [r[:limit] for r in ranks]
        stage = [s[:limit] for s in stage]
    np.testing.assert_array_equal(result.indices, np.array(order, dtype=np.int64))
    np.testing.assert_allclose(result.scores, scores, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(result.stage_ranks, np.array(ranks, dtype=np.int32))
    np.testing.assert_array_equal(result.stage_scores, np.array(stage, dtype=np.float32))
    assert result.indices.dtype == np.int64 and result.scores.dtype == np.float32
    assert result.stage_ranks.shape == (len(lists), len(order))


def random_list(rng: np.random.Generator, n: int, universe: int) -> tuple[np.ndarray, np.ndarray]:
    """A ranked list of n distinct documents with distinct scores, best first."""
    indices = rng.choice(universe, size=n, replace=False).astype(np.int64)
    scores = np.sort(rng.choice(10**6, size=n, replace=False).astype(np.float32) / 1000)[::-1]
    return indices, np.ascontiguousarray(scores)


def as_hits(indices: np.ndarray, scores: np.ndarray) -> Hits:
    ids = np.array([f"doc{i}" for i in indices], dtype=object)
    return Hits(indices.astype(np.int64), scores.astype(np.float32), ids)


# --- agreement with the reference ---------------------------------------------


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n_lists", [1, 2, 3])
def test_rrf_matches_reference(seed, n_lists):
    rng = np.random.default_rng(seed)
    lists = [random_list(rng, int(rng.integers(0, 300)), 500) for _ in range(n_lists)]
    weights = rng.uniform(0, 2, n_lists).tolist() if seed % 2 else None
    k = float(rng.choice([1, 10, 60, 1000]))
    result = fuse_rrf(lists, k=k, weights=weights)
    check_against_reference(result, lists, "rrf", k=k, weights=weights)


@pytest.mark.parametrize("offset", [0, 2**33, 2**62])
def test_indices_beyond_32_bits_sort_like_small_ones(offset):
    """Indices below 2^32 travel inside the sort key; wider ones take the path
    that compares indices separately. Ties (same rank in two lists) must be
    broken by the lower index on both."""
    rng = np.random.default_rng(5)
    lists = [random_list(rng, 300, 400) for _ in range(2)]
    lists = [(ind + offset, sc) for ind, sc in lists]
    for weights in (None, [1.0, 1.0]):
        check_against_reference(fuse_rrf(lists, weights=weights), lists, "rrf", weights=weights)
    check_against_reference(fuse_weighted(lists, [1.0, 1.0]), lists, "weighted", weights=[1, 1])


@pytest.mark.parametrize("weights", [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
def test_rrf_zero_weights(weights):
    """A weight of 0 gives fused scores of 0, which the sort's reciprocal
    spread cannot place; all zeros leave nothing but ties."""
    rng = np.random.default_rng(9)
    lists = [random_list(rng, 200, 300) for _ in range(2)]
    check_against_reference(fuse_rrf(lists, weights=weights), lists, "rrf", weights=weights)
    limited = fuse_rrf(lists, weights=weights, limit=17)
    check_against_reference(limited, lists, "rrf", weights=weights, limit=17)


def test_crowded_scores_still_sort():
    """One outlier squeezes every other score into the sort's first bucket,
    where it falls back to a comparison sort."""
    rng = np.random.default_rng(4)
    ind, sc = random_list(rng, 500, 1000)
    sc = sc.copy()
    sc[0] = 1e30
    lists = [(ind, sc), random_list(rng, 500, 1000)]
    for limit in (None, 5):
        result = fuse_weighted(lists, [1.0, 1.0], norm="none", limit=limit)
        check_against_reference(result, lists, "weighted", weights=[1, 1], norm="none", limit=limit)


def test_rrf_contribution_cache_survives_many_weights_and_lengths():
    """RRF's w / (k + rank) tables are cached per thread, per (k, w): calls with
    more distinct weights than the cache holds, lists of growing length and
    changing k must each still match the reference."""
    rng = np.random.default_rng(7)
    for call in range(30):
        n_lists = int(rng.integers(1, 14))
        lists = [
            random_list(rng, int(rng.integers(0, 200 + 20 * call)), 900) for _ in range(n_lists)
        ]
        weights = rng.uniform(0, 2, n_lists).round(2).tolist()
        k = float(rng.choice([1, 60]))
        check_against_reference(
            fuse_rrf(lists, k=k, weights=weights), lists, "rrf", k=k, weights=weights
        )


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("norm", ["minmax", "zscore", "none"])
def test_weighted_matches_reference(seed, norm):
    rng = np.random.default_rng(100 + seed)
    lists = [random_list(rng, int(rng.integers(1, 300)), 500) for _ in range(3)]
    weights = rng.uniform(0, 2, 3).tolist()
    result = fuse_weighted(lists, weights, norm=norm)
    check_against_reference(result, lists, "weighted", weights=weights, norm=norm)


@given(
    data=st.lists(
        st.lists(
            st.tuples(st.integers(0, 30), st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, 7.25])),
            max_size=20,
            unique_by=lambda t: t[0],
        ),
        min_size=1,
        max_size=4,
    ),
    method=st.sampled_from(["rrf", "minmax", "zscore", "none"]),
    limit=st.one_of(st.none(), st.integers(1, 40)),
)
@settings(max_examples=300, deadline=None)
def test_small_lists_with_ties_match_reference(data, method, limit):
    """Small universes and few score values: many overlaps and many tied scores."""
    lists = []
    for entries in data:
        entries = sorted(entries, key=lambda t: -t[1])  # ties keep generation order
        lists.append(
            (
                np.array([i for i, _ in entries], dtype=np.int64),
                np.array([s for _, s in entries], dtype=np.float32),
            )
        )
    if method == "rrf":
        result = fuse_rrf(lists, limit=limit)
        check_against_reference(result, lists, "rrf", limit=limit)
    else:
        weights = [1.0 + i for i in range(len(lists))]
        result = fuse_weighted(lists, weights, norm=method, limit=limit)
        check_against_reference(
            result, lists, "weighted", weights=weights, norm=method, limit=limit
        )


# --- semantics spelled out ----------------------------------------------------


@pytest.mark.parametrize("norm", ["none", "minmax"])
def test_crowded_scores_match_reference(norm):
    """One far outlier and a thousand nearly equal scores in shuffled order.
    With raw scores the core's bucket pass puts them all in one bucket, its
    insertion sort runs out of budget and a comparison sort finishes the job
    (ties included); min-max spreads them again."""
    rng = np.random.default_rng(5)
    n = 1000
    a_scores = np.sort(rng.uniform(1.0, 1.0001, n).astype(np.float32))[::-1]
    a = (np.arange(n, dtype=np.int64), np.concatenate([[np.float32(1e20)], a_scores[1:]]))
    b_scores = np.sort(rng.uniform(1.0, 1.0001, n).astype(np.float32))[::-1]
    b = (rng.permutation(n).astype(np.int64), b_scores)
    result = fuse_weighted([a, b], [1.0, 1.0], norm=norm)
    check_against_reference(result, [a, b], "weighted", weights=[1.0, 1.0], norm=norm)


def test_rrf_by_hand():
    a = (np.array([3, 1, 2]), np.array([3.0, 2.0, 1.0]))
    b = (np.array([2, 5]), np.array([9.0, 1.0]))
    result = fuse_rrf([a, b], k=60)
    # 2: 1/63 + 1/61; 3: 1/61; 1: 1/62 and 5: 1/62 tie -> lower index first.
    assert result.indices.tolist() == [2, 3, 1, 5]
    np.testing.assert_allclose(result.scores, [1 / 63 + 1 / 61, 1 / 61, 1 / 62, 1 / 62], rtol=1e-7)
    assert result.stage_ranks.tolist() == [[3, 1, 2, 0], [1, 0, 0, 2]]
    np.testing.assert_array_equal(result.stage_scores, [[1, 3, 2, np.nan], [9, np.nan, np.nan, 1]])


def test_weighted_missing_document_gets_the_lists_minimum():
    a = (np.array([10, 11, 12]), np.array([4.0, 2.0, 0.0]))  # minmax: 1, 0.5, 0
    b = (np.array([12, 13]), np.array([5.0, 3.0]))  # minmax: 1, 0
    result = fuse_weighted([a, b], [1.0, 2.0], norm="minmax")
    expected = {10: 1.0 + 2 * 0, 11: 0.5 + 0, 12: 0.0 + 2 * 1.0, 13: 0.0 + 2 * 0.0}
    assert dict(zip(result.indices.tolist(), result.scores.tolist(), strict=True)) == expected
    assert result.indices.tolist() == [12, 10, 11, 13]

    z = fuse_weighted([a, b], [1.0, 1.0], norm="zscore")
    za = (np.array([4.0, 2.0, 0.0]) - 2.0) / np.std([4.0, 2.0, 0.0])
    expected_z = {10: za[0] - 1.0, 11: za[1] - 1.0, 12: za[2] + 1.0, 13: za[2] - 1.0}
    got = dict(zip(z.indices.tolist(), z.scores.tolist(), strict=True))
    assert got == pytest.approx(expected_z, rel=1e-6)

    raw = fuse_weighted([a, b], [1.0, 1.0], norm="none")
    got = dict(zip(raw.indices.tolist(), raw.scores.tolist(), strict=True))
    assert got == {10: 4.0 + 3.0, 11: 2.0 + 3.0, 12: 0.0 + 5.0, 13: 0.0 + 3.0}


def test_constant_list_contributes_nothing():
    a = (np.array([1, 2, 3]), np.array([3.0, 2.0, 1.0]))
    flat = (np.array([3, 4]), np.array([0.7, 0.7]))
    for norm in ("minmax", "zscore"):
        alone = fuse_weighted([a], [1.0], norm=norm)
        both = fuse_weighted([a, flat], [1.0, 5.0], norm=norm)
        scores = dict(zip(both.indices.tolist(), both.scores.tolist(), strict=True))
        for i, s in zip(alone.indices.tolist(), alone.scores.tolist(), strict=True):
            assert scores[i] == s
    single = fuse_weighted([(np.array([7]), np.array([0.3]))], [1.0])
    assert single.scores.tolist() == [0.0]


def test_ties_break_by_lower_index_whatever_the_input_order():
    a = (np.array([9, 4, 7]), np.array([1.0, 1.0, 1.0]))
    b = (np.array([8, 5, 6]), np.array([2.0, 2.0, 2.0]))
    result = fuse_weighted([a, b], [1.0, 1.0], norm="none")  # everyone scores 1 + 2
    assert result.scores.tolist() == [3.0] * 6
    assert result.indices.tolist() == [4, 5, 6, 7, 8, 9]
    rrf = fuse_rrf([a, b])  # same rank in both lists -> same score
    assert rrf.indices.tolist() == [8, 9, 4, 5, 6, 7]


def test_ids_come_from_the_first_list_holding_the_document():
    a = Hits(np.array([1, 2]), np.array([2.0, 1.0], np.float32), np.array(["a1", "a2"], object))
    b = Hits(np.array([2, 3]), np.array([2.0, 1.0], np.float32), np.array(["b2", "b3"], object))
    result = fuse_rrf([a, b])
    assert dict(zip(result.indices.tolist(), result.ids.tolist(), strict=True)) == {
        1: "a1",
        2: "a2",
        3: "b3",
    }
    plain = fuse_rrf([(np.array([40, 7]), np.array([1.0, 0.0]))])
    assert plain.ids.tolist() == ["40", "7"]
    assert plain.ids.dtype == object
    assert list(result) == list(zip(result.ids.tolist(), result.scores.tolist(), strict=True))


def test_limit_is_a_prefix_of_the_full_result():
    rng = np.random.default_rng(7)
    lists = [random_list(rng, 200, 400) for _ in range(2)]
    full = fuse_rrf(lists)
    for limit in (1, 10, len(full), len(full) + 5):
        cut = fuse_rrf(lists, limit=limit)
        m = min(limit, len(full))
        np.testing.assert_array_equal(cut.indices, full.indices[:m])
        np.testing.assert_array_equal(cut.scores, full.scores[:m])
        np.testing.assert_array_equal(cut.stage_ranks, full.stage_ranks[:, :m])
        np.testing.assert_array_equal(cut.ids, full.ids[:m])


def test_empty_lists_and_results():
    empty = (np.array([], dtype=np.int64), np.array([], dtype=np.float32))
    result = fuse_rrf([empty, empty])
    assert len(result) == 0 and result.stage_ranks.shape == (2, 0)
    a = (np.array([5, 6]), np.array([1.0, 0.5]))
    assert fuse_rrf([empty, a]).indices.tolist() == [5, 6]
    assert fuse_weighted([empty, a], [1, 1]).indices.tolist() == [5, 6]
    assert fuse_rrf([([], [])]).indices.tolist() == []


def test_input_conversions():
    rng = np.random.default_rng(3)
    ind, sc = random_list(rng, 50, 100)
    expected = fuse_rrf([(ind, sc)])
    for variant in [
        (ind.astype(np.int32), sc.astype(np.float64)),
        (ind.tolist(), sc.tolist()),
        (np.repeat(ind, 2)[::2], np.repeat(sc, 2)[::2]),  # non-contiguous views
        (ind.astype(np.uint16), sc.astype(np.float16).astype(np.float32)),
    ]:
        got = fuse_rrf([variant])
        np.testing.assert_array_equal(got.indices, expected.indices)
    big = np.array([2**40 + 3, 2**62, 1], dtype=np.int64)
    result = fuse_rrf([(big, np.array([3.0, 2.0, 1.0])), (big[::-1].copy(), np.array([3.0, 2, 1]))])
    assert sorted(result.indices.tolist()) == sorted(big.tolist())


def test_infinite_scores_are_fine_for_rrf_only():
    lst = (np.array([1, 2, 3]), np.array([np.inf, 1.0, -np.inf]))
    assert fuse_rrf([lst]).indices.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match=r"hits_list\[0\].*infinite"):
        fuse_weighted([lst], [1.0])


# --- errors -------------------------------------------------------------------

GOOD = (np.array([1, 2]), np.array([2.0, 1.0]))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            (np.array([1, 2]), np.array([1.0, np.nan])),
            r"hits_list\[1\]: score at position 1 is NaN",
        ),
        ((np.array([1, 2]), np.array([1.0, 2.0])), r"hits_list\[1\]: scores are not sorted"),
        ((np.array([4, 4]), np.array([2.0, 1.0])), r"hits_list\[1\]: index 4 appears twice"),
        ((np.array([3, -1]), np.array([2.0, 1.0])), r"hits_list\[1\]: index -1 .* negative"),
        ((np.array([1, 2, 3]), np.array([2.0, 1.0])), r"hits_list\[1\]: indices \(3,\)"),
        ((np.ones((2, 2), np.int64), np.ones((2, 2))), r"hits_list\[1\]: indices \(2, 2\).* 1-D"),
    ],
)
def test_bad_lists_are_named(bad, message):
    for fuse in (fuse_rrf, lambda lists: fuse_weighted(lists, [1, 1])):
        with pytest.raises(ValueError, match=message):
            fuse([GOOD, bad])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: fuse_rrf([]), ValueError, "hits_list is empty"),
        (lambda: fuse_rrf(GOOD), TypeError, r"hits_list\[0\] must be a Hits"),
        (lambda: fuse_rrf(as_hits(*GOOD)), TypeError, "hits_list must be a list"),
        (lambda: fuse_rrf([GOOD, "x"]), TypeError, r"hits_list\[1\] must be a Hits"),
        (lambda: fuse_rrf([(np.array([1.5]), np.array([1.0]))]), TypeError, "integers"),
        (lambda: fuse_rrf([(np.array([1]), np.array(["a"]))]), TypeError, "numbers"),
        (lambda: fuse_rrf([GOOD], k=0), ValueError, "k must be finite and > 0"),
        (lambda: fuse_rrf([GOOD], k=float("nan")), ValueError, "k must be"),
        (lambda: fuse_rrf([GOOD], k="60"), TypeError, "k must be a number"),
        (lambda: fuse_rrf([GOOD], k=True), TypeError, "k must be a number"),
        (lambda: fuse_rrf([GOOD], weights=[1, 2]), ValueError, "weights has 2 entries for 1"),
        (lambda: fuse_rrf([GOOD], weights=[-1]), ValueError, r"weights\[0\] must be"),
        (lambda: fuse_rrf([GOOD], weights=[math.inf]), ValueError, r"weights\[0\] must be"),
        (lambda: fuse_rrf([GOOD], weights=1.0), TypeError, "weights must be a sequence"),
        (lambda: fuse_rrf([GOOD], limit=0), ValueError, "limit must be > 0"),
        (lambda: fuse_rrf([GOOD], limit=-3), ValueError, "limit must be > 0"),
        (lambda: fuse_rrf([GOOD], limit=2.0), TypeError, "limit must be an int"),
        (lambda: fuse_rrf([GOOD], limit=True), TypeError, "limit must be an int"),
        (lambda: fuse_weighted([GOOD], [1], norm="l2"), ValueError, "norm must be one of"),
        (lambda: fuse_weighted([GOOD, GOOD], [1]), ValueError, "weights has 1 entries for 2"),
    ],
)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_core_checks_its_own_preconditions():
    """The C++ core refuses what the Python layer would have caught first."""
    from secondopinion import _core

    ind, sc = [np.array([1], np.int64)], [np.array([1.0], np.float32)]
    with pytest.raises(ValueError, match="k must be finite"):
        _core.fuse_rrf(ind, sc, -1.0, [], 0)
    with pytest.raises(ValueError, match="weights"):
        _core.fuse_weighted(ind, sc, [1.0, 2.0], "minmax", 0)
    with pytest.raises(ValueError, match="no lists"):
        _core.fuse_rrf([], [], 60.0, [], 0)
    with pytest.raises(ValueError, match="norm must be"):
        _core.fuse_weighted(ind, sc, [1.0], "max", 0)
    with pytest.raises(ValueError, match="2 indices but 1 scores"):
        _core.fuse_rrf([np.array([1, 2], np.int64)], sc, 60.0, [], 0)
    ids = [np.array(["a", "b"], object)]
    for ranks in [[[0]], [[3]], [[-1]]]:  # in no list, past the end, negative
        with pytest.raises(ValueError, match="points outside"):
            _core.fusion_gather_ids(ids, np.array(ranks, np.int32))
    assert _core.fusion_gather_ids(ids, np.array([[2, 1]], np.int32)).tolist() == ["b", "a"]
    with pytest.raises(ValueError, match="one row per id array"):
        _core.fusion_gather_ids(ids, np.array([1, 2], np.int32))
    with pytest.raises(ValueError, match="1-D object array"):
        _core.fusion_gather_ids([np.array(["a"])], np.array([[1]], np.int32))
    scores = [np.array([2.0, 1.0], np.float32)]
    got = _core.fusion_stage_scores(scores, np.array([[2, 0, 1]], np.int32))
    np.testing.assert_array_equal(got, [[1.0, np.nan, 2.0]])
    for ranks in [[[3]], [[-1]]]:
        with pytest.raises(ValueError, match="outside the list's 2 entries"):
            _core.fusion_stage_scores(scores, np.array(ranks, np.int32))
    with pytest.raises(ValueError, match="one row per score array"):
        _core.fusion_stage_scores(scores, np.array([[1], [1]], np.int32))


def test_ids_are_gathered_once_on_first_use():
    a = as_hits(np.array([5, 6]), np.array([2.0, 1.0]))
    result = fuse_rrf([a])
    first = result.ids
    assert first is result.ids
    assert first.tolist() == ["doc5", "doc6"]
    copy = dataclasses.replace(result, scores=result.scores * 2)
    assert copy.ids.tolist() == ["doc5", "doc6"] and isinstance(copy, FusedHits)
    assert [f.name for f in dataclasses.fields(FusedHits)] == [
        "indices",
        "scores",
        "ids",
        "stage_ranks",
        "stage_scores",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.scores = None
    assert "doc5" in repr(result)


def test_results_are_the_same_from_many_threads():
    """The core keeps per-thread scratch buffers and releases the GIL."""
    rng = np.random.default_rng(11)
    cases = [[random_list(rng, 300, 600) for _ in range(2)] for _ in range(4)]
    expected = [fuse_rrf(c).indices for c in cases]
    failures = []

    def work(t: int) -> None:
        for r in range(50):
            c = (t + r) % len(cases)
            if not np.array_equal(fuse_rrf(cases[c]).indices, expected[c]):
                failures.append((t, r))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# --- ranx as a second oracle --------------------------------------------------
# ranx JIT-compiles its fusion code with numba on first use: 20-40 s on a busy
# 2-core machine, more than this whole file otherwise takes. So these run with
# SECONDOPINION_SLOW=1 (and benchmarks/bench_fusion.py checks ranx's results
# against ours before timing them).

ranx_oracle = pytest.mark.skipif(
    os.environ.get("SECONDOPINION_SLOW") != "1",
    reason="ranx compiles with numba for tens of seconds; set SECONDOPINION_SLOW=1",
)


def to_ranx_run(indices: np.ndarray, scores: np.ndarray):
    from ranx import Run

    return Run({"q": {str(i): float(s) for i, s in zip(indices, scores, strict=True)}})


def fused_dict(result: FusedHits) -> dict[str, float]:
    return {str(i): float(s) for i, s in zip(result.indices, result.scores, strict=True)}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.slow
@ranx_oracle
def test_rrf_agrees_with_ranx(seed):
    """Same semantics: rank from the sorted run, missing documents add nothing."""
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(200 + seed)
    lists = [random_list(rng, 100, 300) for _ in range(3)]
    ours = fused_dict(fuse_rrf(lists, k=60))
    theirs = ranx.fuse([to_ranx_run(*lst) for lst in lists], norm=None, method="rrf")["q"]
    assert ours.keys() == theirs.keys()
    for doc, score in theirs.items():
        assert ours[doc] == pytest.approx(score, rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.slow
@ranx_oracle
def test_minmax_weighted_sum_agrees_with_ranx(seed):
    """ranx's wsum gives a missing document 0, which is min-max's minimum: ours."""
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(300 + seed)
    lists = [random_list(rng, 100, 300) for _ in range(2)]
    weights = [0.3, 0.7]
    ours = fused_dict(fuse_weighted(lists, weights, norm="minmax"))
    theirs = ranx.fuse(
        [to_ranx_run(*lst) for lst in lists],
        norm="min-max",
        method="wsum",
        params={"weights": weights},
    )["q"]
    assert ours.keys() == theirs.keys()
    for doc, score in theirs.items():
        assert ours[doc] == pytest.approx(score, rel=1e-6, abs=1e-7)


@pytest.mark.slow
@ranx_oracle
def test_zscore_weighted_sum_agrees_with_ranx_when_no_document_is_missing():
    """ranx gives a missing document 0 (the mean) after z-scoring, we give the
    list's minimum; with the same documents in every list the two agree."""
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(400)
    docs = rng.choice(1000, size=150, replace=False)
    lists = []
    for _ in range(2):
        order = rng.permutation(docs).astype(np.int64)
        lists.append((order, random_list(rng, 150, 1000)[1]))
    weights = [1.0, 0.5]
    ours = fused_dict(fuse_weighted(lists, weights, norm="zscore"))
    theirs = ranx.fuse(
        [to_ranx_run(*lst) for lst in lists],
        norm="zmuv",
        method="wsum",
        params={"weights": weights},
    )["q"]
    assert ours.keys() == theirs.keys()
    for doc, score in theirs.items():
        assert ours[doc] == pytest.approx(score, rel=1e-5, abs=1e-6)
