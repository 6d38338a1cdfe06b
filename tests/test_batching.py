"""Length-sorted, token-budget batching (C++), against a plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secondopinion import _core, _runtime
from secondopinion.batching import DEFAULT_BATCH_TOKENS, plan_batches


def reference_plan(lengths: list[int], budget: int) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Longest first (ties: lower index), then greedily fill batches under the budget."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches = []
    i = 0
    while i < len(order):
        width = lengths[order[i]]
        rows = 1
        while i + rows < len(order) and (rows + 1) * width <= budget:
            rows += 1
        batches.append((i, rows, width))
        i += rows
    return order, batches


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 600), max_size=120),
    budget=st.integers(1, 5000),
)
def test_plan_matches_reference(lengths, budget):
    plan = plan_batches(np.array(lengths, dtype=np.int64), budget)
    order, batches = reference_plan(lengths, budget)
    assert plan.order.tolist() == order
    assert list(zip(plan.batch_first, plan.batch_rows, plan.batch_width, strict=True)) == batches
    assert plan.real_tokens == sum(lengths)
    assert plan.padded_tokens == sum(r * w for _, r, w in batches)


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 600), min_size=1, max_size=120), budget=st.integers(1, 5000))
def test_plan_invariants(lengths, budget):
    plan = plan_batches(np.array(lengths, dtype=np.int64), budget)
    assert sorted(plan.order.tolist()) == list(range(len(lengths)))
    for first, rows, width in zip(plan.batch_first, plan.batch_rows, plan.batch_width, strict=True):
        members = [lengths[i] for i in plan.order[first : first + rows]]
        assert width == max(members)  # padded only to its own longest member
        assert rows * width <= budget or rows == 1
    assert 0.0 <= plan.padding_waste < 1.0


def test_sorting_cuts_padding_against_arrival_order():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 500, size=400)
    plan = plan_batches(lengths, 4096)
    # Arrival order in fixed batches of 16, padded to each batch's longest.
    padded_arrival = sum(len(c) * c.max() for c in np.array_split(lengths, len(lengths) // 16))
    assert plan.padded_tokens < 0.75 * padded_arrival
    assert plan.padding_waste < 0.05


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
