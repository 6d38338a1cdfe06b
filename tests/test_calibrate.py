"""calibrate_floor against plain-Python references; write_floor; plot_floor."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from trace_fakes import make_result

from secondopinion.calibrate import (
    CalibrationData,
    calibrate_floor,
    otsu_threshold,
    plot_floor,
    write_floor,
)
from secondopinion.model_dir import load_config
from secondopinion.traces import TraceStore


def two_modes(rng, n_queries=150, per_query=40, p_relevant=0.05, gap=(0.2, 0.8)):
    """Junk well below gap[0], evidence well above gap[1] (on probabilities)."""
    n = n_queries * per_query
    query = np.repeat(np.arange(n_queries), per_query)
    label = (rng.random(n) < p_relevant).astype(np.int64)
    logit = np.where(label > 0, rng.normal(3.0, 0.8, n), rng.normal(-5.0, 1.0, n))
    score = 1 / (1 + np.exp(-logit))
    lo, hi = math.log(gap[0] / (1 - gap[0])), math.log(gap[1] / (1 - gap[1]))
    # Push the few stragglers out of the gap so that "the floor is in the gap" is exact.
    score = np.where(label > 0, np.maximum(score, gap[1]), np.minimum(score, gap[0]))
    assert lo < hi
    return score, query, label


# --- plain-Python references ------------------------------------------------------------


def ref_rates(score, query, label, floor):
    best, has_rel = {}, {}
    for s, q, lab in zip(score.tolist(), query.tolist(), label.tolist(), strict=True):
        best[q] = max(best.get(q, -1.0), s)
        has_rel[q] = has_rel.get(q, False) or lab > 0
    refused = {q for q, b in best.items() if b < floor}
    rel_scores = [s for s, lab in zip(score.tolist(), label.tolist(), strict=True) if lab > 0]
    answerable = [q for q, h in has_rel.items() if h]
    return {
        "recall": sum(s >= floor for s in rel_scores) / len(rel_scores),
        "refusal_rate": len(refused) / len(best),
        "false_refusal_rate": sum(q in refused for q in answerable) / len(answerable),
        "refusal_precision": (
            sum(not has_rel[q] for q in refused) / len(refused) if refused else math.nan
        ),
    }


def ref_floor_for_recall(score, label, target):
    rel = [s for s, lab in zip(score.tolist(), label.tolist(), strict=True) if lab > 0]
    ok = [f for f in set(rel) if sum(s >= f for s in rel) / len(rel) >= target]
    return max(ok)


def ref_floor_for_refusal_precision(score, query, label, target):
    rates_at = {}
    best = {}
    for s, q in zip(score.tolist(), query.tolist(), strict=True):
        best[q] = max(best.get(q, -1.0), s)
    floors = sorted(set(best.values())) + [math.nextafter(max(best.values()), math.inf)]
    for f in floors:
        rates_at[f] = ref_rates(score, query, label, f)["refusal_precision"]
    ok = [f for f, p in rates_at.items() if not math.isnan(p) and p >= target]
    return max(ok) if ok else None


# --- labelled -------------------------------------------------------------------------


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 0.99, 1.0])
def test_target_recall_matches_reference(target):
    rng = np.random.default_rng(1)
    # Rounded scores: ties at the cut.
    score = np.round(rng.random(3000), 2)
    query = rng.integers(0, 120, 3000)
    label = (rng.random(3000) < 0.1 + 0.3 * score).astype(np.int64) * rng.integers(1, 3, 3000)
    choice = calibrate_floor(CalibrationData(score, query, label), target_recall=target)
    assert choice.floor == ref_floor_for_recall(score, label, target)
    assert choice.met and choice.recall >= target
    ref = ref_rates(score, query, label, choice.floor)
    for key, value in ref.items():
        assert getattr(choice, key) == pytest.approx(value, nan_ok=True), key
    assert choice.n_relevant == int((label > 0).sum())


def test_target_recall_is_exact_without_ties():
    score = np.linspace(0.01, 0.99, 99)  # one query, 20 relevant at known places
    label = np.zeros(99, dtype=np.int64)
    label[np.arange(0, 99, 5)[:20]] = 1
    choice = calibrate_floor(CalibrationData(score, np.zeros(99), label), target_recall=0.95)
    # 19 of 20 kept: the floor is the 19th largest relevant score, the 2nd smallest.
    assert choice.floor == pytest.approx(np.sort(score[label > 0])[1])
    assert choice.recall == pytest.approx(0.95)


@pytest.mark.parametrize("target", [0.5, 0.75, 0.9])
def test_target_refusal_precision_matches_reference(target):
    rng = np.random.default_rng(2)
    n_q, per = 200, 20
    query = np.repeat(np.arange(n_q), per)
    answerable = rng.random(n_q) < 0.6
    label = ((rng.random(n_q * per) < 0.15) & answerable[query]).astype(np.int64)
    score = np.round(1 / (1 + np.exp(-rng.normal(np.where(label > 0, 1.5, -2.0), 1.5))), 3)
    choice = calibrate_floor(CalibrationData(score, query, label), target_refusal_precision=target)
    expected = ref_floor_for_refusal_precision(score, query, label, target)
    assert choice.met and choice.floor == expected
    ref = ref_rates(score, query, label, choice.floor)
    assert choice.refusal_precision == pytest.approx(ref["refusal_precision"])
    assert choice.refusal_precision >= target
    assert choice.false_refusal_rate == pytest.approx(ref["false_refusal_rate"])


def test_unreachable_refusal_precision_refuses_nothing():
    # Every query has a relevant candidate: any refusal is wrong.
    score = np.array([0.9, 0.1, 0.8, 0.2])
    choice = calibrate_floor(
        CalibrationData(score, np.array([0, 0, 1, 1]), np.array([1, 0, 1, 0])),
        target_refusal_precision=0.5,
    )
    assert not choice.met and choice.refusal_rate == 0.0
    assert any("refuses nothing" in n for n in choice.notes)


def test_unjudged_queries_are_left_out():
    score = np.array([0.9, 0.1, 0.05, 0.6])
    query = np.array([0, 0, 1, 1])
    label = np.array([1, 0, -1, -1])  # query 1 is not judged
    choice = calibrate_floor(CalibrationData(score, query, label), target_recall=1.0)
    assert choice.n_queries == 1 and choice.n_candidates == 2 and choice.floor == 0.9


def test_labels_default_to_95_percent_recall():
    score, query, label = two_modes(np.random.default_rng(3))
    choice = calibrate_floor(CalibrationData(score, query, label))
    assert choice.method == "target-recall" and choice.target == 0.95


# --- unlabelled ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unlabelled_floor_lands_in_the_gap(seed):
    score, query, label = two_modes(np.random.default_rng(seed))
    choice = calibrate_floor(CalibrationData(score, query))
    assert score[label == 0].max() < choice.floor < score[label > 0].min()
    assert score[label == 0].max() < choice.otsu_floor < score[label > 0].min()
    assert choice.method == "mixture" and choice.separation > 2
    junk, evidence = choice.modes
    assert junk < 0.05 and evidence > 0.9
    assert not choice.notes


def test_unimodal_scores_say_unreliable():
    rng = np.random.default_rng(4)
    score = 1 / (1 + np.exp(-rng.normal(0, 1, 2000)))
    choice = calibrate_floor(CalibrationData(score, np.arange(2000) // 20))
    assert choice.separation < 2
    assert any("not clearly bimodal" in n for n in choice.notes)


def test_otsu_matches_brute_force():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(-4, 1, 500), rng.normal(2, 0.5, 60)])
    counts, edges = np.histogram(x, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    best, best_t = -1.0, None
    for t in range(1, 256):
        w0, w1 = counts[:t].sum(), counts[t:].sum()
        if w0 == 0 or w1 == 0:
            continue
        m0 = (counts[:t] * centres[:t]).sum() / w0
        m1 = (counts[t:] * centres[t:]).sum() / w1
        between = w0 * w1 * (m0 - m1) ** 2
        if between > best:
            best, best_t = between, edges[t]
    assert otsu_threshold(x) == pytest.approx(best_t)


def test_bad_arguments():
    data = CalibrationData(np.array([0.1, 0.9]), np.array([0, 0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="not both"):
        calibrate_floor(data, target_recall=0.9, target_refusal_precision=0.9)
    with pytest.raises(ValueError, match="target_recall"):
        calibrate_floor(data, target_recall=1.5)
    with pytest.raises(ValueError, match="target_refusal_precision"):
        calibrate_floor(data, target_refusal_precision=0)
    with pytest.raises(TypeError, match="target_recall"):
        calibrate_floor(data, target_recall="0.9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs labelled"):
        calibrate_floor(CalibrationData(data.score, data.query), target_recall=0.9)
    with pytest.raises(ValueError, match="probabilities"):
        calibrate_floor(CalibrationData(np.array([1.5]), np.array([0])))
    with pytest.raises(ValueError, match="no candidates"):
        calibrate_floor(CalibrationData(np.array([]), np.array([], dtype=np.int64)))
    with pytest.raises(ValueError, match="all scores are equal"):
        calibrate_floor(CalibrationData(np.full(5, 0.3), np.zeros(5)))
    with pytest.raises(TypeError, match="TraceStore"):
        calibrate_floor([0.1, 0.2])  # type: ignore[arg-type]


# --- from a trace store, writing, plotting -----------------------------------------------


def test_from_a_trace_store(tmp_path):
    rng = np.random.default_rng(6)
    score, query, label = two_modes(rng, n_queries=30, per_query=10)
    with TraceStore(tmp_path / "t.db") as store:
        for q in range(30):
            rows = query == q
            ids = [f"q{q}d{i}" for i in range(10)]
            store.record(make_result(score[rows], ids=ids), query_id=f"q{q}", model_id="m")
        unlabelled = calibrate_floor(store)
        assert unlabelled.method in ("mixture", "otsu")
        store.add_labels(
            {f"q{q}": {f"q{q}d{i}": int(label[q * 10 + i]) for i in range(10)} for q in range(30)}
        )
        labelled = calibrate_floor(store, target_recall=0.9)
    direct = calibrate_floor(CalibrationData(score, query, label), target_recall=0.9)
    assert labelled.floor == direct.floor and labelled.recall == direct.recall


def write_config(tmp_path, **extra):
    config = {"format": 1, "kind": "cross-encoder", "max_length": 512, "name": "x", **extra}
    (tmp_path / "secondopinion.json").write_text(json.dumps(config))
    return tmp_path / "secondopinion.json"


def test_write_floor_keeps_other_keys(tmp_path):
    path = write_config(tmp_path, activation="softmax", future_key=[1, 2], floor=None)
    assert write_floor(tmp_path, 0.37) == path
    config = json.loads(path.read_text())
    assert config["floor"] == 0.37 and config["future_key"] == [1, 2]
    assert config["activation"] == "softmax"
    assert load_config(path, "cross-encoder").floor == 0.37
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secondopinion.json"]  # no temp left


def test_write_floor_bad_input(tmp_path):
    write_config(tmp_path)
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="floor"):
            write_floor(tmp_path, bad)
    with pytest.raises(TypeError, match="floor"):
        write_floor(tmp_path, "0.3")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="secondopinion.json"):
        write_floor(tmp_path / "nope", 0.3)
    (tmp_path / "secondopinion.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        write_floor(tmp_path, 0.3)


@pytest.mark.parametrize("labelled", [True, False])
def test_plot_writes_an_image(tmp_path, labelled):
    score, query, label = two_modes(np.random.default_rng(7), n_queries=40)
    data = CalibrationData(score, query, label if labelled else None)
    choice = calibrate_floor(data)
    out = plot_floor(data, choice, tmp_path / "floor.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    data = CalibrationData(np.array([0.1, 0.9]), np.array([0, 1]))
    with pytest.raises(ImportError, match=r"secondopinion\[plot\]"):
        plot_floor(data, calibrate_floor(data), tmp_path / "x.png")
