"""Top-k selection over score arrays, backed by the C++ SIMD kernels.

Result contract (``topk`` and every row of ``topk_batch``): ``min(k, number of
non-NaN values)`` entries, sorted by score descending, ties broken by the lower
index; NaN is never selected; ``+inf`` and ``-inf`` are ordinary values.

Input policy, checked before any C++ work:

* A float32, C-contiguous array is used as it is, without a copy.
* Any other real-valued input (float16/float64, signed or unsigned integers,
  non-contiguous views, nested lists) is converted to a contiguous float32
  copy first. Indices always refer to positions in the input; returned scores
  are the float32 values, so float64 or large integer inputs (above 2**24) may
  round, and values that round to the same float32 tie (lower index first).
* Booleans, complex numbers, strings, objects and other non-real dtypes raise
  ``TypeError``; so does a ``k`` (or ``threads``) that is not an integer.
* Wrong dimensionality (``topk`` wants 1-D, ``topk_batch`` 2-D), a negative
  ``k`` and more than ``2**32 - 1`` scores per array (or per row) raise
  ``ValueError``. A ``k`` above the number of scores is simply clamped.

The kernel (AVX-512, AVX2 or portable) is chosen once per process from the
CPU; ``SECONDOPINION_SIMD=avx512|avx2|portable`` can force a lower one (a level
the CPU lacks is ignored). ``simd_level()`` reports the choice.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from . import _core

__all__ = ["MAX_SCORES", "simd_level", "topk", "topk_batch"]

#: Most scores one array (or one row of a batch) may hold: the C++ core packs
#: an index into 32 bits of each candidate's sort key.
MAX_SCORES = 2**32 - 1

# numpy dtype kinds that are real numbers: float, signed and unsigned integers.
_REAL_KINDS = frozenset("fiu")


def simd_level() -> str:
    """The SIMD kernel in use: ``"avx512"``, ``"avx2"`` or ``"portable"``."""
    return str(_core.simd_level())


def _as_float32(values: Any, name: str, ndim: int) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in _REAL_KINDS:
        raise TypeError(
            f"{name} must hold real numbers (float or integer dtype), got dtype {array.dtype}"
        )
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got an array of shape {array.shape}")
    if array.shape[-1] > MAX_SCORES:
        raise ValueError(
            f"{name} holds {array.shape[-1]} scores per {'row' if ndim == 2 else 'array'}; "
            f"at most {MAX_SCORES} are supported: split it and merge the results"
        )
    # A no-op (no copy) for float32 C-contiguous input.
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be an integer, got a bool")
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if count < 0:
        raise ValueError(f"{name} must be >= 0, got {count}")
    return count


def topk(scores: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest scores of a 1-D array and where they are.

    Returns ``(indices, values)``: int64 and float32 arrays of length
    ``min(k, number of non-NaN scores)``, best first, ties by lower index.
    See the module docstring for which inputs are converted and which raise.
    """
    k = _check_count(k, "k")
    array = _as_float32(scores, "scores", 1)
    indices, values = _core.topk(array, min(k, array.shape[0]))
    return indices, values


def topk_batch(matrix: Any, k: int, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``topk`` of every row of a 2-D array ``[Q, N]``, rows spread over threads.

    Returns ``(indices, values)`` of shape ``[Q, min(k, N)]`` (int64, float32).
    A row with fewer non-NaN values than ``min(k, N)`` is padded at its end with
    index ``-1`` and value NaN. ``threads=None`` uses every CPU this process may
    run on; the GIL is released while the rows are processed.
    """
    k = _check_count(k, "k")
    if threads is None:
        thread_count = 0  # the C++ default: the CPUs this process may run on
    else:
        thread_count = _check_count(threads, "threads")
        if thread_count == 0:
            raise ValueError("threads must be >= 1, or None for one per available CPU")
    array = _as_float32(matrix, "matrix", 2)
    # More threads than rows would only idle (and must fit the C++ unsigned).
    thread_count = min(thread_count, max(array.shape[0], 1))
    indices, values = _core.topk_batch(array, min(k, array.shape[1]), thread_count)
    return indices, values
