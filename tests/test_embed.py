"""Embedder: C++ pooling over ONNX Runtime against onnxruntime's Python API + numpy."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tiny_models import random_text
from tokenizers import Tokenizer

from secondopinion import Embedder
from secondopinion.model_dir import ModelFormatError


def reference_embeddings(
    model_file: Path, batch, *, pooling: str = "mean", normalize: bool = True
) -> np.ndarray:
    """onnxruntime's Python API one text at a time, pooled in numpy (float64)."""
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    output = session.get_outputs()[0].name
    rows = []
    for i in range(len(batch)):
        ids = batch.ids[batch.offsets[i] : batch.offsets[i + 1]][None, :]
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        (states,) = session.run([output], feed)
        states = states[0].astype(np.float64)
        vector = states.mean(axis=0) if pooling == "mean" else states[0]
        if normalize:
            vector = vector / max(np.linalg.norm(vector), 1e-12)
        rows.append(vector)
    return np.array(rows)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = np.random.default_rng(11)
    return [random_text(rng, int(n)) for n in rng.choice([0, 1, 4, 20, 60, 150, 300], size=40)]


def test_embeddings_match_onnxruntime_python(embedder, emb_dir, texts):
    vectors = embedder.encode(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), embedder.dimension)
    expected = reference_embeddings(emb_dir / "model.onnx", embedder.tokenize(texts))
    assert np.max(np.abs(vectors - expected)) <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("batch_tokens", [1, 200, 4096, 10**6])
def test_batching_never_changes_an_embedding(embedder, texts, batch_tokens):
    one_at_a_time = np.concatenate([embedder.encode([t]) for t in texts[:15]])
    batched = embedder.encode(texts[:15], batch_tokens=batch_tokens)
    assert np.max(np.abs(batched - one_at_a_time)) <= 1e-5


@pytest.mark.parametrize(
    "options",
    [
        {"pooling": "cls"},
        {"normalize": False},
        {"output_name": "token_embeddings"},
        {"token_type_ids": False},
    ],
)
def test_model_variants(model_dirs, texts, options):
    directory = model_dirs(kind="embedder", **options)
    embedder = Embedder(directory)
    expected = reference_embeddings(
        directory / "model.onnx",
        embedder.tokenize(texts),
        pooling=options.get("pooling", "mean"),
        normalize=options.get("normalize", True),
    )
    assert np.max(np.abs(embedder.encode(texts) - expected)) <= 1e-5


def test_tokens_are_the_tokenizers_own(embedder, emb_dir, texts):
    tok = Tokenizer.from_file(str(emb_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(embedder.max_length)
    batch = embedder.tokenize(texts)
    for i, text in enumerate(texts):
        enc = tok.encode(text)
        assert batch.ids[batch.offsets[i] : batch.offsets[i + 1]].tolist() == enc.ids
        bare = tok.encode(text, add_special_tokens=False).ids
        assert batch.truncated[i] == (len(bare) > embedder.max_length - 2)


def test_embedded_128_token_padding_and_truncation_are_ignored(embedder):
    # tokenizer.json pads and cuts at 128; the model allows 256.
    batch = embedder.tokenize(["cell " * 200, "gene"])
    assert batch.lengths.tolist() == [202, 3]
    _, truncated = embedder.encode(["cell " * 200, "cell " * 300], return_truncated=True)
    assert truncated.tolist() == [False, True]


def test_max_length_override(emb_dir):
    embedder = Embedder(emb_dir, max_length=16)
    batch = embedder.tokenize(["cell " * 40])
    assert batch.lengths.tolist() == [16] and batch.truncated.tolist() == [True]
    with pytest.raises(ValueError, match="max_length"):
        Embedder(emb_dir, max_length=1000)


def test_empty_inputs(embedder):
    empty = embedder.encode([])
    assert empty.shape == (0, embedder.dimension) and empty.dtype == np.float32
    vectors = embedder.encode(["", "gene"])
    assert vectors.shape == (2, embedder.dimension) and np.all(np.isfinite(vectors))


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("gene", "wrap a single text in a list"),
        (None, "texts must be"),
        (["gene", None], r"texts\[1\]"),
        ([b"gene"], r"texts\[0\]"),
        (42, "texts must be"),
    ],
)
def test_bad_texts_raise_type_error(embedder, texts, message):
    with pytest.raises(TypeError, match=message):
        embedder.encode(texts)


def test_bad_options(emb_dir, embedder):
    with pytest.raises(ValueError, match="batch_tokens"):
        embedder.encode(["a"], batch_tokens=-5)
    with pytest.raises(ValueError, match="threads"):
        Embedder(emb_dir, threads=-1)


def test_huge_text_is_cut_and_reported(embedder):
    vectors, truncated = embedder.encode(["gene cell " * 1_000_000], return_truncated=True)
    assert truncated.tolist() == [True] and np.all(np.isfinite(vectors))
    exact = embedder.encode([" ".join(["gene", "cell"] * 200)])
    assert np.max(np.abs(vectors - exact)) <= 1e-6


def test_cross_encoder_directory_is_refused(ce_dir):
    with pytest.raises(ModelFormatError, match=r"secondopinion\.json.*load it with CrossEncoder"):
        Embedder(ce_dir)


def test_cross_encoder_graph_is_refused(emb_dir, ce_dir, tmp_path):
    target = tmp_path / "m"
    shutil.copytree(emb_dir, target)
    shutil.copyfile(ce_dir / "model.onnx", target / "model.onnx")
    with pytest.raises(ModelFormatError, match=r"model\.onnx.*last_hidden_state"):
        Embedder(target)


def test_bad_pooling_is_named(emb_dir, tmp_path):
    target = tmp_path / "m"
    shutil.copytree(emb_dir, target)
    config = json.loads((target / "secondopinion.json").read_text())
    config["pooling"] = "max"
    (target / "secondopinion.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=r"secondopinion\.json.*'pooling'"):
        Embedder(target)


def test_threads_sharing_one_instance_match_serial(embedder, texts):
    jobs = [texts[i : i + 1 + i % 5] for i in range(len(texts))]
    serial = [embedder.encode(job) for job in jobs]
    results: list = [None] * len(jobs)

    def worker(start: int) -> None:
        for j in range(start, len(jobs), 8):
            results[j] = embedder.encode(jobs[j])

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, expected in zip(results, serial, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_int8_embedder_loads_and_stays_close(emb_dir, embedder, texts, quantize_tool, tmp_path):
    quantized = quantize_tool.quantize_model_dir(emb_dir, tmp_path / "int8")
    int8 = Embedder(quantized)
    vectors = int8.encode(texts)
    assert vectors.shape == (len(texts), embedder.dimension)
    expected = reference_embeddings(quantized / "model.onnx", int8.tokenize(texts))
    one_at_a_time = np.concatenate([int8.encode([t]) for t in texts])
    assert np.max(np.abs(one_at_a_time - expected)) <= 1e-5
    cosine = np.sum(vectors * embedder.encode(texts), axis=1)
    batch_diff = float(np.max(np.abs(vectors - one_at_a_time)))
    print(
        f"int8 embedder: min cosine to fp32 {cosine.min():.4f}; "
        f"max |batched - single| {batch_diff:.1e}"
    )
    assert cosine.min() > 0.95
