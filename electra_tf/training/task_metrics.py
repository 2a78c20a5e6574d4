"""Fine-tuning metrics: accuracy, binary F1, Matthews correlation, Pearson, Spearman and
entity-level precision/recall/F1 for tagging.

Written by hand with NumPy: together they are a few dozen lines, and scikit-learn, SciPy and
seqeval are test-only dependencies (`tests/test_task_metrics.py` checks every function against
them). Where a score is undefined (no predicted positives, constant input) it is 0.0, never
NaN, so that picking the best epoch by comparison always works.

Example:

>>> from electra_tf.data.tasks import task_spec
>>> compute_metrics(task_spec("mrpc"), [1, 0, 1, 1], [1, 0, 0, 1])
{'accuracy': 0.75, 'f1': 0.8}
"""

from __future__ import annotations

import numpy as np


def _pair(y_true, y_pred, dtype=None):
    a, b = np.asarray(y_true, dtype=dtype), np.asarray(y_pred, dtype=dtype)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"metrics need two 1-D sequences of one length, got shapes "
                         f"{a.shape} and {b.shape}")
    return a, b


def accuracy(y_true, y_pred) -> float:
    """The fraction of predictions equal to the truth (0.0 for no examples).

    Args:
      y_true: label ids (or any comparable values).
      y_pred: predictions, same length.

    Example:

    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    """
    a, b = _pair(y_true, y_pred)
    return float(np.mean(a == b)) if a.size else 0.0


def f1(y_true, y_pred, positive=1) -> float:
    """F1 of the positive class: 2 TP / (2 TP + FP + FN), 0.0 when that is 0 / 0.

    Args:
      y_true: label ids.
      y_pred: predicted ids, same length.
      positive: the id of the positive class.

    Example:

    >>> f1([1, 1, 0, 0], [1, 0, 1, 0])
    0.5
    """
    a, b = _pair(y_true, y_pred)
    tp = np.sum((a == positive) & (b == positive))
    wrong = np.sum((a == positive) != (b == positive))  # FP + FN.
    return float(2 * tp / (2 * tp + wrong)) if tp + wrong else 0.0


def matthews_corrcoef(y_true, y_pred) -> float:
    """Matthews correlation coefficient, multi-class (Gorodkin's R_K); 0.0 when undefined.

    Args:
      y_true: label ids.
      y_pred: predicted ids, same length.

    Example:

    >>> round(matthews_corrcoef([0, 0, 1, 1], [0, 1, 1, 1]), 6)
    0.57735
    """
    a, b = _pair(y_true, y_pred)
    classes, ids = np.unique(np.concatenate([a, b]), return_inverse=True)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.float64)
    np.add.at(confusion, (ids[:a.size], ids[a.size:]), 1.0)
    n = float(a.size)
    true_counts, pred_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    covariance = np.trace(confusion) * n - true_counts @ pred_counts
    variance_true = n * n - true_counts @ true_counts
    variance_pred = n * n - pred_counts @ pred_counts
    if variance_true * variance_pred == 0:  # One side is constant.
        return 0.0
    return float(covariance / np.sqrt(variance_true * variance_pred))


def pearson(x, y) -> float:
    """Pearson correlation; 0.0 when either side is constant.

    Args:
      x, y: numbers, same length.

    Example:

    >>> round(pearson([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]), 6)
    0.993399
    """
    a, b = _pair(x, y, np.float64)
    a, b = a - a.mean() if a.size else a, b - b.mean() if b.size else b
    scale = np.sqrt(np.sum(a * a) * np.sum(b * b))
    if scale == 0:
        return 0.0
    # Rounding can carry |r| a hair past 1 for perfectly correlated inputs.
    return float(np.clip(np.sum(a * b) / scale, -1.0, 1.0))


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    group = np.cumsum(starts_group) - 1
    first = np.flatnonzero(starts_group)               # 0-based position of each group
    last = np.append(first[1:], values.size) - 1       # ... and of its last member.
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = (first + last)[group] / 2.0 + 1.0
    return ranks


def spearman(x, y) -> float:
    """Spearman rank correlation (Pearson of the ranks, ties averaged); 0.0 if undefined.

    Args:
      x, y: numbers, same length.

    Example:

    >>> spearman([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 20.0, 40.0])
    0.9486832980505138
    """
    a, b = _pair(x, y, np.float64)
    return pearson(_ranks(a), _ranks(b))


def _split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") from "B-PER"; ("O", "") from "O"."""
    if tag == "O" or not tag:
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return (prefix[:1], kind) if kind else (tag[:1], tag[1:])


# When a chunk ends and starts, as CoNLL's conlleval script decides it from the previous
# and the current tag: (previous prefix, prefix) pairs, plus any change of type.
_ENDS_AFTER = {"E", "S"}
_ENDS_BEFORE = {("B", "B"), ("B", "S"), ("B", "O"), ("I", "B"), ("I", "S"), ("I", "O")}
_STARTS_AT = {"B", "S"}
_STARTS_AFTER = {("E", "E"), ("E", "I"), ("S", "E"), ("S", "I"), ("O", "E"), ("O", "I")}


def _entities(tags) -> set:
    """(type, first, last) of each chunk of one sentence's tags, as conlleval finds them."""
    chunks, start = set(), 0
    previous, previous_type = "O", ""
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, kind = _split_tag(tag)
        type_changed = kind != previous_type
        if (previous in _ENDS_AFTER or (previous, prefix) in _ENDS_BEFORE
                or (previous not in ("O", ".") and type_changed)):
            chunks.add((previous_type, start, i - 1))
        if (prefix in _STARTS_AT or (previous, prefix) in _STARTS_AFTER
                or (prefix not in ("O", ".") and type_changed)):
            start = i
        previous, previous_type = prefix, kind
    return chunks


def entity_scores(true_tag_seqs, pred_tag_seqs) -> dict:
    """Entity-level precision, recall and F1 over sentences, counted as conlleval does.

    An entity is a maximal chunk of one type: it begins at B- (or S-), or at an I-/E- that
    follows O or another type, so IOB1, IOB2 and IOBES tags all work. An entity counts as
    found only if its type and both ends match.

    Args:
      true_tag_seqs: the true tags, one list of tag names per sentence.
      pred_tag_seqs: the predicted tags, same shape.

    Returns:
      {"precision", "recall", "f1"}, each 0.0 where its denominator is 0.

    Example:

    >>> entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
    {'precision': 1.0, 'recall': 0.5, 'f1': 0.6666666666666666}
    """
    if len(true_tag_seqs) != len(pred_tag_seqs):
        raise ValueError(f"{len(true_tag_seqs)} true and {len(pred_tag_seqs)} predicted "
                         f"sentences; pass one tag sequence per sentence for each")
    n_true = n_pred = n_correct = 0
    for i, (true_tags, pred_tags) in enumerate(zip(true_tag_seqs, pred_tag_seqs)):
        if len(true_tags) != len(pred_tags):
            raise ValueError(f"sentence {i}: {len(true_tags)} true tags but "
                             f"{len(pred_tags)} predicted; predict one tag per word")
        true_chunks, pred_chunks = _entities(true_tags), _entities(pred_tags)
        n_true += len(true_chunks)
        n_pred += len(pred_chunks)
        n_correct += len(true_chunks & pred_chunks)
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_true if n_true else 0.0
    f1_score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1_score}


def compute_metrics(spec, y_true, y_pred) -> dict:
    """The metrics `spec.metrics` names, as floats.

    Args:
      spec: a `TaskSpec` (`electra_tf.data.tasks`).
      y_true, y_pred: label ids (classification; F1 is of id 1), floats (regression), or
        lists of tag-name sequences (tagging).

    Raises:
      ValueError: a metric name this module does not know.

    Example:

    >>> from electra_tf.data.tasks import task_spec
    >>> compute_metrics(task_spec("stsb"), [0.5, 2.0, 4.5, 3.0], [1.0, 2.5, 4.0, 2.0])
    {'pearson': 0.91..., 'spearman': 0.8}
    >>> compute_metrics(task_spec("tagging"), [["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    {'f1': 0.0, 'precision': 0.0, 'recall': 0.0}
    """
    if spec.kind == "tagging":
        scores = entity_scores(y_true, y_pred)
        functions = {name: (lambda a, b, n=name: scores[n]) for name in scores}
    else:
        functions = {"accuracy": accuracy, "f1": f1, "mcc": matthews_corrcoef,
                     "pearson": pearson, "spearman": spearman}
    unknown = [m for m in spec.metrics if m not in functions]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r} for task {spec.name}; known for a "
                         f"{spec.kind} task: {', '.join(sorted(functions))}")
    return {name: float(functions[name](y_true, y_pred)) for name in spec.metrics}
