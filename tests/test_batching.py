"""Length-sorted, token-budget batching (C++), against a plain-Python reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secondopinion import _core, _runtime
from secondopinion.batching import DEFAULT_BATCH_TOKENS, plan_batches


def reference_cost(lengths: list[int], budget: int, overhead: int) -> int:
    """Least sum of (rows x width + overhead) over batches of the longest-first sorted list."""
    ordered = sorted(lengths, reverse=True)
    best = [0] + [None] * len(ordered)
    for j in range(1, len(ordered) + 1):
        options = []
        for i in range(j):
            rows, width = j - i, ordered[i]
            if rows == 1 or rows * width <= budget:
                options.append(best[i] + rows * width + overhead)
        best[j] = min(options)
    return best[-1]


def brute_force_cost(lengths: list[int], budget: int, overhead: int) -> int:
    """Every way to cut the sorted list (2^(n-1) of them), for small n."""
    ordered = sorted(lengths, reverse=True)
    n = len(ordered)
    if n == 0:
        return 0
    best = None
    for mask in range(2 ** max(n - 1, 0)):
        cuts = [0] + [k + 1 for k in range(n - 1) if mask >> k & 1] + [n]
        total = 0
        for a, b in itertools.pairwise(cuts):
            if b - a > 1 and (b - a) * ordered[a] > budget:
                break
            total += (b - a) * ordered[a] + overhead
        else:
            best = total if best is None else min(best, total)
    return best


def plan_cost(plan, overhead: int) -> int:
    return plan.padded_tokens + overhead * plan.num_batches


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), max_size=9),
    budget=st.integers(1, 200),
    overhead=st.integers(0, 50),
)
def test_plan_is_optimal_by_brute_force(lengths, budget, overhead):
    plan = plan_batches(np.array(lengths, dtype=np.int64), budget, overhead)
    assert plan_cost(plan, overhead) == brute_force_cost(lengths, budget, overhead)


@settings(max_examples=100, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 600), max_size=150),
    budget=st.integers(1, 5000),
    overhead=st.integers(0, 200),
)
def test_plan_cost_matches_reference(lengths, budget, overhead):
    plan = plan_batches(np.array(lengths, dtype=np.int64), budget, overhead)
    assert plan_cost(plan, overhead) == reference_cost(lengths, budget, overhead)
    assert plan.real_tokens == sum(lengths)


@settings(max_examples=150, deadline=None)
@given(lengths=st.lists(st.integers(1, 600), min_size=1, max_size=120), budget=st.integers(1, 5000))
def test_plan_invariants(lengths, budget):
    plan = plan_batches(np.array(lengths, dtype=np.int64), budget)
    # Longest first, ties by lower index.
    assert plan.order.tolist() == sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    covered = []
    for first, rows, width in zip(plan.batch_first, plan.batch_rows, plan.batch_width, strict=True):
        assert first == len(covered)  # consecutive slices of the order
        members = [lengths[i] for i in plan.order[first : first + rows]]
        covered += members
        assert width == max(members)  # padded only to its own longest member
        assert rows * width <= budget or rows == 1
    assert len(covered) == len(lengths)
    assert plan.padded_tokens == sum(
        int(r) * int(w) for r, w in zip(plan.batch_rows, plan.batch_width, strict=True)
    )
    assert 0.0 <= plan.padding_waste < 1.0


def test_equal_lengths_fill_the_budget():
    plan = plan_batches(np.full(100, 256), 4096)
    assert plan.batch_rows.tolist() == [16] * 6 + [4]
    assert plan.padding_waste == 0.0


def test_sorting_cuts_padding_against_arrival_order():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 500, size=400)
    plan = plan_batches(lengths, 4096)
    # Arrival order in fixed batches of 16, padded to each batch's longest.
    padded_arrival = sum(len(c) * c.max() for c in np.array_split(lengths, len(lengths) // 16))
    assert plan.padded_tokens < 0.75 * padded_arrival
    assert plan.padding_waste < 0.03


def test_row_longer_than_budget_runs_alone():
    plan = plan_batches(np.array([10, 700, 10]), 512)
    assert plan.order[0] == 1
    assert plan.batch_rows.tolist() == [1, 2]


def test_default_budget():
    assert DEFAULT_BATCH_TOKENS == _core.DEFAULT_BATCH_TOKENS > 0
    plan = plan_batches(np.array([3, 4]))
    assert plan.num_batches == 1


@pytest.mark.parametrize(
    ("lengths", "budget", "message"),
    [([3, 0, 2], 10, "no tokens"), ([3], 0, "batch_tokens"), ([-1], 10, "non-negative")],
)
def test_bad_plans_raise(lengths, budget, message):
    with pytest.raises((ValueError, TypeError), match=message):
        if budget == 0:
            _core.plan_batches(np.array(lengths), budget)
        else:
            plan_batches(np.array(lengths), budget)


def test_batch_tokens_argument_is_checked():
    with pytest.raises(ValueError, match="batch_tokens"):
        plan_batches(np.array([3]), 0)
    with pytest.raises(TypeError, match="batch_tokens"):
        plan_batches(np.array([3]), 2.5)


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
        session.logits(np.array(ids), None, np.array(offsets, dtype=np.int64), 0, 4096)


def test_session_type_ids_must_match_ids(ce_dir):
    _runtime.ensure_loaded()
    session = _core.CrossEncoderSession(str(ce_dir / "model.onnx"), threads=1)
    with pytest.raises(ValueError, match="type_ids"):
        session.logits(np.array([5, 6]), np.array([0]), np.array([0, 2]), 0, 4096)


def test_out_of_vocabulary_id_is_an_error_not_a_crash(ce_dir):
    _runtime.ensure_loaded()
    session = _core.CrossEncoderSession(str(ce_dir / "model.onnx"), threads=1)
    with pytest.raises(RuntimeError, match="model.onnx"):
        session.logits(np.array([5, 10**9]), None, np.array([0, 2]), 0, 4096)
