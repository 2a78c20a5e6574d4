"""The serving functions shared by the SavedModel and TFLite exports.

One place decides what an exported model answers: the model's logits as float32 (whatever
the model's mixed-precision policy computes in) and, by task,
  - `replaced_token` (the ELECTRA discriminator, logits [B, S]): `logits` and
    `replaced_probability` = sigmoid(logits), the probability that each token was replaced;
    the raw-text functions also return the `token_ids` and `padding_mask` they ran on, so a
    client can line probabilities up with word pieces.
  - `classification` (a fine-tuned model, logits [B, num_labels]): `logits` and
    `probabilities` = softmax(logits) (sigmoid when there is a single logit).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

TASKS = ("replaced_token", "classification")
ID_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def _logits(model, features):
    out = model(features, training=False)
    if isinstance(out, dict):
        out = out["logits"]
    # Named float32 outputs even under mixed_bfloat16/mixed_float16 policies.
    return tf.cast(out, tf.float32)


def detect_task(model) -> str:
    """`replaced_token` when the output has one logit per input token, else `classification`.

    Decided by running the model on two sequence lengths (5 and 7): a per-token head follows
    the input length, a classifier's [B, num_labels] does not.

    Args:
      model: Keras model taking `token_ids`, `segment_ids`, `padding_mask`.
    """
    widths = []
    for length in (5, 7):
        ids = np.full([1, length], 5, np.int32)
        ids[0, 0], ids[0, -1] = 2, 3
        features = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
                    "padding_mask": np.ones_like(ids)}
        widths.append(int(_logits(model, features).shape[-1]))
    return "replaced_token" if widths == [5, 7] else "classification"


def head_outputs(model, features, task: str) -> dict:
    """The named float32 outputs of `model` on a batch of id features.

    Args:
      model: the Keras model.
      features: dict of int32 [B, S] `token_ids`, `segment_ids`, `padding_mask`.
      task: one of TASKS.
    """
    logits = _logits(model, features)
    if task == "replaced_token":
        return {"logits": logits, "replaced_probability": tf.sigmoid(logits)}
    if logits.shape[-1] == 1:
        return {"logits": logits, "probabilities": tf.sigmoid(logits)}
    return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}


def ids_signature(seq_length=None):
    """TensorSpecs of the id inputs: [batch, seq_length] int32 (None = any)."""
    return [tf.TensorSpec([None, seq_length], tf.int32, name=name) for name in ID_INPUTS]


def make_ids_function(model, task: str, seq_length=None):
    """tf.function (token_ids, segment_ids, padding_mask) -> named outputs.

    Args:
      model: the Keras model.
      task: one of TASKS.
      seq_length: fixed sequence length (TFLite), or None for any length (SavedModel).
    """

    @tf.function(input_signature=ids_signature(seq_length))
    def serve_ids(token_ids, segment_ids, padding_mask):
        features = {"token_ids": token_ids, "segment_ids": segment_ids,
                    "padding_mask": padding_mask}
        return head_outputs(model, features, task)

    return serve_ids


def _text_outputs(model, tokenizer, task, features, trim):
    if trim:
        # Shortest width holding every row: short requests do not pay for max_seq_length.
        width = tf.maximum(tf.reduce_max(tf.reduce_sum(features["padding_mask"], axis=1)), 1)
        features = {k: v[:, :width] for k, v in features.items()}
    out = head_outputs(model, features, task)
    if task == "replaced_token":
        out["token_ids"] = features["token_ids"]
        out["padding_mask"] = features["padding_mask"]
    return out


def make_text_function(model, tokenizer, task: str, max_seq_length: int, *, pair=False,
                       trim=True):
    """tf.function over raw strings: tokenizes in-graph with `ElectraTokenizer.encode`.

    Args:
      model: the Keras model.
      tokenizer: the `ElectraTokenizer`.
      task: one of TASKS.
      max_seq_length: texts are truncated to this many word pieces ([CLS]/[SEP] included).
      pair: take `text` and `text_pair` (two segments) instead of `text` alone.
      trim: cut the padding columns beyond the longest row of the batch (SavedModel); False
        keeps the fixed [batch, max_seq_length] shape (TFLite).
    """
    if pair:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([None], tf.string, name="text_pair")])
        def serve_pair(text, text_pair):
            features = tokenizer.encode(text, text_pair, max_seq_length=max_seq_length)
            return _text_outputs(model, tokenizer, task, features, trim)

        return serve_pair

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_text(text):
        features = tokenizer.encode(text, max_seq_length=max_seq_length)
        # One segment: every segment id is 0. Stated as a constant because the TFLite
        # converter fails on the tokenizer's bool->int32 segment ids feeding the embedding
        # lookup's index check ('tfl.zeros_like' on i1); the values are identical.
        features["segment_ids"] = tf.zeros_like(features["token_ids"])
        return _text_outputs(model, tokenizer, task, features, trim)

    return serve_text
