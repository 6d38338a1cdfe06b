"""Top-k: every SIMD kernel against numpy, plain Python and the portable kernel.

The selection algorithm only reaches the vectorised scan once an array is
longer than its candidate buffer (k + 1024 values, at least 2k), and only
samples for a lower bound on long runs of survivors (ascending data), so the
adversarial cases below are sized to reach those paths.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import secondopinion
from secondopinion import _core

# The submodule, not the function of the same name that the package exports.
topk_module = importlib.import_module("secondopinion.topk")

ALL_LEVELS = ["portable", "avx2", "avx512"]
# Levels this process may run: the CPU's best, possibly lowered by SECONDOPINION_SIMD.
LEVELS = ALL_LEVELS[: ALL_LEVELS.index(_core.simd_level()) + 1]


def reference(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy: stable order by (score desc, index asc), NaN dropped."""
    scores = np.asarray(scores, dtype=np.float32)
    positions = np.flatnonzero(~np.isnan(scores))
    values = scores[positions]
    order = np.lexsort((positions, -values))[:k]
    return positions[order].astype(np.int64), values[order]


def python_reference(scores: list[float], k: int) -> list[int]:
    """Plain Python, independent of numpy's sorting."""
    live = [i for i, s in enumerate(scores) if s == s]
    return sorted(live, key=lambda i: (-scores[i], i))[:k]


def run_level(scores: np.ndarray, k: int, level: str) -> tuple[np.ndarray, np.ndarray]:
    return _core.topk_with_level(np.ascontiguousarray(scores, dtype=np.float32), k, level)


def assert_matches(
    got: tuple[np.ndarray, np.ndarray],
    scores: np.ndarray,
    k: int,
    full_reference: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """got == reference(scores, k); full_reference = reference(scores, len) saves re-sorting."""
    if full_reference is None:
        want_index, want_score = reference(scores, k)
    else:
        want_index, want_score = full_reference[0][:k], full_reference[1][:k]
    index, score = got
    assert index.dtype == np.int64 and score.dtype == np.float32
    np.testing.assert_array_equal(index, want_index)
    np.testing.assert_array_equal(score, want_score)


rng = np.random.default_rng(20240601)


def _sawtooth(n: int, period: int) -> np.ndarray:
    return (np.arange(n) % period).astype(np.float32)


def _plateau(n: int) -> np.ndarray:
    # Ascending, then a long run of ties at the maximum: the top k are the first
    # k of the plateau, which only a ">=" lower bound from the sample keeps.
    return np.minimum(np.arange(n), n // 3).astype(np.float32)


def _many_nan(n: int) -> np.ndarray:
    x = rng.random(n, dtype=np.float32)
    x[rng.random(n) < 0.9] = np.nan
    return x


def _ascending_with_nan(n: int) -> np.ndarray:
    x = np.arange(n, dtype=np.float32)
    x[::2] = np.nan
    return x


def _infinities(n: int) -> np.ndarray:
    x = rng.standard_normal(n).astype(np.float32)
    pick = rng.random(n)
    x[pick < 0.05] = np.inf
    x[(pick >= 0.05) & (pick < 0.5)] = -np.inf
    x[(pick >= 0.5) & (pick < 0.55)] = np.nan
    return x


def _signed_zeros(n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.5, np.float32(-0.0), np.float32(0.0)).astype(np.float32)


CASES = {
    "random": lambda n: rng.random(n, dtype=np.float32),
    "normal": lambda n: rng.standard_normal(n).astype(np.float32),
    "ascending": lambda n: np.arange(n, dtype=np.float32),
    "descending": lambda n: np.arange(n, 0, -1).astype(np.float32),
    "all_equal": lambda n: np.full(n, 3.5, dtype=np.float32),
    "few_distinct": lambda n: rng.integers(0, 4, n).astype(np.float32),
    "many_nan": _many_nan,
    "all_nan": lambda n: np.full(n, np.nan, dtype=np.float32),
    "ascending_with_nan": _ascending_with_nan,
    "infinities": _infinities,
    "all_minus_inf": lambda n: np.full(n, -np.inf, dtype=np.float32),
    "signed_zeros": _signed_zeros,
    "sawtooth": lambda n: _sawtooth(n, 4096),
    "plateau": _plateau,
    "noisy_ascending": lambda n: (np.arange(n) + rng.normal(0, 50, n)).astype(np.float32),
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", [0, 1, 63, 1100, 5003, 200_003])
def test_kernel_matches_numpy(level, case, n):
    scores = CASES[case](n)
    full = reference(scores, n)
    for k in (0, 1, 7, 100, 1000, n, n + 5):
        assert_matches(run_level(scores, k, level), scores, k, full)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", ["ascending", "plateau", "random", "sawtooth", "many_nan"])
def test_kernel_equals_portable(level, case):
    scores = CASES[case](300_001)
    for k in (10, 100, 1000):
        want = run_level(scores, k, "portable")
        got = run_level(scores, k, level)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("n", range(0, 70))
def test_every_tail_length(n):
    # Lengths around the 16/32/64-value blocks, past the candidate buffer.
    scores = rng.random(2048 + n, dtype=np.float32)
    for level in LEVELS:
        assert_matches(run_level(scores, 5, level), scores, 5)


def test_default_dispatch_matches_reference():
    scores = rng.random(100_000, dtype=np.float32)
    assert_matches(secondopinion.topk(scores, 50), scores, 50)
    assert secondopinion.simd_level() == _core.simd_level()


def test_simd_level_is_a_known_name():
    assert secondopinion.simd_level() in ALL_LEVELS
    assert _core.simd_cpu_level() in ALL_LEVELS


# --- the Python wrapper's input policy -------------------------------------


def test_float32_contiguous_passes_without_copy(monkeypatch):
    scores = rng.random(1000, dtype=np.float32)
    seen = []
    real = _core.topk

    def spy(array, k):
        seen.append(array)
        return real(array, k)

    monkeypatch.setattr(topk_module._core, "topk", spy)
    topk_module.topk(scores, 3)
    assert seen[0] is scores


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64, np.int32, np.uint8])
def test_other_real_dtypes_are_converted(dtype):
    scores = (rng.random(3000) * 200).astype(dtype)
    index, score = secondopinion.topk(scores, 20)
    assert_matches((index, score), scores.astype(np.float32), 20)


def test_float64_rounding_ties_break_by_index():
    # Distinct in float64, equal once rounded to float32.
    scores = np.array([1.0, 1.0 + 1e-12, 0.5], dtype=np.float64)
    index, score = secondopinion.topk(scores, 2)
    assert index.tolist() == [0, 1]
    assert score.tolist() == [1.0, 1.0]


def test_non_contiguous_input_is_converted():
    base = rng.random((400, 9), dtype=np.float32)
    column = base[:, 3]
    strided = base.ravel()[::7]
    assert not column.flags.c_contiguous and not strided.flags.c_contiguous
    assert_matches(secondopinion.topk(column, 10), column.copy(), 10)
    assert_matches(secondopinion.topk(strided, 10), strided.copy(), 10)
    reversed_view = np.arange(5000, dtype=np.float32)[::-1]
    assert_matches(secondopinion.topk(reversed_view, 10), reversed_view.copy(), 10)


def test_lists_are_accepted():
    index, score = secondopinion.topk([3, 1.5, float("nan"), 7], 2)
    assert index.tolist() == [3, 0]
    assert score.tolist() == [7.0, 3.0]


@pytest.mark.parametrize(
    "bad",
    [
        np.array([True, False]),
        np.array([1 + 2j, 3j]),
        np.array(["a", "b"]),
        np.array([object(), object()], dtype=object),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
    ],
    ids=["bool", "complex", "str", "object", "datetime"],
)
def test_non_real_dtypes_raise_type_error(bad):
    with pytest.raises(TypeError, match="scores must hold real numbers"):
        secondopinion.topk(bad, 1)
    with pytest.raises(TypeError, match="matrix must hold real numbers"):
        secondopinion.topk_batch(bad.reshape(1, -1), 1)


@pytest.mark.parametrize("k", [2.0, "3", None, True])
def test_non_integer_k_raises_type_error(k):
    with pytest.raises(TypeError, match="k must be an integer"):
        secondopinion.topk(np.zeros(4, dtype=np.float32), k)


def test_numpy_integer_k_is_accepted():
    index, _ = secondopinion.topk(np.arange(5, dtype=np.float32), np.int64(2))
    assert index.tolist() == [4, 3]


def test_huge_k_is_clamped():
    index, score = secondopinion.topk(np.array([1.0, 3.0], dtype=np.float32), 10**30)
    assert index.tolist() == [1, 0]
    index, _ = secondopinion.topk_batch(np.array([[1.0, 3.0]], dtype=np.float32), 2**64)
    assert index.tolist() == [[1, 0]]


def test_too_many_scores_raise_before_any_copy():
    # A zero-stride view: 2**32 float64 "values" without 32 GiB of memory; the
    # wrapper must refuse it before converting (copying) anything.
    huge = np.broadcast_to(np.float64(1.0), (topk_module.MAX_SCORES + 1,))
    with pytest.raises(ValueError, match="at most 4294967295"):
        secondopinion.topk(huge, 1)
    with pytest.raises(ValueError, match="per row"):
        secondopinion.topk_batch(huge.reshape(1, -1), 1)


def test_negative_k_raises_value_error():
    with pytest.raises(ValueError, match="k must be >= 0"):
        secondopinion.topk(np.zeros(4, dtype=np.float32), -1)
    with pytest.raises(ValueError, match="k must be >= 0"):
        secondopinion.topk_batch(np.zeros((2, 4), dtype=np.float32), -1)


@pytest.mark.parametrize("shape", [(), (2, 3), (1, 1, 1)])
def test_topk_wants_one_dimension(shape):
    with pytest.raises(ValueError, match="scores must be 1-D"):
        secondopinion.topk(np.zeros(shape, dtype=np.float32), 1)


@pytest.mark.parametrize("shape", [(), (3,), (1, 1, 1)])
def test_topk_batch_wants_two_dimensions(shape):
    with pytest.raises(ValueError, match="matrix must be 2-D"):
        secondopinion.topk_batch(np.zeros(shape, dtype=np.float32), 1)


@pytest.mark.parametrize("threads", [0, -2])
def test_bad_thread_count_raises_value_error(threads):
    with pytest.raises(ValueError, match="threads must be"):
        secondopinion.topk_batch(np.zeros((2, 4), dtype=np.float32), 1, threads=threads)


def test_non_integer_threads_raise_type_error():
    with pytest.raises(TypeError, match="threads must be an integer"):
        secondopinion.topk_batch(np.zeros((2, 4), dtype=np.float32), 1, threads=1.5)


def test_core_refuses_what_the_wrapper_would_convert():
    # The binding never converts: the policy lives in one place (topk.py).
    with pytest.raises(TypeError):
        _core.topk(np.zeros(4, dtype=np.float64), 1)
    with pytest.raises(TypeError):
        _core.topk(np.zeros(8, dtype=np.float32)[::2], 1)
    with pytest.raises(ValueError, match="1-D"):
        _core.topk(np.zeros((2, 2), dtype=np.float32), 1)
    with pytest.raises(ValueError, match="2-D"):
        _core.topk_batch(np.zeros(4, dtype=np.float32), 1, 1)


def test_core_rejects_unknown_level_name():
    with pytest.raises(ValueError, match="level must be"):
        _core.topk_with_level(np.zeros(4, dtype=np.float32), 1, "sse9")


# --- batch ------------------------------------------------------------------


def assert_batch_matches(matrix: np.ndarray, k: int, index: np.ndarray, score: np.ndarray) -> None:
    width = min(k, matrix.shape[1])
    assert index.shape == score.shape == (matrix.shape[0], width)
    assert index.dtype == np.int64 and score.dtype == np.float32
    for row in range(matrix.shape[0]):
        want_index, want_score = reference(matrix[row], k)
        got = len(want_index)
        np.testing.assert_array_equal(index[row, :got], want_index)
        np.testing.assert_array_equal(score[row, :got], want_score)
        assert (index[row, got:] == -1).all()
        assert np.isnan(score[row, got:]).all()


@pytest.mark.parametrize("threads", [None, 1, 2, 7])
def test_batch_matches_rows(threads):
    matrix = rng.random((37, 3000), dtype=np.float32)
    matrix[3] = np.arange(3000)  # ascending row
    matrix[5, ::2] = np.nan  # fewer real values than k in one row below
    matrix[6] = np.nan
    matrix[8] = 1.0
    for k in (0, 1, 10, 1600, 5000):
        index, score = secondopinion.topk_batch(matrix, k, threads=threads)
        assert_batch_matches(matrix, k, index, score)


def test_batch_converts_fortran_order_and_float64():
    matrix = np.asfortranarray(rng.random((20, 2500)))
    index, score = secondopinion.topk_batch(matrix, 15, threads=2)
    assert_batch_matches(matrix.astype(np.float32), 15, index, score)


@pytest.mark.parametrize("shape", [(0, 10), (5, 0), (0, 0)])
def test_batch_empty_shapes(shape):
    index, score = secondopinion.topk_batch(np.zeros(shape, dtype=np.float32), 3)
    assert index.shape == score.shape == (shape[0], min(3, shape[1]))


def test_batch_many_threads_more_than_rows():
    matrix = rng.random((3, 5000), dtype=np.float32)
    index, score = secondopinion.topk_batch(matrix, 4, threads=10_000_000_000)
    assert_batch_matches(matrix, 4, index, score)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux CPU affinity")
def test_default_thread_count_is_within_the_usable_cpus():
    # physical cores among the CPUs this process may run on (thread_count.hpp)
    assert 1 <= _core.default_thread_count() <= len(os.sched_getaffinity(0))


def test_concurrent_python_threads():
    # The GIL is released during the C++ work; results stay per call.
    arrays = [rng.random(50_000, dtype=np.float32) for _ in range(4)]
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def worker(i: int) -> None:
        for _ in range(20):
            results[i] = secondopinion.topk(arrays[i], 30)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, scores in enumerate(arrays):
        assert_matches(results[i], scores, 30)


# --- the environment variable, which is read once per process -----------------


def _run_python(code: str, simd: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SECONDOPINION_SIMD=simd)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


_ENV_PROBE = """
import numpy as np
from secondopinion import _core, simd_level, topk
x = np.arange(5000, dtype=np.float32)
assert topk(x, 3)[0].tolist() == [4999, 4998, 4997]
refused = []
for level in ("portable", "avx2", "avx512"):
    try:
        _core.topk_with_level(x, 3, level)
    except ValueError as error:
        assert "above" in str(error)
        refused.append(level)
print(simd_level(), _core.simd_cpu_level(), ",".join(refused))
"""


@pytest.mark.parametrize("forced", ALL_LEVELS)
def test_environment_variable_only_lowers(forced):
    result = _run_python(_ENV_PROBE, forced)
    assert result.returncode == 0, result.stderr
    active, cpu, refused = (result.stdout.split() + [""])[:3]
    assert cpu == _core.simd_cpu_level()
    # Forcing a level above the CPU's is ignored: the CPU's level is used.
    expected = ALL_LEVELS[min(ALL_LEVELS.index(forced), ALL_LEVELS.index(cpu))]
    assert active == expected
    # The dispatcher refuses every kernel above the active level.
    above = ALL_LEVELS[ALL_LEVELS.index(expected) + 1 :]
    assert (refused.split(",") if refused else []) == above


def test_unknown_environment_value_warns_and_is_ignored():
    result = _run_python(_ENV_PROBE, "sse9")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == _core.simd_cpu_level()
    assert "ignoring SECONDOPINION_SIMD=sse9" in result.stderr


# --- properties ---------------------------------------------------------------

_floats = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf"), float("nan")]),
)


@settings(max_examples=150, deadline=None)
@given(
    scores=hnp.arrays(np.float32, st.integers(0, 300), elements=_floats),
    k=st.integers(0, 310),
    level=st.sampled_from(LEVELS),
)
def test_property_small_arrays_match_plain_python(scores, k, level):
    index, score = run_level(scores, k, level)
    want = python_reference(scores.tolist(), k)
    assert index.tolist() == want
    np.testing.assert_array_equal(score, scores[want])


@st.composite
def long_arrays(draw: st.DrawFn) -> np.ndarray:
    """Arrays long enough for the vector scan and the sampling guard."""
    n = draw(st.integers(1100, 40_000))
    seed = draw(st.integers(0, 2**32 - 1))
    gen = np.random.default_rng(seed)
    shape = draw(st.sampled_from(["uniform", "ascending", "descending", "ties", "sawtooth"]))
    if shape == "uniform":
        x = gen.random(n, dtype=np.float32)
    elif shape == "ascending":
        x = np.arange(n, dtype=np.float32)
    elif shape == "descending":
        x = -np.arange(n, dtype=np.float32)
    elif shape == "ties":
        x = gen.integers(0, draw(st.integers(1, 20)), n).astype(np.float32)
    else:
        x = (np.arange(n) % draw(st.integers(1, 5000))).astype(np.float32)
    for special in (np.nan, np.inf, -np.inf):
        fraction = draw(st.sampled_from([0.0, 0.001, 0.3, 0.95]))
        x[gen.random(n) < fraction] = special
    return x


@settings(max_examples=60, deadline=None)
@given(scores=long_arrays(), k=st.integers(0, 2500), level=st.sampled_from(LEVELS))
def test_property_long_arrays_match_numpy(scores, k, level):
    assert_matches(run_level(scores, k, level), scores, k)
