"""atheris target: the analyzer through the Python API, on arbitrary str and bytes.

The C++ analyzer has its own coverage-guided fuzzer (analyzer_fuzzer.cpp);
this one covers the conversions in front of it: str with lone surrogates,
bytes with ill-formed UTF-8, hostile stop lists and settings, and the same
text indexed and searched through ``BM25Index``. Allowed outcomes: success,
or TypeError / ValueError naming the argument.

Run: python fuzz/analyzer_py_fuzzer.py [libFuzzer flags] CORPUS_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import check_error, main  # noqa: E402

with atheris.instrument_imports(include=["secondopinion"]):
    from secondopinion import BM25Index
    from secondopinion.bm25 import Analyzer

STEMMERS = ["porter", "english", None, "lancaster", ""]
ARGUMENTS = ["text", "stopwords", "stemmer", "texts", "ids", "query", "document id"]


def text(fdp: atheris.FuzzedDataProvider) -> str | bytes:
    n = fdp.ConsumeIntInRange(0, 256)
    return fdp.ConsumeBytes(n) if fdp.ConsumeBool() else fdp.ConsumeUnicode(n)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    stemmer = fdp.PickValueInList(STEMMERS)
    lowercase = fdp.ConsumeBool()
    stopwords = [
        fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 8)) for _ in range(fdp.ConsumeIntInRange(0, 3))
    ]
    docs = [text(fdp) for _ in range(fdp.ConsumeIntInRange(1, 4))]
    ids = [fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 6)) for _ in docs]
    query = text(fdp)
    try:
        analyzer = Analyzer(lowercase=lowercase, stopwords=stopwords, stemmer=stemmer)
        terms = analyzer.tokenize(query)
        assert all(isinstance(t, str) and t for t in terms), terms
        str_docs = [d.decode("utf-8", "replace") if isinstance(d, bytes) else d for d in docs]
        index = BM25Index.build(
            str_docs,
            ids=ids,
            lowercase=lowercase,
            stopwords=stopwords,
            stemmer=stemmer,
            threads=1,
        )
        hits = index.search(
            query if isinstance(query, str) else query.decode("utf-8", "replace"), k=3
        )
        assert len(hits.ids) <= 3
        for i, doc in enumerate(str_docs):
            if analyzer.tokenize(doc) and stemmer is None:
                # Unstemmed terms analyse to themselves, so a document finds itself.
                found = index.search(" ".join(analyzer.tokenize(doc)), k=len(docs)).ids
                assert ids[i] in list(found), (ids[i], found)
    except (TypeError, ValueError) as exc:
        check_error(exc, (TypeError, ValueError), ARGUMENTS)


if __name__ == "__main__":
    main(test_one_input)
