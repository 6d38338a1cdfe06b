"""Rebuild normal fp32 checkpoints from what `tools/device_train.sh` sent back.

For every variant in `train_log.json` that has weight parts: join the parts
(checking each part's sha256), restore the frozen word embeddings from the base
weights the run started from (checking their hash), and write a standard
`BertForSequenceClassification` (num_labels=1) folder with its tokenizer --
what `tools/export_onnx.py` reads. The result is checked by reloading it with
transformers and comparing its logits on the logged probe pairs.
"""

from __future__ import annotations

import argparse
import hashlib
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


def join_parts(src: Path, parts: list[dict]) -> bytes:
    blob = bytearray()
    for part in parts:
        data = (src / part["file"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != part["sha256"]:
            raise ValueError(f"{part['file']}: sha256 differs from the log; transfer damaged?")
        blob += data
    return bytes(blob)


def unpack_variant(variant: dict, src: Path, base: Path, dst: Path, tol: float) -> float:
    import torch
    from safetensors.torch import load, load_file
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
    )

    state = {k: v.float() for k, v in load(join_parts(src, variant["parts"])).items()}
    base_state = load_file(str(base / "model.safetensors"))
    for key, spec in variant.get("frozen", {}).items():
        name = spec["from"].removeprefix("base ")
        ref = base_state[name].half().contiguous()
        if hashlib.sha256(ref.numpy().tobytes()).hexdigest() != spec["sha256_fp16"]:
            raise ValueError(f"{key}: base weights in {base} are not the ones trained from")
        state[key] = ref.float()
    cfg = BertConfig.from_dict(variant["config"])
    model = BertForSequenceClassification(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit: missing {missing}, unexpected {unexpected}")
    if dst.exists():
        shutil.rmtree(dst)
    model.save_pretrained(str(dst), safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(base / name, dst / name)

    # Reload the way a user would and compare with the logits logged on the GPU.
    tok = AutoTokenizer.from_pretrained(str(dst))
    again = AutoModelForSequenceClassification.from_pretrained(str(dst)).eval()
    worst = 0.0
    with torch.no_grad():
        for (q, d), want in zip(PROBES_FROM_LOG, variant["probe_logits"]):  # noqa: B905
            enc = tok(q, d, truncation=True, max_length=512, return_tensors="pt")
            got = float(again(**enc).logits.item())
            worst = max(worst, abs(got - want))
    if worst > tol:
        raise ValueError(f"L{variant['layers']}: probe logits differ by {worst:.2e} > {tol}")
    return worst


PROBES_FROM_LOG: list[tuple[str, str]] = []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("src", type=Path, help="folder with train_log.json and the .part files")
    p.add_argument("--base", type=Path, default=REPO / ".device_carry" / "base")
    p.add_argument("--out", type=Path, default=REPO / "build" / "cross_encoder")
    p.add_argument("--tol", type=float, default=2e-3, help="GPU vs CPU fp32 logit difference")
    args = p.parse_args(argv)
    log = json.loads((args.src / "train_log.json").read_text())
    PROBES_FROM_LOG[:] = [tuple(x) for x in log["probes"]]
    done = 0
    for variant in log["variants"]:
        if not variant.get("parts"):
            why = variant.get("not_saved") or variant.get("skipped")
            print(f"L{variant.get('layers')}: no weights ({why})")
            continue
        dst = args.out / f"L{variant['layers']}"
        worst = unpack_variant(variant, args.src, args.base, dst, args.tol)
        final = variant.get("final_fp16", {})
        print(
            f"L{variant['layers']}: {dst} (probe max |diff| {worst:.1e}); "
            f"val nDCG@10 scifact {final.get('scifact', float('nan')):.4f} "
            f"nfcorpus {final.get('nfcorpus', float('nan')):.4f}"
        )
        (dst / "train_record.json").write_text(
            json.dumps({k: v for k, v in variant.items() if k != "config"}, indent=1)
        )
        done += 1
    if not done:
        print("error: no variant had weights", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
