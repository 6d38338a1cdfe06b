"""Shared fixtures: tiny model directories, built once per test session."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# The tiny models allow 256 tokens: more than the 128 that their tokenizer.json
# pads and truncates to (as all-MiniLM-L6-v2's does), so a loader that forgets
# to override those settings fails the tests.
TINY_MAX_LENGTH = 256


def _load_tool(name: str):  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location(f"tools_{name}", ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def quantize_tool():
    """tools/quantize.py as a module."""
    return _load_tool("quantize")


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> Callable[..., Path]:
    """Build (once per distinct set of options) a tiny model directory; see write_model_dir."""
    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("models")

    def make(**options: object) -> Path:
        options.setdefault("max_length", TINY_MAX_LENGTH)
        key = tuple(sorted(options.items()))
        if key not in cache:
            from tiny_models import write_model_dir  # needs onnx: only when a model is built

            cache[key] = write_model_dir(root / f"m{len(cache)}", **options)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def ce_dir(model_dirs) -> Path:
    return model_dirs(kind="cross-encoder")


@pytest.fixture(scope="session")
def ce_int8_dir(ce_dir, quantize_tool, tmp_path_factory) -> Path:
    return quantize_tool.quantize_model_dir(ce_dir, tmp_path_factory.mktemp("int8") / "ce")


@pytest.fixture(scope="session")
def emb_dir(model_dirs) -> Path:
    return model_dirs(kind="embedder")


@pytest.fixture(scope="session")
def cross_encoder(ce_dir):
    from secondopinion import CrossEncoder

    return CrossEncoder(ce_dir)


@pytest.fixture(scope="session")
def embedder(emb_dir):
    from secondopinion import Embedder

    return Embedder(emb_dir)


@pytest.fixture(scope="session")
def varied_pairs() -> list[tuple[str, str]]:
    """60 (query, passage) pairs of very different lengths, some past max_length."""
    from tiny_models import random_text

    rng = np.random.default_rng(7)
    queries = [random_text(rng, int(rng.integers(1, 12))) for _ in range(5)]
    pairs = []
    for i in range(60):
        n_words = int(rng.choice([0, 1, 3, 10, 30, 80, 150, 300]))
        pairs.append((queries[i % len(queries)], random_text(rng, n_words)))
    return pairs
