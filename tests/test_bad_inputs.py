"""Every bad input we know of, and what the user gets: README's Reliability table.

``CASES`` is a declarative list: the area, the input in words, the call that
makes it (on a :class:`World` of shipped models, a tiny corpus and scratch
files), and the expected outcome -- an exception type and a message pattern,
or ``None`` and a pattern for the call's own summary of what it returned
(bad inputs that are not errors: an empty query finds nothing, k larger than
the data returns everything). tools/reliability_table.py runs the same cases
and renders what actually happened as README's table; the last test fails
when README's copy differs (fix: ``python tools/reliability_table.py --write``).

Detailed behaviour stays in each module's own tests; this is the catalogue,
one line per input, across the whole API. The shipped models are used so that
the messages are the ones a user sees.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secondopinion import (
    Analyzer,
    BM25Index,
    CrossEncoder,
    Embedder,
    Gate,
    Pipeline,
    fuse_rrf,
    fuse_weighted,
    topk,
    topk_batch,
)
from secondopinion.gate import relevance_model_for
from secondopinion.model_dir import DEFAULT_MODELS_DIR, ModelFormatError

ROOT = Path(__file__).resolve().parent.parent
FUZZ_DATA = Path(__file__).resolve().parent / "data" / "fuzz"
DOCS = [
    {"id": "d1", "title": "Aspirin", "text": "aspirin relieves pain and fever"},
    {"id": "d2", "title": "Fever", "text": "fever is a symptom of infection"},
    {"id": "d3", "title": "Heart", "text": "the heart pumps blood through the body"},
    {"id": "d4", "title": "Colds", "text": "vitamin c does not prevent colds"},
]


class World:
    """What the cases act on; each part is built on first use."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def replacements(self) -> list[tuple[str, str]]:
        """Machine-specific paths in messages, and what the table shows instead."""
        return [(str(self.tmp), "<tmp>"), (str(DEFAULT_MODELS_DIR), "<models>")]

    @cached_property
    def bm25(self) -> BM25Index:
        return BM25Index.build(["pain relief", "fever"], ids=["a", "b"])

    @cached_property
    def cross_encoder(self) -> CrossEncoder:
        return CrossEncoder(threads=1)

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(threads=1)

    @cached_property
    def pipeline(self) -> Pipeline:
        return Pipeline.from_corpus(DOCS, embedder=self.embedder, cross_encoder=self.cross_encoder)

    def file(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path

    def index_file(self, name: str, edit: Callable[[bytearray], bytes]) -> Path:
        """A saved index, edited."""
        path = self.tmp / name
        self.bm25.save(path)
        path.write_bytes(edit(bytearray(path.read_bytes())))
        return path

    def model_dir(self, name: str, kind: str = "cross-encoder", **files: bytes | None) -> Path:
        """A copy of the shipped ``kind`` model (model.onnx linked) with ``files``
        replaced (bytes) or removed (None); keys use _ for the dots in file names."""
        folder = self.tmp / name
        folder.mkdir()
        shared = self.tmp / "shared"  # the shipped models' shared word embeddings, at ../shared
        if not shared.exists():
            shared.symlink_to(DEFAULT_MODELS_DIR / "shared")
        for source in (DEFAULT_MODELS_DIR / kind).iterdir():
            target = folder / source.name
            if source.name == "model.onnx":
                target.symlink_to(source)
            else:
                shutil.copyfile(source, target)
        for key, content in files.items():
            target = folder / key.replace("_", ".")
            target.unlink()
            if content is not None:
                target.write_bytes(content)
        return folder

    def config(self, name: str, **changes: object) -> Path:
        """The shipped cross-encoder with secondopinion.json keys changed."""
        config = json.loads(
            (DEFAULT_MODELS_DIR / "cross-encoder" / "secondopinion.json").read_text()
        )
        config.update(changes)
        return self.model_dir(name, secondopinion_json=json.dumps(config).encode())

    def external(self, file: str, data: bytes | None = None) -> dict[str, str]:
        """The shipped external_initializers with the first tensor read from
        ``<tmp>/file`` (written with ``data`` unless None: then it is missing)."""
        config = json.loads(
            (DEFAULT_MODELS_DIR / "cross-encoder" / "secondopinion.json").read_text()
        )
        tensors = dict(config["external_initializers"])
        tensors[next(iter(tensors))] = f"../{file}"
        if data is not None:
            self.file(file, data)
        return tensors

    def tokenizer(self, name: str, edit: Callable[[dict], object]) -> Path:
        """The shipped cross-encoder with tokenizer.json edited."""
        data = json.loads((DEFAULT_MODELS_DIR / "cross-encoder" / "tokenizer.json").read_text())
        edit(data)
        return self.model_dir(name, tokenizer_json=json.dumps(data).encode())

    def saved_pipeline(self, name: str, file: str, edit: Callable[[Path], object]) -> Path:
        folder = self.tmp / name
        self.pipeline.save(folder)
        edit(folder / file)
        return folder

    def load_pipeline(self, folder: Path) -> Pipeline:
        return Pipeline.load(folder, embedder=self.embedder, cross_encoder=self.cross_encoder)


def repair_checksums(data: bytearray) -> bytes:
    """Both CRC-32s of an index file recomputed (layout: cpp/src/bm25_format.hpp)."""
    header_size = struct.unpack_from("<I", data, 24)[0]
    struct.pack_into("<II", data, 32, zlib.crc32(data[header_size:]), 0)
    struct.pack_into("<I", data, 36, zlib.crc32(data[:header_size]))
    return bytes(data)


def newer_version(data: bytearray) -> bytes:
    struct.pack_into("<I", data, 8, 2)
    return repair_checksums(data)


def flip_middle(data: bytearray) -> bytes:
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


def flip_file(path: Path) -> None:
    path.write_bytes(flip_middle(bytearray(path.read_bytes())))


def array(result: tuple[np.ndarray, np.ndarray]) -> str:
    indices, scores = result
    return f"indices {indices.tolist()}, scores {scores.tolist()}"


def hit_ids(hits: Any) -> str:  # noqa: ANN401 - Hits or FusedHits
    return f"{len(hits)} hits {hits.ids.tolist()}"


def decision(result: Any) -> str:  # noqa: ANN401 - Evidence or Refusal
    return f"{type(result).__name__}: {len(result.chunks)} chunks of {len(result.candidates)}"


def npy_bytes(shape: tuple[int, ...]) -> bytes:
    """A well-formed .npy file of uint8 zeros (the packed table's dtype)."""
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(shape, dtype=np.uint8))
    return buffer.getvalue()


def no_post_processor(tok: dict) -> None:
    tok["post_processor"] = None


def sep_missing_from_special_tokens(tok: dict) -> None:
    del tok["post_processor"]["special_tokens"]["[SEP]"]


def sep_past_vocabulary(tok: dict) -> None:
    tok["post_processor"]["special_tokens"]["[SEP]"]["ids"] = [999_999]


@dataclass(frozen=True)
class Case:
    area: str
    what: str
    call: Callable[[World], object]
    error: type[BaseException] | None  # None: the call returns (its summary is matched)
    match: str


S = np.array([0.1, 0.5, 0.3], dtype=np.float32)
LIST = (np.array([3, 1]), np.array([2.0, 1.0]))
HUGE = "pain " * 2_000_000  # 10 MB

CASES: list[Case] = [
    # ---------------------------------------------------------------- text
    Case(
        "Analyzer",
        "text of the wrong type (None)",
        lambda w: Analyzer().tokenize(None),
        TypeError,
        "text must be str or bytes",
    ),
    Case(
        "Analyzer",
        "ill-formed UTF-8 bytes",
        lambda w: Analyzer().tokenize(b"caf\xff\xfe bytes"),
        None,
        r"\['caf', 'byte'\]",
    ),
    Case(
        "Analyzer",
        "a lone surrogate in the text",
        lambda w: Analyzer().tokenize("pain\ud800relief"),
        None,
        r"\['pain', 'relief'\]",
    ),
    Case(
        "Analyzer",
        'a word that Snowball porter stems to nothing ("s")',
        lambda w: Analyzer(stopwords=None).tokenize("John's"),
        None,
        r"\['john', 's'\]",
    ),
    Case(
        "Analyzer",
        "a lone surrogate in a stop word",
        lambda w: Analyzer(stopwords=["ok", "\ud800"]),
        ValueError,
        r"stopwords\[1\]",
    ),
    Case(
        "Analyzer",
        "unknown stemmer",
        lambda w: Analyzer(stemmer="lancaster"),
        ValueError,
        "stemmer must be",
    ),
    Case(
        "Analyzer",
        "unknown stop list name",
        lambda w: Analyzer(stopwords="french"),
        ValueError,
        "stopwords must be",
    ),
    # ---------------------------------------------------------------- BM25
    Case("BM25", "empty corpus", lambda w: BM25Index.build([]), ValueError, "empty corpus"),
    Case(
        "BM25",
        "duplicate ids",
        lambda w: BM25Index.build(["a", "b"], ids=["x", "x"]),
        ValueError,
        "duplicate document id 'x'",
    ),
    Case(
        "BM25",
        "an id with a lone surrogate",
        lambda w: BM25Index.build(["a", "b"], ids=["x", "\udc00"]),
        ValueError,
        r"ids\[1\]",
    ),
    Case(
        "BM25",
        "a single string as the corpus",
        lambda w: BM25Index.build("pain"),
        TypeError,
        "texts must be a sequence",
    ),
    Case(
        "BM25",
        "a document that is not text",
        lambda w: BM25Index.build(["a", 3]),
        TypeError,
        r"texts\[1\]",
    ),
    Case("BM25", "k1 < 0", lambda w: BM25Index.build(["a"], k1=-1), ValueError, "k1"),
    Case("BM25", "b > 1", lambda w: BM25Index.build(["a"], b=2), ValueError, "b must be"),
    Case("BM25", "empty query", lambda w: hit_ids(w.bm25.search("")), None, "0 hits"),
    Case(
        "BM25",
        "a 10 MB query",
        lambda w: hit_ids(w.bm25.search(HUGE, k=5)),
        None,
        r"1 hits \['a'\]",
    ),
    Case(
        "BM25",
        "k larger than the corpus",
        lambda w: hit_ids(w.bm25.search("pain fever", k=100)),
        None,
        "2 hits",
    ),
    Case("BM25", "k = 0", lambda w: w.bm25.search("pain", k=0), ValueError, "k must be >= 1"),
    Case(
        "BM25",
        "query of the wrong type (bytes)",
        lambda w: w.bm25.search(b"pain"),
        TypeError,
        "query must be str",
    ),
    Case(
        "BM25",
        "k1 = NaN for one search",
        lambda w: w.bm25.search("pain", k1=float("nan")),
        ValueError,
        "k1",
    ),
    Case(
        "BM25",
        "one string instead of a list of queries",
        lambda w: w.bm25.search_batch("pain"),
        TypeError,
        "queries must be a sequence",
    ),
    Case(
        "BM25", "a term with a lone surrogate", lambda w: w.bm25.doc_freq("pain\udfff"), None, "0"
    ),
    Case(
        "BM25 file",
        "missing file",
        lambda w: BM25Index.load(w.tmp / "missing.bm25"),
        FileNotFoundError,
        "cannot open",
    ),
    Case(
        "BM25 file",
        "a directory",
        lambda w: BM25Index.load(w.tmp),
        ValueError,
        "not a regular file",
    ),
    Case(
        "BM25 file",
        "empty file",
        lambda w: BM25Index.load(w.file("empty.bm25", b"")),
        ValueError,
        "is empty",
    ),
    Case(
        "BM25 file",
        "another format (a zip file)",
        lambda w: BM25Index.load(w.file("zip.bm25", b"PK\x03\x04 a zip file")),
        ValueError,
        "unrecognised file signature",
    ),
    Case(
        "BM25 file",
        "truncated",
        lambda w: BM25Index.load(w.index_file("cut.bm25", lambda d: d[:100])),
        ValueError,
        "truncated",
    ),
    Case(
        "BM25 file",
        "one byte flipped",
        lambda w: BM25Index.load(w.index_file("flip.bm25", flip_middle)),
        ValueError,
        "checksum mismatch",
    ),
    Case(
        "BM25 file",
        "written by a newer format version",
        lambda w: BM25Index.load(w.index_file("v2.bm25", newer_version)),
        ValueError,
        "format version 2",
    ),
    Case(
        "BM25 file",
        "stop words that are not UTF-8 (checksums valid; found by fuzzing)",
        lambda w: BM25Index.load(
            w.file("s.bm25", (FUZZ_DATA / "bm25/nonutf8-stopword.bm25").read_bytes())
        ),
        ValueError,
        "must be UTF-8",
    ),
    Case(
        "BM25 file",
        "a duplicate id that is not UTF-8 (checksums valid; found by fuzzing)",
        lambda w: BM25Index.load(
            w.file("d.bm25", (FUZZ_DATA / "bm25/nonutf8-duplicate-id.bm25").read_bytes())
        ),
        ValueError,
        r"duplicate document id '\\x89'",
    ),
    Case(
        "BM25 file",
        "save into a missing folder",
        lambda w: w.bm25.save(w.tmp / "no" / "x.bm25"),
        FileNotFoundError,
        "cannot create",
    ),
    # ---------------------------------------------------------------- top-k
    Case(
        "top-k",
        "k larger than the data",
        lambda w: array(topk(S, 10)),
        None,
        r"indices \[1, 2, 0\]",
    ),
    Case("top-k", "k = 0", lambda w: array(topk(S, 0)), None, r"indices \[\]"),
    Case("top-k", "k < 0", lambda w: topk(S, -1), ValueError, "k must be >= 0"),
    Case(
        "top-k", "k not an integer (2.0)", lambda w: topk(S, 2.0), TypeError, "k must be an integer"
    ),
    Case(
        "top-k",
        "NaN scores",
        lambda w: array(topk(np.array([np.nan, 1, 0.5], np.float32), 3)),
        None,
        r"indices \[1, 2\]",
    ),
    Case(
        "top-k",
        "strings instead of numbers",
        lambda w: topk(np.array(["a", "b"]), 1),
        TypeError,
        "real numbers",
    ),
    Case(
        "top-k",
        "float64 scores",
        lambda w: array(topk(S.astype(np.float64), 1)),
        None,
        r"indices \[1\]",
    ),
    Case(
        "top-k",
        "a non-contiguous view",
        lambda w: array(topk(np.arange(10, dtype=np.float32)[::2], 2)),
        None,
        r"indices \[4, 3\]",
    ),
    Case(
        "top-k",
        "empty scores",
        lambda w: array(topk(np.zeros(0, np.float32), 3)),
        None,
        r"indices \[\]",
    ),
    Case(
        "top-k",
        "a 2-D array to topk",
        lambda w: topk(np.zeros((2, 2), np.float32), 1),
        ValueError,
        "1-D",
    ),
    Case("top-k", "a 1-D array to topk_batch", lambda w: topk_batch(S, 1), ValueError, "2-D"),
    Case(
        "top-k",
        "threads = 0",
        lambda w: topk_batch(S.reshape(1, -1), 1, threads=0),
        ValueError,
        "threads must be",
    ),
    # ---------------------------------------------------------------- fusion
    Case("Fusion", "no lists", lambda w: fuse_rrf([]), ValueError, "hits_list is empty"),
    Case(
        "Fusion",
        "an empty candidate list",
        lambda w: hit_ids(fuse_rrf([(np.array([], np.int64), np.array([], np.float32))])),
        None,
        "0 hits",
    ),
    Case(
        "Fusion",
        "NaN scores (weighted fusion)",
        lambda w: fuse_weighted([(np.array([1, 2]), np.array([np.nan, 1.0]))]),
        ValueError,
        "NaN",
    ),
    Case(
        "Fusion",
        "float indices",
        lambda w: fuse_rrf([(np.array([1.5]), np.array([1.0]))]),
        TypeError,
        "indices must be integers",
    ),
    Case(
        "Fusion",
        "a document twice in one list",
        lambda w: fuse_rrf([(np.array([1, 1]), np.array([1.0, 1.0]))]),
        ValueError,
        "appears twice",
    ),
    Case(
        "Fusion",
        "a negative weight",
        lambda w: fuse_rrf([LIST], weights=[-1]),
        ValueError,
        "weights",
    ),
    Case(
        "Fusion",
        "more weights than lists",
        lambda w: fuse_weighted([LIST], weights=[1, 2]),
        ValueError,
        "weights has 2 entries",
    ),
    Case(
        "Fusion",
        "unknown normalisation",
        lambda w: fuse_weighted([LIST], norm="max"),
        ValueError,
        "norm must be",
    ),
    Case(
        "Fusion",
        "RRF k = 0",
        lambda w: fuse_rrf([LIST], k=0),
        ValueError,
        "k must be finite and > 0",
    ),
    # ---------------------------------------------------------------- models
    Case(
        "Model dir",
        "unknown model directory",
        lambda w: CrossEncoder(w.tmp / "no-such-model"),
        FileNotFoundError,
        "is not a directory",
    ),
    Case(
        "Model dir",
        "model_dir of the wrong type",
        lambda w: CrossEncoder(42),
        TypeError,
        "model_dir",
    ),
    Case(
        "Model dir",
        "model.onnx missing",
        lambda w: CrossEncoder(w.model_dir("m1", model_onnx=None)),
        FileNotFoundError,
        "model.onnx: missing",
    ),
    Case(
        "Model dir",
        "tokenizer.json missing",
        lambda w: CrossEncoder(w.model_dir("m2", tokenizer_json=None)),
        FileNotFoundError,
        "tokenizer.json",
    ),
    Case(
        "Model dir",
        "secondopinion.json missing",
        lambda w: CrossEncoder(w.model_dir("m3", secondopinion_json=None)),
        FileNotFoundError,
        "secondopinion.json",
    ),
    Case(
        "Model dir",
        "corrupt model.onnx",
        lambda w: CrossEncoder(w.model_dir("m4", model_onnx=b"garbage")),
        ModelFormatError,
        "model.onnx: not a loadable ONNX model",
    ),
    Case(
        "Model dir",
        "corrupt tokenizer.json",
        lambda w: CrossEncoder(w.model_dir("m5", tokenizer_json=b"{not json")),
        ModelFormatError,
        "tokenizer.json: not a valid tokenizer.json",
    ),
    Case(
        "Model dir",
        "corrupt secondopinion.json",
        lambda w: CrossEncoder(w.model_dir("m6", secondopinion_json=b"{not json")),
        ModelFormatError,
        "secondopinion.json: not valid JSON",
    ),
    Case(
        "Model dir",
        "secondopinion.json nested 100,000 deep (found by fuzzing)",
        lambda w: CrossEncoder(
            w.model_dir("m7", secondopinion_json=b"[" * 100_000 + b"]" * 100_000)
        ),
        ModelFormatError,
        "secondopinion.json: not valid JSON",
    ),
    Case(
        "Model dir",
        "secondopinion.json with a 5,000-digit number",
        lambda w: CrossEncoder(
            w.model_dir("m8", secondopinion_json=b'{"format": ' + b"9" * 5000 + b"}")
        ),
        ModelFormatError,
        "secondopinion.json: not valid JSON",
    ),
    Case(
        "Model dir",
        "secondopinion.json not an object",
        lambda w: CrossEncoder(w.model_dir("m9", secondopinion_json=b"[]")),
        ModelFormatError,
        "must hold a JSON object",
    ),
    Case(
        "Model dir",
        "an embedder directory given to CrossEncoder",
        lambda w: CrossEncoder(DEFAULT_MODELS_DIR / "embedder"),
        ModelFormatError,
        "load it with Embedder",
    ),
    Case(
        "Model dir",
        "format 2",
        lambda w: CrossEncoder(w.config("c1", format=2)),
        ModelFormatError,
        "'format' must be 1",
    ),
    Case(
        "Model dir",
        "max_length a string",
        lambda w: CrossEncoder(w.config("c2", max_length="512")),
        ModelFormatError,
        "'max_length' must be an integer",
    ),
    Case(
        "Model dir",
        "max_length 10^12",
        lambda w: CrossEncoder(w.config("c3", max_length=10**12)),
        ModelFormatError,
        "'max_length' must be an integer in",
    ),
    Case(
        "Model dir",
        "max_length past the model's positions (found by fuzzing)",
        lambda w: CrossEncoder(w.config("c4", max_length=1024)),
        ModelFormatError,
        "cannot run",
    ),
    Case(
        "Model dir",
        "floor 2",
        lambda w: CrossEncoder(w.config("c5", floor=2)),
        ModelFormatError,
        "'floor' must be null or a number in",
    ),
    Case(
        "Model dir",
        "unknown activation",
        lambda w: CrossEncoder(w.config("c6", activation="relu")),
        ModelFormatError,
        "'activation' must be one of",
    ),
    Case(
        "Model dir",
        "a broken relevance entry (found by fuzzing)",
        lambda w: relevance_model_for(CrossEncoder(w.config("c7", relevance={"version": 1}))),
        ModelFormatError,
        "secondopinion.json: relevance config: missing key",
    ),
    Case(
        "Model dir",
        "a shared weight file missing",
        lambda w: CrossEncoder(w.config("e1", external_initializers=w.external("gone.npy"))),
        FileNotFoundError,
        "gone.npy: missing",
    ),
    Case(
        "Model dir",
        "a shared weight file that is not a .npy array",
        lambda w: CrossEncoder(
            w.config("e2", external_initializers=w.external("bad.npy", b"PK\x03\x04 zip"))
        ),
        ModelFormatError,
        "bad.npy: not a .npy file",
    ),
    Case(
        "Model dir",
        "a shared weight file of the wrong shape",
        lambda w: CrossEncoder(
            w.config("e3", external_initializers=w.external("small.npy", npy_bytes((4, 4))))
        ),
        ModelFormatError,
        "not a loadable ONNX model",
    ),
    Case(
        "Model dir",
        "tokenizer.json without special tokens (found by fuzzing)",
        lambda w: CrossEncoder(w.tokenizer("t1", no_post_processor)),
        ModelFormatError,
        "adds no special tokens",
    ),
    Case(
        "Model dir",
        "tokenizer.json on which tokenizers panics (found by fuzzing)",
        lambda w: CrossEncoder(w.tokenizer("t3", sep_missing_from_special_tokens)),
        ModelFormatError,
        "tokenizers failed on this file",
    ),
    Case(
        "Model dir",
        "tokenizer.json with an id past the model's vocabulary (found by fuzzing)",
        lambda w: CrossEncoder(w.tokenizer("t2", sep_past_vocabulary)),
        ModelFormatError,
        "cannot run",
    ),
    Case("Model dir", "threads = 0", lambda w: CrossEncoder(threads=0), ValueError, "threads"),
    Case(
        "Model dir",
        "max_length above the model's",
        lambda w: CrossEncoder(max_length=100_000),
        ValueError,
        "max_length",
    ),
    Case(
        "Model dir",
        "query_max_tokens leaving no room for the passage",
        lambda w: CrossEncoder(max_length=32, query_max_tokens=29),
        ValueError,
        "query_max_tokens",
    ),
    # ---------------------------------------------------------------- inference
    Case(
        "Reranking",
        "empty candidate list (predict)",
        lambda w: f"{w.cross_encoder.predict([]).shape} scores",
        None,
        r"\(0,\) scores",
    ),
    Case(
        "Reranking",
        "empty candidate list (rank)",
        lambda w: w.cross_encoder.rank("q", []),
        None,
        r"\[\]",
    ),
    Case(
        "Reranking",
        "pairs of the wrong type (None)",
        lambda w: w.cross_encoder.predict(None),
        TypeError,
        "pairs must be a list",
    ),
    Case(
        "Reranking",
        "a pair with one item",
        lambda w: w.cross_encoder.predict([("a",)]),
        TypeError,
        r"pairs\[0\] must have 2 items",
    ),
    Case(
        "Reranking",
        "a passage that is not text",
        lambda w: w.cross_encoder.predict([("a", 3)]),
        TypeError,
        r"pairs\[0\]\[1\]",
    ),
    Case(
        "Reranking",
        "a 10 MB passage",
        lambda w: "truncated={}".format(
            w.cross_encoder.predict([("q", HUGE)], return_truncated=True)[1]
        ),
        None,
        r"truncated=\[ True\]",
    ),
    Case(
        "Reranking",
        "unknown activation",
        lambda w: w.cross_encoder.predict([("a", "b")], activation="relu"),
        ValueError,
        "activation",
    ),
    Case(
        "Reranking",
        "batch_tokens = 0",
        lambda w: w.cross_encoder.predict([("a", "b")], batch_tokens=0),
        ValueError,
        "batch_tokens",
    ),
    Case(
        "Embedding",
        "one string instead of a list",
        lambda w: w.embedder.encode("a text"),
        TypeError,
        "texts must be a list",
    ),
    Case(
        "Embedding",
        "no texts",
        lambda w: f"shape {w.embedder.encode([]).shape}",
        None,
        r"\(0, 384\)",
    ),
    Case(
        "Embedding",
        "an empty text",
        lambda w: f"unit norm: {bool(np.isclose(np.linalg.norm(w.embedder.encode([''])), 1))}",
        None,
        "unit norm: True",
    ),
    # ---------------------------------------------------------------- gate
    Case(
        "Gate",
        "negative floor",
        lambda w: Gate(floor=-0.1),
        ValueError,
        r"floor must be in \[0, 1\]",
    ),
    Case("Gate", "floor > 1", lambda w: Gate(floor=1.5), ValueError, r"floor must be in \[0, 1\]"),
    Case("Gate", "floor NaN", lambda w: Gate(floor=float("nan")), ValueError, "floor"),
    Case(
        "Gate",
        "floor as a string",
        lambda w: Gate(floor="0.5"),
        TypeError,
        "floor must be a number",
    ),
    Case("Gate", "top_n < 0", lambda w: Gate(top_n=-1), ValueError, "top_n"),
    Case("Gate", "top_n not an integer", lambda w: Gate(top_n=2.5), TypeError, "top_n"),
    Case(
        "Gate",
        "a NaN score",
        lambda w: Gate().decide(np.array([0.3, np.nan]), None, 0.5),
        ValueError,
        "candidate 1",
    ),
    Case("Gate", "no candidates", lambda w: Gate().decide(np.array([]), None, 0.5), None, "0\\)$"),
    # ---------------------------------------------------------------- pipeline
    Case(
        "Pipeline",
        "empty corpus",
        lambda w: Pipeline.from_corpus([], embedder=w.embedder, cross_encoder=w.cross_encoder),
        ValueError,
        "empty corpus",
    ),
    Case(
        "Pipeline",
        "duplicate ids",
        lambda w: Pipeline.from_corpus(
            [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}],
            embedder=w.embedder,
            cross_encoder=w.cross_encoder,
        ),
        ValueError,
        "duplicate document id 'a'",
    ),
    Case(
        "Pipeline",
        "a document without an id",
        lambda w: Pipeline.from_corpus(
            [{"text": "x"}], embedder=w.embedder, cross_encoder=w.cross_encoder
        ),
        ValueError,
        "has no 'id'",
    ),
    Case("Pipeline", "empty query", lambda w: w.pipeline.search(""), ValueError, "query is empty"),
    Case("Pipeline", "blank query", lambda w: w.pipeline.search("  \n"), ValueError, "query"),
    Case(
        "Pipeline",
        "query of the wrong type (None)",
        lambda w: w.pipeline.search(None),
        TypeError,
        "query",
    ),
    Case(
        "Pipeline",
        "a 1 MB query (floor 0)",
        lambda w: decision(w.pipeline.search(HUGE[:1_000_000], floor=0.0)),
        None,
        "Evidence: 4 chunks",
    ),
    Case(
        "Pipeline",
        "top_n = 0 (floor 0)",
        lambda w: decision(w.pipeline.search("aspirin", top_n=0, floor=0.0)),
        None,
        "Evidence: 0 chunks of 4",
    ),
    Case(
        "Pipeline",
        "candidates larger than the corpus (floor 0)",
        lambda w: decision(w.pipeline.search("aspirin", candidates=1000, floor=0.0)),
        None,
        "Evidence: 4 chunks of 4",
    ),
    Case(
        "Pipeline",
        "candidates = 0",
        lambda w: w.pipeline.search("aspirin", candidates=0),
        ValueError,
        "candidates",
    ),
    Case(
        "Pipeline",
        "negative floor",
        lambda w: w.pipeline.search("aspirin", floor=-1),
        ValueError,
        "floor",
    ),
    Case(
        "Pipeline",
        "floor > 1",
        lambda w: w.pipeline.search("aspirin", floor=2),
        ValueError,
        "floor",
    ),
    Case(
        "Pipeline",
        "one string instead of a list of queries",
        lambda w: w.pipeline.search_batch("aspirin"),
        TypeError,
        "queries must be a sequence",
    ),
    Case(
        "Pipeline file",
        "missing folder",
        lambda w: w.load_pipeline(w.tmp / "no-pipeline"),
        FileNotFoundError,
        "no saved pipeline",
    ),
    Case(
        "Pipeline file",
        "manifest.json not JSON",
        lambda w: w.load_pipeline(
            w.saved_pipeline("p1", "manifest.json", lambda p: p.write_text("{"))
        ),
        ValueError,
        "manifest.json: corrupt",
    ),
    Case(
        "Pipeline file",
        "manifest.json nested 100,000 deep",
        lambda w: w.load_pipeline(
            w.saved_pipeline("p2", "manifest.json", lambda p: p.write_text("[" * 100_000))
        ),
        ValueError,
        "manifest.json: corrupt",
    ),
    Case(
        "Pipeline file",
        "format 99",
        lambda w: w.load_pipeline(
            w.saved_pipeline("p3", "manifest.json", lambda p: p.write_text('{"format": 99}'))
        ),
        ValueError,
        "pipeline format 99",
    ),
    Case(
        "Pipeline file",
        "docs.jsonl missing",
        lambda w: w.load_pipeline(w.saved_pipeline("p4", "docs.jsonl", Path.unlink)),
        FileNotFoundError,
        "docs.jsonl",
    ),
    Case(
        "Pipeline file",
        "docs.jsonl one byte flipped",
        lambda w: w.load_pipeline(w.saved_pipeline("p5", "docs.jsonl", flip_file)),
        ValueError,
        "docs.jsonl: checksum mismatch",
    ),
    Case(
        "Pipeline file",
        "bm25.idx one byte flipped",
        lambda w: w.load_pipeline(w.saved_pipeline("p6", "bm25.idx", flip_file)),
        ValueError,
        "bm25.idx' is not a valid BM25 index",
    ),
    Case(
        "Pipeline file",
        "dense.hnsw one byte flipped",
        lambda w: w.load_pipeline(w.saved_pipeline("p7", "dense.hnsw", flip_file)),
        ValueError,
        "checksum",
    ),
    Case(
        "Pipeline file",
        "dense.json not JSON",
        lambda w: w.load_pipeline(
            w.saved_pipeline("p8", "dense.json", lambda p: p.write_text("{"))
        ),
        ValueError,
        "dense.json",
    ),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Any]:
    """Every case run once, in order, by the tool that renders README's table."""
    tool = _tool()
    world = World(tmp_path_factory.mktemp("world"))
    return {c.what + c.area: tool.run_case(c.call, world, world.replacements()) for c in CASES}


def _tool() -> Any:  # noqa: ANN401 - a module
    sys.path.insert(0, str(ROOT / "tools"))
    import reliability_table

    return reliability_table


def test_cases_are_distinct():
    keys = [(c.area, c.what) for c in CASES]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.area}: {c.what}" for c in CASES])
def test_bad_input(case, outcomes):
    got = outcomes[case.what + case.area]
    expected = case.error.__name__ if case.error else None
    assert got.error == expected, f"{got.error}: {got.text}"
    assert re.search(case.match, got.text), got.text


def test_readme_table_is_current(outcomes):
    tool = _tool()
    rendered = tool.render([(c.area, c.what, outcomes[c.what + c.area]) for c in CASES])
    readme = tool.readme_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert readme == rendered, (
        "README's Reliability table is stale: run tools/reliability_table.py --write"
    )
