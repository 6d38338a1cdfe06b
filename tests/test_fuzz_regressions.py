"""Inputs the fuzzers (fuzz/) found, kept so the fixes stay fixed.

Each test names the target that found the input and what went wrong before
the fix. Index files under tests/data/fuzz/bm25/ are the fuzzers' inputs
after the checksum repair that fuzz/bm25_load_py_fuzzer.py applies, i.e.
exactly the bytes the loader saw.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from secondopinion import BM25Index, CrossEncoder
from secondopinion.bm25 import Analyzer
from secondopinion.gate import relevance_model_for
from secondopinion.model_dir import DEFAULT_MODELS_DIR, ModelFormatError

DATA = Path(__file__).resolve().parent / "data" / "fuzz"


def _repair_checksums(data: bytearray) -> bytearray:
    """Recompute both CRC-32s of an index file (layout: cpp/src/bm25_format.hpp)."""
    header_size = struct.unpack_from("<I", data, 24)[0]
    struct.pack_into("<II", data, 32, zlib.crc32(data[header_size:]), 0)
    struct.pack_into("<I", data, 36, zlib.crc32(data[:header_size]))
    return data


def _section(data: bytes, section_id: int) -> tuple[int, int]:
    """(offset, element count) of a section of an index file."""
    count = struct.unpack_from("<I", data, 28)[0]
    for i in range(count):
        sid, _, offset, n = struct.unpack_from("<IIQQ", data, 64 + 32 * i)
        if sid == section_id:
            return offset, n
    raise AssertionError(f"no section {section_id}")


# -- analyzer_fuzzer.cpp ------------------------------------------------------


def test_porter_never_stems_a_word_to_nothing():
    # Snowball's "porter" stems "s" to "", so "John's" gave the empty term "".
    assert Analyzer(stopwords=None).tokenize("John's s") == ["john", "s", "s"]
    # PyStemmer (the reference elsewhere) does return "": the analyzer departs on purpose.
    stemmer = pytest.importorskip("Stemmer").Stemmer("porter")
    assert stemmer.stemWord("s") == ""


def test_analyzer_fuzzer_input_has_no_empty_term():
    # The input analyzer_fuzzer.cpp reported ("an empty term"): configuration
    # byte 0x03 (lower-case, porter, default stop words), then the text.
    text = bytes.fromhex(
        "cea3ce9fcea6ce8ace91206eaf766520636166c3a92073740b0000007261"
        "c39f6520ce9fcea6ce8ace91206eaf766520636166c3a920737d7261c39f"
        "6520c4b07374616e62756cc4b07374616e62756c"
    )
    terms = Analyzer().tokenize(text)
    assert "s" in terms  # from "s}": the word that stemmed to ""
    assert all(terms)
    index = BM25Index.build([text.decode("utf-8", "replace"), "s"], threads=1)
    assert index.doc_freq("") == 0
    assert index.doc_freq("s") == 2


# -- bm25_load_py_fuzzer.py ---------------------------------------------------


@pytest.mark.parametrize("mmap", [True, False])
def test_non_utf8_stop_word_is_a_value_error_naming_the_file(mmap):
    # Was UnicodeDecodeError (naming nothing) on reading index.analyzer.stopwords.
    path = DATA / "bm25" / "nonutf8-stopword.bm25"
    with pytest.raises(ValueError, match="not a valid BM25 index.*UTF-8") as info:
        BM25Index.load(path, mmap=mmap)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, UnicodeError)


@pytest.mark.parametrize("mmap", [True, False])
def test_non_utf8_bytes_in_a_load_error_are_escaped(mmap):
    # The loader's message quotes the duplicate id, byte 0x89: turning that
    # message into a Python str raised UnicodeDecodeError instead of ValueError.
    path = DATA / "bm25" / "nonutf8-duplicate-id.bm25"
    with pytest.raises(ValueError, match=r"duplicate document id '\\x89'") as info:
        BM25Index.load(path, mmap=mmap)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, UnicodeError)


def test_non_utf8_document_id_is_a_value_error(tmp_path):
    # The same as the stop-word case, made by hand: a valid index whose first
    # id byte becomes 0xFF, with the checksums repaired.
    path = tmp_path / "ix.bm25"
    BM25Index.build(["a cat", "a dog"], ids=["x", "y"]).save(path)
    data = bytearray(path.read_bytes())
    offset, _ = _section(data, 9)  # id_bytes
    data[offset] = 0xFF
    path.write_bytes(_repair_checksums(data))
    with pytest.raises(ValueError, match="document ids and stop words must be UTF-8"):
        BM25Index.load(path)


# -- found while fixing the above (the same conversions, by review) -----------


def test_path_that_is_not_utf8(tmp_path):
    # A file name with byte 0xE9 reaches Python surrogate-escaped; it must
    # save, load, and appear escaped (not as UnicodeDecodeError) in errors.
    path = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.bm25")
    BM25Index.build(["a cat", "a dog"]).save(path)
    assert BM25Index.load(path).search("cat").ids.tolist() == ["0"]
    missing = os.fsdecode(os.fsencode(tmp_path) + b"/missing\xe9.bm25")
    with pytest.raises(FileNotFoundError, match=r"missing\\xe9"):
        BM25Index.load(missing)
    shutil.copy(DATA / "bm25" / "nonutf8-duplicate-id.bm25", os.fsencode(tmp_path) + b"/b\xe9")
    with pytest.raises(ValueError, match=r"b\\xe9' is not a valid BM25 index"):
        BM25Index.load(os.fsdecode(os.fsencode(tmp_path) + b"/b\xe9"))


def test_posting_in_a_document_of_length_zero_is_refused(tmp_path):
    # Found while checking what bm25_load_fixed_fuzzer.cpp reaches (it checks
    # scores for NaN but had not built this in 15 minutes): a checksum-valid
    # file whose documents are shorter than their own postings, with an
    # average length below 1 and a huge k1, loaded and scored NaN (0 * inf).
    path = tmp_path / "nan.bm25"
    BM25Index.build(["apple", "berry berry", "cherry", "", ""], stopwords=None).save(path)
    data = bytearray(path.read_bytes())
    meta, _ = _section(data, 1)
    doc_len, _ = _section(data, 2)
    struct.pack_into("<5I", data, doc_len, 0, 4, 0, 0, 0)  # same total, apple's doc now empty
    struct.pack_into("<f", data, meta + 32, 3e38)  # k1
    path.write_bytes(_repair_checksums(data))
    with pytest.raises(ValueError, match="term frequency exceeds its document's length"):
        BM25Index.load(path)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: Analyzer(stopwords=["ok", "\ud800"]), r"stopwords\[1\] holds a lone surrogate"),
        (lambda: BM25Index.build(["a", "b"], ids=["x", "\udc00"]), r"ids\[1\] holds a lone"),
    ],
)
def test_lone_surrogates_in_stored_strings(call, match):
    # Were pybind11's generic "incompatible function arguments" TypeError.
    with pytest.raises(ValueError, match=match):
        call()


def test_lone_surrogate_term_has_no_documents():
    # Was the same generic TypeError; a surrogate is never part of a term.
    assert BM25Index.build(["a cat"]).doc_freq("cat\udfff") == 0


# -- model_dir_fuzzer.py ------------------------------------------------------
# Each builds the corrupted directory the fuzzer made, from the shipped
# cross-encoder (model.onnx linked, not copied).


def _model_dir(tmp_path: Path, **files: bytes) -> Path:
    source = DEFAULT_MODELS_DIR / "cross-encoder"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(source / "model.onnx")
    (tmp_path / "shared").symlink_to(DEFAULT_MODELS_DIR / "shared")  # ../shared tensors
    for name in ("tokenizer.json", "secondopinion.json"):
        key = name.replace(".", "_")
        (folder / name).write_bytes(files[key] if key in files else (source / name).read_bytes())
    return folder


def _config(**changes: object) -> bytes:
    config = json.loads((DEFAULT_MODELS_DIR / "cross-encoder" / "secondopinion.json").read_text())
    config.update(changes)
    return json.dumps(config).encode()


def _tokenizer(edit: Callable[[dict], None]) -> bytes:
    data = json.loads((DEFAULT_MODELS_DIR / "cross-encoder" / "tokenizer.json").read_text())
    edit(data)
    return json.dumps(data).encode()


def test_deeply_nested_config(tmp_path):
    # Was RecursionError from json.loads.
    folder = _model_dir(tmp_path, secondopinion_json=b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ModelFormatError, match=r"secondopinion\.json: not valid JSON"):
        CrossEncoder(folder)


def test_integer_past_pythons_digit_limit(tmp_path):
    # Was a bare ValueError from int parsing that named no file.
    folder = _model_dir(tmp_path, secondopinion_json=b'{"format": ' + b"1" * 5000 + b"}")
    with pytest.raises(ModelFormatError, match=r"secondopinion\.json: not valid JSON"):
        CrossEncoder(folder)


def test_broken_relevance_entry_names_the_file(tmp_path):
    # Was ValueError("relevance config: missing key 'scale'"), no file named.
    entry = json.loads(_config())["relevance"]
    del entry["scale"]
    folder = _model_dir(tmp_path, secondopinion_json=_config(relevance=entry))
    model = CrossEncoder(folder)
    with pytest.raises(ModelFormatError, match=r"secondopinion\.json: relevance config: .*'scale'"):
        relevance_model_for(model)


def test_tokenizer_without_special_tokens(tmp_path):
    # Was ValueError("sequence 1 is empty or offsets decrease ...") from
    # predict([("", "")]): nothing wraps an empty pair, so it had no tokens.
    folder = _model_dir(
        tmp_path, tokenizer_json=_tokenizer(lambda t: t.update(post_processor=None))
    )
    with pytest.raises(ModelFormatError, match=r"tokenizer\.json: .*no special tokens"):
        CrossEncoder(folder)


def test_tokenizer_that_panics_on_encode(tmp_path):
    # Was pyo3's PanicException ("no entry found for key"), a BaseException:
    # the post-processor's template names [SEP], its special_tokens lack it;
    # tokenizers loads such a file and panics on every encode.
    def drop_sep(t: dict) -> None:
        del t["post_processor"]["special_tokens"]["[SEP]"]

    folder = _model_dir(tmp_path, tokenizer_json=_tokenizer(drop_sep))
    with pytest.raises(ModelFormatError, match=r"tokenizer\.json: tokenizers failed on this file"):
        CrossEncoder(folder)


@pytest.mark.parametrize(
    "files",
    [
        # max_length beyond the graph's 512 positions: RuntimeError from ONNX
        # Runtime on the first long input, not at load.
        {"secondopinion_json": _config(max_length=604)},
        # A special-token id past the vocabulary: RuntimeError on every input.
        {
            "tokenizer_json": _tokenizer(
                lambda t: t["post_processor"]["special_tokens"]["[SEP]"].update(ids=[40_000])
            )
        },
        # A pad id past the vocabulary: RuntimeError only for padded batches.
        {"tokenizer_json": _tokenizer(lambda t: t["padding"].update(pad_id=40_000))},
    ],
    ids=["max_length", "special-token-id", "pad-id"],
)
def test_input_the_graph_cannot_run_is_refused_at_load(tmp_path, files):
    folder = _model_dir(tmp_path, **files)
    with pytest.raises(ModelFormatError, match=r"tokenizer\.json with max_length .* cannot run"):
        CrossEncoder(folder)


def test_shipped_models_pass_the_load_probe():
    # The probe must not refuse what works: scoring at max_length succeeds.
    model = CrossEncoder()
    scores, truncated = model.predict([("q", "word " * 1000)], return_truncated=True)
    assert truncated.tolist() == [True] and 0.0 < float(scores[0]) < 1.0
