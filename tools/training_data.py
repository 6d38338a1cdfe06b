"""Training and validation data for the default cross-encoder.

Everything here runs with torch + numpy + a fast tokenizer only, because the same
code runs on a lent GPU machine with no network and no other packages.

Pieces:
- BEIR loading (plain or gzipped files) and a seeded, fixed validation split;
- token ids computed once per text, so pair batches are cheap concatenations;
- first-stage retrieval used both to mine hard negatives and to build the
  validation candidates: BM25 as a sparse matrix product, the base bi-encoder
  (mean-pooled all-MiniLM-L6-v2) as a dense product, fused by RRF;
- training groups: 1 positive + a pool of mined negatives, from SciFact and
  NFCorpus train qrels and from weak supervision (title -> abstract, inverse
  cloze: one sentence as the query for the rest of its abstract).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

RRF_K = 60
# torch flags sparse CSR as "beta"; the one product used here is checked against plain Python.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
_WORD = re.compile(r"[a-z0-9]+")
# Sentence boundary: end punctuation, whitespace, then an upper-case letter or digit.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
# A short English stop list: BM25 here only mines negatives and builds candidates.
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this "
    "to was were with which we our these those than then there their not no can may "
    "but also been into such".split()
)


def _open_text(path: Path) -> Iterator[str]:
    """Yield lines of `path` or of `path`.gz, whichever exists."""
    if path.exists():
        with path.open(encoding="utf-8") as f:
            yield from f
        return
    gz = path.with_name(path.name + ".gz")
    if not gz.exists():
        raise FileNotFoundError(f"neither {path} nor {gz} exists")
    with gzip.open(gz, "rt", encoding="utf-8") as f:
        yield from f


def load_beir(root: Path) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """Corpus {doc_id: (title, text)} and queries {query_id: text} of one BEIR set."""
    corpus: dict[str, tuple[str, str]] = {}
    for line in _open_text(root / "corpus.jsonl"):
        d = json.loads(line)
        corpus[str(d["_id"])] = (d.get("title") or "", d.get("text") or "")
    queries = {}
    for line in _open_text(root / "queries.jsonl"):
        q = json.loads(line)
        queries[str(q["_id"])] = q["text"]
    return corpus, queries


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """{query_id: {doc_id: grade}} keeping grades > 0 (the header line is skipped)."""
    qrels: dict[str, dict[str, int]] = {}
    for i, line in enumerate(_open_text(path)):
        parts = line.rstrip("\n").split("\t")
        if i == 0 and parts[0] == "query-id":
            continue
        if len(parts) != 3:
            continue
        grade = int(parts[2])
        if grade > 0:
            qrels.setdefault(parts[0], {})[parts[1]] = grade
    return qrels


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def bm25_terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


# ----------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """One collection with its token ids (no special tokens), indexed 0..n-1."""

    name: str
    doc_ids: list[str]
    titles: list[str]
    texts: list[str]
    title_tok: list[np.ndarray] = field(default_factory=list)
    text_tok: list[np.ndarray] = field(default_factory=list)
    sentences: list[list[str]] = field(default_factory=list)
    sent_tok: list[list[np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def full_tok(self, i: int) -> np.ndarray:
        """Title then abstract: how documents are shown to the reranker."""
        return np.concatenate([self.title_tok[i], self.text_tok[i]])


def tokenize_ids(tokenizer: object, texts: list[str], max_tokens: int) -> list[np.ndarray]:
    """Word-piece ids without special tokens, truncated to `max_tokens`."""
    out: list[np.ndarray] = []
    step = 4096
    for s in range(0, len(texts), step):
        enc = tokenizer(  # type: ignore[operator]
            texts[s : s + step],
            add_special_tokens=False,
            truncation=True,
            max_length=max_tokens,
        )["input_ids"]
        out.extend(np.asarray(ids, dtype=np.int32) for ids in enc)
    return out


def build_corpus(
    name: str, docs: dict[str, tuple[str, str]], tokenizer: object, max_doc_tokens: int
) -> Corpus:
    ids = list(docs)
    c = Corpus(name, ids, [docs[i][0] for i in ids], [docs[i][1] for i in ids])
    c.title_tok = tokenize_ids(tokenizer, c.titles, 128)
    c.text_tok = tokenize_ids(tokenizer, c.texts, max_doc_tokens)
    sents = [split_sentences(t) for t in c.texts]
    c.sentences = sents
    flat = tokenize_ids(tokenizer, [s for ss in sents for s in ss], max_doc_tokens)
    pos = 0
    for ss in sents:
        c.sent_tok.append(flat[pos : pos + len(ss)])
        pos += len(ss)
    return c


# ----------------------------------------------------------------------------- retrieval


class BM25:
    """Okapi BM25 (k1 0.9, b 0.4, Anserini's defaults) as a sparse matrix product."""

    def __init__(self, texts: list[str], device: torch.device, k1: float = 0.9, b: float = 0.4):
        self.vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[float] = []
        lengths = np.zeros(len(texts), dtype=np.float64)
        for d, text in enumerate(texts):
            counts: dict[int, int] = {}
            terms = bm25_terms(text)
            lengths[d] = len(terms)
            for t in terms:
                j = self.vocab.setdefault(t, len(self.vocab))
                counts[j] = counts.get(j, 0) + 1
            for j, tf in counts.items():
                rows.append(d)
                cols.append(j)
                tfs.append(tf)
        n = len(texts)
        r = np.asarray(rows, dtype=np.int64)
        c = np.asarray(cols, dtype=np.int64)
        tf = np.asarray(tfs, dtype=np.float64)
        df = np.bincount(c, minlength=len(self.vocab)).astype(np.float64)
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        avgdl = max(lengths.mean(), 1.0) if n else 1.0
        w = idf[c] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[r] / avgdl))
        coo = torch.sparse_coo_tensor(  # indices are built here, in range by construction
            torch.from_numpy(np.stack([r, c])),
            torch.from_numpy(w.astype(np.float32)),
            (n, len(self.vocab)),
            check_invariants=False,
        ).coalesce()
        self.matrix = coo.to_sparse_csr().to(device)
        self.device = device

    def search(
        self, queries: list[str], k: int, chunk: int = 1024
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, doc indices) per query; rows padded with -1 / -inf."""
        n_docs = self.matrix.shape[0]
        kk = min(k, n_docs)
        all_s, all_i = [], []
        for s in range(0, len(queries), chunk):
            qs = queries[s : s + chunk]
            rows, cols = [], []
            for col, text in enumerate(qs):
                for t in bm25_terms(text):
                    j = self.vocab.get(t)
                    if j is not None:
                        rows.append(j)
                        cols.append(col)
            # One scatter for the whole chunk: per-element writes cost a kernel each on a GPU.
            q = torch.zeros(len(self.vocab), len(qs), device=self.device)
            where = (torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long))
            q.index_put_(
                tuple(w.to(self.device) for w in where),
                torch.ones(len(rows), device=self.device),
                accumulate=True,
            )
            try:
                scores = torch.sparse.mm(self.matrix, q).T  # (chunk, n_docs)
            except RuntimeError:  # a CUDA build without sparse CSR support: use the CPU
                self.matrix, self.device = self.matrix.cpu(), torch.device("cpu")
                scores = torch.sparse.mm(self.matrix, q.cpu()).T
            top = torch.topk(scores, kk, dim=1)
            all_s.append(top.values.cpu().numpy())
            all_i.append(top.indices.cpu().numpy())
        return _pad(np.concatenate(all_s), np.concatenate(all_i), k)


def _pad(scores: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if idx.shape[1] == k:
        return scores, idx
    pad = k - idx.shape[1]
    return (
        np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf),
        np.pad(idx, ((0, 0), (0, pad)), constant_values=-1),
    )


def single_inputs(
    toks: list[np.ndarray], max_len: int, cls: int, sep: int
) -> dict[str, np.ndarray]:
    """[CLS] x [SEP] batches for the bi-encoder, padded to the longest row."""
    rows = [np.concatenate([[cls], t[: max_len - 2], [sep]]) for t in toks]
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def dense_encode(
    encoder: torch.nn.Module,
    toks: list[np.ndarray],
    max_len: int,
    cls: int,
    sep: int,
    device: torch.device,
    batch: int,
) -> torch.Tensor:
    """Mean-pooled, L2-normalised embeddings (all-MiniLM-L6-v2's own recipe)."""
    order = np.argsort([len(t) for t in toks])  # similar lengths per batch: less padding
    out = torch.empty(len(toks), encoder.config.hidden_size, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for s in range(0, len(toks), batch):
        sel = order[s : s + batch]
        enc = single_inputs([toks[i] for i in sel], max_len, cls, sep)
        ids = torch.from_numpy(enc["input_ids"]).to(device)
        mask = torch.from_numpy(enc["attention_mask"]).to(device)
        with autocast:
            hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        emb = (hidden.float() * m).sum(1) / m.sum(1).clamp(min=1.0)
        out[torch.from_numpy(sel).to(device)] = torch.nn.functional.normalize(emb, dim=-1)
    return out


def dense_search(q: torch.Tensor, d: torch.Tensor, k: int, chunk: int = 4096) -> np.ndarray:
    kk = min(k, d.shape[0])
    idx = []
    for s in range(0, q.shape[0], chunk):
        idx.append(torch.topk(q[s : s + chunk] @ d.T, kk, dim=1).indices.cpu().numpy())
    return _pad(np.zeros((q.shape[0], kk)), np.concatenate(idx), k)[1]


def rrf(rankings: list[np.ndarray], n_docs: int, k: int, device: torch.device) -> np.ndarray:
    """Reciprocal-rank fusion of several (n_queries, depth) index arrays -> top-k indices."""
    nq = rankings[0].shape[0]
    out = np.full((nq, k), -1, dtype=np.int64)
    chunk = max(1, 2**24 // max(n_docs, 1))
    for s in range(0, nq, chunk):
        e = min(nq, s + chunk)
        fused = torch.zeros(e - s, n_docs + 1, device=device)  # column n_docs absorbs -1 padding
        for r in rankings:
            idx = torch.from_numpy(r[s:e]).to(device).long()
            idx = torch.where(idx < 0, torch.full_like(idx, n_docs), idx)
            w = 1.0 / (RRF_K + 1 + torch.arange(r.shape[1], device=device, dtype=torch.float32))
            fused.scatter_add_(1, idx, w.expand_as(idx).contiguous())
        fused[:, n_docs] = -1.0
        kk = min(k, n_docs)
        top = torch.topk(fused, kk, dim=1)
        got = top.indices.cpu().numpy()
        got[top.values.cpu().numpy() <= 0] = -1
        out[s:e, :kk] = got
    return out


# ----------------------------------------------------------------------------- metrics


def ndcg_at_10(ranked: list[str], rels: dict[str, int]) -> float:
    """trec_eval's ndcg_cut_10: linear gains, log2 discount, ideal from all judged docs."""
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rels.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


# ----------------------------------------------------------------------------- groups


@dataclass
class Groups:
    """Training groups: a query, a rendered positive and a pool of negative doc indices.

    Negatives index one corpus (`corpus_of`); `with_title` says how negatives are
    rendered, so a group never mixes documents with and without their titles.
    """

    source: list[str] = field(default_factory=list)
    corpus_of: list[int] = field(default_factory=list)
    query: list[np.ndarray] = field(default_factory=list)
    positive: list[np.ndarray] = field(default_factory=list)
    pool: list[np.ndarray] = field(default_factory=list)
    with_title: list[bool] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)

    def add(
        self,
        source: str,
        corpus: int,
        query: np.ndarray,
        positive: np.ndarray,
        pool: np.ndarray,
        with_title: bool,
        weight: float,
    ) -> None:
        self.source.append(source)
        self.corpus_of.append(corpus)
        self.query.append(query)
        self.positive.append(positive)
        self.pool.append(pool)
        self.with_title.append(with_title)
        self.weight.append(weight)

    def __len__(self) -> int:
        return len(self.source)


def negative_pool(cands: np.ndarray, exclude: set[int], depth: int) -> np.ndarray:
    """The first `depth` candidates that are not excluded (positives, the source doc)."""
    keep = [int(c) for c in cands if c >= 0 and int(c) not in exclude]
    return np.asarray(keep[:depth], dtype=np.int32)


def pair_inputs(
    queries: list[np.ndarray],
    docs: list[np.ndarray],
    max_len: int,
    max_query: int,
    cls: int,
    sep: int,
) -> dict[str, np.ndarray]:
    """[CLS] q [SEP] d [SEP] with segment ids 0/1, padded to the longest pair."""
    rows = []
    for q, d in zip(queries, docs):  # noqa: B905
        q = q[:max_query]
        d = d[: max(0, max_len - 3 - len(q))]
        rows.append((q, d))
    width = max(len(q) + len(d) + 3 for q, d in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, (q, d) in enumerate(rows):
        lq, ld = len(q), len(d)
        ids[i, 0] = cls
        ids[i, 1 : 1 + lq] = q
        ids[i, 1 + lq] = sep
        ids[i, 2 + lq : 2 + lq + ld] = d
        ids[i, 2 + lq + ld] = sep
        types[i, 2 + lq : 3 + lq + ld] = 1
        mask[i, : 3 + lq + ld] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
