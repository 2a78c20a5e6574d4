"""Layer-wise learning-rate decay for fine-tuning (docs/architecture.md, "Fine-tuning").

Depth 0 is the embeddings (the projection included), depth k + 1 is encoder layer k, and the
task head sits on top. Each variable's learning rate is multiplied by decay^(top - depth).

The reference (`run_finetuning.py`'s `_get_layer_lrs`) puts the head at depth L + 2, one
above a pooler that ELECTRA does not have, so its top encoder layer gets decay^2 instead of
decay^1 and every layer below one extra factor. Here the head is at L + 1 by default (the
top layer gets decay^1); `reference=True` reproduces the reference's factors.
"""

from __future__ import annotations

import re

_LAYER = re.compile(r"transformer_layer_(\d+)/")


def variable_depth(path: str, num_layers: int) -> int:
    """Depth of a variable by its Keras path: 0 embeddings, k + 1 layer k, L + 1 the head.

    Args:
      path: the variable's path, e.g. `discriminator/transformer_layer_3/.../kernel`.
      num_layers: L, the encoder's layer count.

    Example:

    >>> [variable_depth(p, 12) for p in ("embeddings/token_embedding/embeddings",
    ...     "discriminator/embeddings_project/kernel",
    ...     "discriminator/transformer_layer_11/feedforward_output_dense/kernel",
    ...     "electra_classification/task_head/kernel")]
    [0, 0, 12, 13]
    """
    match = _LAYER.search(path)
    if match:
        layer = int(match.group(1))
        if layer >= num_layers:
            raise ValueError(f"{path}: layer {layer} but the encoder has {num_layers} layers")
        return layer + 1
    if "embeddings" in path:
        return 0
    return num_layers + 1


def learning_rate_multiplier(path: str, num_layers: int, decay: float,
                             reference: bool = False) -> float:
    """decay^(top - depth) for a variable; 1.0 for the head (and for any decay of 1.0).

    Args:
      path: the variable's Keras path.
      num_layers: L, the encoder's layer count.
      decay: the per-layer factor (0.8 for Small/Base, 0.9 for Large).
      reference: the reference's extra factor below the head (top = L + 2).

    Example:

    >>> round(learning_rate_multiplier("x/transformer_layer_11/y", 12, 0.8), 6)
    0.8
    >>> round(learning_rate_multiplier("x/transformer_layer_11/y", 12, 0.8, True), 6)
    0.64
    >>> learning_rate_multiplier("head/task_head/kernel", 12, 0.8)
    1.0
    """
    depth = variable_depth(path, num_layers)
    if depth == num_layers + 1:
        return 1.0
    top = num_layers + 2 if reference else num_layers + 1
    return float(decay) ** (top - depth)
