"""The gate against a plain-Python reference: sort, cut at the floor, cap at top_n."""

from __future__ import annotations

import json
import math
import sys
import types

import numpy as np
import pytest

from secondopinion.gate import (
    DEFAULT_FLOOR,
    CandidateFeatures,
    Chunk,
    Evidence,
    Gate,
    Refusal,
    SigmoidRelevance,
    relevance_model_for,
)


def reference_gate(scores, logits, floor, top_n):
    """(order, kept positions) written out longhand."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], -logits[i], i))
    kept = [i for i in order if scores[i] >= floor]
    if top_n is not None:
        kept = kept[:top_n]
    return order, kept


def chunk(i: int, score: float, logit: float = 0.0) -> Chunk:
    return Chunk(
        id=f"d{i}",
        text=f"text {i}",
        score=score,
        ce_logit=logit,
        ce_score=1 / (1 + math.exp(-logit)),
        truncated=False,
        bm25_rank=i + 1,
        bm25_score=1.0,
        dense_rank=0,
        dense_score=None,
        fused_rank=i + 1,
        fused_score=0.5,
    )


@pytest.mark.parametrize("seed", range(30))
def test_decide_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    # Rounded scores and logits so that ties occur at both levels.
    scores = np.round(rng.random(n), 1)
    logits = np.round(rng.normal(size=n), 0)
    floor = float(rng.choice([0.0, 0.3, 0.5, 0.95, 1.0, round(float(rng.random()), 1)]))
    top_n = [None, 0, 1, 3, 10, 100][seed % 6]
    order, kept = Gate(floor, top_n).decide(scores, logits, floor)
    ref_order, ref_kept = reference_gate(scores.tolist(), logits.tolist(), floor, top_n)
    assert order.tolist() == ref_order
    assert order[:kept].tolist() == ref_kept


def test_floor_only_cuts_never_reorders():
    rng = np.random.default_rng(3)
    scores, logits = rng.random(50), rng.normal(size=50)
    orders = [Gate(f, None).decide(scores, logits, f) for f in (0.0, 0.2, 0.5, 0.9)]
    for order, kept in orders:
        assert order.tolist() == orders[0][0].tolist()
        assert np.all(scores[order[:kept]] >= 0.0)
    kept_counts = [k for _, k in orders]
    assert kept_counts == sorted(kept_counts, reverse=True)  # higher floor, fewer kept


def test_apply_evidence_and_kept_flags():
    cands = [chunk(i, s) for i, s in enumerate([0.2, 0.9, 0.6, 0.55, 0.1])]
    result = Gate(floor=0.5, top_n=2).apply("q", cands, timings_ms={"x": 1.0})
    assert isinstance(result, Evidence) and result and result.status == "evidence"
    assert [c.id for c in result.chunks] == ["d1", "d2"]
    assert [c.id for c in result.candidates] == ["d1", "d2", "d3", "d0", "d4"]
    assert [c.kept for c in result.candidates] == [True, True, False, False, False]
    assert result.floor == 0.5 and result.query == "q" and result.timings_ms == {"x": 1.0}
    assert result.best_score == 0.9


def test_refusal_is_a_value():
    cands = [chunk(i, s) for i, s in enumerate([0.2, 0.4, 0.1])]
    result = Gate(floor=0.5).apply("off topic", cands)
    assert isinstance(result, Refusal) and not result and result.status == "refusal"
    assert result.best_score == 0.4 and result.floor == 0.5
    assert "0.500" in result.reason and "0.400" in result.reason
    assert result.chunks == [] and [c.id for c in result.candidates] == ["d1", "d0", "d2"]
    assert not any(c.kept for c in result.candidates)


def test_no_candidates_refuses_with_nan_best():
    result = Gate(floor=0.1).apply("q", [])
    assert isinstance(result, Refusal) and math.isnan(result.best_score)
    assert "no candidates" in result.reason


def test_top_n_zero_decides_without_chunks():
    cands = [chunk(i, s) for i, s in enumerate([0.7, 0.2])]
    answered = Gate(floor=0.5, top_n=0).apply("q", cands)
    assert isinstance(answered, Evidence) and answered.chunks == []
    assert not any(c.kept for c in answered.candidates)
    refused = Gate(floor=0.8, top_n=0).apply("q", cands)
    assert isinstance(refused, Refusal)


def test_floor_equal_to_score_is_kept_and_floor_one_keeps_only_one():
    cands = [chunk(0, 0.5), chunk(1, 0.49999997)]
    result = Gate(floor=0.5, top_n=None).apply("q", cands)
    assert [c.id for c in result.chunks] == ["d0"]
    assert isinstance(Gate(floor=1.0).apply("q", [chunk(0, 0.99999994)]), Refusal)
    assert isinstance(Gate(floor=0.0).apply("q", [chunk(0, 0.0)]), Evidence)


@pytest.mark.parametrize("floor", [-0.01, 1.01, float("nan"), float("inf")])
def test_bad_floor(floor):
    with pytest.raises(ValueError, match="floor"):
        Gate(floor=floor)


@pytest.mark.parametrize("floor", ["0.5", True, [0.5]])
def test_floor_type(floor):
    with pytest.raises(TypeError, match="floor"):
        Gate(floor=floor)


def test_bad_top_n():
    with pytest.raises(ValueError, match="top_n"):
        Gate(top_n=-1)
    with pytest.raises(TypeError, match="top_n"):
        Gate(top_n=2.5)
    with pytest.raises(TypeError, match="top_n"):
        Gate(top_n=True)


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5])
def test_bad_scores(bad):
    with pytest.raises(ValueError, match="candidate 1"):
        Gate().decide(np.array([0.3, bad]), None, 0.5)


def test_resolve_floor_precedence():
    assert Gate(0.3).resolve_floor(0.7) == 0.3
    assert Gate().resolve_floor(0.7) == 0.7
    assert Gate().resolve_floor(None) == DEFAULT_FLOOR


def _features(logits):
    n = len(logits)
    zeros = np.zeros(n, dtype=np.int32)
    nan = np.full(n, np.nan, dtype=np.float32)
    return CandidateFeatures(np.asarray(logits, np.float32), zeros, nan, zeros, nan, zeros + 1, nan)


def test_sigmoid_relevance_against_math():
    logits = [-30.0, -2.0, 0.0, 1.5, 40.0]
    got = SigmoidRelevance().score(_features(logits))
    want = [1 / (1 + math.exp(-x)) for x in logits]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)
    assert np.all((got > 0) & (got < 1))


class _FakeEncoder:
    """What relevance_model_for reads of a CrossEncoder: its parsed config."""

    def __init__(self, relevance):
        self.config = types.SimpleNamespace(relevance=relevance)


def test_relevance_hook_default_and_learned(monkeypatch):
    assert isinstance(relevance_model_for(_FakeEncoder(None)), SigmoidRelevance)

    entry = {"kind": "logistic", "weights": [2.0]}
    seen = {}

    class Learned:
        def score(self, features):
            return np.full(len(features), 0.25)

    def load_relevance(spec):
        seen["spec"] = spec
        return Learned()

    module = types.ModuleType("secondopinion.relevance")
    module.load_relevance = load_relevance
    monkeypatch.setitem(sys.modules, "secondopinion.relevance", module)
    model = relevance_model_for(_FakeEncoder(entry))
    assert seen["spec"] == entry
    np.testing.assert_array_equal(model.score(_features([1.0, 2.0])), [0.25, 0.25])


def test_model_config_keeps_the_relevance_entry(tmp_path):
    import shutil

    from secondopinion.model_dir import ModelFormatError, default_model_dir, open_model_dir

    shipped = open_model_dir(None, "cross-encoder")
    assert isinstance(shipped.config.relevance, dict)
    copy = tmp_path / "ce"
    shutil.copytree(default_model_dir("cross-encoder"), copy)
    shared = default_model_dir("cross-encoder").parent / "shared"
    (tmp_path / "shared").symlink_to(shared)  # its ../shared tensors
    raw = json.loads((copy / "secondopinion.json").read_text())
    raw["relevance"] = [1, 2]
    (copy / "secondopinion.json").write_text(json.dumps(raw))
    with pytest.raises(ModelFormatError, match="relevance"):
        open_model_dir(copy, "cross-encoder")
