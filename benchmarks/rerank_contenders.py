"""Ways to score (query, passage) pairs with one cross-encoder, as peers do it.

Every contender goes from text pairs to float32 sigmoid scores in input order,
tokenisation included, and can say how it batches (``batch_plan``) so the
benchmark can count the pad tokens it computes on.

- ``flashrank-style``: FlashRank's ``rerank``: the tokenizer pads every pair of
  the query to the longest, one ``InferenceSession.run`` over all of them.
- ``fastembed-style``: fastembed's ``TextCrossEncoder.rerank``: batches of 64 in
  arrival order, each padded to its longest.
- ``sentence-transformers``: ``CrossEncoder.predict`` on torch, batches of 32 in
  arrival order (its default), the same weights.
- ``sorted-16``: the obvious smart loop: sort by length, batches of 16, each
  padded to its own longest, scores put back in input order.
- ``ours``: ``secondopinion.CrossEncoder.predict``.

The ONNX Runtime contenders share one session per (precision, threads):
intra-op threads as asked, one inter-op thread, full graph optimisation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer

Pairs = list[tuple[str, str]]
BatchPlan = list[tuple[int, int]]  # (rows, padded length) per model call


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """In float64 so that large logits never round to exactly 1.0 early."""
    return (1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))).astype(np.float32)


def fixed_batches(lengths: np.ndarray, size: int) -> BatchPlan:
    """Arrival order, ``size`` pairs per batch, each padded to its longest."""
    return [
        (len(lengths[i : i + size]), int(lengths[i : i + size].max()))
        for i in range(0, len(lengths), size)
    ]


def padding_waste(plan: BatchPlan, lengths: np.ndarray) -> float:
    """Pad tokens computed per real token."""
    real = float(np.sum(lengths))
    return (sum(rows * longest for rows, longest in plan) - real) / real


def ort_session(model_path: Path, threads: int) -> ort.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def _tokenizer(tokenizer_json: Path, max_length: int, pad: bool) -> Tokenizer:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    # The shipped tokenizer.json pads and truncates to 128: replace both.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    if pad:
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def _stack(encodings: list) -> dict[str, np.ndarray]:
    """int64 model inputs, padded with zeros to the longest encoding."""
    longest = max(len(e.ids) for e in encodings)
    inputs = {
        name: np.zeros((len(encodings), longest), dtype=np.int64)
        for name in ("input_ids", "attention_mask", "token_type_ids")
    }
    for row, e in enumerate(encodings):
        n = len(e.ids)
        inputs["input_ids"][row, :n] = e.ids
        inputs["attention_mask"][row, :n] = e.attention_mask
        inputs["token_type_ids"][row, :n] = e.type_ids
    return inputs


class Contender(ABC):
    name: str
    # Peers written out in the issue: (a)-(c) are the baselines to beat, (d)
    # the smart loop; ours has none.
    baseline: str | None = None

    @abstractmethod
    def rerank(self, pairs: Pairs) -> np.ndarray:
        """float32 sigmoid scores, in the order of ``pairs``."""

    @abstractmethod
    def batch_plan(self, lengths: np.ndarray) -> BatchPlan | None:
        """How pairs of these real token counts are batched (None: unknown)."""


class FlashRankStyle(Contender):
    name, baseline = "flashrank-style", "a"

    def __init__(
        self, session: ort.InferenceSession, tokenizer_json: Path, max_length: int
    ) -> None:
        self.session = session
        self.tokenizer = _tokenizer(tokenizer_json, max_length, pad=True)

    def rerank(self, pairs: Pairs) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(pairs)
        inputs = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        (logits,) = self.session.run(None, inputs)
        return sigmoid(logits[:, 0])

    def batch_plan(self, lengths: np.ndarray) -> BatchPlan:
        return [(len(lengths), int(lengths.max()))]


class FastembedStyle(Contender):
    name, baseline = "fastembed-style", "b"
    batch_size = 64

    def __init__(
        self, session: ort.InferenceSession, tokenizer_json: Path, max_length: int
    ) -> None:
        self.session = session
        self.tokenizer = _tokenizer(tokenizer_json, max_length, pad=True)

    def rerank(self, pairs: Pairs) -> np.ndarray:
        scores = []
        for start in range(0, len(pairs), self.batch_size):
            encodings = self.tokenizer.encode_batch(pairs[start : start + self.batch_size])
            inputs = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            (logits,) = self.session.run(None, inputs)
            scores.append(logits[:, 0])
        return sigmoid(np.concatenate(scores))

    def batch_plan(self, lengths: np.ndarray) -> BatchPlan:
        return fixed_batches(lengths, self.batch_size)


class SortedBatches(Contender):
    name, baseline = "sorted-16", "d"
    batch_size = 16

    def __init__(
        self, session: ort.InferenceSession, tokenizer_json: Path, max_length: int
    ) -> None:
        self.session = session
        self.tokenizer = _tokenizer(tokenizer_json, max_length, pad=False)

    def rerank(self, pairs: Pairs) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(pairs)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        scores = np.empty(len(pairs), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            (logits,) = self.session.run(None, _stack([encodings[i] for i in rows]))
            scores[rows] = sigmoid(logits[:, 0])
        return scores

    def batch_plan(self, lengths: np.ndarray) -> BatchPlan:
        return fixed_batches(np.sort(lengths, kind="stable"), self.batch_size)


class SentenceTransformersTorch(Contender):
    name, baseline = "sentence-transformers", "c"
    batch_size = 32  # CrossEncoder.predict's default

    def __init__(self, torch_dir: Path, threads: int, max_length: int, int8: bool) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        self.threads = threads
        self.model = CrossEncoder(str(torch_dir), device="cpu", max_length=max_length)
        if int8:
            # What torch offers for CPU int8 inference of Linear layers: dynamic
            # quantisation, weights int8, activations quantised per batch.
            torch.ao.quantization.quantize_dynamic(
                self.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
            )

    def rerank(self, pairs: Pairs) -> np.ndarray:
        import torch

        # Set on every call: torch's thread count is process-wide.
        torch.set_num_threads(self.threads)
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
        return np.asarray(scores, dtype=np.float32)

    def batch_plan(self, lengths: np.ndarray) -> BatchPlan:
        return fixed_batches(lengths, self.batch_size)


class Ours(Contender):
    name = "ours"

    def __init__(self, model_dir: Path, threads: int, max_length: int) -> None:
        from secondopinion import CrossEncoder

        self.model = CrossEncoder(model_dir, threads=threads, max_length=max_length)

    def rerank(self, pairs: Pairs) -> np.ndarray:
        return np.asarray(self.model.predict(pairs), dtype=np.float32)

    def batch_plan(self, lengths: np.ndarray) -> BatchPlan | None:
        # The planner predict() runs (secondopinion.batching.plan_batches, the
        # C++ core's), on these token lengths: the batches it really runs as
        # long as no query is cut at query_max_tokens (64; this workload's are
        # shorter). None when the object does not say its budget.
        from secondopinion.batching import plan_batches

        budget = getattr(self.model, "batch_tokens", None)
        if not isinstance(budget, int) or budget <= 0:
            return None
        plan = plan_batches(lengths, budget)
        return [(int(r), int(w)) for r, w in zip(plan.batch_rows, plan.batch_width, strict=True)]
