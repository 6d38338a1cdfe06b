"""How the C++ core groups sequences into batches (for inspection and benchmarks).

Sequences are sorted by length, longest first, and the sorted list is cut
into batches that minimise the padded tokens computed plus a fixed cost per
batch (:data:`DEFAULT_BATCH_OVERHEAD_TOKENS`), each batch holding at most
``batch_tokens`` padded tokens (rows x its longest row) and padded only to its
own longest row. :class:`BatchPlan` shows the result, e.g. how much of the
computed work is padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from ._args import check_optional_positive_int

#: Padded tokens per batch when none is given (see cpp/include/secondopinion/batching.hpp).
DEFAULT_BATCH_TOKENS: int = int(_core.DEFAULT_BATCH_TOKENS)
#: The cost of one more batch (one more ONNX Runtime Run), in tokens of compute.
DEFAULT_BATCH_OVERHEAD_TOKENS: int = int(_core.DEFAULT_BATCH_OVERHEAD_TOKENS)


@dataclass(frozen=True)
class BatchPlan:
    """Batches over sequences ``order[first : first + rows]``, each ``width`` tokens wide."""

    order: np.ndarray
    batch_first: np.ndarray
    batch_rows: np.ndarray
    batch_width: np.ndarray
    real_tokens: int
    padded_tokens: int

    @property
    def num_batches(self) -> int:
        return int(self.batch_rows.shape[0])

    @property
    def padding_waste(self) -> float:
        """Fraction of the computed tokens that are padding."""
        return 0.0 if self.padded_tokens == 0 else 1.0 - self.real_tokens / self.padded_tokens


def plan_batches(
    lengths: np.ndarray,
    batch_tokens: int | None = None,
    batch_overhead_tokens: int = DEFAULT_BATCH_OVERHEAD_TOKENS,
) -> BatchPlan:
    """The plan the C++ core follows for sequences of these token lengths."""
    budget = check_optional_positive_int(batch_tokens, "batch_tokens") or DEFAULT_BATCH_TOKENS
    if batch_overhead_tokens < 0:
        raise ValueError(f"batch_overhead_tokens must be >= 0, got {batch_overhead_tokens}")
    raw = _core.plan_batches(np.asarray(lengths, dtype=np.int64), budget, batch_overhead_tokens)
    return BatchPlan(
        order=raw["order"],
        batch_first=raw["batch_first"],
        batch_rows=raw["batch_rows"],
        batch_width=raw["batch_width"],
        real_tokens=int(raw["real_tokens"]),
        padded_tokens=int(raw["padded_tokens"]),
    )
