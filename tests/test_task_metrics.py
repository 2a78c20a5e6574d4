"""Fine-tuning metrics against scikit-learn, SciPy and seqeval (test-only dependencies)."""

import warnings

import numpy as np
import pytest
from scipy import stats
from seqeval import metrics as seqeval_metrics
from sklearn import metrics as sk

from electra_tf.data.tasks import task_spec
from electra_tf.training import task_metrics as tm

TOL = 1e-9


def test_classification_metrics_fixed_cases():
    y_true = [0, 1, 1, 0, 1, 1, 0, 0]
    y_pred = [0, 1, 0, 0, 1, 1, 1, 0]
    assert tm.accuracy(y_true, y_pred) == sk.accuracy_score(y_true, y_pred) == 0.75
    assert tm.f1(y_true, y_pred) == pytest.approx(sk.f1_score(y_true, y_pred), abs=TOL)
    assert tm.f1(y_true, y_pred, positive=0) == pytest.approx(
        sk.f1_score(y_true, y_pred, pos_label=0), abs=TOL)
    assert tm.matthews_corrcoef(y_true, y_pred) == pytest.approx(
        sk.matthews_corrcoef(y_true, y_pred), abs=TOL)
    # Undefined cases are 0.0, as scikit-learn gives them (with zero_division=0).
    assert tm.f1([0, 0], [0, 0]) == sk.f1_score([0, 0], [0, 0], zero_division=0.0) == 0.0
    assert tm.matthews_corrcoef([0, 1, 1], [1, 1, 1]) == 0.0
    assert tm.matthews_corrcoef([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0, abs=TOL)
    assert tm.accuracy([], []) == 0.0
    with pytest.raises(ValueError, match="one length"):
        tm.accuracy([0, 1], [0])


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_random(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(5, 300)), int(rng.integers(2, 6))
    y_true, y_pred = rng.integers(0, k, n), rng.integers(0, k, n)
    agree = rng.random(n) < 0.5  # Better than chance, as a trained model would be.
    y_pred[agree] = y_true[agree]
    assert tm.accuracy(y_true, y_pred) == pytest.approx(sk.accuracy_score(y_true, y_pred),
                                                        abs=TOL)
    assert tm.matthews_corrcoef(y_true, y_pred) == pytest.approx(
        sk.matthews_corrcoef(y_true, y_pred), abs=TOL)
    binary_true, binary_pred = y_true % 2, y_pred % 2
    assert tm.f1(binary_true, binary_pred) == pytest.approx(
        sk.f1_score(binary_true, binary_pred, zero_division=0.0), abs=TOL)
    assert tm.matthews_corrcoef(binary_true, binary_pred) == pytest.approx(
        sk.matthews_corrcoef(binary_true, binary_pred), abs=TOL)


def test_correlations_fixed_and_constant():
    x = [0.5, 2.0, 4.5, 3.0, 3.0, 1.0]
    y = [1.0, 2.5, 4.0, 2.0, 2.0, 1.0]
    assert tm.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=TOL)
    assert tm.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=TOL)
    assert tm.pearson(x, x) == pytest.approx(1.0, abs=TOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(stats.pearsonr(x, [2.0] * 6)[0])
    # SciPy's NaN would break "is this epoch better", so a constant side scores 0.0.
    assert tm.pearson(x, [2.0] * 6) == 0.0 and tm.spearman([1.0] * 6, y) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_correlations_random_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 400))
    x = rng.integers(0, 6, n).astype(float)  # Few distinct values: many ties.
    y = x + rng.normal(0.0, 2.0, n)
    y[: n // 3] = np.round(y[: n // 3])
    assert tm.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=TOL)
    assert tm.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=TOL)
    assert tm._ranks(x) == pytest.approx(stats.rankdata(x), abs=TOL)


def seqeval_scores(true_seqs, pred_seqs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on 0/0 and returns 0.
        return {"precision": seqeval_metrics.precision_score(true_seqs, pred_seqs),
                "recall": seqeval_metrics.recall_score(true_seqs, pred_seqs),
                "f1": seqeval_metrics.f1_score(true_seqs, pred_seqs)}


def assert_scores_equal(ours, theirs):
    assert set(ours) == {"precision", "recall", "f1"}
    for name in ours:
        assert ours[name] == pytest.approx(theirs[name], abs=TOL), name


def test_entity_scores_fixed_iob2_and_iob1():
    iob2_true = [["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O"], ["B-ORG", "I-ORG", "I-ORG"]]
    iob2_pred = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"], ["B-ORG", "I-ORG", "O"]]
    ours = tm.entity_scores(iob2_true, iob2_pred)
    assert ours == pytest.approx({"precision": 1 / 3, "recall": 1 / 4, "f1": 2 / 7}, abs=TOL)
    assert_scores_equal(ours, seqeval_scores(iob2_true, iob2_pred))
    # IOB1: I- after O (or after another type) starts an entity; B- only splits two of a type.
    iob1_true = [["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-MISC"]]
    iob1_pred = [["I-PER", "I-PER", "I-LOC", "I-LOC", "I-LOC", "I-MISC"]]
    assert_scores_equal(tm.entity_scores(iob1_true, iob1_pred),
                        seqeval_scores(iob1_true, iob1_pred))
    assert tm.entity_scores([["O", "O"]], [["O", "O"]]) == \
        {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    with pytest.raises(ValueError, match="one tag per word"):
        tm.entity_scores([["O", "O"]], [["O"]])


@pytest.mark.parametrize("scheme", ["iob2", "iob1", "iobes"])
@pytest.mark.parametrize("seed", range(4))
def test_entity_scores_random(scheme, seed):
    rng = np.random.default_rng(seed)
    prefixes = {"iob2": "BI", "iob1": "BII", "iobes": "BIES"}[scheme]
    tags = ["O", "O"] + [f"{p}-{t}" for p in prefixes for t in ("PER", "LOC", "MISC")]
    true_seqs = [[tags[i] for i in rng.integers(0, len(tags), n)]
                 for n in rng.integers(1, 15, 60)]
    # Predictions: the truth with about a third of the tags replaced at random.
    pred_seqs = [[t if rng.random() > 0.3 else tags[rng.integers(0, len(tags))] for t in s]
                 for s in true_seqs]
    assert_scores_equal(tm.entity_scores(true_seqs, pred_seqs),
                        seqeval_scores(true_seqs, pred_seqs))


def test_compute_metrics_gives_the_spec_names():
    assert tm.compute_metrics(task_spec("cola"), [0, 1, 1, 0], [0, 1, 0, 0]) == \
        {"mcc": pytest.approx(sk.matthews_corrcoef([0, 1, 1, 0], [0, 1, 0, 0]), abs=TOL)}
    got = tm.compute_metrics(task_spec("qqp"), np.array([1, 0, 1]), np.array([1, 1, 1]))
    assert got == {"accuracy": pytest.approx(2 / 3), "f1": pytest.approx(0.8)}
    assert all(type(v) is float for v in got.values())
    assert list(tm.compute_metrics(task_spec("mnli"), [0, 1, 2], [0, 2, 2])) == ["accuracy"]
    scores = tm.compute_metrics(task_spec("stsb"), [1.0, 2.0, 3.0], [1.5, 1.0, 3.5])
    assert list(scores) == ["pearson", "spearman"]
    assert scores["spearman"] == pytest.approx(stats.spearmanr([1, 2, 3], [1.5, 1, 3.5])[0])
    tagging = tm.compute_metrics(task_spec("tagging"), [["B-PER", "O"]], [["B-PER", "O"]])
    assert tagging == {"f1": 1.0, "precision": 1.0, "recall": 1.0}
    assert list(tm.compute_metrics(task_spec("classification"), [0], [0])) == ["accuracy"]
