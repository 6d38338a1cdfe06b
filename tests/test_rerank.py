"""CrossEncoder: C++ inference against onnxruntime's Python API, truncation, errors."""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tiny_models import random_text
from tokenizers import Tokenizer

from secondopinion import CrossEncoder, model_dir
from secondopinion.model_dir import ModelFormatError
from secondopinion.rerank import logits_to_probabilities


def reference_logits(model_file: Path, batch, num_logits: int = 1) -> np.ndarray:
    """onnxruntime's Python API, one sequence at a time (no padding at all)."""
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    out = []
    for i in range(len(batch)):
        ids = batch.ids[batch.offsets[i] : batch.offsets[i + 1]][None, :]
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in names:
            feed["token_type_ids"] = batch.type_ids[batch.offsets[i] : batch.offsets[i + 1]][
                None, :
            ]
        (logits,) = session.run(["logits"], feed)
        out.append(logits[0, 0] if num_logits == 1 else logits[0, 1] - logits[0, 0])
    return np.array(out, dtype=np.float32)


def reference_tokens(tokenizer_file: Path, query: str, passage: str, max_length: int, qmax: int):
    """[CLS] query[:qmax] [SEP] passage[:rest] [SEP] from plain token lists."""
    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_padding()
    tok.no_truncation()
    q = tok.encode(query, add_special_tokens=False).ids[:qmax]
    p_all = tok.encode(passage, add_special_tokens=False).ids
    room = max_length - 3 - len(q)
    p = p_all[:room]
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    ids = [cls, *q, sep, *p, sep]
    types = [0] * (len(q) + 2) + [1] * (len(p) + 1)
    return ids, types, len(p_all) > room


# --- agreement with onnxruntime's Python API ----------------------------------------


def test_logits_match_onnxruntime_python(cross_encoder, ce_dir, varied_pairs):
    batch = cross_encoder.tokenize(varied_pairs)
    expected = reference_logits(ce_dir / "model.onnx", batch)
    got = cross_encoder.predict(varied_pairs, activation="none")
    assert got.dtype == np.float32 and got.shape == (len(varied_pairs),)
    assert np.max(np.abs(got - expected)) <= 1e-5
    assert np.ptp(got) > 0.05  # the pairs really score differently


@pytest.mark.parametrize("batch_tokens", [1, 100, 1000, 4096, 1_000_000])
def test_batching_never_changes_a_score(cross_encoder, varied_pairs, batch_tokens):
    one_at_a_time = np.array(
        [cross_encoder.predict([pair], activation="none")[0] for pair in varied_pairs[:20]]
    )
    batched = cross_encoder.predict(varied_pairs[:20], activation="none", batch_tokens=batch_tokens)
    assert np.max(np.abs(batched - one_at_a_time)) <= 1e-5


def test_probabilities_are_sigmoid_of_logits(cross_encoder, varied_pairs):
    logits = cross_encoder.predict(varied_pairs, activation="none")
    probabilities = cross_encoder.predict(varied_pairs)  # the model's config says sigmoid
    expected = np.array([1 / (1 + math.exp(-float(x))) for x in logits], dtype=np.float32)
    np.testing.assert_array_equal(probabilities, expected)


def test_two_logit_head_reads_as_softmax(model_dirs, varied_pairs):
    directory = model_dirs(kind="cross-encoder", num_logits=2)
    ce = CrossEncoder(directory)
    batch = ce.tokenize(varied_pairs)
    session = ort.InferenceSession(
        str(directory / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    softmax_positive = []
    for i in range(len(batch)):
        ids = batch.ids[batch.offsets[i] : batch.offsets[i + 1]][None, :]
        types = batch.type_ids[batch.offsets[i] : batch.offsets[i + 1]][None, :]
        (logits,) = session.run(
            None, {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": types}
        )
        e = np.exp(logits[0].astype(np.float64) - logits[0].max())
        softmax_positive.append(e[1] / e.sum())
    assert np.max(np.abs(ce.predict(varied_pairs) - np.array(softmax_positive))) <= 1e-5


def test_model_without_token_type_ids(model_dirs, varied_pairs):
    directory = model_dirs(kind="cross-encoder", token_type_ids=False)
    ce = CrossEncoder(directory)
    expected = reference_logits(directory / "model.onnx", ce.tokenize(varied_pairs))
    assert np.max(np.abs(ce.predict(varied_pairs, activation="none") - expected)) <= 1e-5


def test_int8_model_loads_runs_and_matches_onnxruntime(ce_int8_dir, cross_encoder, varied_pairs):
    config = json.loads((ce_int8_dir / "secondopinion.json").read_text())
    assert config["quantization"]["weights"] == "int8" and config["floor"] is None
    assert any(
        n.op_type == "MatMulInteger" for n in onnx.load(ce_int8_dir / "model.onnx").graph.node
    )
    ce = CrossEncoder(ce_int8_dir)
    pairs = varied_pairs[:30]
    batch = ce.tokenize(pairs)
    one_at_a_time = ce.predict(pairs, activation="none", batch_tokens=1)
    expected = reference_logits(ce_int8_dir / "model.onnx", batch)
    assert np.max(np.abs(one_at_a_time - expected)) <= 1e-5
    # Dynamic int8 scales activations per batch, so batch company moves a score a little.
    batched = ce.predict(pairs, activation="none")
    batch_diff = float(np.max(np.abs(batched - one_at_a_time)))
    fp32 = cross_encoder.predict(pairs, activation="none")
    quant_diff = float(
        np.mean(np.abs(logits_to_probabilities(batched) - cross_encoder.predict(pairs)))
    )
    print(
        f"int8: max |batched - single| logit {batch_diff:.2e}; "
        f"mean |p_int8 - p_fp32| {quant_diff:.2e}; max |logit diff| "
        f"{np.max(np.abs(batched - fp32)):.2e}"
    )
    assert batch_diff < 0.05
    assert quant_diff < 0.05


# --- tokenisation and truncation ----------------------------------------------------


def test_tokens_match_plain_reference(cross_encoder, ce_dir, varied_pairs):
    long_query = random_text(np.random.default_rng(1), 100)  # beyond query_max_tokens
    pairs = [
        *varied_pairs,
        (long_query, "the cell"),
        (long_query, random_text(np.random.default_rng(2), 400)),
    ]
    batch = cross_encoder.tokenize(pairs)
    for i, (query, passage) in enumerate(pairs):
        ids, types, cut = reference_tokens(
            ce_dir / "tokenizer.json", query, passage, cross_encoder.max_length, 64
        )
        lo, hi = batch.offsets[i], batch.offsets[i + 1]
        assert batch.ids[lo:hi].tolist() == ids
        assert batch.type_ids[lo:hi].tolist() == types
        assert batch.truncated[i] == cut
    assert batch.query_truncated[-1] and batch.query_truncated[-2]
    assert batch.truncated.any() and not batch.truncated.all()


def test_tokens_match_the_tokenizers_own_pair_truncation(cross_encoder, ce_dir, varied_pairs):
    """For queries under the cap, our layout equals tokenizers' only_second truncation."""
    tok = Tokenizer.from_file(str(ce_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(cross_encoder.max_length, strategy="only_second")
    batch = cross_encoder.tokenize(varied_pairs)
    for i, pair in enumerate(varied_pairs):
        enc = tok.encode(*pair)
        assert batch.ids[batch.offsets[i] : batch.offsets[i + 1]].tolist() == enc.ids
        assert batch.type_ids[batch.offsets[i] : batch.offsets[i + 1]].tolist() == enc.type_ids


def test_embedded_padding_and_truncation_of_tokenizer_json_are_ignored(cross_encoder):
    # The tokenizer.json pads and truncates to 128; the model allows 256.
    passage = " ".join(["cell"] * 200)
    batch = cross_encoder.tokenize([("gene", passage), ("a", "b")])
    assert batch.lengths.tolist() == [1 + 1 + 1 + 200 + 1, 5]
    assert not batch.truncated.any()


@pytest.mark.parametrize(("n_tokens", "cut"), [(25, False), (26, False), (27, True)])
def test_truncation_flag_at_the_boundary(model_dirs, n_tokens, cut):
    ce = CrossEncoder(model_dirs(kind="cross-encoder"), max_length=32, query_max_tokens=8)
    # 32 - 3 special tokens - 3 query tokens leaves 26 tokens for the passage.
    pair = ("the protein gene", " ".join(["cell"] * n_tokens))
    _, truncated = ce.predict([pair], return_truncated=True)
    assert truncated.tolist() == [cut]
    assert ce.tokenize([pair]).lengths[0] == min(32, 6 + n_tokens)


def test_query_cap_gives_the_passage_the_rest(model_dirs):
    ce = CrossEncoder(model_dirs(kind="cross-encoder"), max_length=32, query_max_tokens=4)
    query = " ".join(["gene"] * 10)
    batch = ce.tokenize([(query, " ".join(["cell"] * 25)), (query, " ".join(["cell"] * 26))])
    assert batch.query_truncated.tolist() == [True, True]
    # 32 - 3 specials - 4 query tokens = 25 passage tokens.
    assert batch.truncated.tolist() == [False, True]
    assert batch.lengths.tolist() == [32, 32]


def test_ten_megabyte_passage_is_cut_and_reported(cross_encoder, ce_dir):
    words = "the protein cell gene " * 600_000  # ~13 MB
    scores, truncated = cross_encoder.predict([("gene", words)], return_truncated=True)
    assert truncated.tolist() == [True]
    short = " ".join(words.split()[:400])
    ids, _, cut = reference_tokens(ce_dir / "tokenizer.json", "gene", short, 256, 64)
    batch = cross_encoder.tokenize([("gene", words)])
    assert cut and batch.ids.tolist() == ids
    assert scores[0] == cross_encoder.predict([("gene", short)])[0]


def test_ten_megabyte_passage_without_word_boundaries(cross_encoder):
    # One 10 MB "word": no prefix decides where its tokens end, so it is cut
    # at the documented hard character cap, and reported as truncated.
    scores, truncated = cross_encoder.predict([("gene", "x" * 10_000_000)], return_truncated=True)
    assert truncated.tolist() == [True] and 0.0 < scores[0] < 1.0
    # Below the cap such a text is tokenised whole: one [UNK], nothing cut.
    _, truncated = cross_encoder.predict([("gene", "x" * 50_000)], return_truncated=True)
    assert truncated.tolist() == [False]


def test_long_whitespace_run_before_the_words_is_exact(cross_encoder, ce_dir):
    # The first prefix is all spaces (no tokens), the second reaches the words.
    passage = " " * 20_000 + "cell " * 1000
    ids, _, cut = reference_tokens(ce_dir / "tokenizer.json", "gene", passage, 256, 64)
    batch = cross_encoder.tokenize([("gene", passage)])
    assert cut and batch.truncated.tolist() == [True] and batch.ids.tolist() == ids


# --- probabilities ------------------------------------------------------------------


def test_probabilities_never_reach_exactly_zero_or_one():
    logits = np.array([-1000, -120, -20, -1, 0, 1, 16, 17, 20, 100, 1000], dtype=np.float32)
    p = logits_to_probabilities(logits)
    assert p.dtype == np.float32
    assert np.all(p > 0) and np.all(p < 1)
    assert np.all(np.diff(p) >= 0)
    for x, got in zip(logits[2:8], p[2:8], strict=True):  # representable range: exact
        assert got == np.float32(1 / (1 + math.exp(-float(x))))
    assert p[-1] == np.nextafter(np.float32(1), np.float32(0))


def test_large_logits_keep_their_order_in_rank(model_dirs):
    ce = CrossEncoder(model_dirs(kind="cross-encoder", classifier_bias=30.0))
    docs = ["cell", "protein gene", "the", "blood cell"]
    logits = ce.predict([("q", d) for d in docs], activation="none")
    assert logits.min() > 20
    scores = ce.predict([("q", d) for d in docs])
    assert np.all(scores < 1.0)
    ranked = ce.rank("q", docs)
    assert [r["corpus_id"] for r in ranked] == np.argsort(-logits, kind="stable").tolist()


# --- rank ---------------------------------------------------------------------------


def test_rank_sorts_by_score_and_breaks_ties_by_corpus_id(cross_encoder):
    docs = ["cell gene", "protein", "cell gene", "", "the heart", "protein"]
    ranked = cross_encoder.rank("gene", docs, return_documents=True)
    scores = cross_encoder.predict([("gene", d) for d in docs])
    logits = cross_encoder.predict([("gene", d) for d in docs], activation="none")
    assert sorted(r["corpus_id"] for r in ranked) == list(range(len(docs)))
    keys = [(-r["logit"], r["corpus_id"]) for r in ranked]
    assert keys == sorted(keys)
    for r in ranked:
        assert r["score"] == float(scores[r["corpus_id"]])
        assert r["logit"] == float(logits[r["corpus_id"]])
        assert r["text"] == docs[r["corpus_id"]] and r["truncated"] is False
    twins = [r["corpus_id"] for r in ranked if r["text"] == "cell gene"]
    assert twins == [0, 2]
    top = cross_encoder.rank("gene", docs, top_k=2)
    assert [r["corpus_id"] for r in top] == [r["corpus_id"] for r in ranked[:2]]
    assert "text" not in top[0]


def test_rank_of_nothing(cross_encoder):
    assert cross_encoder.rank("gene", []) == []


# --- bad input ----------------------------------------------------------------------


def test_empty_pairs_give_empty_results(cross_encoder):
    scores = cross_encoder.predict([])
    assert scores.dtype == np.float32 and scores.shape == (0,)
    scores, truncated = cross_encoder.predict([], return_truncated=True)
    assert truncated.shape == (0,)


def test_empty_strings_are_valid(cross_encoder):
    scores = cross_encoder.predict([("", ""), ("gene", ""), ("", "gene")])
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (None, "pairs must be"),
        ("gene", "pairs must be"),
        ([("gene", None)], r"pairs\[0\]\[1\]"),
        ([("gene", "cell"), (3, "cell")], r"pairs\[1\]\[0\]"),
        ([("gene",)], r"pairs\[0\] must have 2 items"),
        (["gene cell"], r"pairs\[0\] must be a \(query, passage\) pair"),
        ([("gene", b"cell")], r"pairs\[0\]\[1\]"),
    ],
)
def test_bad_pairs_raise_type_error(cross_encoder, pairs, message):
    with pytest.raises(TypeError, match=message):
        cross_encoder.predict(pairs)


def test_bad_rank_arguments(cross_encoder):
    with pytest.raises(TypeError, match="query"):
        cross_encoder.rank(None, ["cell"])
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        cross_encoder.rank("gene", ["cell", 3])
    with pytest.raises(TypeError, match="documents"):
        cross_encoder.rank("gene", "cell")
    with pytest.raises(ValueError, match="top_k"):
        cross_encoder.rank("gene", ["cell"], top_k=0)


def test_bad_options(ce_dir, cross_encoder):
    with pytest.raises(ValueError, match="activation"):
        cross_encoder.predict([("a", "b")], activation="softmax")
    with pytest.raises(ValueError, match="batch_tokens"):
        cross_encoder.predict([("a", "b")], batch_tokens=0)
    with pytest.raises(ValueError, match="threads"):
        CrossEncoder(ce_dir, threads=0)
    with pytest.raises(TypeError, match="threads"):
        CrossEncoder(ce_dir, threads="2")
    with pytest.raises(ValueError, match="max_length"):
        CrossEncoder(ce_dir, max_length=257)
    with pytest.raises(ValueError, match="query_max_tokens"):
        CrossEncoder(ce_dir, max_length=32, query_max_tokens=29)
    with pytest.raises(TypeError, match="model_dir"):
        CrossEncoder(42)


def test_threads(ce_dir):
    from secondopinion import _core

    # Physical cores among those this process may use: never more than the
    # affinity mask allows (this machine has no SMT siblings, so equal).
    assert 1 <= _core.default_thread_count() <= len(os.sched_getaffinity(0))
    assert CrossEncoder(ce_dir).threads == _core.default_thread_count()
    assert CrossEncoder(ce_dir, threads=1).threads == 1


# --- model directories --------------------------------------------------------------


@pytest.fixture
def broken_dir(ce_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(ce_dir, target)
    return target


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "secondopinion.json"])
def test_missing_file_is_named(broken_dir, name):
    (broken_dir / name).unlink()
    with pytest.raises(FileNotFoundError, match=name):
        CrossEncoder(broken_dir)


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "secondopinion.json"])
def test_corrupt_file_is_named(broken_dir, name):
    (broken_dir / name).write_bytes(b"\x00\x01 definitely not a model {")
    with pytest.raises(ModelFormatError, match=name):
        CrossEncoder(broken_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "embedder"}, "load it with Embedder"),
        ({"format": 2}, "'format'"),
        ({"max_length": "long"}, "'max_length'"),
        ({"activation": "tanh"}, "'activation'"),
        ({"activation": "softmax"}, "does not fit"),
        ({"floor": 1.5}, "'floor'"),
    ],
)
def test_mismatched_config_is_named(broken_dir, change, message):
    config_file = broken_dir / "secondopinion.json"
    config = json.loads(config_file.read_text())
    config.update(change)
    config_file.write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=message) as info:
        CrossEncoder(broken_dir)
    assert "secondopinion.json" in str(info.value)


def test_embedder_graph_is_not_a_cross_encoder(broken_dir, emb_dir):
    shutil.copyfile(emb_dir / "model.onnx", broken_dir / "model.onnx")
    with pytest.raises(ModelFormatError, match=r"model\.onnx.*embedding model"):
        CrossEncoder(broken_dir)


def test_graph_without_attention_mask_is_named(broken_dir):
    model = onnx.load(broken_dir / "model.onnx")
    for node in model.graph.node:
        node.input[:] = ["mask" if i == "attention_mask" else i for i in node.input]
    for graph_input in model.graph.input:
        if graph_input.name == "attention_mask":
            graph_input.name = "mask"
    onnx.save(model, broken_dir / "model.onnx")
    with pytest.raises(ModelFormatError, match=r"model\.onnx.*'mask'"):
        CrossEncoder(broken_dir)


def test_default_model_missing_says_how_to_build_it(monkeypatch, tmp_path):
    monkeypatch.setattr(model_dir, "DEFAULT_MODELS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="make model"):
        CrossEncoder()


def test_default_model_is_used_when_installed(monkeypatch, ce_dir, tmp_path):
    shutil.copytree(ce_dir, tmp_path / "cross-encoder")
    monkeypatch.setattr(model_dir, "DEFAULT_MODELS_DIR", tmp_path)
    assert CrossEncoder().model_dir == tmp_path / "cross-encoder"


# --- concurrency and memory ---------------------------------------------------------


def test_threads_sharing_one_instance_match_serial(cross_encoder, varied_pairs):
    rng = np.random.default_rng(3)
    jobs = [rng.choice(len(varied_pairs), size=int(rng.integers(1, 6))) for _ in range(8 * 6)]
    serial = [cross_encoder.predict([varied_pairs[i] for i in job]) for job in jobs]
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def worker(start: int) -> None:
        try:
            for j in range(start, len(jobs), 8):
                results[j] = cross_encoder.predict([varied_pairs[i] for i in jobs[j]])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got, expected in zip(results, serial, strict=True):
        np.testing.assert_array_equal(got, expected)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(
    "libasan" in os.environ.get("LD_PRELOAD", ""),
    reason="AddressSanitizer's quarantine keeps freed memory resident",
)
def test_memory_stays_flat_over_many_calls(cross_encoder):
    """The ORT arena stops growing once it has seen the largest batch (see session.hpp)."""
    rng = np.random.default_rng(5)
    pairs = [("gene cell", random_text(rng, int(n))) for n in rng.integers(1, 40, size=64)]
    # A different mix of lengths, hence of batch shapes, at every call; tokenised
    # up front so that the loop exercises the C++ core and ONNX Runtime only.
    batches = [
        cross_encoder.tokenize([pairs[i] for i in rng.choice(64, size=1 + k % 8)])
        for k in range(97)
    ]
    session = cross_encoder._session

    def call(k: int) -> None:
        b = batches[k % len(batches)]
        session.logits(b.ids, b.type_ids, b.offsets, 0, 1024)

    for k in range(300):  # warm-up: every shape the arena may want
        call(k)
    before = _rss_bytes()
    for k in range(2000):
        call(k)
    growth = _rss_bytes() - before
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 2,000 calls"


def test_logits_of_a_tokenized_batch_equal_predict(cross_encoder, varied_pairs):
    batch = cross_encoder.tokenize(varied_pairs)
    logits = cross_encoder.logits_of(batch)
    np.testing.assert_array_equal(logits, cross_encoder.predict(varied_pairs, activation="none"))
    np.testing.assert_array_equal(cross_encoder.logits_of(batch, batch_tokens=64), logits)
    assert cross_encoder.logits_of(cross_encoder.tokenize([])).shape == (0,)
    with pytest.raises(TypeError, match="batch must be the TokenizedBatch"):
        cross_encoder.logits_of([("q", "p")])
    with pytest.raises(ValueError, match="batch_tokens"):
        cross_encoder.logits_of(batch, batch_tokens=0)
