"""The arithmetic behind the rerank benchmark's numbers: batch plans and padding
waste, the peers' score order, document chunking, the FLOP count and the report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


contenders = _load("rerank_contenders")
workloads = _load("rerank_workloads")
flops = _load("encoder_flops")
report = _load("report_rerank")


def test_fixed_batches_pad_each_batch_to_its_longest():
    lengths = np.array([3, 9, 4, 4, 7])
    assert contenders.fixed_batches(lengths, 2) == [(2, 9), (2, 4), (1, 7)]
    # pad tokens: (18-12) + (8-8) + (7-7) = 6 over 27 real tokens
    plan = contenders.fixed_batches(lengths, 2)
    assert contenders.padding_waste(plan, lengths) == pytest.approx(6 / 27)


def test_ours_reports_the_plan_its_planner_makes():
    """Ours' padding waste comes from secondopinion's planner on the same lengths."""
    from secondopinion.batching import plan_batches

    class Model:
        batch_tokens = 1024

    ours = contenders.Ours.__new__(contenders.Ours)
    ours.model = Model()
    lengths = np.random.default_rng(0).integers(5, 300, 500)
    plan = ours.batch_plan(lengths)
    real = plan_batches(lengths, 1024)
    assert plan == list(zip(real.batch_rows.tolist(), real.batch_width.tolist(), strict=True))
    assert sum(rows for rows, _ in plan) == len(lengths)
    pad_per_real = (real.padded_tokens - real.real_tokens) / real.real_tokens
    assert contenders.padding_waste(plan, lengths) == pytest.approx(pad_per_real)


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = "the a of vitamin risk trial memory found reduce cells".split()
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


class PaddingBlindSession:
    """Stands in for a model: a row's logit depends on its real tokens only."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def run(self, _outputs, inputs):
        ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
        self.shapes.append(ids.shape)
        weights = np.arange(1, ids.shape[1] + 1) % 7 + 1
        logits = ((ids * weights + 3 * types) * mask).sum(axis=1) / 50.0 - 2.0
        return [logits[:, None].astype(np.float32)]


def _one_at_a_time(tokenizer_json: Path, pairs, max_length: int) -> np.ndarray:
    session = PaddingBlindSession()
    single = contenders.SortedBatches(session, tokenizer_json, max_length)
    return np.concatenate([single.rerank([pair]) for pair in pairs])


@pytest.mark.parametrize(
    "kind", [contenders.FlashRankStyle, contenders.FastembedStyle, contenders.SortedBatches]
)
def test_peers_return_scores_in_input_order(kind, tiny_tokenizer):
    rng = np.random.default_rng(1)
    words = "the a of vitamin risk trial memory found reduce cells".split()
    pairs = [
        (" ".join(rng.choice(words, 3)), " ".join(rng.choice(words, int(n))))
        for n in rng.integers(1, 40, 150)
    ]
    session = PaddingBlindSession()
    scores = kind(session, tiny_tokenizer, 32).rerank(pairs)
    expected = _one_at_a_time(tiny_tokenizer, pairs, 32)
    assert scores.dtype == np.float32 and scores.shape == (150,)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    # the batches actually run are the ones batch_plan reports
    lengths = np.array([min(len(q.split()) + len(p.split()) + 3, 32) for q, p in pairs])
    assert [tuple(s) for s in session.shapes] == kind.batch_plan(kind, lengths)


def test_sigmoid_does_not_saturate_early():
    p = contenders.sigmoid(np.array([-20.0, 0.0, 15.0]))
    assert p.dtype == np.float32
    assert p[1] == 0.5 and 0 < p[0] < 1e-8 and p[2] < 1.0


def test_chunks_cover_the_document_in_1_to_8_sentences():
    text = " ".join(f"Sentence number {i} says something." for i in range(40))
    chunks = workloads.chunk_document("123", text)
    sentences = workloads.split_sentences(text)
    assert len(sentences) == 40
    assert " ".join(chunks) == " ".join(sentences)
    sizes = [len(workloads.split_sentences(c)) for c in chunks]
    assert all(1 <= s <= workloads.MAX_SENTENCES for s in sizes) and sum(sizes) == 40
    assert workloads.chunk_document("123", text) == chunks  # seeded per document
    assert any(workloads.chunk_document(str(d), text) != chunks for d in range(124, 130))


def test_flop_formula_matches_a_count_of_the_matmuls():
    shape = flops.EncoderShape(layers=6, hidden=384, intermediate=1536)
    heads, t = 12, 256
    d = 384 // heads
    per_layer = (
        4 * (2 * t * 384 * 384)  # Q, K, V, output projections
        + 2 * t * 384 * 1536
        + 2 * t * 1536 * 384  # feed-forward up and down
        + heads * 2 * t * d * t  # Q·Kᵀ per head
        + heads * 2 * t * t * d  # attention × V per head
    )
    expected = 6 * per_layer + 2 * 384 * 384 + 2 * 384  # pooler, classifier
    assert flops.useful_flops(np.array([t]), shape) == pytest.approx(expected, rel=1e-12)
    assert flops.useful_flops(np.array([t, t]), shape) == pytest.approx(2 * expected)


def _rerank_info(contender, baseline, pairs_per_s, precision="fp32", **extra):
    info = dict(
        kind="rerank", contender=contender, baseline=baseline, workload="rag-chunks",
        precision=precision, threads=2, queries=2, repeats=1, pairs_per_query=100.0,
        pairs_per_s=pairs_per_s, median_ms_per_query=100_000 / pairs_per_s,
        padding_waste=0.5, useful_gflops=pairs_per_s, **extra,
    )  # fmt: skip
    return {"name": contender, "extra_info": info}


def test_report_ratios_against_peers_and_peak(tmp_path):
    data = {
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}},
        "benchmarks": [
            {"name": "gemm", "extra_info": {"kind": "gemm", "threads": 2, "gflops_median": 80.0,
                                            "gflops_best": 90.0, "blas": []}},
            _rerank_info("ours", None, 40.0),
            _rerank_info("flashrank-style", "a", 10.0),
            _rerank_info("sentence-transformers", "c", 20.0),
            _rerank_info("sorted-16", "d", 25.0),
            _rerank_info("ours", None, 100.0, precision="int8", mean_abs_diff=0.01,
                         max_abs_diff=0.05),
        ],
    }  # fmt: skip
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    table = report.render(*report.load(path))
    rows = {line.split(" | ")[3]: line for line in table.splitlines() if "| fp32 |" in line}
    ours = rows["ours"].split(" | ")
    assert ours[5:8] == ["40.0", "2.00×", "1.60×"]  # vs best peer 20, vs (d) 25
    assert ours[11] == "50%"  # 40 GFLOP/s of an 80 GFLOP/s peak
    int8 = [line for line in table.splitlines() if "| int8 |" in line][0].split(" | ")
    assert int8[8] == "2.50×" and int8[12].startswith("mean 1.0e-02")
