"""``Hits``: what every retrieval stage returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hits:
    """A ranked list of documents from one stage, best first.

    Attributes:
        indices: int64 positions of the documents in the index that produced
            them (stable across save/load; fusion joins lists on these).
        scores: float32 scores, sorted descending (ties by lower index).
        ids: the caller's document ids for the same documents, as an object
            array of ``str``.
    """

    indices: np.ndarray
    scores: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __iter__(self):  # noqa: ANN204 - yields (id, score) pairs
        return iter(zip(self.ids.tolist(), self.scores.tolist(), strict=True))

    def __repr__(self) -> str:
        head = ", ".join(f"{i}:{s:.4f}" for i, s in list(self)[:5])
        more = ", ..." if len(self) > 5 else ""
        return f"Hits([{head}{more}], n={len(self)})"
