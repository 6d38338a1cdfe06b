"""Inputs the fuzzers (fuzz/) found, kept so the fixes stay fixed.

Each test names the target that found the input and what went wrong before
the fix. Index files under tests/data/fuzz/bm25/ are the fuzzers' inputs
after the checksum repair that fuzz/bm25_load_py_fuzzer.py applies, i.e.
exactly the bytes the loader saw.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from secondopinion import BM25Index
from secondopinion.bm25 import Analyzer

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
