"""TFLite variants: verified against Keras at export time (report floors), run in a fresh
process by ai-edge-litert with the TF Text ops, AUC and corruption against NumPy references."""

import itertools
import json
import os

import numpy as np
import pytest

from electra_tf.export import pipeline, tflite, verify
from electra_tf.export.calibration import corrupt, load_calibration_data
from electra_tf.export.source import load_export_source
from test_export_support import make_model_dir, make_tfrecords, run_fresh_python

TEXTS = ["the quick brown fox jumps over the lazy dog", "", " ".join(["a cat sat"] * 50)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfl")
    source = load_export_source(make_model_dir(str(root / "run")))
    # Representative data from pretraining TFRecords (with their sidecar), as the CLI does.
    pattern = make_tfrecords(str(root / "data"), source.tokenizer, source.max_seq_length)
    report = pipeline.export_all(source, str(root / "out"), formats="tflite",
                                 representative_data=pattern, num_examples=16,
                                 log=lambda _: None)
    return source, report, root


def test_every_variant_written_and_meets_its_floor(exported):
    _, report, _ = exported
    variants = report["tflite"]["variants"]
    assert sorted(variants) == sorted(f"{s}_{v}" for s, v in itertools.product(
        ("ids", "text"), ("float32", "float16", "dynamic_int8", "int8")))
    on_disk = json.load(open(os.path.join(report["paths"]["tflite"], verify.REPORT_FILE)))
    assert on_disk["passed"] and on_disk["data_source"].startswith("tfrecords:")
    for key, m in variants.items():
        assert os.path.exists(os.path.join(report["paths"]["tflite"], m["file"]))
        assert m["passed"], (key, m)
        assert m["tokens"] > 100
    for style in ("ids", "text"):
        assert variants[f"{style}_float32"]["max_abs_logit_diff"] <= 1e-4
        assert variants[f"{style}_float16"]["agreement_auc"] >= 0.99
        assert variants[f"{style}_dynamic_int8"]["agreement_auc"] >= 0.95
        assert variants[f"{style}_int8"]["agreement_auc"] >= 0.90
    # Corrupted ids carry true labels: each variant's discriminator AUC is that of Keras.
    for q in ("float32", "float16", "dynamic_int8"):
        assert variants[f"ids_{q}"]["disc_auc_delta"] <= 0.01
    assert variants["ids_int8"]["disc_auc_delta"] <= 0.05
    # Quantized weights are smaller than float32 ones.
    assert variants["ids_dynamic_int8"]["bytes"] < 0.8 * variants["ids_float32"]["bytes"]
    # A discriminator has no label names: no labels.txt, no label keys in the report.
    assert tflite.LABELS_FILE not in os.listdir(report["paths"]["tflite"])
    assert "labels" not in on_disk and on_disk["task"] == "replaced_token"


def test_fresh_litert_process_matches_keras(exported):
    source, report, root = exported
    length = source.max_seq_length
    enc = {k: v.numpy() for k, v in source.tokenizer.encode(TEXTS, max_seq_length=length).items()}
    want = verify.keras_outputs_on(source.model, enc, "replaced_token")
    np.savez(root / "ids.npz", **enc)
    directory = report["paths"]["tflite"]
    run_fresh_python(f"""
        import numpy as np
        from ai_edge_litert.interpreter import InterpreterWithCustomOps
        from tensorflow_text import tflite_registrar
        out = {{}}
        for style, sig, feed in (
                ("text", "serve_text", {{"text": np.array({TEXTS!r}, dtype=bytes)}}),
                ("ids", "serve_ids", dict(np.load({str(root / 'ids.npz')!r})))):
            it = InterpreterWithCustomOps(
                custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS,
                model_path={directory!r} + "/electra_" + style + "_float32.tflite")
            for k, v in it.get_signature_runner(sig)(**feed).items():
                out[style + "." + k] = v
        np.savez({str(root / 'lite.npz')!r}, **out)
        """, cwd=str(root))
    lite = dict(np.load(root / "lite.npz"))
    mask = enc["padding_mask"].astype(bool)
    assert lite["text.logits"].shape == (3, length)  # fixed length; long text truncated
    np.testing.assert_array_equal(lite["text.token_ids"], enc["token_ids"])
    for style in ("text", "ids"):
        np.testing.assert_allclose(lite[f"{style}.logits"][mask], want[mask], atol=1e-4)


def test_batch_is_resizable_on_ids_models(exported):
    source, report, _ = exported
    path = os.path.join(report["paths"]["tflite"], "electra_ids_dynamic_int8.tflite")
    interpreter = tflite.load_interpreter(path)
    for batch in (1, 5):
        enc = {k: v.numpy() for k, v in source.tokenizer.encode(
            ["a cat sat on the mat"] * batch, max_seq_length=source.max_seq_length).items()}
        out = tflite.run(interpreter, enc)
        assert out["logits"].shape == (batch, source.max_seq_length)
        assert out["replaced_probability"].dtype == np.float32


def test_roc_auc_matches_pairwise_definition():
    rng = np.random.default_rng(1)
    for _ in range(20):
        labels = rng.integers(0, 2, 60)
        scores = np.round(rng.random(60), 1)  # many ties
        pos, neg = scores[labels == 1], scores[labels == 0]
        pairwise = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
        assert verify.roc_auc(labels, scores) == pytest.approx(pairwise, abs=1e-12)
    assert np.isnan(verify.roc_auc([1, 1], [0.2, 0.3]))
    # Agreement AUC falls back to the median when Keras puts every token below 0.5.
    logits = np.linspace(-5, -1, 40).reshape(2, 20)
    m = verify.replaced_token_metrics(logits, logits, np.ones_like(logits), np.zeros_like(logits))
    assert m["agreement_auc"] == 1.0 and m["agreement_threshold"] < 0.5
    assert m["max_abs_logit_diff"] == 0.0


def test_corruption_rate_and_labels(exported):
    source, _, _ = exported
    tok = source.tokenizer
    enc = {k: v.numpy() for k, v in tok.encode(
        [" ".join(["the quick brown fox"] * 10)] * 50, max_seq_length=48).items()}
    corrupted, labels = corrupt(enc, tok, rate=0.15, seed=3)
    replaceable = enc["padding_mask"].astype(bool) & (enc["token_ids"] > 4)
    n = replaceable.sum()
    rate = labels.sum() / n
    # Binomial(n, 0.15 * (1 - 1/V)) within 4 sigma.
    p = 0.15 * (1 - 1 / (tok.vocab_size - 5))
    assert abs(rate - p) < 4 * np.sqrt(p * (1 - p) / n)
    assert not labels[~replaceable].any()
    assert (corrupted["token_ids"] != enc["token_ids"]).astype(int).tolist() == labels.tolist()
    data = load_calibration_data(tok, 16, texts=["a b c d", "e f g h"] * 4, num_examples=4)
    assert data.calibration["token_ids"].shape == (4, 16) and len(data.heldout_texts) == 4
    # Even examples calibrate, odd ones verify: the two sets never share an example.
    assert set(data.calibration_texts) == {"a b c d"} and set(data.heldout_texts) == {"e f g h"}


def test_fine_tuned_metrics_and_floors():
    rng = np.random.default_rng(2)
    keras_logits = rng.normal(size=(4, 10, 3))
    mask = np.zeros((4, 10), int)
    mask[:, :6] = 1
    noisy = keras_logits.copy()
    noisy[:, 6:] = -keras_logits[:, 6:]  # padding positions disagree and must not count
    m = verify.classification_metrics(keras_logits, noisy, mask)
    assert m == {"tokens": 24, "max_abs_logit_diff": 0.0, "max_abs_prob_diff": 0.0,
                 "argmax_agreement": 1.0}
    assert verify.passes(m, "int8", "tagging") == (True, "argmax_agreement >= 0.8")
    # Regression: near-constant scores (an untrained model) pass on the relative error even
    # though an int8 output cannot resolve them (correlation 0) ...
    scores = 2.0 + 0.001 * rng.normal(size=(16, 1))
    flat = verify.regression_metrics(scores, np.full_like(scores, 2.001))
    assert flat["score_correlation"] == 0.0 and verify.passes(flat, "int8", "regression")[0]
    # ... widely spread scores pass on their order despite a larger error ...
    spread = rng.normal(size=(16, 1))
    ranked = verify.regression_metrics(spread, spread * 1.5)
    assert ranked["relative_score_error"] > 0.1 and verify.passes(ranked, "int8",
                                                                   "regression")[0]
    # ... and a variant that does neither fails.
    shuffled = verify.regression_metrics(spread, rng.permutation(spread))
    assert not verify.passes(shuffled, "int8", "regression")[0]
