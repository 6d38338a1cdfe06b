"""atheris target: ``BM25Index.load`` through the Python API on mutated index files.

The C++ loader has its own coverage-guided fuzzers (bm25_load_fuzzer.cpp,
bm25_load_fixed_fuzzer.cpp). This one covers what lies between it and the
user: the bindings and ``secondopinion.bm25`` turning what the file holds
(document ids, stop words, parameters) into Python objects. Like the fixed
native target, it repairs the checksums (and the signature, version,
byte-order mark and size field) of each input before loading, so mutations
of a valid index (seeds from fuzz/make_seeds.py) reach the structure.

A loaded index must answer everything a user can ask. Allowed outcome of a
bad file: ValueError naming the file.

Run: python fuzz/bm25_load_py_fuzzer.py [libFuzzer flags] CORPUS_DIR SEED_DIR
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import check_error, main  # noqa: E402

with atheris.instrument_imports(include=["secondopinion"]):
    from secondopinion import BM25Index

MAGIC = b"\x89SOBM25\n"
FORMAT_VERSION = 1
HEADER_BYTES = 64


def repair(data: bytes) -> bytes:
    """The input with its fixed header fields and both CRCs made consistent."""
    if len(data) < HEADER_BYTES:
        return data
    b = bytearray(data)
    b[0:8] = MAGIC
    struct.pack_into("<IIQ", b, 8, FORMAT_VERSION, 0x01020304, len(b))
    header_size = struct.unpack_from("<I", b, 24)[0]
    if HEADER_BYTES <= header_size <= len(b):
        struct.pack_into("<II", b, 32, zlib.crc32(b[header_size:]), 0)
        struct.pack_into("<I", b, 36, zlib.crc32(b[:header_size]))
    return bytes(b)


PATH = (
    Path(tempfile.mkdtemp(prefix="so_fuzz_bm25_", dir=os.environ.get("SO_FUZZ_SCRATCH")))
    / "index.bm25"
)


def test_one_input(data: bytes) -> None:
    PATH.write_bytes(repair(data))
    try:
        index = BM25Index.load(PATH, mmap=len(data) % 2 == 0)
    except ValueError as exc:
        check_error(exc, (ValueError,), [str(PATH)])
        return
    ids = list(index.ids)
    assert len(ids) == index.num_docs == len(index) == len(index.doc_lengths)
    analyzer = index.analyzer
    words = [*analyzer.stopwords, analyzer.stemmer or "", *ids[:3], "fuzz"]
    query = " ".join(str(w) for w in words)
    hits = index.search(query, k=5)
    assert len(hits.ids) <= 5 and all(i in ids for i in hits.ids)
    index.search_batch([query, "", ids[0]], k=index.num_docs + 1)
    scores = index.scores(query)
    assert scores.shape == (index.num_docs,)
    index.doc_freq(query)
    repr(index)


if __name__ == "__main__":
    main(test_one_input)
