"""How the C++ core runs a call's sequences (for inspection and benchmarks).

Every sequence is its own ONNX Runtime Run, unpadded: a dynamically quantised
model computes its activation scales per Run, so a sequence that shared a Run
with others got a score that depended on them (by up to 0.85 logit). Alone, a
pair's logit and a text's embedding are functions of their own tokens, whatever
else the call holds, in whatever order, with whatever ``batch_tokens`` or
``threads``.

Runs are single-threaded inside ONNX Runtime; a call runs ``threads`` of them
side by side, longest sequence first, each worker taking the next one when it is
free. ``batch_tokens`` bounds the tokens in flight at once (summed over the Runs
side by side), which bounds a call's activation memory: ``parallel`` is
``min(threads, sequences, batch_tokens // longest)``, at least 1.
:class:`RunPlan` shows the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from ._args import check_optional_positive_int

#: Tokens in flight at once when none is given (see cpp/include/secondopinion/batching.hpp).
DEFAULT_BATCH_TOKENS: int = int(_core.DEFAULT_BATCH_TOKENS)


@dataclass(frozen=True)
class RunPlan:
    """Sequences ``order`` (longest first), one per Run, ``parallel`` Runs at a time."""

    order: np.ndarray
    parallel: int
    real_tokens: int
    #: The most tokens in flight at once: the ``parallel`` longest lengths summed.
    peak_tokens: int

    @property
    def num_runs(self) -> int:
        return int(self.order.shape[0])


def plan_runs(
    lengths: np.ndarray,
    batch_tokens: int | None = None,
    threads: int | None = None,
) -> RunPlan:
    """The plan the C++ core follows for sequences of these token lengths.

    Args:
        lengths: token count of each sequence (each >= 1).
        batch_tokens: tokens in flight at once; ``None`` uses
            :data:`DEFAULT_BATCH_TOKENS`. A sequence longer than the budget
            still runs, alone.
        threads: Runs side by side at most; ``None`` uses this machine's
            physical cores, as :class:`~secondopinion.CrossEncoder` does.
    """
    budget = check_optional_positive_int(batch_tokens, "batch_tokens") or DEFAULT_BATCH_TOKENS
    workers = check_optional_positive_int(threads, "threads") or int(_core.default_thread_count())
    raw = _core.plan_runs(np.asarray(lengths, dtype=np.int64), budget, workers)
    return RunPlan(
        order=raw["order"],
        parallel=int(raw["parallel"]),
        real_tokens=int(raw["real_tokens"]),
        peak_tokens=int(raw["peak_tokens"]),
    )
