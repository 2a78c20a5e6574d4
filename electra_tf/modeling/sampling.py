"""Gumbel-max sampling from the generator's logits (docs/architecture.md, "Sampling, labels and losses")."""

import tensorflow as tf


def gumbel_max_sample(logits, seed, *, temperature=1.0, disallowed_ids=None):
    """Draws one token id per position: argmax(logits / temperature + Gumbel noise).

    Equivalent to sampling from softmax(logits / temperature), without a [B, N, V]
    one-hot (the reference builds one; only the ids are needed). Noise follows the
    reference: g = -log(-log(U + 1e-9) + 1e-9). The result carries no gradient.

    Args:
        logits: float [B, N, V] generator logits at the masked positions.
        seed: int32/int64 [2] stateless seed.
        temperature: softmax temperature (1.0 in the paper).
        disallowed_ids: optional int [B, N]; these ids get -1000 on their logit
            (`disallow_correct`: never sample the original token).

    Returns:
        int32 [B, N] sampled token ids.
    """
    logits = tf.cast(tf.stop_gradient(logits), tf.float32)
    if disallowed_ids is not None:
        vocab_ids = tf.range(tf.shape(logits)[-1], dtype=tf.int32)
        is_disallowed = tf.equal(tf.cast(disallowed_ids, tf.int32)[..., None], vocab_ids)
        logits = logits - 1000.0 * tf.cast(is_disallowed, tf.float32)
    uniform = tf.random.stateless_uniform(tf.shape(logits), seed=seed, dtype=tf.float32)
    gumbel = -tf.math.log(-tf.math.log(uniform + 1e-9) + 1e-9)
    return tf.argmax(logits / temperature + gumbel, axis=-1, output_type=tf.int32)
