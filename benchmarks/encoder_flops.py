"""Useful floating-point work of a BERT cross-encoder, counted on real tokens only.

For a sequence of T real tokens through L layers of width H and feed-forward
width I, counting a multiply-add as 2 FLOPs:

- dense matmuls, per token per layer: Q, K, V and output projections (4·H²
  multiply-adds) and the two feed-forward matmuls (2·H·I):
  2·(4·H² + 2·H·I) FLOPs = 2 × the layer's matmul weights;
- attention, per token per layer: Q·Kᵀ against T keys and the weighted sum of
  T values, each T·H multiply-adds over all heads: 4·T·H FLOPs;
- once per sequence, pooler (H×H) and a one-logit classifier (H): 2·(H² + H).

    flops(T) = L·(2·T·(4·H² + 2·H·I) + 4·T²·H) + 2·(H² + H)

Embedding look-ups, layer norms, GELU, softmax and biases are left out: they are
memory-bound element-wise work, not what a GEMM peak measures. Pad tokens are
not counted, so a contender that pads more does more work for the same count.
For all-MiniLM-L6-v2 (L=6, H=384, I=1536) that is 21.2 MFLOP per token plus
attention: about 6.0 GFLOP for one 256-token pair.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class EncoderShape:
    layers: int
    hidden: int
    intermediate: int

    @classmethod
    def from_config(cls, config_json: Path) -> EncoderShape:
        """From a Hugging Face BERT ``config.json``."""
        config = json.loads(Path(config_json).read_text(encoding="utf-8"))
        return cls(
            int(config["num_hidden_layers"]),
            int(config["hidden_size"]),
            int(config["intermediate_size"]),
        )


def useful_flops(lengths: np.ndarray, shape: EncoderShape) -> float:
    """Total FLOPs to score sequences of the given real (unpadded) token counts."""
    t = np.asarray(lengths, dtype=np.float64)
    h, i, layers = float(shape.hidden), float(shape.intermediate), float(shape.layers)
    per_sequence = layers * (2.0 * t * (4.0 * h * h + 2.0 * h * i) + 4.0 * t * t * h)
    return float(np.sum(per_sequence + 2.0 * (h * h + h)))
