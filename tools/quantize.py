"""Write a dynamically int8-quantised copy of a model directory.

    python tools/quantize.py SRC_DIR DST_DIR [--no-optimize] [--per-channel] [--op-types Gather]

Dynamic quantisation stores the weights of MatMul/Gemm (and fused Attention)
nodes as int8 and quantises activations to uint8 at run time, with a scale
computed per tensor per Run: results then depend slightly on what else is in
the batch (padding included), so batching changes an int8 score by a little
while it changes an fp32 score by nothing measurable.

By default the graph is first fused by ONNX Runtime's own extended graph
optimisations (Attention, SkipLayerNormalization, BiasGelu, ...: operator
fusions that do not depend on the CPU, unlike the layout changes of
ORT_ENABLE_ALL), so the quantiser can produce QAttention and fused int8 matrix
products instead of only MatMulInteger nodes between fp32 glue ops. (The
``onnxruntime.transformers`` optimiser would need sympy, which we do not
depend on.)

``tokenizer.json`` is copied; ``secondopinion.json`` is copied with
``"quantization"`` added and ``floor`` reset to null: a floor calibrated on the
fp32 model does not carry over (dynamic int8 moved some fine-tuned
cross-encoder logits by up to 1.4), so recalibrate before relying on one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "secondopinion.json"


def quantize_model_dir(
    src: Path,
    dst: Path,
    *,
    optimize: bool = True,
    per_channel: bool = False,
    op_types: list[str] | None = None,
) -> Path:
    """Quantise ``src``'s model into ``dst`` (created; must not be ``src``). Returns ``dst``.

    ``op_types`` limits quantisation to those operator types (e.g. ``["Gather"]``:
    only the word-embedding table, which holds most of a small encoder's bytes,
    while the matrix products stay fp32); ``None`` quantises all it can.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    for name in (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE):
        if not (src / name).is_file():
            raise FileNotFoundError(f"{src / name}: missing; a model directory needs {name}")
    if dst.resolve() == src.resolve():
        raise ValueError("the destination must differ from the source directory")
    config = json.loads((src / CONFIG_FILE).read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{src / CONFIG_FILE}: must hold a JSON object")
    dst.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        model_in = src / MODEL_FILE
        if optimize:
            model_in = _fuse(model_in, Path(tmp) / "fused.onnx")
        quantize_dynamic(
            model_in,
            dst / MODEL_FILE,
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=op_types,
            # ONNX shape inference cannot type the outputs of fused contrib ops;
            # everything in these encoders is float32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )

    shutil.copyfile(src / TOKENIZER_FILE, dst / TOKENIZER_FILE)
    config["quantization"] = {
        "method": "dynamic",
        "weights": "int8",
        "activations": "uint8",
        "per_channel": per_channel,
        "fused_before_quantizing": optimize,
        "op_types": op_types or "all",
        "source": str(src),
    }
    if config.get("floor") is not None:
        print(
            f"note: floor {config['floor']} dropped; recalibrate it on the int8 model",
            file=sys.stderr,
        )
    if "floor" in config:
        config["floor"] = None
    if isinstance(config.get("name"), str):
        config["name"] = config["name"] + "-int8"
    (dst / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return dst


def _fuse(model: Path, out: Path) -> Path:
    """Save ``model`` after ONNX Runtime's extended (hardware-independent) fusions."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(out)
    ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="model directory to quantise")
    parser.add_argument("dst", type=Path, help="where to write the quantised copy")
    parser.add_argument(
        "--no-optimize",
        dest="optimize",
        action="store_false",
        help="quantise the graph as it is, without fusing transformer ops first",
    )
    parser.add_argument(
        "--per-channel", action="store_true", help="one weight scale per output channel"
    )
    parser.add_argument(
        "--op-types",
        nargs="+",
        default=None,
        help="quantise only these operator types (e.g. Gather); default: all supported",
    )
    args = parser.parse_args(argv)
    out = quantize_model_dir(
        args.src,
        args.dst,
        optimize=args.optimize,
        per_channel=args.per_channel,
        op_types=args.op_types,
    )
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
