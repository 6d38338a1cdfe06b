"""Train the default cross-encoder: permissively licensed, general-domain data only.

Data (all CC BY-SA 4.0 or made here; see the model card):
- SQuAD 1.1 train, as passage retrieval (`../shared/data/squad`): each question with
  its own paragraph as the positive; other paragraphs of the same article as hard
  negatives (same topic, other facts; the ones sharing most query words first, any
  that contain the answer string left out); one paragraph of another article.
- Counterfactual near-misses (`tools/counterfactuals.py`): the positive paragraph
  with the thing the question asks about changed (entity, year, population,
  country, ordinal, ...), or the question so changed against its own paragraph.
- All-negative lists: a share of the groups lose their positive, so nothing in the
  list answers; those train only the pointwise term.
- Weak supervision: inverse cloze on SQuAD paragraphs (one sentence as the query for
  the rest of its paragraph).

Loss: listwise softmax cross-entropy over each group with a positive, plus
`--bce-weight` x binary cross-entropy on every pair: the pointwise term ties logit 0
to "as likely as not to answer", which the floor reads.

Model: the first `--layers` layers of all-MiniLM-L6-v2 (Apache-2.0), fresh pooler and
one-logit head, word embeddings frozen (the shipped table is shared with the
embedder). The schedule is by wall-clock time (`--time-budget-s`) so that a CPU run
under load still ends on time; `--resume` continues from `OUT/state.pt`.

SQuAD's dev split (`qrels/dev.tsv`) is never read here; model selection uses
`--val-articles` articles held out of the train split.

    python tools/train_default_ce.py --squad ../shared/data/squad --base BASE \\
        --out build/default_ce --layers 4 --time-budget-s 6000
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import counterfactuals as cf  # noqa: E402

T0 = time.time()
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = set(
    "the a an of in on at to for and or is was were are be by with as from that this what "
    "which who whom when where why how did does do has have had it its into than".split()
)


def log(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path: Path) -> dict[str, str]:
    out = {}
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, _ = line.rstrip("\n").split("\t")
            out[q] = d
    return out


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


@dataclass
class Squad:
    para_ids: list[str]
    titles: list[str]
    texts: list[str]
    article_of: list[str]
    by_article: dict[str, list[int]]
    train: list[tuple[str, int, str]]  # (question, paragraph index, answer)
    val: list[tuple[str, int, str]]
    hard: list[list[int]]  # per train question: same-article paragraphs, hardest first


def load_squad(root: Path, val_articles: int, seed: int) -> Squad:
    corpus = read_jsonl(root / "corpus.jsonl")
    queries = {d["_id"]: d["text"].strip() for d in read_jsonl(root / "queries.jsonl")}
    answers = {d["_id"]: d["answers"][0] for d in read_jsonl(root / "answers.jsonl")}
    qrels = read_qrels(root / "qrels" / "train.tsv")  # dev.tsv is never read here
    para_ids = [d["_id"] for d in corpus]
    index = {p: i for i, p in enumerate(para_ids)}
    article_of = [p.split("_")[0] for p in para_ids]
    by_article: dict[str, list[int]] = {}
    for i, a in enumerate(article_of):
        by_article.setdefault(a, []).append(i)
    train_articles = sorted({article_of[index[d]] for d in qrels.values()})
    held = set(random.Random(seed).sample(train_articles, val_articles))
    pw = [words(d["title"] + " " + d["text"]) for d in corpus]
    df: dict[str, int] = {}
    for s in pw:
        for w in s:
            df[w] = df.get(w, 0) + 1
    idf = {w: math.log(len(pw) / c) for w, c in df.items()}
    train, val, hard = [], [], []
    for q in sorted(qrels):
        i = index[qrels[q]]
        item = (queries[q], i, answers[q])
        if article_of[i] in held:
            val.append(item)
            continue
        qw = words(queries[q])
        ans = answers[q].lower()
        others = [
            j for j in by_article[article_of[i]] if j != i and ans not in corpus[j]["text"].lower()
        ]
        others.sort(key=lambda j: -sum(idf.get(w, 0.0) for w in qw & pw[j]))
        train.append(item)
        hard.append(others[:8])
    return Squad(
        para_ids,
        [d["title"] for d in corpus],
        [d["text"] for d in corpus],
        article_of,
        by_article,
        train,
        val,
        hard,
    )


class Encoder:
    """Word-piece ids for [CLS] q [SEP] d [SEP] pairs, padded to the longest pair."""

    def __init__(self, base: Path, max_len: int, max_query: int) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(base / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.no_truncation()
        self.cls = self.tok.token_to_id("[CLS]")
        self.sep = self.tok.token_to_id("[SEP]")
        self.max_len, self.max_query = max_len, max_query

    def ids(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def pairs(self, queries: list[str], docs: list[str]) -> dict[str, torch.Tensor]:
        q_ids, d_ids = self.ids(queries), self.ids(docs)
        rows = []
        for q, d in zip(q_ids, d_ids, strict=True):
            q = q[: self.max_query]
            rows.append((q, d[: max(0, self.max_len - 3 - len(q))]))
        width = max(len(q) + len(d) + 3 for q, d in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for r, (q, d) in enumerate(rows):
            seq = [self.cls, *q, self.sep, *d, self.sep]
            ids[r, : len(seq)] = seq
            types[r, len(q) + 2 : len(seq)] = 1
            mask[r, : len(seq)] = 1
        return {
            "input_ids": torch.from_numpy(ids),
            "token_type_ids": torch.from_numpy(types),
            "attention_mask": torch.from_numpy(mask),
        }


def build_model(base: Path, layers: int, seed: int) -> torch.nn.Module:
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig.from_pretrained(str(base))
    cfg.num_hidden_layers = layers
    cfg.num_labels = 1
    cfg.architectures = ["BertForSequenceClassification"]
    torch.manual_seed(seed + layers)
    model = BertForSequenceClassification(cfg)
    state = {}
    for k, v in load_file(str(base / "model.safetensors")).items():
        k = k.removeprefix("bert.")
        if k.startswith("pooler.") or k.endswith("position_ids"):
            continue
        if k.startswith("encoder.layer.") and int(k.split(".")[2]) >= layers:
            continue
        state["bert." + k] = v.float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    fresh = [k for k in missing if not k.startswith(("bert.pooler.", "classifier."))]
    if fresh or unexpected:
        raise RuntimeError(f"base weights do not fit: missing {fresh}, unexpected {unexpected}")
    return model


class Sampler:
    def __init__(self, sq: Squad, pool: cf.EntityPool, args: argparse.Namespace) -> None:
        self.sq, self.pool, self.args = sq, pool, args
        self.rng = random.Random(args.seed)
        self.order = list(range(len(sq.train)))
        self.rng.shuffle(self.order)
        self.pos = 0
        self.counts: dict[str, int] = {}

    def render(self, i: int) -> str:
        sq = self.sq
        with_title = self.rng.random() < self.args.title_share
        return f"{sq.titles[i]} {sq.texts[i]}" if with_title else sq.texts[i]

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _random_other(self, article: str) -> int:
        while True:
            j = self.rng.randrange(len(self.sq.texts))
            if self.sq.article_of[j] != article:
                return j

    def group(self) -> tuple[list[str], list[str], list[float], bool]:
        """One list: queries, passages, labels, whether it has a positive (first)."""
        sq, rng, n = self.sq, self.rng, self.args.group_size
        if rng.random() < self.args.ict_share:
            return self._ict_group()
        if self.pos >= len(self.order):
            rng.shuffle(self.order)
            self.pos = 0
        t = self.order[self.pos]
        self.pos += 1
        question, i, answer = sq.train[t]
        art = sq.article_of[i]
        qs, ds, ys = [question], [self.render(i)], [1.0]
        side = "passage" if rng.random() < 0.7 else "query"
        made = cf.near_miss(question, sq.texts[i], rng, self.pool, answer=answer, side=side)
        if made is not None:
            text, edit = made
            self._count(f"near_miss/{side}/{edit.kind}")
            if side == "passage":
                qs.append(question)
                ds.append(text)
            else:
                qs.append(text)
                ds.append(ds[0])
            ys.append(0.0)
        hard = sq.hard[t]
        k = n - len(ds) - 1
        for j in rng.sample(hard, min(k, len(hard))):
            qs.append(question)
            ds.append(self.render(j))
            ys.append(0.0)
        while len(ds) < n:
            qs.append(question)
            ds.append(self.render(self._random_other(art)))
            ys.append(0.0)
        if rng.random() < self.args.all_negative_share:
            # The positive is replaced: a list in which nothing answers.
            self._count("all_negative")
            ds[0], ys[0] = self.render(self._random_other(art)), 0.0
            return qs, ds, ys, False
        self._count("squad")
        return qs, ds, ys, True

    def _ict_group(self) -> tuple[list[str], list[str], list[float], bool]:
        sq, rng, n = self.sq, self.rng, self.args.group_size
        while True:
            i = rng.randrange(len(sq.texts))
            sents = re.split(r"(?<=[.!?])\s+", sq.texts[i].strip())
            ok = [s for s in sents if 6 <= len(s.split()) <= 40]
            if len(sents) >= 3 and ok:
                break
        s = rng.choice(ok)
        rest = " ".join(x for x in sents if x != s)
        art = sq.article_of[i]
        same = [j for j in sq.by_article[art] if j != i]
        qs, ds, ys = [s], [f"{sq.titles[i]} {rest}"], [1.0]
        for j in rng.sample(same, min(n - 2, len(same))):
            qs.append(s)
            ds.append(self.render(j))
            ys.append(0.0)
        while len(ds) < n:
            qs.append(s)
            ds.append(self.render(self._random_other(art)))
            ys.append(0.0)
        self._count("ict")
        return qs, ds, ys, True


def validation_set(sq: Squad, pool: cf.EntityPool, n: int, seed: int) -> list[dict]:
    """Held-out questions, each with its paragraph, up to 9 others of its article and a
    passage-side counterfactual."""
    rng = random.Random(seed + 1)
    out = []
    for question, i, answer in rng.sample(sq.val, min(n, len(sq.val))):
        others = [j for j in sq.by_article[sq.article_of[i]] if j != i]
        others = [j for j in others if answer.lower() not in sq.texts[j].lower()]
        made = cf.near_miss(question, sq.texts[i], rng, pool, answer=answer)
        out.append(
            {
                "q": question,
                "pos": f"{sq.titles[i]} {sq.texts[i]}",
                "neg": [
                    f"{sq.titles[j]} {sq.texts[j]}" for j in rng.sample(others, min(9, len(others)))
                ],
                "cf": f"{sq.titles[i]} {made[0]}" if made else None,
            }
        )
    return out


@torch.no_grad()
def evaluate(model: torch.nn.Module, enc: Encoder, val: list[dict], batch: int = 64) -> dict:
    model.eval()
    qs, ds, tags = [], [], []
    for k, v in enumerate(val):
        for tag, docs in (
            ("pos", [v["pos"]]),
            ("neg", v["neg"]),
            ("cf", [v["cf"]] if v["cf"] else []),
        ):
            for d in docs:
                qs.append(v["q"])
                ds.append(d)
                tags.append((k, tag))
    scores = np.empty(len(qs), dtype=np.float32)
    for s in range(0, len(qs), batch):
        scores[s : s + batch] = (
            model(**enc.pairs(qs[s : s + batch], ds[s : s + batch])).logits[:, 0].numpy()
        )
    model.train()
    pos = np.full(len(val), np.nan)
    best_neg = np.full(len(val), -np.inf)
    cfs: list[tuple[float, float]] = []
    rr = []
    for k in range(len(val)):
        mine = [(t, scores[j]) for j, (kk, t) in enumerate(tags) if kk == k]
        p = next(s for t, s in mine if t == "pos")
        negs = [s for t, s in mine if t == "neg"]
        pos[k] = p
        best_neg[k] = max(negs) if negs else -np.inf
        rr.append(1.0 / (1 + sum(s > p for s in negs)))
        cfs.extend((p, s) for t, s in mine if t == "cf")
    auc = float(np.mean(pos > best_neg) + 0.5 * np.mean(pos == best_neg))
    cf_arr = np.asarray(cfs)
    return {
        "mrr_in_article": float(np.mean(rr)),
        "auc_own_vs_best_other": auc,
        "pos_logit_above_0": float(np.mean(pos > 0)),
        "best_other_below_0": float(np.mean(best_neg < 0)),
        "cf_below_pos": float(np.mean(cf_arr[:, 1] < cf_arr[:, 0])) if len(cf_arr) else None,
        "cf_below_0": float(np.mean(cf_arr[:, 1] < 0)) if len(cf_arr) else None,
        "median_pos_logit": float(np.median(pos)),
        "median_best_other_logit": float(np.median(best_neg)),
    }


def save_checkpoint(model: torch.nn.Module, base: Path, out: Path) -> None:
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    for f in TOKENIZER_FILES:
        if (base / f).exists():
            shutil.copy(base / f, tmp / f)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--squad", type=Path, required=True)
    p.add_argument("--base", type=Path, required=True, help="all-MiniLM-L6-v2 folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--max-query", type=int, default=48)
    p.add_argument("--batch-groups", type=int, default=8)
    p.add_argument("--group-size", type=int, default=6, help="pairs per list")
    p.add_argument("--lr-body", type=float, default=7e-5)
    p.add_argument("--lr-head", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--bce-weight", type=float, default=1.0)
    p.add_argument("--all-negative-share", type=float, default=0.15)
    p.add_argument("--ict-share", type=float, default=0.1)
    p.add_argument("--title-share", type=float, default=0.7)
    p.add_argument("--warmup-s", type=float, default=120.0)
    p.add_argument("--time-budget-s", type=float, default=3600.0)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--eval-every-s", type=float, default=900.0)
    p.add_argument("--val-articles", type=int, default=20)
    p.add_argument("--val-questions", type=int, default=150)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    log("loading SQuAD train")
    sq = load_squad(args.squad, args.val_articles, args.seed)
    pool = cf.EntityPool(sq.texts)
    log(f"{len(sq.train)} train questions, {len(sq.val)} held-out validation questions")
    enc = Encoder(args.base, args.max_len, args.max_query)
    val = validation_set(sq, pool, args.val_questions, args.seed)
    model = build_model(args.base, args.layers, args.seed)
    frozen = "bert.embeddings.word_embeddings.weight"
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, prm in model.named_parameters():
        if name == frozen:
            prm.requires_grad_(False)
            continue
        groups.setdefault(
            (name.startswith(("bert.pooler.", "classifier.")), prm.ndim >= 2), []
        ).append(prm)
    opt = torch.optim.AdamW(
        [
            {
                "params": ps,
                "base_lr": args.lr_head if head else args.lr_body,
                "lr": args.lr_head if head else args.lr_body,
                "weight_decay": args.weight_decay if decay else 0.0,
            }
            for (head, decay), ps in groups.items()
        ]
    )
    sampler = Sampler(sq, pool, args)
    step, spent = 0, 0.0
    record: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "evals": []}
    state_file = args.out / "state.pt"
    if args.resume and state_file.exists():
        st = torch.load(state_file, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, spent, record = st["step"], st["spent"], st["record"]
        sampler.rng.setstate(st["rng"])
        sampler.order, sampler.pos = st["order"], st["pos"]
        log(f"resumed at step {step}, {spent:.0f}s spent")
    model.train()
    best = record.get("best_auc", -1.0)
    t_start = time.time() - spent
    last_eval = time.time()
    loss_sum, loss_n = 0.0, 0
    while True:
        elapsed = time.time() - t_start
        if elapsed >= args.time_budget_s or (args.max_steps and step >= args.max_steps):
            break
        # Warm-up, flat, then a linear decay over the last 30% of the time budget.
        scale = min(1.0, (elapsed + 1) / args.warmup_s)
        scale *= min(1.0, (args.time_budget_s - elapsed) / (0.3 * args.time_budget_s))
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * scale
        qs, ds, ys, has_pos = [], [], [], []
        for _ in range(args.batch_groups):
            q, d, y, hp = sampler.group()
            qs += q
            ds += d
            ys.append(y)
            has_pos.append(hp)
        logits = model(**enc.pairs(qs, ds)).logits.view(args.batch_groups, args.group_size)
        y = torch.tensor(ys)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        hp = torch.tensor(has_pos)
        listwise = (
            torch.nn.functional.cross_entropy(
                logits[hp], torch.zeros(int(hp.sum()), dtype=torch.long)
            )
            if hp.any()
            else torch.zeros(())
        )
        loss = listwise + args.bce_weight * bce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_sum += float(loss.detach())
        loss_n += 1
        if step % 20 == 0:
            rate = step * args.batch_groups * args.group_size / max(1e-6, time.time() - t_start)
            log(f"step {step} loss {loss_sum / loss_n:.4f} lr x{scale:.2f} {rate:.1f} pairs/s")
            loss_sum, loss_n = 0.0, 0
        if time.time() - last_eval >= args.eval_every_s:
            best = _eval_and_save(model, enc, val, args, record, step, best)
            record["sampled"] = sampler.counts
            torch.save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "step": step,
                    "spent": time.time() - t_start,
                    "record": record,
                    "rng": sampler.rng.getstate(),
                    "order": sampler.order,
                    "pos": sampler.pos,
                },
                state_file,
            )
            last_eval = time.time()
    best = _eval_and_save(model, enc, val, args, record, step, best)
    record["sampled"] = sampler.counts
    record["pairs_seen"] = step * args.batch_groups * args.group_size
    (args.out / "train_log.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"done: {step} steps, best held-out AUC {best:.4f}")
    return 0


def _eval_and_save(
    model: torch.nn.Module,
    enc: Encoder,
    val: list[dict],
    args: argparse.Namespace,
    record: dict,
    step: int,
    best: float,
) -> float:
    res = evaluate(model, enc, val)
    res["step"] = step
    res["time_s"] = round(time.time() - T0, 1)
    record["evals"].append(res)
    log(f"eval {json.dumps(res)}")
    save_checkpoint(model, args.base, args.out / f"L{args.layers}-last")
    # Selection by the held-out AUC plus in-article MRR: both read the pair, not a list.
    score = res["auc_own_vs_best_other"] + res["mrr_in_article"]
    if score > best:
        best = score
        record["best_auc"] = best
        record["best_step"] = step
        save_checkpoint(model, args.base, args.out / f"L{args.layers}")
    (args.out / "train_log.json").write_text(json.dumps(record, indent=2) + "\n")
    return best


if __name__ == "__main__":
    raise SystemExit(main())
