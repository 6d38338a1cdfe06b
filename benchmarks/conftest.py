"""Shared set-up for the benchmark suites: collection of bench_*.py, cached artefacts.

Artefacts (exported models, workloads) are built on first use into
``build/bench-cache`` (or ``$SECONDOPINION_BENCH_CACHE``) and reused afterwards.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench_*.py`` here unless pytest already does.

    pytest collects a file named on the command line, or one matching
    ``python_files``, by itself; collecting it here too would run it twice.
    """
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if parent.session.isinitpath(file_path):
        return None
    if any(fnmatch.fnmatch(file_path.name, p) for p in parent.config.getini("python_files")):
        return None
    return pytest.Module.from_parent(parent, path=file_path)


@pytest.fixture(scope="session")
def bench_cache() -> Path:
    path = Path(os.environ.get("SECONDOPINION_BENCH_CACHE", REPO / "build" / "bench-cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class CrossEncoderModels:
    """One set of weights in the forms the contenders load."""

    fp32: Path  # model directory: model.onnx, tokenizer.json, secondopinion.json
    int8: Path  # the same, dynamically quantised
    torch: Path  # Hugging Face checkpoint with the same classification head

    def onnx_dir(self, precision: str) -> Path:
        return {"fp32": self.fp32, "int8": self.int8}[precision]


def _load_export_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_onnx", REPO / "tools" / "export_onnx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_fp32(root: Path, checkpoint: Path | None) -> None:
    """Export the checkpoint (default: all-MiniLM-L6-v2 with a seeded head), then rename."""
    export = _load_export_tool()
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    export.export(
        tmp / "onnx-fp32",
        "cross-encoder",
        checkpoint=checkpoint,
        max_length=512,
        seed=0,
        save_torch=tmp / "torch",
    )
    shutil.rmtree(root, ignore_errors=True)  # a half-built one from an interrupted run
    tmp.replace(root)


def _build_int8(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = int8.with_name(int8.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    quantize_dynamic(fp32 / "model.onnx", tmp / "model.onnx", weight_type=QuantType.QInt8)
    shutil.copyfile(fp32 / "tokenizer.json", tmp / "tokenizer.json")
    meta = json.loads((fp32 / "secondopinion.json").read_text(encoding="utf-8"))
    meta["name"] += "-int8"
    (tmp / "secondopinion.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(int8, ignore_errors=True)
    tmp.replace(int8)


@pytest.fixture(scope="session")
def cross_encoder_models(bench_cache: Path) -> CrossEncoderModels:
    """The benchmark's cross-encoder, built on first use.

    ``$SECONDOPINION_BENCH_CHECKPOINT`` names a Hugging Face cross-encoder
    checkpoint to use instead of all-MiniLM-L6-v2 with an untrained head: with a
    trained head the int8-vs-fp32 score differences mean something.
    """
    pytest.importorskip("torch", reason="bench extra not installed: pip install '.[bench]'")
    pytest.importorskip("transformers", reason="bench extra not installed")
    checkpoint = os.environ.get("SECONDOPINION_BENCH_CHECKPOINT")
    if checkpoint:
        source = Path(checkpoint).resolve()
        if not (source / "config.json").is_file():
            raise pytest.UsageError(f"SECONDOPINION_BENCH_CHECKPOINT={checkpoint}: no config.json")
        tag = zlib.crc32(str(source).encode())
        root = bench_cache / f"cross-encoder-{source.name}-{tag:08x}"
    else:
        source, root = None, bench_cache / "minilm-l6-cross-encoder"
    if not (root / "onnx-fp32" / "model.onnx").is_file():
        _build_fp32(root, source)
    if not (root / "onnx-int8" / "model.onnx").is_file():
        _build_int8(root / "onnx-fp32", root / "onnx-int8")
    return CrossEncoderModels(root / "onnx-fp32", root / "onnx-int8", root / "torch")
