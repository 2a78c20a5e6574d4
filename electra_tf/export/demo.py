"""Show which tokens an exported discriminator thinks were replaced (`make demo`).

Runs the raw-string SavedModel signature and the raw-string dynamic-range TFLite model on an
original sentence and on a copy with a word swapped, and prints each word piece with its
replaced-token probability side by side.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from electra_tf.export.source import ExportError

VOCAB_FILE = "vocab.txt"


def _vocab_near(*paths) -> list:
    for path in paths:
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return f.read().split("\n")[:-1]
    raise ExportError(f"no {VOCAB_FILE} in {' or '.join(p for p in paths if p)}; pass the "
                      "directories written by electra_tf.export")


def demo_replaced_tokens(export_dir: Optional[str], tflite_path: Optional[str], sentence: str,
                         swapped_sentence: str, *, print_fn=print) -> dict:
    """Per-token replaced probabilities of two sentences from the SavedModel and TFLite model.

    Args:
      export_dir: a SavedModel version directory (`OUT/NAME/VERSION`), or None to skip it.
      tflite_path: a raw-string TFLite model (`..._text_dynamic_int8.tflite`), or None.
      sentence: the original sentence.
      swapped_sentence: the same sentence with a word replaced.
      print_fn: where the table goes (None: print nothing).

    Returns:
      {"saved_model" | "tflite": [[(token, probability), ...] per sentence]}.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_text  # pylint: disable=import-outside-toplevel,unused-import  # registers the tokenizer ops

    texts = [sentence, swapped_sentence]
    results = {}
    if export_dir:
        vocab = _vocab_near(os.path.join(export_dir, "assets.extra", VOCAB_FILE))
        out = tf.saved_model.load(export_dir).signatures["serving_default"](
            text=tf.constant(texts))
        results["saved_model"] = _rows(vocab, {k: v.numpy() for k, v in out.items()})
    if tflite_path:
        from electra_tf.export import tflite  # pylint: disable=import-outside-toplevel

        vocab = _vocab_near(os.path.join(os.path.dirname(tflite_path), VOCAB_FILE))
        out = tflite.run(tflite.load_interpreter(tflite_path), {"text": texts}, style="text")
        results["tflite"] = _rows(vocab, out)
    if print_fn:
        for source, rows in results.items():
            for text, row in zip(texts, rows):
                print_fn(f"[{source}] {text}")
                print_fn("  " + " ".join(f"{tok}:{p:.2f}" for tok, p in row))
    return results


def _rows(vocab, out) -> list:
    rows = []
    for ids, mask, probs in zip(out["token_ids"], out["padding_mask"],
                                out["replaced_probability"]):
        keep = np.asarray(mask) > 0
        rows.append([(vocab[int(i)], float(p)) for i, p in zip(ids[keep], probs[keep])])
    return rows
