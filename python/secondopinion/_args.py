"""Argument checks shared by the inference classes: clear errors before any C++ work."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an int >= 1; TypeError/ValueError naming ``name`` otherwise."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_optional_positive_int(value: object, name: str) -> int | None:
    """Like :func:`check_positive_int`, with ``None`` passed through."""
    if value is None:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    return check_positive_int(value, name)


def check_max_length(value: object, model_max: int) -> int:
    """A caller's max_length: at most the model's (its position table ends there)."""
    length = check_optional_positive_int(value, "max_length")
    if length is None:
        return model_max
    if length > model_max:
        raise ValueError(f"max_length={length} exceeds the model's max_length {model_max}")
    return length


def check_texts(texts: object, name: str) -> list[str]:
    """A sequence of str as a list; TypeError naming ``name`` (and the bad index) otherwise."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, (Sequence, np.ndarray)):
        raise TypeError(
            f"{name} must be a list of str, got {type(texts).__name__}"
            + ("; wrap a single text in a list" if isinstance(texts, str) else "")
        )
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be str, got {type(text).__name__}")
    return out
