"""tools/export_onnx.py on a tiny random BERT made here: files, config, and outputs
checked against transformers run independently of the tool."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the bench extra (torch)")
transformers = pytest.importorskip("transformers", reason="needs the bench extra")
ort = pytest.importorskip("onnxruntime")

TOOL = Path(__file__).resolve().parent.parent / "tools" / "export_onnx.py"
WORDS = "the a of and vitamin deficiency risk infection trial found reduce memory".split()


def _tool():
    spec = importlib.util.spec_from_file_location("export_onnx", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A 2-layer BERT bi-encoder checkpoint (no classification head) with a WordPiece tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    # Like all-MiniLM-L6-v2's file: fixed padding and truncation the exporter must not use.
    tokenizer.enable_truncation(8)
    tokenizer.enable_padding(length=8)
    tokenizer.save(str(path / "tokenizer.json"))
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(7)
    transformers.BertModel(config).eval().save_pretrained(path)
    return path


def _batch(rows: list[list[int]]) -> dict[str, np.ndarray]:
    longest = max(len(r) for r in rows)
    ids = np.zeros((len(rows), longest), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    types = np.zeros_like(ids)
    types[:, longest // 2 :] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types * mask}


def _random_rows(seed: int, lengths: list[int], vocab: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[2, *rng.integers(5, vocab, n - 2).tolist(), 3] for n in lengths]


def test_cross_encoder_export_matches_transformers(tiny_checkpoint, tmp_path, capsys):
    out, torch_dir = tmp_path / "ce", tmp_path / "ce-torch"
    diff = _tool().export(out, "cross-encoder", checkpoint=tiny_checkpoint, save_torch=torch_dir)
    assert diff <= 1e-4
    assert "meaningless" in capsys.readouterr().err  # the head was initialised here

    assert sorted(p.name for p in out.iterdir()) == [
        "model.onnx",
        "secondopinion.json",
        "tokenizer.json",
    ]
    assert (out / "tokenizer.json").read_bytes() == (
        tiny_checkpoint / "tokenizer.json"
    ).read_bytes()
    meta = json.loads((out / "secondopinion.json").read_text())
    assert meta["format"] == 1 and meta["kind"] == "cross-encoder"
    assert meta["activation"] == "sigmoid" and meta["floor"] is None
    assert meta["max_length"] == 64  # capped by max_position_embeddings
    assert meta["name"].endswith("-untrained-head")

    session = ort.InferenceSession(str(out / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == [
        "input_ids",
        "attention_mask",
        "token_type_ids",
    ]
    assert all(i.type == "tensor(int64)" for i in session.get_inputs())
    assert [o.name for o in session.get_outputs()] == ["logits"]

    # Shapes the export never saw; the reference is the saved checkpoint loaded afresh.
    batch = _batch(_random_rows(3, [5, 23, 11, 40, 2], 17))
    (logits,) = session.run(None, batch)
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(torch_dir).eval()
    with torch.no_grad():
        expected = reference(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    assert logits.shape == (5, 1)
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=0)


def test_embedder_export_matches_transformers(tiny_checkpoint, tmp_path):
    out = tmp_path / "emb"
    assert _tool().export(out, "embedder", checkpoint=tiny_checkpoint, max_length=48) <= 1e-4
    meta = json.loads((out / "secondopinion.json").read_text())
    assert meta["kind"] == "embedder" and meta["activation"] == "none"
    assert meta["pooling"] == "mean" and meta["normalize"] is True
    assert meta["max_length"] == 48

    session = ort.InferenceSession(str(out / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["last_hidden_state"]
    batch = _batch(_random_rows(4, [9, 31, 4], 17))
    (hidden,) = session.run(None, batch)
    reference = transformers.AutoModel.from_pretrained(tiny_checkpoint).eval()
    with torch.no_grad():
        expected = reference(**{k: torch.from_numpy(v) for k, v in batch.items()})
    expected = expected.last_hidden_state.numpy()
    assert hidden.shape == (3, 31, 32)
    real = batch["attention_mask"].astype(bool)
    np.testing.assert_allclose(hidden[real], expected[real], atol=1e-4, rtol=0)


def test_export_rejects_bad_arguments(tiny_checkpoint, tmp_path):
    tool = _tool()
    with pytest.raises(ValueError, match="kind"):
        tool.export(tmp_path / "x", "reranker", checkpoint=tiny_checkpoint)
    with pytest.raises(ValueError, match="max_length"):
        tool.export(tmp_path / "x", "embedder", checkpoint=tiny_checkpoint, max_length=1)
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        tool.export(tmp_path / "x", "embedder", checkpoint=tmp_path)
