"""Write the seed corpora the fuzzers start from (``make fuzz`` runs this).

Seeds are generated, not committed, so they always follow the current index
format: small BM25 index files saved by the library itself (several analyzer
settings, multi-script text, empty documents), texts for the analyzer fuzzer
(its first byte is the configuration), small ``.npy`` arrays of each dtype the
reader accepts (format 1 and 2), and the model-directory fuzzer starts
from the shipped model files by itself.

Usage: python fuzz/make_seeds.py OUT_DIR
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import numpy as np

from secondopinion import BM25Index

CORPORA = {
    "tiny": ["a cat sat", "dogs running"],
    "scripts": [
        "The quick brown fox jumps over the lazy dog",
        "ΣΟΦΊΑ καὶ σοφία; ПРИВЕТ мир; 東京は日本の首都です",
        "naïve café — résumé, ﬁnance, İstanbul, straße",
        "",
        "numbers 3.14 and 42 and ٣٤٥ and Ⅻ",
    ],
    "many": [f"document {i} about topic {i % 7} with word{i % 3}" for i in range(40)],
}

TEXTS = [
    b"\x01The Quick brown FOX, running over relational databases.",
    b"\x03" + "ΣΟΦΊΑ καὶ σοφία ПРИВЕТ 東京 naïve café straße İstanbul".encode(),
    b"\x05e\xcc\x81t\xc3\xa9 \xf0\x9f\x98\x80 emoji\xe2\x80\x8bzero\xef\xbf\xbdwidth",
    b"\x08the the and a an stop\nwords\nonly",
    b"\x00bad \xff\xfe bytes \xc0\xaf overlong \xed\xa0\x80 surrogate \xf4\x90\x80\x80 big",
    b"\x07" + "ǅungla ǈ ǋ ᾈ ᾼ ῌ ῼ Ⓐ ⓐ 𐐀 𐐨".encode(),
]


def main(out: Path) -> None:
    index_dir = out / "bm25"
    text_dir = out / "analyzer"
    index_dir.mkdir(parents=True, exist_ok=True)
    text_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, docs in CORPORA.items():
            settings = {
                "porter": {},
                "english-nostop": {"stemmer": "english", "stopwords": None},
                "raw": {"stemmer": None, "lowercase": False, "stopwords": ["The", "a"]},
            }
            for label, kwargs in settings.items():
                path = Path(tmp) / f"{name}-{label}.bm25"
                BM25Index.build(docs, k1=1.2, b=0.75, threads=1, **kwargs).save(path)
                (index_dir / path.name).write_bytes(path.read_bytes())
    for i, text in enumerate(TEXTS):
        (text_dir / f"seed{i}.txt").write_bytes(text)
    npy_dir = out / "npy"
    npy_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "uint8-2d": rng.integers(0, 255, size=(7, 4), dtype=np.uint8),
        "float16-2d": rng.normal(size=(3, 2)).astype(np.float16),
        "float32-1d": rng.normal(size=5).astype(np.float32),
        "int64-scalar": np.array(3, dtype=np.int64),
        "int8-empty": np.zeros((0, 3), dtype=np.int8),
    }
    for label, array in arrays.items():
        np.save(npy_dir / f"{label}.npy", array)
    # format 2.0 (4-byte header length), as np.save writes for huge headers
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, arrays["uint8-2d"], version=(2, 0))
    (npy_dir / "uint8-2d-v2.npy").write_bytes(buffer.getvalue())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
