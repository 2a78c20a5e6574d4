"""Throughput accounting: model FLOPs per sequence and the measured matmul peak, whose
ratio to the achieved rate is the model-FLOPs utilisation (MFU) the trainer logs."""

from __future__ import annotations

import time
from typing import Optional

import tensorflow as tf


def _encoder_params(hidden: int, ffn: int, layers: int) -> int:
    """Weights of `layers` post-LN BERT blocks: QKV+output, FFN, two LayerNorms."""
    attention = 4 * (hidden * hidden + hidden)
    feedforward = hidden * ffn + ffn + ffn * hidden + hidden
    return layers * (attention + feedforward + 2 * 2 * hidden)


def non_embedding_params(cfg) -> dict:
    """Non-embedding weight counts of the discriminator and generator (docs/architecture.md, "Model sizes").

    Embedding tables (word, position, token type) are excluded, as is the generator's
    output projection onto the tied word embeddings; projections, heads and the embedding
    LayerNorm (counted with the discriminator) are included.

    Args:
        cfg: `electra_tf.config.ElectraConfig`.

    Returns:
        dict(discriminator=int, generator=int); generator is 0 for the `mlm` objective.
    """
    m = cfg.model
    e, h = m.embedding_size, m.hidden_size
    disc = _encoder_params(h, m.intermediate_size, m.num_layers)
    disc += (e * h + h) if e != h else 0  # embeddings_project
    disc += h * h + h + h + 1             # discriminator_predictions dense + dense_1
    disc += 2 * e                         # the (shared) embedding LayerNorm
    gen = 0
    if cfg.objective.kind == "electra":
        gh = cfg.generator_hidden_size()
        gen = _encoder_params(gh, cfg.generator_intermediate_size(), cfg.generator_num_layers())
        gen += (e * gh + gh) if e != gh else 0
        gen += gh * e + e + 2 * e + m.vocab_size  # generator_predictions dense, LN, output_bias
    return {"discriminator": disc, "generator": gen}


def model_flops_per_sequence(cfg, seq_length: Optional[int] = None) -> float:
    """Training FLOPs of one sequence: 6 * params * tokens + 12 * layers * seq^2 * hidden.

    Summed over generator and discriminator, with non-embedding parameters
    (`non_embedding_params`); the second term is attention's score and context matmuls
    (forward + backward). This is the nanoGPT/PaLM accounting the trainer logs as MFU.

    Args:
        cfg: `electra_tf.config.ElectraConfig`.
        seq_length: tokens per sequence (default `cfg.data.max_seq_length`).
    """
    s = seq_length or cfg.data.max_seq_length
    params = non_embedding_params(cfg)
    flops = 6.0 * params["discriminator"] * s
    flops += 12.0 * cfg.model.num_layers * s * s * cfg.model.hidden_size
    if params["generator"]:
        flops += 6.0 * params["generator"] * s
        flops += 12.0 * cfg.generator_num_layers() * s * s * cfg.generator_hidden_size()
    return flops


def peak_matmul_size() -> int:
    """Side of the matmuls that measure the peak: 2048 saturates a CPU, an accelerator
    needs 8192 (smaller products leave a GPU's tensor cores partly idle)."""
    accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
    return 8192 if accelerators else 2048


def measure_matmul_peak(dtype: str = "float32", size: int = 2048, seconds: float = 2.0) -> float:
    """Measures this machine's dense matmul throughput in FLOP/s (the MFU denominator).

    Times a jitted chain of `size x size` `tf.linalg.matmul`s in `dtype` on the default
    device and returns the best of several repeats (the least disturbed by other load).

    Args:
        dtype: float32 | bfloat16 | float16.
        size: matrix side.
        seconds: approximate total time to spend measuring.
    """
    a = tf.random.stateless_normal([size, size], seed=[1, 2], dtype=tf.float32) / size ** 0.5
    a = tf.cast(a, dtype)
    inner = 4

    @tf.function(jit_compile=False)
    def chain(x):
        for _ in range(inner):
            x = tf.linalg.matmul(x, a)
        return x

    chain(a).numpy()  # build and warm up
    flops_per_call = inner * 2.0 * size ** 3
    best, spent = 0.0, 0.0
    while spent < seconds or best == 0.0:
        start = time.perf_counter()
        chain(a)[0, 0].numpy()  # waits for the result
        elapsed = time.perf_counter() - start
        spent += elapsed
        best = max(best, flops_per_call / elapsed)
    return best
