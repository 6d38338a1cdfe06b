"""Model directories: where a model lives and what ``secondopinion.json`` says.

A model directory is the Hugging Face ONNX export layout plus one small file
of ours::

    model.onnx           the graph (inputs input_ids, attention_mask,
                         optionally token_type_ids)
    tokenizer.json       a ``tokenizers`` tokenizer
    secondopinion.json   {"format": 1, "kind": "cross-encoder" | "embedder",
                          "max_length": 512, ...}

Cross-encoder keys: ``activation`` ("sigmoid" for a [B, 1] head, "softmax"
for [B, 2], "none" for raw logits; default "sigmoid"), ``floor`` (the
calibrated relevance floor, or null), ``name``, ``relevance`` (the learned
relevance score's parameters, an object read by
:func:`secondopinion.relevance.load_relevance`, or absent). Embedder keys: ``pooling``
("mean" or "cls"; default "mean"), ``normalize`` (default true), ``name``.
Both kinds may give ``external_initializers``: an object mapping tensor names
of the graph to ``.npy`` files, by paths relative to the directory. Those
tensors are stored in model.onnx as external data that ONNX Runtime is never
asked to read; the runtime loads the arrays and hands them over when it opens
the session. That is how the shipped cross-encoder and embedder share one
word-embedding table on disk (``models/shared/``, written by
``tools/share_embeddings.py``); such a model.onnx does not open in a plain
``onnxruntime.InferenceSession`` without them.
Unknown keys are ignored so that newer files load in older versions.
``max_length`` (tokens per input, special tokens included) is at most
:data:`MAX_LENGTH_LIMIT`; loading checks that the graph runs inputs that long
and every token id the tokenizer can produce.

Every problem with a directory raises an error that names the file at fault.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._jsonfile import read_json_object

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "secondopinion.json"
CONFIG_FORMAT = 1

CROSS_ENCODER = "cross-encoder"
EMBEDDER = "embedder"
KINDS = (CROSS_ENCODER, EMBEDDER)
ACTIVATIONS = ("sigmoid", "softmax", "none")
POOLINGS = ("mean", "cls")

#: The largest ``max_length`` a config may give. CrossEncoder and Embedder run
#: one sequence of max_length tokens at load (see :meth:`ModelDir.misfit`), so
#: an absurd value must be refused before that; long-context BERT-style models
#: stop at 8192 today.
MAX_LENGTH_LIMIT = 32768

#: Where the models shipped with the package are installed, one folder per kind.
DEFAULT_MODELS_DIR = Path(__file__).resolve().parent / "models"


class ModelFormatError(ValueError):
    """A model directory holds a file that is corrupt or does not fit its kind."""


@dataclass(frozen=True)
class ModelConfig:
    """The contents of ``secondopinion.json``, validated."""

    kind: str
    max_length: int
    name: str
    activation: str = "sigmoid"
    floor: float | None = None
    pooling: str = "mean"
    normalize: bool = True
    #: the learned relevance score's parameters (cross-encoders), as stored
    relevance: dict[str, Any] | None = field(default=None, compare=False)
    #: (tensor name, .npy path relative to the model directory), in file order
    external_initializers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ModelDir:
    """A validated model directory: its files exist and its config parses."""

    path: Path
    config: ModelConfig

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def tokenizer_file(self) -> Path:
        return self.path / TOKENIZER_FILE

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def external_initializers(self) -> list[tuple[str, str]]:
        """(tensor name, path of its .npy file) for the session; ``..`` folded
        lexically, so that messages name the file plainly."""
        return [
            (name, os.path.normpath(self.path / rel))
            for name, rel in self.config.external_initializers
        ]

    def session_error(self, exc: Exception) -> ModelFormatError:
        """The error for a session the runtime could not open. A message about one
        of the external files also says which config named it: the file may lie
        outside the directory."""
        message = str(exc)
        named = [n for n, f in self.external_initializers if message.startswith(f + ":")]
        if named:
            message += f" (tensor {named[0]!r} of {self.config_file}: external_initializers)"
        return ModelFormatError(message)

    def misfit(self, max_length: int, exc: Exception) -> ModelFormatError:
        """The error for a tokenizer or max_length whose input the graph cannot run."""
        return ModelFormatError(
            f"{self.tokenizer_file} with max_length {max_length} ({self.config_file}) "
            f"produces input that {self.model_file} cannot run: {exc}"
        )


def default_model_dir(kind: str) -> Path:
    """The folder the package's default model of ``kind`` is installed in."""
    return DEFAULT_MODELS_DIR / kind


def open_model_dir(model_dir: str | os.PathLike[str] | None, kind: str) -> ModelDir:
    """Resolve ``model_dir`` (``None``: the package default) and validate it for ``kind``.

    Raises:
        TypeError: ``model_dir`` is not a path.
        FileNotFoundError: the directory or one of its three files is missing
            (for the default model: with how to build it).
        ModelFormatError: ``secondopinion.json`` is malformed or of another kind.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if model_dir is None:
        path = default_model_dir(kind)
        if not path.is_dir():
            raise FileNotFoundError(
                f"the default {kind} model is not installed (expected {path}); "
                "build it with `make model`, or pass model_dir= a directory holding "
                f"{MODEL_FILE}, {TOKENIZER_FILE} and {CONFIG_FILE}"
            )
    elif isinstance(model_dir, (str, os.PathLike)):
        path = Path(model_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"model_dir {str(path)!r} is not a directory")
    else:
        raise TypeError(
            f"model_dir must be a path (str or os.PathLike), got {type(model_dir).__name__}"
        )
    for name in (CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name}: missing; a model directory needs {name}")
    directory = ModelDir(path, load_config(path / CONFIG_FILE, kind))
    for name, file in directory.external_initializers:
        try:
            present = Path(file).is_file()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte (found by fuzzing)
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ModelFormatError(
                f"{directory.config_file}: 'external_initializers' path of {name!r} "
                f"is not usable: {why}"
            ) from None
        if not present:
            raise FileNotFoundError(
                f"{file}: missing; {directory.config_file} keeps the tensor {name!r} there "
                "(external_initializers)"
            )
    return directory


def load_config(config_file: Path, kind: str) -> ModelConfig:
    """Read and validate ``secondopinion.json`` for a model of ``kind``."""
    raw = read_json_object(config_file, ModelFormatError)

    def bad(key: str, why: str) -> ModelFormatError:
        return ModelFormatError(f"{config_file}: {key!r} {why} (got {raw.get(key)!r})")

    if raw.get("format") != CONFIG_FORMAT:
        raise bad("format", f"must be {CONFIG_FORMAT}")
    file_kind = raw.get("kind")
    if file_kind not in KINDS:
        raise bad("kind", f"must be one of {KINDS}")
    if file_kind != kind:
        other = "Embedder" if file_kind == EMBEDDER else "CrossEncoder"
        raise ModelFormatError(
            f"{config_file}: this is {_a(file_kind)} model, not {_a(kind)}; load it with {other}"
        )
    max_length = raw.get("max_length")
    if not _is_int(max_length) or not 2 <= max_length <= MAX_LENGTH_LIMIT:
        raise bad("max_length", f"must be an integer in [2, {MAX_LENGTH_LIMIT}]")
    name = raw.get("name", config_file.parent.name)
    if not isinstance(name, str):
        raise bad("name", "must be a string")
    external = _external_initializers(raw.get("external_initializers", {}), bad)

    if kind == CROSS_ENCODER:
        activation = raw.get("activation", "sigmoid")
        if activation not in ACTIVATIONS:
            raise bad("activation", f"must be one of {ACTIVATIONS}")
        floor = raw.get("floor")
        if floor is not None and (
            not isinstance(floor, (int, float))
            or isinstance(floor, bool)
            or not 0.0 <= floor <= 1.0
        ):
            raise bad("floor", "must be null or a number in [0, 1]")
        relevance = raw.get("relevance")
        if relevance is not None and not isinstance(relevance, dict):
            raise bad("relevance", "must be an object (the learned score's parameters)")
        return ModelConfig(
            kind=kind,
            max_length=max_length,
            name=name,
            activation=activation,
            floor=None if floor is None else float(floor),
            relevance=relevance,
            external_initializers=external,
        )

    pooling = raw.get("pooling", "mean")
    if pooling not in POOLINGS:
        raise bad("pooling", f"must be one of {POOLINGS}")
    normalize = raw.get("normalize", True)
    if not isinstance(normalize, bool):
        raise bad("normalize", "must be true or false")
    return ModelConfig(
        kind=kind,
        max_length=max_length,
        name=name,
        pooling=pooling,
        normalize=normalize,
        external_initializers=external,
    )


def _external_initializers(
    value: Any,  # noqa: ANN401 - any JSON value
    bad: Callable[[str, str], ModelFormatError],
) -> tuple[tuple[str, str], ...]:
    """``external_initializers`` as (tensor name, relative .npy path) pairs."""
    what = "must be an object mapping tensor names to relative .npy paths"
    if not isinstance(value, dict):
        raise bad("external_initializers", what)
    out = []
    for tensor, path in value.items():
        if not isinstance(path, str) or not path or os.path.isabs(path) or "\0" in path:
            raise bad("external_initializers", what)
        out.append((tensor, path))
    return tuple(out)


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _is_int(value: Any) -> bool:  # noqa: ANN401 - any JSON value
    return isinstance(value, int) and not isinstance(value, bool)
