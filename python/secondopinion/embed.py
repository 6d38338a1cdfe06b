"""Bi-encoder embeddings: texts to unit vectors with an ONNX model from C++.

For sentence-transformers models such as all-MiniLM-L6-v2: the model runs in
ONNX Runtime from C++ (batched by length, GIL released) and outputs token
states; pooling (mean over the attention mask, or [CLS]) and L2 normalisation
follow in C++, as ``secondopinion.json`` says.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, overload

import numpy as np

from . import _core
from ._args import check_max_length, check_optional_positive_int, check_texts
from ._runtime import ensure_loaded
from .batching import DEFAULT_BATCH_TOKENS, BatchPlan, plan_batches
from .model_dir import EMBEDDER, ModelConfig, open_model_dir
from .tokenize import ModelTokenizer, TokenizedBatch


class Embedder:
    """A text embedder over ONNX Runtime.

    Args:
        model_dir: a model directory (``model.onnx``, ``tokenizer.json``,
            ``secondopinion.json`` of kind "embedder"); ``None`` for the
            package's default model.
        threads: ONNX Runtime intra-op threads; ``None`` uses this machine's
            physical cores.
        max_length: tokens per text, special tokens included; ``None`` uses the
            model's. Longer texts are cut (see ``return_truncated``).
        batch_tokens: padded tokens per batch; ``None`` uses
            :data:`secondopinion.batching.DEFAULT_BATCH_TOKENS`.

    One instance may be shared by any number of threads calling at once.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        max_length: int | None = None,
        batch_tokens: int | None = None,
    ) -> None:
        threads = check_optional_positive_int(threads, "threads")
        self._batch_tokens = (
            check_optional_positive_int(batch_tokens, "batch_tokens") or DEFAULT_BATCH_TOKENS
        )
        directory = open_model_dir(model_dir, EMBEDDER)
        self.config: ModelConfig = directory.config
        self.model_dir = directory.path
        self.max_length = check_max_length(max_length, directory.config.max_length)
        self.tokenizer = ModelTokenizer(directory.tokenizer_file)
        if self.max_length <= self.tokenizer.special_tokens_single:
            raise ValueError(
                f"max_length={self.max_length} leaves no room for text after "
                f"{self.tokenizer.special_tokens_single} special tokens"
            )
        ensure_loaded()
        try:
            self._session = _core.EmbedderSession(
                str(directory.model_file),
                threads=threads or 0,
                max_length=self.max_length,
                pooling=self.config.pooling,
                normalize=self.config.normalize,
                external_initializers=directory.external_initializers,
            )
        except ValueError as exc:
            raise directory.session_error(exc) from None
        # As in CrossEncoder: refuse a tokenizer or max_length the graph cannot run.
        probe = self.tokenizer.limits_batch(self.max_length, pair=False)
        type_ids = probe.type_ids if self._session.uses_token_type_ids else None
        try:
            self._session.encode(
                probe.ids, type_ids, probe.offsets, self.tokenizer.pad_id, self.max_length
            )
        except RuntimeError as exc:
            raise directory.misfit(self.max_length, exc) from None

    @property
    def dimension(self) -> int:
        """Length of each embedding."""
        return int(self._session.dimension)

    @property
    def threads(self) -> int:
        return int(self._session.threads)

    @property
    def batch_tokens(self) -> int:
        return self._batch_tokens

    def tokenize(self, texts: Sequence[str]) -> TokenizedBatch:
        """The token sequences :meth:`encode` would run for ``texts``."""
        return self.tokenizer.encode_texts(check_texts(texts, "texts"), max_length=self.max_length)

    def plan(self, texts: Sequence[str], batch_tokens: int | None = None) -> BatchPlan:
        """The batches :meth:`encode` would run for ``texts``."""
        budget = check_optional_positive_int(batch_tokens, "batch_tokens") or self._batch_tokens
        return plan_batches(self.tokenize(texts).lengths, budget)

    @overload
    def encode(
        self,
        texts: Sequence[str],
        batch_tokens: int | None = None,
        *,
        return_truncated: Literal[False] = False,
    ) -> np.ndarray: ...
    @overload
    def encode(
        self,
        texts: Sequence[str],
        batch_tokens: int | None = None,
        *,
        return_truncated: Literal[True],
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def encode(
        self,
        texts: Sequence[str],
        batch_tokens: int | None = None,
        *,
        return_truncated: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Embed ``texts``.

        Returns:
            float32 [n, dimension], row i for texts[i] (unit L2 norm when the
            model's config says normalize); with ``return_truncated`` also a
            bool [n] array, True where a text was cut to ``max_length``.
        """
        budget = check_optional_positive_int(batch_tokens, "batch_tokens") or self._batch_tokens
        items = check_texts(texts, "texts")
        if not items:
            empty = np.zeros((0, self.dimension), dtype=np.float32)
            return (empty, np.zeros(0, dtype=bool)) if return_truncated else empty
        batch = self.tokenizer.encode_texts(items, max_length=self.max_length)
        type_ids = batch.type_ids if self._session.uses_token_type_ids else None
        vectors = self._session.encode(
            batch.ids, type_ids, batch.offsets, self.tokenizer.pad_id, budget
        )
        return (vectors, batch.truncated) if return_truncated else vectors

    def __repr__(self) -> str:
        return (
            f"Embedder({str(self.model_dir)!r}, threads={self.threads}, "
            f"max_length={self.max_length}, batch_tokens={self._batch_tokens}, "
            f"dimension={self.dimension})"
        )
