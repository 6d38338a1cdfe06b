"""Cross-encoder reranking: score (query, passage) pairs with an ONNX model from C++.

Pairs are tokenised here (``tokenizers``, in Rust), then the C++ core sorts
them by length, cuts them into batches under a padded-token budget, pads each
batch only to its own longest pair, runs ONNX Runtime with the GIL released,
and returns one logit per pair in input order.

Probabilities are ``sigmoid(logit)`` computed in float64 and stored as
float32. float32 cannot hold a probability between 1 - 6e-8 and 1, so every
logit above about 16.6 gives the same score, 0.99999994 (the largest float32
below 1); scores are clipped there and at the smallest positive float32 so a
score is never exactly 0 or 1. Nothing is lost: ``logit`` is returned too, and
:meth:`CrossEncoder.rank` orders by it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np

from . import _core
from ._args import check_max_length, check_optional_positive_int, check_positive_int, check_texts
from ._runtime import ensure_loaded
from .batching import DEFAULT_BATCH_TOKENS, BatchPlan, plan_batches
from .model_dir import CROSS_ENCODER, ModelConfig, ModelFormatError, open_model_dir
from .tokenize import ModelTokenizer, TokenizedBatch

Activation = Literal["sigmoid", "none"]

_SCORE_MAX = np.nextafter(np.float32(1.0), np.float32(0.0))
_SCORE_MIN = np.finfo(np.float32).smallest_subnormal


def logits_to_probabilities(logits: np.ndarray) -> np.ndarray:
    """``sigmoid(logits)`` in float64, as float32 clipped into the open interval (0, 1)."""
    x = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -709: probability 0
        probabilities = 1.0 / (1.0 + np.exp(-x))
    return np.clip(probabilities.astype(np.float32), _SCORE_MIN, _SCORE_MAX)


class CrossEncoder:
    """A cross-encoder reranker over ONNX Runtime.

    Args:
        model_dir: a model directory (``model.onnx``, ``tokenizer.json``,
            ``secondopinion.json`` of kind "cross-encoder"); ``None`` for the
            package's default model.
        threads: ONNX Runtime intra-op threads; ``None`` uses this machine's
            physical cores (affinity and container quota respected).
        max_length: tokens per pair, special tokens included; ``None`` uses the
            model's, and more than the model's is refused.
        query_max_tokens: the query is cut to this many tokens; the passage
            fills the rest of ``max_length``.
        batch_tokens: padded tokens per batch (rows x longest row); ``None``
            uses :data:`secondopinion.batching.DEFAULT_BATCH_TOKENS`.

    One instance may be shared by any number of threads calling at once.

    Raises:
        FileNotFoundError: the directory or one of its files is missing.
        ModelFormatError: a file is corrupt or does not fit a cross-encoder
            (the message names the file).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        max_length: int | None = None,
        query_max_tokens: int = 64,
        batch_tokens: int | None = None,
    ) -> None:
        threads = check_optional_positive_int(threads, "threads")
        qmax = check_positive_int(query_max_tokens, "query_max_tokens")
        self._batch_tokens = (
            check_optional_positive_int(batch_tokens, "batch_tokens") or DEFAULT_BATCH_TOKENS
        )
        directory = open_model_dir(model_dir, CROSS_ENCODER)
        self.config: ModelConfig = directory.config
        self.model_dir = directory.path
        self.max_length = check_max_length(max_length, directory.config.max_length)
        self.tokenizer = ModelTokenizer(directory.tokenizer_file)
        room = self.max_length - self.tokenizer.special_tokens_pair
        if qmax >= room:
            raise ValueError(
                f"query_max_tokens={qmax} leaves no room for the passage: max_length "
                f"{self.max_length} minus {self.tokenizer.special_tokens_pair} special tokens "
                f"is {room}"
            )
        self.query_max_tokens = qmax
        ensure_loaded()
        try:
            self._session = _core.CrossEncoderSession(
                str(directory.model_file),
                threads=threads or 0,
                max_length=self.max_length,
                external_initializers=directory.external_initializers,
            )
        except ValueError as exc:
            raise directory.session_error(exc) from None
        heads = {1: ("sigmoid", "none"), 2: ("softmax", "none")}
        num_logits = self._session.num_logits
        if num_logits in heads and self.config.activation not in heads[num_logits]:
            raise ModelFormatError(
                f"{directory.config_file}: activation {self.config.activation!r} does not fit "
                f"the model's [batch, {num_logits}] logits (use {heads[num_logits][0]!r})"
            )
        # Found by fuzzing: a tokenizer.json or max_length the graph cannot take
        # (ids past its vocabulary, more positions than it has) failed only on
        # some later input, with ONNX Runtime's message. One run at the limits
        # (about one max_length inference) refuses such a directory here.
        probe = self.tokenizer.limits_batch(self.max_length, pair=True)
        type_ids = probe.type_ids if self._session.uses_token_type_ids else None
        try:
            self._session.logits(
                probe.ids, type_ids, probe.offsets, self.tokenizer.pad_id, self.max_length
            )
        except RuntimeError as exc:
            raise directory.misfit(self.max_length, exc) from None

    @property
    def threads(self) -> int:
        """Intra-op threads the session runs with."""
        return int(self._session.threads)

    @property
    def floor(self) -> float | None:
        """The model's calibrated relevance floor, if ``secondopinion.json`` has one."""
        return self.config.floor

    @property
    def batch_tokens(self) -> int:
        return self._batch_tokens

    def tokenize(self, pairs: Sequence[Sequence[str]]) -> TokenizedBatch:
        """The token sequences :meth:`predict` would run for ``pairs``."""
        queries, passages = _check_pairs(pairs)
        return self._tokenize(queries, passages)

    def plan(self, pairs: Sequence[Sequence[str]], batch_tokens: int | None = None) -> BatchPlan:
        """The batches :meth:`predict` would run for ``pairs`` (e.g. to see padding waste)."""
        budget = check_optional_positive_int(batch_tokens, "batch_tokens") or self._batch_tokens
        return plan_batches(self.tokenize(pairs).lengths, budget)

    @overload
    def predict(
        self,
        pairs: Sequence[Sequence[str]],
        activation: Activation | None = None,
        *,
        batch_tokens: int | None = None,
        return_truncated: Literal[False] = False,
    ) -> np.ndarray: ...
    @overload
    def predict(
        self,
        pairs: Sequence[Sequence[str]],
        activation: Activation | None = None,
        *,
        batch_tokens: int | None = None,
        return_truncated: Literal[True],
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def predict(
        self,
        pairs: Sequence[Sequence[str]],
        activation: Activation | None = None,
        *,
        batch_tokens: int | None = None,
        return_truncated: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Score (query, passage) pairs.

        Args:
            pairs: a sequence of (query, passage) pairs of str.
            activation: "sigmoid" for probabilities, "none" for logits;
                ``None`` follows the model ("none" if its config says so,
                probabilities otherwise). For a two-logit head the logit is
                l1 - l0, whose sigmoid is the softmax probability of class 1.
            batch_tokens: overrides the instance's padded-token budget.
            return_truncated: also return a bool array, True where a passage
                was cut to fit ``max_length``.

        Returns:
            float32 [n] scores in input order (and the truncation flags).
        """
        activation = _check_activation(activation, self.config)
        budget = check_optional_positive_int(batch_tokens, "batch_tokens") or self._batch_tokens
        queries, passages = _check_pairs(pairs)
        logits, truncated = self._logits(queries, passages, budget)
        scores = logits_to_probabilities(logits) if activation == "sigmoid" else logits
        return (scores, truncated) if return_truncated else scores

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        *,
        return_documents: bool = False,
        batch_tokens: int | None = None,
    ) -> list[dict[str, Any]]:
        """Score every document against ``query`` and return them best first.

        Returns:
            One dict per document: ``corpus_id`` (its index in ``documents``),
            ``score`` (probability, or the logit for a model whose config says
            activation "none"), ``logit``, ``truncated`` (the document was cut
            to fit), and ``text`` with ``return_documents``. Sorted by logit,
            descending (the same order as score, without float32 ties), ties by
            lower ``corpus_id``; at most ``top_k`` entries.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be str, got {type(query).__name__}")
        docs = check_texts(documents, "documents")
        top_k = check_optional_positive_int(top_k, "top_k")
        budget = check_optional_positive_int(batch_tokens, "batch_tokens") or self._batch_tokens
        logits, truncated = self._logits([query] * len(docs), docs, budget)
        activation = _check_activation(None, self.config)
        scores = logits_to_probabilities(logits) if activation == "sigmoid" else logits
        order = np.lexsort((np.arange(len(docs)), -logits.astype(np.float64)))
        if top_k is not None:
            order = order[:top_k]
        results: list[dict[str, Any]] = []
        for i in order.tolist():
            entry: dict[str, Any] = {
                "corpus_id": i,
                "score": float(scores[i]),
                "logit": float(logits[i]),
                "truncated": bool(truncated[i]),
            }
            if return_documents:
                entry["text"] = docs[i]
            results.append(entry)
        return results

    def logits_of(self, batch: TokenizedBatch, batch_tokens: int | None = None) -> np.ndarray:
        """Run the model on pairs already tokenised by :meth:`tokenize`.

        For callers that time or cache the two steps apart (the pipeline
        does); ``predict`` is ``tokenize`` then this, then the activation.

        Returns:
            float32 [n] logits in the batch's order.
        """
        if not isinstance(batch, TokenizedBatch):
            raise TypeError(
                "batch must be the TokenizedBatch of CrossEncoder.tokenize, "
                f"got {type(batch).__name__}"
            )
        budget = check_optional_positive_int(batch_tokens, "batch_tokens") or self._batch_tokens
        if len(batch) == 0:
            return np.zeros(0, dtype=np.float32)
        type_ids = batch.type_ids if self._session.uses_token_type_ids else None
        pad = self.tokenizer.pad_id
        return self._session.logits(batch.ids, type_ids, batch.offsets, pad, budget)

    def _tokenize(self, queries: list[str], passages: list[str]) -> TokenizedBatch:
        return self.tokenizer.encode_pairs(
            queries, passages, query_max_tokens=self.query_max_tokens, max_length=self.max_length
        )

    def _logits(
        self, queries: list[str], passages: list[str], batch_tokens: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if not passages:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=bool)
        batch = self._tokenize(queries, passages)
        return self.logits_of(batch, batch_tokens), batch.truncated

    def __repr__(self) -> str:
        return (
            f"CrossEncoder({str(self.model_dir)!r}, threads={self.threads}, "
            f"max_length={self.max_length}, query_max_tokens={self.query_max_tokens}, "
            f"batch_tokens={self._batch_tokens})"
        )


def _check_activation(activation: object, config: ModelConfig) -> str:
    if activation is None:
        return "none" if config.activation == "none" else "sigmoid"
    if activation not in ("sigmoid", "none"):
        raise ValueError(f"activation must be 'sigmoid', 'none' or None, got {activation!r}")
    return str(activation)


def _check_pairs(pairs: object) -> tuple[list[str], list[str]]:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, (Sequence, np.ndarray)):
        raise TypeError(
            f"pairs must be a list of (query, passage) pairs, got {type(pairs).__name__}"
        )
    queries: list[str] = []
    passages: list[str] = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, (Sequence, np.ndarray)):
            raise TypeError(
                f"pairs[{i}] must be a (query, passage) pair, got {type(pair).__name__}"
            )
        if len(pair) != 2:
            raise TypeError(f"pairs[{i}] must have 2 items (query, passage), got {len(pair)}")
        query, passage = pair[0], pair[1]
        if not isinstance(query, str):
            raise TypeError(f"pairs[{i}][0] (the query) must be str, got {type(query).__name__}")
        if not isinstance(passage, str):
            raise TypeError(
                f"pairs[{i}][1] (the passage) must be str, got {type(passage).__name__}"
            )
        queries.append(query)
        passages.append(passage)
    return queries, passages
