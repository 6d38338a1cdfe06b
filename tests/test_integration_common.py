"""What the framework adapters share, with no framework installed: the floor the
reranking adapters apply, their settings checks, and the ImportError that
names the extra to install."""

from __future__ import annotations

import importlib
import json
import math
import sys

import pytest

from secondopinion import CrossEncoder, Pipeline
from secondopinion.gate import DEFAULT_FLOOR, Chunk, Refusal
from secondopinion.integrations._common import (
    PassageJudge,
    PipelineSearch,
    chunk_metadata,
    metadata_is_refusal,
    refusal_metadata,
)
from secondopinion.model_dir import CROSS_ENCODER, default_model_dir


def _copy_model(ce_dir, target, **config_changes):
    """``ce_dir`` with its secondopinion.json changed (the other files linked)."""
    config = json.loads((ce_dir / "secondopinion.json").read_text())
    target.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (target / name).symlink_to(ce_dir / name)
    config.update(config_changes)
    (target / "secondopinion.json").write_text(json.dumps(config))
    return target


def test_judge_floor_is_the_callers_then_the_sigmoid_models_then_default(ce_dir, tmp_path):
    shipped = json.loads((default_model_dir(CROSS_ENCODER) / "secondopinion.json").read_text())
    sigmoid_floor = CrossEncoder(_copy_model(ce_dir, tmp_path / "a", floor=0.123))
    # A floor calibrated on a learned score does not apply to the sigmoid alone.
    learned_floor = CrossEncoder(
        _copy_model(ce_dir, tmp_path / "b", floor=0.123, relevance=shipped["relevance"])
    )
    assert PassageJudge(sigmoid_floor).floor == 0.123
    assert PassageJudge(learned_floor).floor == DEFAULT_FLOOR
    assert PassageJudge(sigmoid_floor, floor=0.7).floor == 0.7
    assert PassageJudge(learned_floor, floor=0.0).floor == 0.0


def test_judge_result_follows_the_floor(cross_encoder):
    passages = ["protein cell growth", "heart disease risk", "virus infection"]
    judge = PassageJudge(cross_encoder, top_n=None, floor=0.0)
    result = judge.judge("cell growth", passages, ["a", None, "c"])
    assert len(result.chunks) == 3
    assert sorted(c.fused_rank for c in result.chunks) == [1, 2, 3]
    by_rank = {c.fused_rank: c for c in result.chunks}
    assert [by_rank[i].id for i in (1, 2, 3)] == ["a", "", "c"]
    meta = chunk_metadata(by_rank[2], 1, 0.0, input_rank=2)
    assert meta["doc_id"] is None and meta["input_rank"] == 2 and "bm25_rank" not in meta
    refused = PassageJudge(cross_encoder, floor=1.0).judge("cell growth", passages, [None] * 3)
    assert isinstance(refused, Refusal) and refusal_metadata(refused)["best_doc_id"] is None
    with pytest.raises(ValueError, match="ids has 1 entries for 3 passages"):
        judge.judge("cell growth", passages, ["a"])
    with pytest.raises(TypeError, match="query must be str"):
        judge.judge(None, passages, ["a", "b", "c"])  # type: ignore[arg-type]


def test_refusal_metadata_without_candidates_is_json():
    refusal = Refusal(math.nan, 0.5, "no candidates", [], "q")
    meta = refusal_metadata(refusal)
    assert meta["best_score"] is None and meta["best_doc_id"] is None and meta["candidates"] == 0
    assert json.loads(json.dumps(meta, allow_nan=False)) == meta
    assert metadata_is_refusal({"secondopinion": meta})
    assert not metadata_is_refusal({"secondopinion": {"status": "evidence"}})
    assert not metadata_is_refusal({"secondopinion": "refusal"}) and not metadata_is_refusal(None)


def test_chunk_metadata_from_a_pipeline_is_json():
    chunk = Chunk("d1", "t", 0.8, 1.2, 0.77, False, 3, 4.5, 0, None, 2, 0.03, kept=True)
    meta = chunk_metadata(chunk, 1, 0.4)
    assert meta["dense_rank"] == 0 and meta["dense_score"] is None and meta["bm25_rank"] == 3
    assert json.loads(json.dumps(meta, allow_nan=False)) == meta


def test_settings_are_checked_before_any_search(embedder, cross_encoder):
    pipe = Pipeline.from_corpus(["a b c", "d e f"], embedder=embedder, cross_encoder=cross_encoder)
    assert PipelineSearch(pipe, candidates=5, top_n=None).top_n is None
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        PipelineSearch(pipe, top_n=0)
    with pytest.raises(TypeError, match="candidates must be an int"):
        PipelineSearch(pipe, candidates=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pipeline must be a secondopinion.Pipeline"):
        PipelineSearch(object())


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [
        ("langchain", "langchain_core", "langchain"),
        ("llamaindex", "llama_index.core", "llamaindex"),
        ("haystack", "haystack", "haystack"),
    ],
)
def test_missing_framework_names_the_extra(monkeypatch, module, framework, extra):
    # None in sys.modules makes an import fail; submodules already imported by
    # another test would otherwise still import.
    for name in [n for n in sys.modules if n == framework or n.startswith(framework + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, framework, None)
    monkeypatch.delitem(sys.modules, f"secondopinion.integrations.{module}", raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'secondopinion\[{extra}\]'"):
        importlib.import_module(f"secondopinion.integrations.{module}")
