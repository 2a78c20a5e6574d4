"""Checks each TFLite variant against the Keras model it came from, on held-out inputs.

Figures per variant (all over real tokens, i.e. `padding_mask == 1`, of the held-out set,
which is corrupted as described in calibration.py):
  - `max_abs_logit_diff`, `max_abs_prob_diff`: against the Keras model.
  - `agreement_auc`: AUC of the variant's replaced-probabilities for predicting the Keras
    model's decisions, the Keras probability thresholded at 0.5. An untrained or weak model
    often puts every token on one side of 0.5, which leaves one class empty; the threshold
    is then the median of the Keras probabilities (recorded as `agreement_threshold`).
    1.0 means the variant ranks tokens exactly as the Keras model separates them.
  - `decision_agreement`: fraction of tokens on the same side of that threshold.
  - `disc_auc`: AUC of the variant's scores for the true replaced labels of the corrupted
    input; `keras_disc_auc` the same for Keras; `disc_auc_delta` = |difference|.
  - classifiers and taggers (over examples, resp. real tokens): `argmax_agreement`, the
    fraction where the variant's most probable class is the Keras model's, and
    `max_abs_logit_diff`, `max_abs_prob_diff`.
  - regression: `max_abs_logit_diff` (the score's), `relative_score_error` = that divided by
    the largest |Keras score|, taken as at least 1 (scores near zero are judged on the
    absolute error: quantization noise comes from the hidden states, not from the score's
    own size), `score_correlation` (Pearson, variant against Keras) and `keras_score_std`.
A variant passes when it meets its floor (FLOORS, CLASSIFIER_FLOORS, REGRESSION_FLOORS):
float32 must match within 1e-4; the quantized discriminators are held to agreement floors
measured with margin on trained and on random models (tests/test_export_tflite.py asserts
them); the fine-tuned floors were measured on tiny random models with input-sensitive
encoders (tests/test_export_finetuned.py). A quantized regressor passes when it either
reproduces the scores (`relative_score_error`) or keeps their order (`score_correlation`):
an int8 output cannot resolve finer than about 1/128 of the score magnitude, so a model
whose scores vary less than that (an untrained one) can only meet the first, while
full-integer noise on a model whose scores spread widely can exceed the first and still
leave the order intact. TFLite variants have numeric outputs only, so only numbers are
compared here; the SavedModel's string outputs are compared in saved_model.py.
"""

from __future__ import annotations

import json

import numpy as np

from electra_tf.export import serving, tflite
from electra_tf.files import atomic_write

# Floors per quantization: (metric, bound, "max" | "min").
FLOORS = {
    "none": ("max_abs_logit_diff", 1e-4, "max"),
    "float16": ("agreement_auc", 0.99, "min"),
    "dynamic": ("agreement_auc", 0.95, "min"),
    "int8": ("agreement_auc", 0.90, "min"),
}
# Classifiers and taggers.
CLASSIFIER_FLOORS = {
    "none": ("max_abs_logit_diff", 1e-4, "max"),
    "float16": ("argmax_agreement", 0.98, "min"),
    "dynamic": ("argmax_agreement", 0.9, "min"),
    "int8": ("argmax_agreement", 0.8, "min"),
}
# A list of floors: meeting any one of them passes.
REGRESSION_FLOORS = {
    "none": ("max_abs_logit_diff", 1e-4, "max"),
    "float16": [("relative_score_error", 0.01, "max"), ("score_correlation", 0.99, "min")],
    "dynamic": [("relative_score_error", 0.05, "max"), ("score_correlation", 0.95, "min")],
    "int8": [("relative_score_error", 0.1, "max"), ("score_correlation", 0.8, "min")],
}
REPORT_FILE = "verification.json"


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores averaged).

    Written with NumPy because scikit-learn is not a dependency of this stack.

    Args:
      labels: 0/1 array.
      scores: float array of the same size.

    Returns:
      The AUC, or NaN when one class is empty.
    """
    labels = np.asarray(labels).reshape(-1).astype(bool)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over runs of equal scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    rank_sum = ranks[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def replaced_token_metrics(keras_logits, variant_logits, mask, labels) -> dict:
    """Agreement figures of a per-token variant (see the module docstring).

    Args:
      keras_logits: float [B, S] of the Keras model.
      variant_logits: float [B, S] of the variant.
      mask: [B, S] padding mask (1 = real token).
      labels: [B, S] true replaced-token labels of the corrupted input.
    """
    mask = np.asarray(mask).astype(bool)
    k_logit = np.asarray(keras_logits, np.float64)[mask]
    v_logit = np.asarray(variant_logits, np.float64)[mask]
    k_prob, v_prob = 1 / (1 + np.exp(-k_logit)), 1 / (1 + np.exp(-v_logit))
    threshold = 0.5
    decisions = k_prob > threshold
    if decisions.all() or not decisions.any():
        threshold = float(np.median(k_prob))
        decisions = k_prob > threshold
    true_labels = np.asarray(labels)[mask]
    keras_auc, variant_auc = roc_auc(true_labels, k_prob), roc_auc(true_labels, v_prob)
    return {
        "tokens": int(mask.sum()),
        "max_abs_logit_diff": float(np.max(np.abs(k_logit - v_logit))),
        "max_abs_prob_diff": float(np.max(np.abs(k_prob - v_prob))),
        "agreement_threshold": threshold,
        "agreement_auc": roc_auc(decisions, v_prob),
        "decision_agreement": float(np.mean((v_prob > threshold) == decisions)),
        "disc_auc": variant_auc,
        "keras_disc_auc": keras_auc,
        "disc_auc_delta": float(abs(variant_auc - keras_auc)),
    }


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def classification_metrics(keras_logits, variant_logits, mask=None) -> dict:
    """Agreement figures of a classifier or tagger variant.

    Args:
      keras_logits: float [B, C] (classifier) or [B, S, C] (tagger) of the Keras model.
      variant_logits: the variant's, same shape.
      mask: for taggers, the [B, S] padding mask (1 = real token; only those count).

    Example:

    >>> keras_logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    >>> classification_metrics(keras_logits, [[1.5, 0.2], [0.3, 0.1]])["argmax_agreement"]
    0.5
    """
    k, v = np.asarray(keras_logits, np.float64), np.asarray(variant_logits, np.float64)
    if mask is not None:
        keep = np.asarray(mask).astype(bool)
        k, v = k[keep], v[keep]
    count = {"tokens" if mask is not None else "examples": int(k.shape[0])}
    return {
        **count,
        "max_abs_logit_diff": float(np.max(np.abs(k - v))),
        "max_abs_prob_diff": float(np.max(np.abs(_softmax(k) - _softmax(v)))),
        "argmax_agreement": float(np.mean(k.argmax(-1) == v.argmax(-1))),
    }


def regression_metrics(keras_logits, variant_logits) -> dict:
    """Agreement figures of a regression variant (scores are the single logit).

    Args:
      keras_logits: float [B, 1] (or [B]) of the Keras model.
      variant_logits: the variant's, same shape.

    Example:

    >>> m = regression_metrics([[0.5], [1.0], [4.0]], [[0.6], [1.1], [4.1]])
    >>> round(m["max_abs_logit_diff"], 6), round(m["relative_score_error"], 6)
    (0.1, 0.025)
    >>> round(m["score_correlation"], 6)
    1.0
    """
    k = np.asarray(keras_logits, np.float64).reshape(-1)
    v = np.asarray(variant_logits, np.float64).reshape(-1)
    if k.std() > 0 and v.std() > 0:
        correlation = float(np.corrcoef(k, v)[0, 1])
    else:
        # Constant scores carry no ranking: agreement is then exact equality.
        correlation = 1.0 if np.allclose(k, v, atol=1e-6) else 0.0
    worst = float(np.max(np.abs(k - v)))
    return {
        "examples": int(k.size),
        "max_abs_logit_diff": worst,
        "relative_score_error": worst / max(float(np.max(np.abs(k))), 1.0),
        "score_correlation": correlation,
        "keras_score_std": float(k.std()),
    }


def passes(metrics: dict, quantize: str, task: str = "replaced_token"):
    """(passed, floor description) of a variant's metrics against its floor.

    Args:
      metrics: the variant's figures (`verify_variant`).
      quantize: the variant (`none`, `float16`, `dynamic`, `int8`).
      task: one of `serving.TASKS` (tagging uses the classifier floors).

    Example:

    >>> passes({"argmax_agreement": 0.95}, "dynamic", "tagging")
    (True, 'argmax_agreement >= 0.9')
    >>> passes({"relative_score_error": 0.3, "score_correlation": 0.85}, "int8", "regression")
    (True, 'relative_score_error <= 0.1 or score_correlation >= 0.8')
    """
    floors = {"replaced_token": FLOORS, "regression": REGRESSION_FLOORS}.get(
        task, CLASSIFIER_FLOORS)[quantize]
    floors = floors if isinstance(floors, list) else [floors]
    ok = any(metrics[metric] <= bound if kind == "max" else metrics[metric] >= bound
             for metric, bound, kind in floors)
    return bool(ok), " or ".join(f"{metric} {'<=' if kind == 'max' else '>='} {bound}"
                                 for metric, bound, kind in floors)


def keras_outputs_on(model, features: dict, task: str) -> np.ndarray:
    """The Keras model's float32 logits for id features."""
    return serving.head_outputs(model, features, task, names=False)["logits"].numpy()


def verify_variant(interpreter, *, style: str, quantize: str, task: str, calibration,
                   keras_logits, keras_text_logits, keras_text_mask) -> dict:
    """Runs one interpreter on the held-out set and scores it against Keras.

    Args:
      interpreter: from `tflite.load_interpreter`.
      style: `ids` or `text`.
      quantize: the variant.
      task: one of `serving.TASKS`.
      calibration: the `CalibrationData` (held-out part used).
      keras_logits: Keras logits on `calibration.heldout` (corrupted ids).
      keras_text_logits: Keras logits on `calibration.heldout_texts` encoded.
      keras_text_mask: the padding mask of those encoded texts.
    """
    if style == "ids":
        out = tflite.run(interpreter, calibration.heldout, style="ids")
        mask, labels, reference = (calibration.heldout["padding_mask"],
                                   calibration.heldout_labels, keras_logits)
    else:
        out = tflite.run(interpreter, {"text": calibration.heldout_texts}, style="text")
        # Clean texts have no replaced tokens; the true-label AUC is only defined on ids.
        mask, labels, reference = keras_text_mask, np.zeros_like(keras_text_mask), \
            keras_text_logits
    if task == "replaced_token":
        metrics = replaced_token_metrics(reference, out["logits"], mask, labels)
    elif task == "regression":
        metrics = regression_metrics(reference, out["logits"])
    else:
        metrics = classification_metrics(reference, out["logits"],
                                         mask if task == "tagging" else None)
    ok, floor = passes(metrics, quantize, task)
    metrics.update(passed=ok, floor=floor)
    return metrics


def write_report(path: str, report: dict) -> None:
    """Writes the verification report JSON atomically."""
    def clean(value):
        # NaN (an undefined AUC) is not JSON: written as null.
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, float) and np.isnan(value):
            return None
        return value

    with atomic_write(path) as f:
        json.dump(clean(report), f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
