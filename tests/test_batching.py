"""The plan of Runs (C++): one sequence per Run, longest first, `parallel` side by side."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secondopinion import _core, _runtime
from secondopinion.batching import DEFAULT_BATCH_TOKENS, plan_runs


def reference_parallel(lengths: list[int], budget: int, threads: int) -> int:
    """As many Runs side by side as threads allow and the budget holds at the longest length."""
    if not lengths:
        return 0
    fits = 1
    while fits < min(threads, len(lengths)) and (fits + 1) * max(lengths) <= budget:
        fits += 1
    return fits


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 600), max_size=150),
    budget=st.integers(1, 20_000),
    threads=st.integers(1, 64),
)
def test_plan_against_reference(lengths, budget, threads):
    plan = plan_runs(np.array(lengths, dtype=np.int64), budget, threads)
    # Longest first, ties by lower index: the longest Runs never end up last on one worker.
    assert plan.order.tolist() == sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    assert plan.num_runs == len(lengths)
    assert plan.parallel == reference_parallel(lengths, budget, threads)
    assert plan.real_tokens == sum(lengths)
    assert plan.peak_tokens == sum(sorted(lengths, reverse=True)[: plan.parallel])
    # The budget holds, unless one sequence alone is longer.
    assert plan.peak_tokens <= max(budget, max(lengths, default=0))
    assert plan.parallel <= threads


def test_threads_set_the_parallelism_when_the_budget_allows():
    plan = plan_runs(np.full(100, 256), 16_384, threads=2)
    assert plan.parallel == 2 and plan.peak_tokens == 512
    assert plan_runs(np.full(100, 256), 16_384, threads=8).parallel == 8
    assert plan_runs(np.full(3, 256), 16_384, threads=8).parallel == 3  # no idle workers


def test_budget_bounds_the_tokens_in_flight():
    assert plan_runs(np.full(10, 256), 600, threads=8).parallel == 2
    # A sequence longer than the budget still runs: alone.
    plan = plan_runs(np.array([10, 700, 10]), 512, threads=4)
    assert plan.order.tolist() == [1, 0, 2]
    assert plan.parallel == 1 and plan.peak_tokens == 700


def test_default_budget_and_threads():
    assert DEFAULT_BATCH_TOKENS == _core.DEFAULT_BATCH_TOKENS > 0
    plan = plan_runs(np.array([3, 4]))
    assert plan.parallel == min(2, _core.default_thread_count())
    assert plan_runs(np.zeros(0, dtype=np.int64)).parallel == 0


@pytest.mark.parametrize(
    ("lengths", "budget", "threads", "message"),
    [
        ([3, 0, 2], 10, 1, "no tokens"),
        ([3], 0, 1, "batch_tokens"),
        ([3], 10, 0, "threads"),
        ([-1], 10, 1, "non-negative"),
    ],
)
def test_bad_plans_raise_in_the_core(lengths, budget, threads, message):
    with pytest.raises(ValueError, match=message):
        _core.plan_runs(np.array(lengths), budget, threads)


def test_plan_arguments_are_checked():
    with pytest.raises(ValueError, match="batch_tokens"):
        plan_runs(np.array([3]), 0)
    with pytest.raises(TypeError, match="batch_tokens"):
        plan_runs(np.array([3]), 2.5)
    with pytest.raises(ValueError, match="threads"):
        plan_runs(np.array([3]), 10, threads=0)
    with pytest.raises(TypeError, match="threads"):
        plan_runs(np.array([3]), 10, threads="2")


@pytest.mark.parametrize(
    ("ids", "offsets", "message"),
    [
        ([5, 6, 7], [1, 3], "offsets\\[0\\] must be 0"),
        ([5, 6, 7], [0, 2, 1], "empty or offsets decrease"),
        ([5, 6, 7], [0, 2], "offsets end at 2 but there are 3 ids"),
        ([5] * 300, [0, 300], "more than max_length"),
        ([5, 6], [], "at least one entry"),
    ],
)
def test_session_checks_token_arrays(ce_dir, ids, offsets, message):
    """The C++ core validates what it is given, whoever calls it."""
    _runtime.ensure_loaded()
    session = _core.CrossEncoderSession(str(ce_dir / "model.onnx"), threads=1, max_length=256)
    with pytest.raises(ValueError, match=message):
        session.logits(np.array(ids), None, np.array(offsets, dtype=np.int64), 4096)


def test_session_type_ids_must_match_ids(ce_dir):
    _runtime.ensure_loaded()
    session = _core.CrossEncoderSession(str(ce_dir / "model.onnx"), threads=1)
    with pytest.raises(ValueError, match="type_ids"):
        session.logits(np.array([5, 6]), np.array([0]), np.array([0, 2]), 4096)


def test_out_of_vocabulary_id_is_an_error_not_a_crash(ce_dir):
    _runtime.ensure_loaded()
    session = _core.CrossEncoderSession(str(ce_dir / "model.onnx"), threads=1)
    with pytest.raises(RuntimeError, match="model.onnx"):
        session.logits(np.array([5, 10**9]), None, np.array([0, 2]), 4096)
