"""The serving functions shared by the SavedModel and TFLite exports.

One place decides what an exported model answers: the model's logits as float32 (whatever
the model's mixed-precision policy computes in) and, by task,
  - `replaced_token` (the ELECTRA discriminator, logits [B, S]): `logits` and
    `replaced_probability` = sigmoid(logits), the probability that each token was replaced;
    the raw-text functions also return the `token_ids` and `padding_mask` they ran on, so a
    client can line probabilities up with word pieces.
  - `classification` (a fine-tuned model, logits [B, C]): `logits`, `probabilities` =
    softmax(logits) (sigmoid when there is a single logit), and with names `labels` (the
    label names, string [B, C], in the column order of `probabilities`) and `label` (string
    [B], the name of the most probable class).
  - `regression` (logits [B, 1]): `logits` and `score` (float32 [B], the predicted value).
  - `tagging` (logits [B, S, C]): `logits`, `probabilities` = softmax over the C tags, and
    with names `tags` (string [B, S], the most probable tag of each word piece, padding
    included: `padding_mask` tells them apart); the raw-text functions also return
    `token_ids` and `padding_mask`.
String outputs are gathered in-graph from a constant of the label names, so a TF Serving
client needs nothing but the response. TFLite variants are built with `names=False` (see
tflite.py for why).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from electra_tf.export.source import ExportError

TASKS = ("replaced_token", "classification", "regression", "tagging")
# Tasks whose outputs are distributions over named classes (label names, labels.txt).
LABELLED_TASKS = ("classification", "tagging")
ID_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def _logits(model, features):
    out = model(features, training=False)
    if isinstance(out, dict):
        out = out["logits"]
    # Named float32 outputs even under mixed_bfloat16/mixed_float16 policies.
    return tf.cast(out, tf.float32)


def _probe_logits(model, length: int):
    ids = np.full([1, length], 5, np.int32)
    ids[0, 0], ids[0, -1] = 2, 3
    features = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
                "padding_mask": np.ones_like(ids)}
    return _logits(model, features)


def detect_task(model, kind: Optional[str] = None) -> str:
    """The task whose outputs `model` is served with.

    A known kind wins: `kind` (from the model dir's `finetune.json`), else the model's own
    `kind` attribute (`ElectraTaskModel`). Otherwise it is guessed by running the model on
    two sequence lengths (5 and 7): logits of rank 3 are `tagging`; [B, S] logits that
    follow the input length are `replaced_token`; anything else is `classification`
    (regression cannot be told from a one-class classifier, so it is never guessed).

    Args:
      model: Keras model taking `token_ids`, `segment_ids`, `padding_mask`.
      kind: the task if known (`classification`, `regression`, `tagging`,
        `replaced_token`), or None to use the model's attribute or guess.

    Raises:
      ExportError: `kind` is not one of TASKS.

    Example:

    >>> inputs = {k: keras.Input((None,), dtype="int32", name=k) for k in ID_INPUTS}
    >>> hidden = keras.layers.Embedding(10, 4)(inputs["token_ids"])
    >>> tagger = keras.Model(inputs, {"logits": keras.layers.Dense(3)(hidden)})
    >>> detect_task(tagger)
    'tagging'
    >>> detect_task(tagger, kind="tagging")
    'tagging'
    """
    if kind is None:
        kind = getattr(model, "kind", None) if getattr(model, "kind", None) in TASKS else None
    if kind is not None:
        if kind not in TASKS:
            raise ExportError(f"task kind {kind!r} cannot be exported; use one of "
                              f"{', '.join(TASKS)}")
        return kind
    shapes = [_probe_logits(model, length).shape for length in (5, 7)]
    if shapes[0].rank == 3:
        return "tagging"
    return "replaced_token" if [s[-1] for s in shapes] == [5, 7] else "classification"


def label_names(model, task: str, labels: Optional[Sequence[str]] = None,
                where: str = "labels") -> tuple:
    """The label names served for `task`, checked against the model's number of classes.

    Args:
      model: the Keras model.
      task: one of TASKS.
      labels: names in class-id order; None or empty numbers the classes "0", "1", ...
      where: what named the labels (`finetune.json`'s path), for the message.

    Returns:
      A tuple of str (empty for `replaced_token` and `regression`).

    Raises:
      ExportError: the count differs from the model's classes, or a name is empty, repeated
        or holds a line break (labels.txt has one name per line).

    Example:

    >>> inputs = {k: keras.Input((None,), dtype="int32", name=k) for k in ID_INPUTS}
    >>> cls = keras.layers.Embedding(10, 4)(inputs["token_ids"])[:, 0, :]
    >>> classifier = keras.Model(inputs, {"logits": keras.layers.Dense(2)(cls)})
    >>> label_names(classifier, "classification", ["负面", "positive"])
    ('负面', 'positive')
    >>> label_names(classifier, "classification")
    ('0', '1')
    """
    if task not in LABELLED_TASKS:
        return ()
    count = int(_probe_logits(model, 5).shape[-1])
    names = [str(n) for n in labels] if labels else [str(i) for i in range(count)]
    if len(names) != count:
        raise ExportError(f"{where} lists {len(names)} label names but the model has {count} "
                          f"{task} outputs; list one name per output, in id order")
    bad = [n for n in names if not n or "\n" in n or "\r" in n]
    if bad or len(set(names)) != len(names):
        what = f"label name {bad[0]!r} is empty or has a line break" if bad else \
            "label names repeat"
        raise ExportError(f"{where}: {what}; give each class a distinct one-line name")
    return tuple(names)


def head_outputs(model, features, task: str, labels: Sequence[str] = (),
                 names: bool = True) -> dict:
    """The named outputs of `model` on a batch of id features.

    Args:
      model: the Keras model.
      features: dict of int32 [B, S] `token_ids`, `segment_ids`, `padding_mask`.
      task: one of TASKS.
      labels: label names (from `label_names`) for `classification` and `tagging`.
      names: add the string outputs (`labels`, `label`, `tags`); False keeps only numeric
        outputs (TFLite).

    Example:

    >>> inputs = {k: keras.Input((None,), dtype="int32", name=k) for k in ID_INPUTS}
    >>> cls = keras.layers.Embedding(10, 4)(inputs["token_ids"])[:, 0, :]
    >>> classifier = keras.Model(inputs, {"logits": keras.layers.Dense(2)(cls)})
    >>> ones = np.ones((3, 6), "int32")
    >>> out = head_outputs(classifier, {"token_ids": ones, "segment_ids": 0 * ones,
    ...                                 "padding_mask": ones}, "classification", ["no", "yes"])
    >>> sorted(out), out["labels"].shape, out["label"].shape
    (['label', 'labels', 'logits', 'probabilities'], TensorShape([3, 2]), TensorShape([3]))
    """
    logits = _logits(model, features)
    if task == "replaced_token":
        return {"logits": logits, "replaced_probability": tf.sigmoid(logits)}
    if task == "regression":
        return {"logits": logits, "score": logits[:, 0]}
    if logits.shape[-1] == 1:
        probabilities = tf.sigmoid(logits)
    else:
        probabilities = tf.nn.softmax(logits, axis=-1)
    out = {"logits": logits, "probabilities": probabilities}
    if names:
        table = tf.constant([n.encode("utf-8") for n in labels], tf.string)
        # The name follows `probabilities` (not logits) so that a client's argmax over the
        # probabilities it received always points at the label it received.
        best = tf.gather(table, tf.argmax(probabilities, axis=-1, output_type=tf.int32))
        if task == "classification":
            out["labels"] = tf.tile(table[tf.newaxis, :], [tf.shape(logits)[0], 1])
            out["label"] = best
        else:
            out["tags"] = best
    return out


def ids_signature(seq_length=None):
    """TensorSpecs of the id inputs: [batch, seq_length] int32 (None = any)."""
    return [tf.TensorSpec([None, seq_length], tf.int32, name=name) for name in ID_INPUTS]


def make_ids_function(model, task: str, seq_length=None, *, labels: Sequence[str] = (),
                      names: bool = True):
    """tf.function (token_ids, segment_ids, padding_mask) -> named outputs.

    Args:
      model: the Keras model.
      task: one of TASKS.
      seq_length: fixed sequence length (TFLite), or None for any length (SavedModel).
      labels: label names (classification, tagging).
      names: add the string outputs (see `head_outputs`).
    """

    @tf.function(input_signature=ids_signature(seq_length))
    def serve_ids(token_ids, segment_ids, padding_mask):
        features = {"token_ids": token_ids, "segment_ids": segment_ids,
                    "padding_mask": padding_mask}
        return head_outputs(model, features, task, labels, names)

    return serve_ids


def _text_outputs(model, task, features, trim, labels, names):
    if trim:
        # Shortest width holding every row: short requests do not pay for max_seq_length.
        width = tf.maximum(tf.reduce_max(tf.reduce_sum(features["padding_mask"], axis=1)), 1)
        features = {k: v[:, :width] for k, v in features.items()}
    out = head_outputs(model, features, task, labels, names)
    if task in ("replaced_token", "tagging"):
        out["token_ids"] = features["token_ids"]
        out["padding_mask"] = features["padding_mask"]
    return out


def make_text_function(model, tokenizer, task: str, max_seq_length: int, *, pair=False,
                       trim=True, labels: Sequence[str] = (), names: bool = True):
    """tf.function over raw strings: tokenizes in-graph with `ElectraTokenizer.encode`.

    Args:
      model: the Keras model.
      tokenizer: the `ElectraTokenizer`.
      task: one of TASKS.
      max_seq_length: texts are truncated to this many word pieces ([CLS]/[SEP] included).
      pair: take `text` and `text_pair` (two segments) instead of `text` alone.
      trim: cut the padding columns beyond the longest row of the batch (SavedModel); False
        keeps the fixed [batch, max_seq_length] shape (TFLite).
      labels: label names (classification, tagging).
      names: add the string outputs (see `head_outputs`).
    """
    if pair:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([None], tf.string, name="text_pair")])
        def serve_pair(text, text_pair):
            features = tokenizer.encode(text, text_pair, max_seq_length=max_seq_length)
            return _text_outputs(model, task, features, trim, labels, names)

        return serve_pair

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_text(text):
        features = tokenizer.encode(text, max_seq_length=max_seq_length)
        # One segment: every segment id is 0. Stated as a constant because the TFLite
        # converter fails on the tokenizer's bool->int32 segment ids feeding the embedding
        # lookup's index check ('tfl.zeros_like' on i1); the values are identical.
        features["segment_ids"] = tf.zeros_like(features["token_ids"])
        return _text_outputs(model, task, features, trim, labels, names)

    return serve_text
