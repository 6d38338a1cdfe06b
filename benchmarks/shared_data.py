"""Where the BEIR data for the benchmarks lives: ``$SECONDOPINION_DATA``, else
``../shared/data`` beside the repository, else ``/work/shared/data``."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir(*datasets: str) -> Path | None:
    """The first candidate folder holding every named dataset, or None."""
    candidates = []
    if os.environ.get("SECONDOPINION_DATA"):
        candidates.append(Path(os.environ["SECONDOPINION_DATA"]))
    repo = Path(__file__).resolve().parents[1]
    candidates += [repo.parent / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if all((c / d).is_dir() for d in datasets)), None)
