"""SavedModel export for TensorFlow Serving: `OUT/NAME/VERSION/` with three signatures.

Signatures (numeric outputs float32, all named; any batch size):
  - `serving_default(text)`: raw strings [batch], tokenized in-graph by
    `ElectraTokenizer.encode` (tensorflow-text ops; TF Serving >= 2.20.0 bundles them,
    tensorflow/serving#2267), truncated to `max_seq_length` word pieces. Outputs are cut to
    the longest row of the batch.
  - `serving_pair(text, text_pair)`: two segments `[CLS] A [SEP] B [SEP]` (the longer
    segment is truncated first). A second signature rather than an optional input, because a
    SavedModel signature has no optional inputs and an empty string is a valid segment B.
  - `serve_ids(token_ids, segment_ids, padding_mask)`: int32 [batch, seq], any seq up to the
    model's `max_position_embeddings`.
Outputs by task (serving.py):
  - discriminator (`replaced_token`): `logits`, `replaced_probability` (+ `token_ids`,
    `padding_mask` on the raw-text signatures);
  - `classification`: `logits`, `probabilities`, `labels` (the label names, string [B, C], in
    the column order of `probabilities`), `label` (string [B], the most probable name);
  - `regression`: `logits`, `score` (float32 [B]);
  - `tagging`: `logits`, `probabilities` [B, S, C], `tags` (string [B, S]) (+ `token_ids`,
    `padding_mask` on the raw-text signatures).

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


def build_export_archive(model, tokenizer, *, task: str, max_seq_length: int,
                         labels: Sequence[str] = ()):
    """A `keras.export.ExportArchive` with the three serving signatures.

    Args:
      model: Keras model (inputs token_ids, segment_ids, padding_mask).
      tokenizer: its `ElectraTokenizer`.
      task: one of `serving.TASKS` (see `serving.detect_task`).
      max_seq_length: truncation length of the raw-text signatures.
      labels: label names of a classifier or tagger (`serving.label_names`).
    """
    import keras  # pylint: disable=import-outside-toplevel

    archive = keras.export.ExportArchive()
    # The tokenizer holds the FastBertTokenizer's model buffer: tracked so the raw-string
    # endpoints can be saved (docs/architecture.md, "Facts about the stack").
    archive.track(model)
    archive.track(tokenizer)
    archive.add_endpoint(
        "serving_default",
        serving.make_text_function(model, tokenizer, task, max_seq_length, labels=labels))
    archive.add_endpoint(
        "serving_pair",
        serving.make_text_function(model, tokenizer, task, max_seq_length, pair=True,
                                   labels=labels))
    archive.add_endpoint("serve_ids", serving.make_ids_function(model, task, labels=labels))
    return archive


def warmup_requests(tokenizer, max_seq_length: int, texts=DEFAULT_WARMUP_TEXTS):
    """(signature, inputs) pairs: one request per signature, each of batch len(texts).

    One is enough: every signature is one graph with dynamic batch and length dimensions,
    so a request of any shape initialises all of it.
    """
    texts = list(texts)
    features = tokenizer.encode(texts, max_seq_length=max_seq_length)
    ids = {k: v.numpy().astype(np.int32) for k, v in features.items()}
    return [
        ("serving_default", {"text": np.array(texts, dtype=object)}),
        ("serving_pair", {"text": np.array(texts, dtype=object),
                          "text_pair": np.array(texts[::-1], dtype=object)}),
        ("serve_ids", ids),
    ]


def export_saved_model(model, tokenizer, output_dir: str, *, name: str = "electra",
                       version: Optional[int] = None, max_seq_length: int = 128,
                       task: str = "auto", check_texts: Sequence[str] = DEFAULT_WARMUP_TEXTS,
                       extra_files: Optional[dict] = None,
                       labels: Optional[Sequence[str]] = None) -> str:
    """Exports `model` with in-graph tokenization to `output_dir/name/version/`.

    Args:
      model: Keras model with inputs `token_ids`, `segment_ids`, `padding_mask`.
      tokenizer: the `ElectraTokenizer` it was trained with.
      output_dir: the TF Serving model root (`--model_base_path` is `output_dir/name`).
      name: the servable name (also written into the warm-up requests).
      version: integer version; None = next free one. An existing version is refused.
      max_seq_length: truncation length of the raw-text signatures.
      task: `auto` or one of `serving.TASKS`.
      check_texts: texts the export is checked on (and warmed up with).
      extra_files: {name: bytes} written into `assets.extra/` (e.g. a verification report).
      labels: label names in class-id order (classification, tagging); None numbers them.

    Returns:
      The version directory.

    Raises:
      ExportError: the version exists, or the export does not reproduce the Keras model.
    """
    final_dir, tmp = prepare_version_dir(output_dir, name, version)
    try:
        write_saved_model_to(tmp, model, tokenizer, name=name, max_seq_length=max_seq_length,
                             task=task, check_texts=check_texts, extra_files=extra_files,
                             labels=labels)
        os.rename(tmp, final_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final_dir


def prepare_version_dir(output_dir: str, name: str, version: Optional[int]):
    """(final version dir, temporary dir beside it); refuses a `name` that is not one file
    name and an existing version, and removes the temporaries of dead exports there."""
    from electra_tf.export.choices import check_name  # pylint: disable=import-outside-toplevel
    from electra_tf.files import remove_stale_temporaries  # pylint: disable=import-outside-toplevel

    base = os.path.join(output_dir, check_name(name))
    remove_stale_temporaries(base)
    if version is None:
        version = next_version([base])
    final_dir = os.path.join(base, str(int(version)))
    if os.path.exists(final_dir):
        raise ExportError(f"{final_dir} already exists; pass another --version or leave it out "
                          "to take the next free one")
    return final_dir, temp_dir_beside(final_dir)


def write_saved_model_to(directory: str, model, tokenizer, *, name: str, max_seq_length: int,
                         task: str = "auto", check_texts=DEFAULT_WARMUP_TEXTS,
                         extra_files: Optional[dict] = None,
                         labels: Optional[Sequence[str]] = None) -> dict:
    """Writes the SavedModel + warm-up file into `directory` and checks it against Keras.

    Args:
      directory: where the SavedModel goes (a temporary directory; created).
      model: the Keras model.
      tokenizer: its `ElectraTokenizer`.
      name: servable name (written into the warm-up requests).
      max_seq_length: truncation length of the raw-text signatures.
      task: `auto` or one of `serving.TASKS`.
      check_texts: texts the export is checked on (and warmed up with).
      extra_files: {name: bytes} written into `assets.extra/`.
      labels: label names in class-id order (classification, tagging); None numbers them.

    Returns:
      The check's figures (max abs differences of the numeric outputs per signature).
    """
    if task == "auto":
        task = serving.detect_task(model)
    labels = serving.label_names(model, task, labels)
    archive = build_export_archive(model, tokenizer, task=task, max_seq_length=max_seq_length,
                                   labels=labels)
    archive.write_out(directory, verbose=False)
    extra = os.path.join(directory, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    requests = warmup_requests(tokenizer, max_seq_length, check_texts)
    warmup_path = os.path.join(extra, warmup.WARMUP_FILE)
    warmup.write_warmup_requests(warmup_path, name, requests)
    # Parse the records back: the same signatures and inputs must come out.
    parsed = warmup.read_warmup_requests(warmup_path)
    if [(spec, sorted(inputs)) for spec, inputs in parsed] != [
            ((name, sig), sorted(inputs)) for sig, inputs in requests]:
        raise ExportError(f"{warmup_path} did not parse back to the requests written; "
                          "report this as a bug")
    figures = check_saved_model(directory, model, tokenizer, task=task,
                                max_seq_length=max_seq_length, texts=check_texts, labels=labels)
    for file_name, data in (extra_files or {}).items():
        with open(os.path.join(extra, file_name), "wb") as f:
            f.write(data)
    return figures


def keras_reference(model, tokenizer, texts, *, task: str, max_seq_length: int,
                    text_pairs=None, labels: Sequence[str] = ()) -> dict:
    """What the Keras model answers for raw texts (encoded exactly as the export does).

    Args:
      model: the Keras model.
      tokenizer: its `ElectraTokenizer`.
      texts: raw strings (segment A).
      task: one of `serving.TASKS`.
      max_seq_length: the encoding length (outputs are not trimmed).
      text_pairs: raw strings of segment B, or None.
      labels: label names (classification, tagging); string outputs come back as bytes.
    """
    features = tokenizer.encode(list(texts), None if text_pairs is None else list(text_pairs),
                                max_seq_length=max_seq_length)
    labels = labels or serving.label_names(model, task)
    out = {k: v.numpy() for k, v in serving.head_outputs(model, features, task,
                                                         labels).items()}
    out.update({k: v.numpy() for k, v in features.items()})
    return out


def check_saved_model(directory: str, model, tokenizer, *, task: str, max_seq_length: int,
                      texts=DEFAULT_WARMUP_TEXTS, tolerance: float = 1e-5,
                      labels: Sequence[str] = ()) -> dict:
    """Reloads the SavedModel and compares every signature with the Keras model.

    Numeric outputs must agree within `tolerance`; string outputs must be equal (see
    `compare_outputs`).

    Args:
      directory: the written SavedModel.
      model: the Keras model it came from.
      tokenizer: its `ElectraTokenizer`.
      task: one of `serving.TASKS`.
      max_seq_length: truncation length of the raw-text signatures.
      texts: the texts to check on (pairs are the same texts reversed).
      tolerance: largest allowed absolute difference.
      labels: label names (classification, tagging).

    Returns:
      {signature: max abs difference of its numeric outputs}.

    Raises:
      ExportError: a difference above `tolerance`, or a string output that differs.
    """
    loaded = tf.saved_model.load(directory)
    texts = list(texts)
    kwargs = dict(task=task, max_seq_length=max_seq_length, labels=labels)
    ref = keras_reference(model, tokenizer, texts, **kwargs)
    pair_ref = keras_reference(model, tokenizer, texts, text_pairs=texts[::-1], **kwargs)
    results = {
        "serving_default": (loaded.signatures["serving_default"](text=tf.constant(texts)), ref),
        "serving_pair": (loaded.signatures["serving_pair"](
            text=tf.constant(texts), text_pair=tf.constant(texts[::-1])), pair_ref),
        "serve_ids": (loaded.signatures["serve_ids"](
            **{k: tf.constant(ref[k]) for k in serving.ID_INPUTS}), ref),
    }
    figures = {}
    for signature, (got, want) in results.items():
        got = {k: v.numpy() for k, v in got.items()}
        diff, differing = compare_outputs(got, want, task, tolerance=tolerance)
        figures[signature] = diff
        if diff > tolerance:
            raise ExportError(f"SavedModel signature {signature} differs from the Keras model by "
                              f"{diff:.3g} (> {tolerance}); report this as a bug")
        if differing:
            raise ExportError(f"SavedModel signature {signature} answers other {differing[0]} "
                              "than the Keras model; report this as a bug")
    return figures


def _per_token(task: str) -> bool:
    return task in ("replaced_token", "tagging")


def compare_outputs(got: dict, want: dict, task: str, tolerance: float = 1e-5):
    """How far the served outputs are from the Keras ones.

    Numeric outputs (`logits`, `replaced_probability`, `probabilities`, `score`): the largest
    |difference|, over real (non-padding) tokens for per-token tasks. String outputs
    (`labels`, `label`, `tags`) must be equal, except where the Keras model's two best
    classes are within `tolerance` of each other: there either name is right.

    Args:
      got: the served outputs (NumPy; trimmed to the batch's longest row for raw text).
      want: `keras_reference` outputs (full `max_seq_length` width).
      task: one of `serving.TASKS`.
      tolerance: the numeric tolerance (also what counts as a tie).

    Returns:
      (largest numeric difference, names of the string outputs that differ).

    Example:

    >>> want = {"logits": np.array([[0.0, 2.0]]), "probabilities": np.array([[0.1, 0.9]]),
    ...         "labels": np.array([[b"no", b"yes"]]), "label": np.array([b"yes"])}
    >>> got = dict(want, logits=np.array([[0.0, 2.0 + 2 ** -20]]))
    >>> compare_outputs(got, want, "classification")
    (9.5367431640625e-07, [])
    >>> compare_outputs(dict(got, label=np.array([b"no"])), want, "classification")[1]
    ['label']
    """
    mask = None
    if _per_token(task):
        width = np.asarray(got["logits"]).shape[1]
        mask = np.asarray(want["padding_mask"])[:, :width].astype(bool)

    def aligned(key):
        g, w = np.asarray(got[key]), np.asarray(want[key])
        if mask is not None:
            w = w[:, :g.shape[1]]
            g, w = g[mask], w[mask]
        return g, w

    worst = 0.0
    for key in ("logits", "replaced_probability", "probabilities", "score"):
        if key not in got:
            continue
        g, w = aligned(key)
        if g.size:
            worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - w))))
    differing = []
    for key in ("labels", "label", "tags"):
        if key not in got and key not in want:
            continue
        if key not in got or key not in want:
            differing.append(key)
            continue
        g, w = aligned(key)
        if g.shape != w.shape:
            differing.append(key)
            continue
        unequal = g != w
        if key != "labels" and unequal.any():
            probs = np.sort(aligned("probabilities")[1], axis=-1)
            tied = probs[..., -1] - probs[..., -2] <= tolerance if probs.shape[-1] > 1 else \
                np.zeros(unequal.shape, bool)
            unequal &= ~tied
        if unequal.any():
            differing.append(key)
    return worst, differing
