"""SavedModel export for TensorFlow Serving: `OUT/NAME/VERSION/` with three signatures.

Signatures (all outputs float32 and named; any batch size):
  - `serving_default(text)`: raw strings [batch], tokenized in-graph by
    `ElectraTokenizer.encode` (tensorflow-text ops; TF Serving >= 2.20.0 bundles them,
    tensorflow/serving#2267), truncated to `max_seq_length` word pieces. Outputs are cut to
    the longest row of the batch.
  - `serving_pair(text, text_pair)`: two segments `[CLS] A [SEP] B [SEP]` (the longer
    segment is truncated first). A second signature rather than an optional input, because a
    SavedModel signature has no optional inputs and an empty string is a valid segment B.
  - `serve_ids(token_ids, segment_ids, padding_mask)`: int32 [batch, seq], any seq up to the
    model's `max_position_embeddings`.
Discriminator outputs: `logits`, `replaced_probability` (+ `token_ids`, `padding_mask` for the
raw-text signatures); classifier outputs: `logits`, `probabilities` (see serving.py).

Exported with `keras.export.ExportArchive` (the model and the tokenizer tracked), written to a
temporary directory beside the version directory, checked, then renamed into place, so TF
Serving never sees a half-written version.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from electra_tf.export import serving, warmup
from electra_tf.export.source import ExportError

SIGNATURES = ("serving_default", "serving_pair", "serve_ids")
DEFAULT_WARMUP_TEXTS = ("The quick brown fox jumps over the lazy dog.", "")


def next_version(base_dirs: Sequence[str]) -> int:
    """1 + the largest integer version directory in any of `base_dirs` (1 if none).

    Args:
      base_dirs: model base paths (`OUT/NAME`, `OUT/NAME.tflite`); missing ones are skipped.
    """
    versions = [0]
    for base in base_dirs:
        if os.path.isdir(base):
            versions += [int(n) for n in os.listdir(base) if re.fullmatch(r"\d+", n)]
    return max(versions) + 1


def temp_dir_beside(final_dir: str) -> str:
    """A fresh temporary directory next to `final_dir` (same filesystem: rename is atomic)."""
    parent = os.path.dirname(os.path.abspath(final_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(final_dir)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def build_export_archive(model, tokenizer, *, task: str, max_seq_length: int):
    """A `keras.export.ExportArchive` with the three serving signatures.

    Args:
      model: Keras model (inputs token_ids, segment_ids, padding_mask).
      tokenizer: its `ElectraTokenizer`.
      task: `replaced_token` or `classification` (see `serving.detect_task`).
      max_seq_length: truncation length of the raw-text signatures.
    """
    import keras  # pylint: disable=import-outside-toplevel

    archive = keras.export.ExportArchive()
    # The tokenizer holds the FastBertTokenizer's model buffer: tracked so the raw-string
    # endpoints can be saved (docs/architecture.md, "Facts about the stack").
    archive.track(model)
    archive.track(tokenizer)
    archive.add_endpoint(
        "serving_default",
        serving.make_text_function(model, tokenizer, task, max_seq_length))
    archive.add_endpoint(
        "serving_pair",
        serving.make_text_function(model, tokenizer, task, max_seq_length, pair=True))
    archive.add_endpoint("serve_ids", serving.make_ids_function(model, task))
    return archive


def warmup_requests(tokenizer, max_seq_length: int, texts=DEFAULT_WARMUP_TEXTS):
    """(signature, inputs) pairs: one request per signature, at batch 1 and batch len(texts)."""
    texts = list(texts)
    features = tokenizer.encode(texts, max_seq_length=max_seq_length)
    ids = {k: v.numpy().astype(np.int32) for k, v in features.items()}
    return [
        ("serving_default", {"text": np.array(texts[:1], dtype=object)}),
        ("serving_default", {"text": np.array(texts, dtype=object)}),
        ("serving_pair", {"text": np.array(texts, dtype=object),
                          "text_pair": np.array(texts[::-1], dtype=object)}),
        ("serve_ids", ids),
    ]


def export_saved_model(model, tokenizer, output_dir: str, *, name: str = "electra",
                       version: Optional[int] = None, max_seq_length: int = 128,
                       task: str = "auto", check_texts: Sequence[str] = DEFAULT_WARMUP_TEXTS,
                       extra_files: Optional[dict] = None) -> str:
    """Exports `model` with in-graph tokenization to `output_dir/name/version/`.

    Args:
      model: Keras model with inputs `token_ids`, `segment_ids`, `padding_mask`.
      tokenizer: the `ElectraTokenizer` it was trained with.
      output_dir: the TF Serving model root (`--model_base_path` is `output_dir/name`).
      name: the servable name (also written into the warm-up requests).
      version: integer version; None = next free one. An existing version is refused.
      max_seq_length: truncation length of the raw-text signatures.
      task: `auto`, `replaced_token` or `classification`.
      check_texts: texts the export is checked on (and warmed up with).
      extra_files: {name: bytes} written into `assets.extra/` (e.g. a verification report).

    Returns:
      The version directory.

    Raises:
      ExportError: the version exists, or the export does not reproduce the Keras model.
    """
    final_dir, tmp = prepare_version_dir(output_dir, name, version)
    try:
        write_saved_model_to(tmp, model, tokenizer, name=name, max_seq_length=max_seq_length,
                             task=task, check_texts=check_texts, extra_files=extra_files)
        os.rename(tmp, final_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final_dir


def prepare_version_dir(output_dir: str, name: str, version: Optional[int]):
    """(final version dir, temporary dir beside it); refuses an existing version."""
    base = os.path.join(output_dir, name)
    if version is None:
        version = next_version([base])
    final_dir = os.path.join(base, str(int(version)))
    if os.path.exists(final_dir):
        raise ExportError(f"{final_dir} already exists; pass another --version or leave it out "
                          "to take the next free one")
    return final_dir, temp_dir_beside(final_dir)


def write_saved_model_to(directory: str, model, tokenizer, *, name: str, max_seq_length: int,
                         task: str = "auto", check_texts=DEFAULT_WARMUP_TEXTS,
                         extra_files: Optional[dict] = None) -> dict:
    """Writes the SavedModel + warm-up file into `directory` and checks it against Keras.

    Returns the check's figures (max abs differences per signature).
    """
    if task == "auto":
        task = serving.detect_task(model)
    archive = build_export_archive(model, tokenizer, task=task, max_seq_length=max_seq_length)
    archive.write_out(directory, verbose=False)
    extra = os.path.join(directory, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    requests = warmup_requests(tokenizer, max_seq_length, check_texts)
    warmup_path = os.path.join(extra, warmup.WARMUP_FILE)
    warmup.write_warmup_requests(warmup_path, name, requests)
    # Parse the hand-built protos back: the same signatures and inputs must come out.
    parsed = warmup.read_warmup_requests(warmup_path)
    if [(spec, sorted(inputs)) for spec, inputs in parsed] != [
            ((name, sig), sorted(inputs)) for sig, inputs in requests]:
        raise ExportError(f"{warmup_path} did not parse back to the requests written; "
                          "report this as a bug")
    figures = check_saved_model(directory, model, tokenizer, task=task,
                                max_seq_length=max_seq_length, texts=check_texts)
    for file_name, data in (extra_files or {}).items():
        with open(os.path.join(extra, file_name), "wb") as f:
            f.write(data)
    return figures


def keras_reference(model, tokenizer, texts, *, task: str, max_seq_length: int,
                    text_pairs=None) -> dict:
    """What the Keras model answers for raw texts (encoded exactly as the export does)."""
    features = tokenizer.encode(list(texts), None if text_pairs is None else list(text_pairs),
                                max_seq_length=max_seq_length)
    out = {k: v.numpy() for k, v in serving.head_outputs(model, features, task).items()}
    out.update({k: v.numpy() for k, v in features.items()})
    return out


def check_saved_model(directory: str, model, tokenizer, *, task: str, max_seq_length: int,
                      texts=DEFAULT_WARMUP_TEXTS, tolerance: float = 1e-5) -> dict:
    """Reloads the SavedModel and compares every signature with the Keras model.

    Raises ExportError when an output differs by more than `tolerance`.
    """
    loaded = tf.saved_model.load(directory)
    texts = list(texts)
    ref = keras_reference(model, tokenizer, texts, task=task, max_seq_length=max_seq_length)
    pair_ref = keras_reference(model, tokenizer, texts, task=task,
                               max_seq_length=max_seq_length, text_pairs=texts[::-1])
    results = {
        "serving_default": (loaded.signatures["serving_default"](text=tf.constant(texts)), ref),
        "serving_pair": (loaded.signatures["serving_pair"](
            text=tf.constant(texts), text_pair=tf.constant(texts[::-1])), pair_ref),
        "serve_ids": (loaded.signatures["serve_ids"](
            **{k: tf.constant(ref[k]) for k in serving.ID_INPUTS}), ref),
    }
    figures = {}
    for signature, (got, want) in results.items():
        diff = compare_outputs({k: v.numpy() for k, v in got.items()}, want, task)
        figures[signature] = diff
        if diff > tolerance:
            raise ExportError(f"SavedModel signature {signature} differs from the Keras model by "
                              f"{diff:.3g} (> {tolerance}); report this as a bug")
    return figures


def compare_outputs(got: dict, want: dict, task: str) -> float:
    """Largest |difference| of logits/probabilities on real (non-padding) tokens."""
    worst = 0.0
    for key in ("logits", "replaced_probability", "probabilities"):
        if key not in got:
            continue
        g, w = np.asarray(got[key]), np.asarray(want[key])
        if task == "replaced_token":
            width = g.shape[1]
            w = w[:, :width]
            mask = np.asarray(want["padding_mask"])[:, :width].astype(bool)
            if not mask.any():
                continue
            g, w = g[mask], w[mask]
        worst = max(worst, float(np.max(np.abs(g - w))) if g.size else 0.0)
    return worst
