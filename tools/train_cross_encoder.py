"""Train the default cross-encoder from all-MiniLM-L6-v2's weights.

Recipe (issue 6 measured what fails and what works): a standard
BertForSequenceClassification (num_labels=1) whose pooler (dense + tanh on [CLS])
and classifier are freshly initialised -- the checkpoint's pooler was never trained
-- with head lr 1e-3 and body lr ~5e-5 (warm-up, linear decay), a listwise softmax
cross-entropy over 1 positive + 7 mined hard negatives plus 0.5 x BCE, bf16
autocast on a GPU. Depth is a flag: the first N layers of the same weights.

Training stops cleanly at `--time-budget-s` (per depth), keeps the checkpoint with
the best validation nDCG@10 (SciFact held-out train queries + NFCorpus dev, never
trained on), and writes it as fp16 safetensors split into parts small enough to
come back from the GPU machine. The word embeddings are frozen by default, so
they are not shipped back: `tools/unpack_from_device.py` restores them from the
base weights (their hash is checked) and writes a normal fp32 checkpoint.

Runs on CPU too (`--device cpu`), e.g. the tiny end-to-end check:
    python tools/train_cross_encoder.py --device cpu --layers 2 --max-docs 300 ...
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import training_data as td  # noqa: E402

T0 = time.time()
PROBES = [
    ("what causes scurvy", "Scurvy is a disease caused by a lack of vitamin C in the diet."),
    ("what causes scurvy", "The stock market closed higher on Tuesday after a quiet session."),
    ("statins lower LDL cholesterol", "Statin therapy reduced LDL cholesterol by 40% in adults."),
    ("", "An empty query still has to produce a finite score."),
]


def log(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def parse_list(text: str, cast: type) -> list:
    return [cast(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder with scifact/ and nfcorpus/")
    p.add_argument("--base", type=Path, required=True, help="base weights + tokenizer folder")
    p.add_argument("--out", type=Path, required=True, help="where parts and the log go")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--layers", default="6", help="comma list of depths, trained in order")
    p.add_argument(
        "--time-budget-s", default="0", help="per depth (comma list or one value); 0 = none"
    )
    p.add_argument("--deadline-s", type=float, default=0.0, help="whole run, from start")
    p.add_argument("--epochs", type=float, default=3.0, help="upper bound; budget may stop first")
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--batch-groups", type=int, default=32, help="groups per step (x8 pairs)")
    p.add_argument("--negatives", type=int, default=7)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--max-query", type=int, default=64)
    p.add_argument("--lr-body", type=float, default=7e-5)
    p.add_argument("--lr-head", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.06, help="fraction of planned steps")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--bce-weight", type=float, default=0.5)
    p.add_argument("--train-word-embeddings", action="store_true")
    p.add_argument("--scifact-repeat", type=int, default=3)
    p.add_argument("--nf-per-query", type=int, default=2)
    p.add_argument("--nf-weight", type=float, default=0.5)
    p.add_argument("--ict-per-doc", type=int, default=2)
    p.add_argument("--no-titles", action="store_true")
    p.add_argument("--weak-weight", type=float, default=1.0)
    p.add_argument("--neg-depth", type=int, default=30, help="negatives come from this top-k")
    p.add_argument("--val-scifact", type=int, default=200)
    p.add_argument("--val-nfcorpus", type=int, default=0, help="0 = all dev queries")
    p.add_argument("--val-depth", type=int, default=100)
    p.add_argument("--evals", type=int, default=3, help="validations during each depth's run")
    p.add_argument("--eval-batch", type=int, default=512)
    p.add_argument("--mine-max-len", type=int, default=256)
    p.add_argument("--mine-batch", type=int, default=512)
    p.add_argument("--max-docs", type=int, default=0, help="tiny runs: docs kept per corpus")
    p.add_argument("--max-train-queries", type=int, default=0, help="tiny runs")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--max-out-files", type=int, default=6, help="weight parts allowed in --out")
    p.add_argument("--part-mib", type=float, default=15.0)
    return p.parse_args(argv)


# ============================================================================ data


@dataclass
class ValSet:
    name: str
    corpus: td.Corpus
    qids: list[str]
    qtok: list[np.ndarray]
    rels: list[dict[str, int]]
    cands: np.ndarray  # (n, depth) corpus indices, -1 padded
    fused: list[np.ndarray]  # stage-1 RRF scores of the candidates


@dataclass
class Prepared:
    corpora: list[td.Corpus]
    full_tok: list[list[np.ndarray]]
    groups: td.Groups
    val: list[ValSet]
    info: dict


def _subsample(
    docs: dict[str, tuple[str, str]], keep: set[str], n: int, rng: np.random.Generator
) -> dict[str, tuple[str, str]]:
    rest = [d for d in sorted(docs) if d not in keep]
    extra = rng.permutation(len(rest))[: max(0, n - len(keep))]
    chosen = keep | {rest[i] for i in extra}
    return {d: docs[d] for d in docs if d in chosen}


def prepare(args: argparse.Namespace, tokenizer: object, device: torch.device) -> Prepared:
    rng = np.random.default_rng(args.seed)
    sf_docs, sf_queries = td.load_beir(args.data / "scifact")
    nf_docs, nf_queries = td.load_beir(args.data / "nfcorpus")
    sf_qrels = td.load_qrels(args.data / "scifact" / "qrels" / "train.tsv")
    nf_train = td.load_qrels(args.data / "nfcorpus" / "qrels" / "train.tsv")
    nf_dev = td.load_qrels(args.data / "nfcorpus" / "qrels" / "dev.tsv")

    # Fixed, seeded validation split: never trained on.
    sf_all = sorted(sf_qrels)
    sf_val = sorted(sf_all[i] for i in rng.permutation(len(sf_all))[: args.val_scifact])
    sf_train = [q for q in sf_all if q not in set(sf_val)]
    nf_val = sorted(nf_dev)
    if args.val_nfcorpus:
        nf_val = sorted(nf_val[i] for i in rng.permutation(len(nf_val))[: args.val_nfcorpus])
    # NFCorpus has differently numbered queries with the same text: keep them out too.
    val_texts = {nf_queries[q].strip().lower() for q in nf_dev} | {
        sf_queries[q].strip().lower() for q in sf_val
    }
    nf_tr = [
        q
        for q in sorted(nf_train)
        if q not in nf_dev and nf_queries[q].strip().lower() not in val_texts
    ]
    if args.max_train_queries:
        sf_train = sf_train[: args.max_train_queries]
        nf_tr = nf_tr[: args.max_train_queries]
    if args.max_docs:
        sf_keep = {d for q in sf_val + sf_train for d in sf_qrels[q] if d in sf_docs}
        nf_keep = {d for q in nf_val for d in nf_dev[q] if d in nf_docs}
        nf_keep |= {d for q in nf_tr for d in list(nf_train[q])[:3] if d in nf_docs}
        sf_docs = _subsample(sf_docs, sf_keep, args.max_docs, rng)
        nf_docs = _subsample(nf_docs, nf_keep, args.max_docs, rng)

    log("tokenizing corpora")
    corpora = [
        td.build_corpus("scifact", sf_docs, tokenizer, args.max_len),
        td.build_corpus("nfcorpus", nf_docs, tokenizer, args.max_len),
    ]
    full_tok = [[c.full_tok(i) for i in range(len(c))] for c in corpora]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id  # type: ignore[attr-defined]

    def qtok(texts: list[str]) -> list[np.ndarray]:
        return td.tokenize_ids(tokenizer, texts, args.max_query)

    # Every query that needs first-stage candidates, per corpus: (kind, payload).
    plans: list[list[tuple[str, str, np.ndarray, dict]]] = [[], []]
    for ci, (qids, qsrc, rels) in enumerate(
        [(sf_val, sf_queries, sf_qrels), (nf_val, nf_queries, nf_dev)]
    ):
        toks = qtok([qsrc[q] for q in qids])
        for q, t in zip(qids, toks):  # noqa: B905
            plans[ci].append(("val", qsrc[q], t, {"qid": q, "rels": rels[q]}))
    for ci, (qids, qsrc, rels) in enumerate(
        [(sf_train, sf_queries, sf_qrels), (nf_tr, nf_queries, nf_train)]
    ):
        toks = qtok([qsrc[q] for q in qids])
        for q, t in zip(qids, toks):  # noqa: B905
            plans[ci].append(("qrels", qsrc[q], t, {"qid": q, "rels": rels[q]}))
    for ci, c in enumerate(corpora):
        for i in range(len(c)):
            if not args.no_titles and len(c.title_tok[i]) >= 3 and len(c.text_tok[i]) >= 16:
                plans[ci].append(
                    ("title", c.titles[i], c.title_tok[i][: args.max_query], {"doc": i})
                )
            sents = c.sent_tok[i]
            ok = [j for j, s in enumerate(sents) if len(s) >= 6] if len(sents) >= 3 else []
            for j in rng.permutation(ok)[: args.ict_per_doc] if ok else []:
                j = int(j)
                rest = [s for k, s in enumerate(sents) if k != j]
                pos = np.concatenate([c.title_tok[i], *rest])
                plans[ci].append(
                    ("ict", c.sentences[i][j], sents[j][: args.max_query], {"doc": i, "pos": pos})
                )

    log("loading the base bi-encoder for mining")
    from transformers import BertConfig, BertModel

    cfg = BertConfig.from_pretrained(str(args.base))
    encoder = BertModel(cfg, add_pooling_layer=False)
    state = load_base_state(args.base)
    encoder.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith("pooler.")}, strict=False
    )
    encoder.to(device).eval()

    groups = td.Groups()
    val: list[ValSet] = []
    depth = max(args.val_depth, args.neg_depth + 50)
    stats: dict[str, int] = {}
    for ci, c in enumerate(corpora):
        t = time.time()
        demb = td.dense_encode(
            encoder, full_tok[ci], args.mine_max_len, cls, sep, device, args.mine_batch
        )
        qemb = td.dense_encode(
            encoder, [p[2] for p in plans[ci]], args.max_query, cls, sep, device, args.mine_batch
        )
        dense = td.dense_search(qemb, demb, depth)
        bm25 = td.BM25([f"{a} {b}" for a, b in zip(c.titles, c.texts)], device)  # noqa: B905
        sparse = bm25.search([p[1] for p in plans[ci]], depth)[1]
        fused = td.rrf([dense, sparse], len(c), depth, device)
        log(f"{c.name}: {len(c)} docs, {len(plans[ci])} queries mined in {time.time() - t:.1f}s")
        index = {d: i for i, d in enumerate(c.doc_ids)}
        vq, vt, vr, vc, vf = [], [], [], [], []
        for row, (kind, _text, tok, meta) in enumerate(plans[ci]):
            cand = fused[row]
            stats[f"{c.name}/{kind}"] = stats.get(f"{c.name}/{kind}", 0) + 1
            if kind == "val":
                top = cand[: args.val_depth]
                vq.append(meta["qid"])
                vt.append(tok)
                vr.append(meta["rels"])
                vc.append(top)
                ranks_d = {int(d): r for r, d in enumerate(dense[row]) if d >= 0}
                ranks_s = {int(d): r for r, d in enumerate(sparse[row]) if d >= 0}
                vf.append(
                    np.asarray(
                        [
                            sum(
                                1.0 / (td.RRF_K + 1 + rk[int(d)])
                                for rk in (ranks_d, ranks_s)
                                if int(d) in rk
                            )
                            for d in top
                        ],
                        dtype=np.float32,
                    )
                )
            elif kind == "qrels":
                pos_idx = [index[d] for d in meta["rels"] if d in index]
                if not pos_idx:
                    continue
                pool = td.negative_pool(cand, set(pos_idx), args.neg_depth)
                if ci == 0:
                    for p in pos_idx:
                        for _ in range(args.scifact_repeat):
                            groups.add("scifact", ci, tok, full_tok[ci][p], pool, True, 1.0)
                else:
                    for p in rng.permutation(pos_idx)[: args.nf_per_query]:
                        groups.add(
                            "nfcorpus", ci, tok, full_tok[ci][int(p)], pool, True, args.nf_weight
                        )
            elif kind == "title":
                i = meta["doc"]
                pool = td.negative_pool(cand, {i}, args.neg_depth)
                groups.add(f"title/{c.name}", ci, tok, c.text_tok[i], pool, False, args.weak_weight)
            else:
                i = meta["doc"]
                pool = td.negative_pool(cand, {i}, args.neg_depth)
                groups.add(f"ict/{c.name}", ci, tok, meta["pos"], pool, True, args.weak_weight)
        val.append(ValSet(c.name, c, vq, vt, vr, np.stack(vc) if vc else np.zeros((0, 0), int), vf))
        del demb, qemb
    del encoder
    if device.type == "cuda":
        torch.cuda.empty_cache()

    by_source: dict[str, int] = {}
    for s in groups.source:
        by_source[s] = by_source.get(s, 0) + 1
    info = {
        "docs": {c.name: len(c) for c in corpora},
        "queries_mined": stats,
        "train_groups": by_source,
        "train_groups_total": len(groups),
        "val_query_ids": {"scifact": sf_val, "nfcorpus": nf_val},
        "scifact_train_queries": len(sf_train),
        "nfcorpus_train_queries": len(nf_tr),
    }
    return Prepared(corpora, full_tok, groups, val, info)


# ============================================================================ model


def load_base_state(base: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state = load_file(str(base / "model.safetensors"))
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def build_model(args: argparse.Namespace, layers: int) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig.from_pretrained(str(args.base))
    if not 1 <= layers <= cfg.num_hidden_layers:
        raise ValueError(f"layers must be in 1..{cfg.num_hidden_layers}, got {layers}")
    cfg.num_hidden_layers = layers
    cfg.num_labels = 1
    cfg.architectures = ["BertForSequenceClassification"]
    torch.manual_seed(args.seed + layers)
    model = BertForSequenceClassification(cfg)  # fresh pooler + classifier (BERT's init)
    state = {}
    for k, v in load_base_state(args.base).items():
        if k.startswith("pooler.") or k.endswith("position_ids"):
            continue
        if k.startswith("encoder.layer.") and int(k.split(".")[2]) >= layers:
            continue
        state["bert." + k] = v
    missing, unexpected = model.load_state_dict(state, strict=False)
    fresh = [
        k
        for k in missing
        if not (k.startswith(("bert.pooler.", "classifier.")) or k.endswith("position_ids"))
    ]
    if fresh or unexpected:
        raise RuntimeError(f"base weights do not fit: missing {fresh}, unexpected {unexpected}")
    return model


FROZEN = "bert.embeddings.word_embeddings.weight"


def optimizer_for(
    model: torch.nn.Module, args: argparse.Namespace, device: torch.device
) -> torch.optim.Optimizer:
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if name == FROZEN and not args.train_word_embeddings:
            p.requires_grad_(False)
            continue
        head = name.startswith(("bert.pooler.", "classifier."))
        decay = p.ndim >= 2
        groups.setdefault((head, decay), []).append(p)
    params = [
        {
            "params": ps,
            "lr": args.lr_head if head else args.lr_body,
            "base_lr": args.lr_head if head else args.lr_body,
            "weight_decay": args.weight_decay if decay else 0.0,
        }
        for (head, decay), ps in groups.items()
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(params, fused=fused) if fused else torch.optim.AdamW(params)


# ============================================================================ train / eval


def _to(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in batch.items():
        t = torch.from_numpy(v)
        if device.type == "cuda":
            t = t.pin_memory().to(device, non_blocking=True)
        out[k] = t
    return out


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    prep: Prepared,
    args: argparse.Namespace,
    device: torch.device,
    cls: int,
    sep: int,
) -> dict:
    model.eval()
    res: dict[str, float] = {}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for v in prep.val:
        qs, ds, where = [], [], []
        for qi in range(len(v.qids)):
            for j, d in enumerate(v.cands[qi]):
                if d >= 0:
                    qs.append(v.qtok[qi])
                    ds.append(prep.full_tok[prep.corpora.index(v.corpus)][int(d)])
                    where.append((qi, j))
        scores = np.zeros(len(qs), dtype=np.float32)
        order = np.argsort([len(d) for d in ds])
        for s in range(0, len(qs), args.eval_batch):
            sel = order[s : s + args.eval_batch]
            enc = _to(
                td.pair_inputs(
                    [qs[i] for i in sel],
                    [ds[i] for i in sel],
                    args.max_len,
                    args.max_query,
                    cls,
                    sep,
                ),
                device,
            )
            with autocast:
                logits = model(**enc).logits
            scores[sel] = logits.float().squeeze(-1).cpu().numpy()
        per_q = [np.full(v.cands.shape[1], -np.inf, dtype=np.float32) for _ in v.qids]
        for (qi, j), s in zip(where, scores):  # noqa: B905
            per_q[qi][j] = s
        ce, mix, s1 = [], [], []
        for qi in range(len(v.qids)):
            valid = v.cands[qi] >= 0
            ids = [v.corpus.doc_ids[int(d)] for d in v.cands[qi][valid]]
            sc = per_q[qi][valid]
            f = v.fused[qi][valid]
            ce.append(td.ndcg_at_10([ids[i] for i in np.argsort(-sc, kind="stable")], v.rels[qi]))
            s1.append(td.ndcg_at_10(ids, v.rels[qi]))

            def mm(x: np.ndarray) -> np.ndarray:
                return (x - x.min()) / (x.max() - x.min() + 1e-9)

            m = 0.3 * mm(sc) + 0.7 * mm(f)
            mix.append(td.ndcg_at_10([ids[i] for i in np.argsort(-m, kind="stable")], v.rels[qi]))
        res[v.name] = float(np.mean(ce)) if ce else 0.0
        res[f"{v.name}_stage1"] = float(np.mean(s1)) if s1 else 0.0
        res[f"{v.name}_mix0.3"] = float(np.mean(mix)) if mix else 0.0
    res["mean"] = float(np.mean([res[v.name] for v in prep.val]))
    model.train()
    return res


def sample_batch(
    prep: Prepared, idx: np.ndarray, n_neg: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    g = prep.groups
    qs, ds, w = [], [], np.empty(len(idx), dtype=np.float32)
    for b, gi in enumerate(idx):
        ci = g.corpus_of[gi]
        pool = g.pool[gi]
        if len(pool) >= n_neg:
            negs = pool[rng.choice(len(pool), n_neg, replace=False)]
        else:  # tiny corpora: top up with random documents
            negs = np.concatenate([pool, rng.integers(0, len(prep.corpora[ci]), n_neg - len(pool))])
        render = prep.full_tok[ci] if g.with_title[gi] else prep.corpora[ci].text_tok
        qs.extend([g.query[gi]] * (n_neg + 1))
        ds.append(g.positive[gi])
        ds.extend(render[int(n)] for n in negs)
        w[b] = g.weight[gi]
    return qs, ds, w


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_variant(
    layers: int,
    budget: float,
    prep: Prepared,
    args: argparse.Namespace,
    device: torch.device,
    cls: int,
    sep: int,
    record: dict,
    flush: callable,
) -> torch.nn.Module:
    t_start = time.time()
    model = build_model(args, layers).to(device)
    model.train()
    opt = optimizer_for(model, args, device)
    rng = np.random.default_rng(args.seed + 100 * layers)
    n = len(prep.groups)
    steps_per_epoch = max(1, n // args.batch_groups)
    planned = max(1, int(args.epochs * steps_per_epoch))
    if args.max_steps:
        planned = min(planned, args.max_steps)
    eval_pairs = sum(int((v.cands >= 0).sum()) for v in prep.val)
    eval_est = 0.0
    evals_at: list[int] = []
    best = {"mean": -1.0}
    best_state: dict[str, torch.Tensor] | None = None
    perm = rng.permutation(n)
    pos = 0
    step = 0
    loss_acc = torch.zeros((), device=device)
    calib_from = (None, 0)
    rate = 0.0
    stopped = "planned steps done"
    n_pairs = args.batch_groups * (args.negatives + 1)
    targets = torch.zeros(args.batch_groups, dtype=torch.long, device=device)
    bce_t = torch.zeros(args.batch_groups, args.negatives + 1, device=device)
    bce_t[:, 0] = 1.0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    record.update({"layers": layers, "time_budget_s": budget, "evals": []})

    def plan_evals() -> None:
        evals_at[:] = sorted(
            {max(1, round(planned * k / args.evals)) for k in range(1, args.evals + 1)}
        )

    plan_evals()
    t_loop = time.time()
    while step < planned:
        if pos + args.batch_groups > n:
            perm, pos = rng.permutation(n), 0
        idx = perm[pos : pos + args.batch_groups]
        pos += args.batch_groups
        qs, ds, w = sample_batch(prep, idx, args.negatives, rng)
        enc = _to(td.pair_inputs(qs, ds, args.max_len, args.max_query, cls, sep), device)
        wt = torch.from_numpy(w).to(device)
        warm = max(1, int(args.warmup * planned))
        scale = (
            (step + 1) / warm
            if step < warm
            else max(0.0, (planned - step) / max(1, planned - warm))
        )
        for gr in opt.param_groups:
            gr["lr"] = gr["base_lr"] * scale
        with autocast:
            logits = model(**enc).logits
        logits = logits.float().view(len(idx), args.negatives + 1)
        ce = torch.nn.functional.cross_entropy(logits, targets[: len(idx)], reduction="none")
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, bce_t[: len(idx)], reduction="none"
        ).mean(1)
        loss = ((ce + args.bce_weight * bce) * wt).sum() / wt.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_acc += loss.detach()
        step += 1
        # Throughput calibration (steps 5..25), then fit the schedule to the budget.
        if step == 5:
            sync(device)
            calib_from = (time.time(), step)
        if step == 25 or (step == planned and calib_from[0] is not None and rate == 0.0):
            sync(device)
            rate = (step - calib_from[1]) / max(1e-6, time.time() - calib_from[0])
            eval_est = eval_pairs / (3.0 * rate * n_pairs)
            if budget > 0:
                left = budget - (time.time() - t_start) - (args.evals + 1) * eval_est - 8.0
                planned = max(step + 1, min(planned, step + int(rate * left)))
                plan_evals()
            log(
                f"L{layers}: {rate * n_pairs:.0f} pairs/s ({rate:.2f} steps/s), "
                f"planned {planned} steps = {planned * args.batch_groups / n:.2f} epochs "
                f"of {n} groups, eval est {eval_est:.1f}s"
            )
        if step % 100 == 0:
            log(f"L{layers} step {step}/{planned} loss {loss_acc.item() / 100:.4f} lr x{scale:.3f}")
            loss_acc.zero_()
        if step in evals_at or step == planned:
            t = time.time()
            res = evaluate(model, prep, args, device, cls, sep)
            eval_est = time.time() - t
            res.update(
                {
                    "step": step,
                    "epoch": step * args.batch_groups / n,
                    "elapsed_s": time.time() - t_start,
                }
            )
            record["evals"].append(res)
            log(f"L{layers} eval {json.dumps({k: round(v, 4) for k, v in res.items()})}")
            if res["mean"] > best["mean"]:
                best = res
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            flush()
        now = time.time()
        # Before calibration, judge the closing validation's cost from the steps so far.
        est = eval_est or eval_pairs / (3.0 * n_pairs) * (now - t_loop) / step
        if budget > 0 and now - t_start > budget - est - 6.0:
            stopped = "time budget"
            break
    sync(device)
    train_s = time.time() - t_start
    # What ships is fp16: round the weights and validate exactly those. The last
    # weights are the candidate unless an earlier validation was better.
    last_evaluated = bool(record["evals"]) and record["evals"][-1]["step"] == step
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    use_last = best_state is None or not last_evaluated or best.get("step") == step
    chosen = current if use_last else best_state
    model.load_state_dict(
        {k: v.half().float() if v.is_floating_point() else v for k, v in chosen.items()}
    )
    final = evaluate(model, prep, args, device, cls, sep)
    if (
        use_last
        and best_state is not None
        and best.get("step") != step
        and final["mean"] < best["mean"]
    ):
        model.load_state_dict(
            {k: v.half().float() if v.is_floating_point() else v for k, v in best_state.items()}
        )
        final = evaluate(model, prep, args, device, cls, sep)
    else:
        best = {"step": step} if use_last else best
    record.update(
        {
            "steps": step,
            "planned_steps": planned,
            "stopped": stopped,
            "train_pairs_per_s": rate * n_pairs,
            "epochs_seen": step * args.batch_groups / n,
            "best_eval_step": best.get("step"),
            "final_fp16": final,
            "wall_s": time.time() - t_start,
            "train_s": train_s,
        }
    )
    log(
        f"L{layers} final (fp16 weights of step {best.get('step')}): "
        + json.dumps({k: round(v, 4) for k, v in final.items()})
    )
    return model


@torch.no_grad()
def probe_logits(
    model: torch.nn.Module, tokenizer: object, device: torch.device, args: argparse.Namespace
) -> list[float]:
    """fp32 logits on fixed pairs: unpacking checks its checkpoint against them."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id  # type: ignore[attr-defined]
    model.eval()
    out = []
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    for q, d in PROBES:
        hf = tokenizer(q, d, truncation=True, max_length=args.max_len, return_tensors="np")  # type: ignore[operator]
        ours = td.pair_inputs(
            td.tokenize_ids(tokenizer, [q], args.max_query),
            td.tokenize_ids(tokenizer, [d], args.max_len),
            args.max_len,
            args.max_query,
            cls,
            sep,
        )
        for k in ours:  # the training format must be exactly what inference tokenizers produce
            if not np.array_equal(np.asarray(hf[k], dtype=np.int64), ours[k]):
                raise RuntimeError(f"pair encoding differs from the tokenizer's on {k!r} for {q!r}")
        enc = {k: torch.from_numpy(np.asarray(v, dtype=np.int64)).to(device) for k, v in hf.items()}
        out.append(float(model(**enc).logits.float().item()))
    torch.backends.cuda.matmul.allow_tf32 = prev
    return out


def save_parts(
    model: torch.nn.Module, args: argparse.Namespace, layers: int, base_state: dict
) -> tuple[list[dict], dict]:
    from safetensors.torch import save

    state = {}
    frozen = {}
    for k, v in model.state_dict().items():
        if k.endswith("position_ids"):
            continue
        if k == FROZEN and not args.train_word_embeddings:
            ref = base_state["embeddings.word_embeddings.weight"].half().contiguous()
            if not torch.equal(v.detach().cpu().half(), ref):
                raise RuntimeError("frozen word embeddings changed during training")
            frozen[k] = {
                "from": "base embeddings.word_embeddings.weight",
                "sha256_fp16": hashlib.sha256(ref.numpy().tobytes()).hexdigest(),
            }
            continue
        state[k] = v.detach().cpu().half().contiguous()
    blob = save(state, metadata={"format": "pt"})
    size = int(args.part_mib * 2**20)
    parts = []
    for i in range(0, len(blob), size):
        name = f"ce-L{layers}.safetensors.part{i // size}"
        chunk = blob[i : i + size]
        (args.out / name).write_bytes(chunk)
        parts.append(
            {"file": name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()}
        )
    return parts, frozen


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(args.seed)
    layers_list = parse_list(args.layers, int)
    budgets = parse_list(args.time_budget_s, float)
    if len(budgets) == 1:
        budgets *= len(layers_list)
    if len(budgets) != len(layers_list):
        raise ValueError("--time-budget-s needs one value or one per --layers entry")

    import transformers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(args.base))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    name = (
        torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else f"cpu {platform.processor()} ({os.cpu_count()} cores)"
    )
    log(f"device {name}, torch {torch.__version__}, transformers {transformers.__version__}")
    report: dict = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "args": {k: str(v) for k, v in vars(args).items()},
        "probes": PROBES,
        "variants": [],
    }
    log_path = args.out / "train_log.json"

    def flush() -> None:
        tmp = log_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(log_path)

    prep = prepare(args, tokenizer, device)
    report["data"] = prep.info
    report["prep_s"] = time.time() - T0
    log(f"prepared in {report['prep_s']:.1f}s: {json.dumps(prep.info['train_groups'])}")
    flush()
    base_state = load_base_state(args.base)
    files_used = 0
    for layers, budget in zip(layers_list, budgets):  # noqa: B905
        if args.deadline_s:
            left = args.deadline_s - (time.time() - T0)
            if left < 30:
                log(f"L{layers}: skipped, only {left:.0f}s left before the deadline")
                report["variants"].append({"layers": layers, "skipped": "deadline"})
                continue
            budget = min(budget, left - 10) if budget > 0 else left - 10
        record: dict = {}
        report["variants"].append(record)
        model = train_variant(layers, budget, prep, args, device, cls, sep, record, flush)
        record["probe_logits"] = probe_logits(model, tokenizer, device, args)
        record["config"] = model.config.to_dict()
        n_params = sum(
            p.numel()
            for n, p in model.named_parameters()
            if n != FROZEN or args.train_word_embeddings
        )
        need = -(-(n_params * 2 + 4096) // int(args.part_mib * 2**20))
        if files_used + need > args.max_out_files:
            record["parts"] = []
            record["not_saved"] = (
                f"would need {need} more files; {args.max_out_files - files_used} allowed"
            )
            log(f"L{layers}: weights not saved ({record['not_saved']})")
        else:
            record["parts"], record["frozen"] = save_parts(model, args, layers, base_state)
            files_used += len(record["parts"])
            log(f"L{layers}: saved {[p['file'] for p in record['parts']]}")
        flush()
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report["total_s"] = time.time() - T0
    flush()
    log(f"done in {report['total_s']:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
