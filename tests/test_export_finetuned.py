"""Exporting fine-tuned model dirs: label names, scores and tags served by the SavedModel,
numeric TFLite variants with labels.txt, TF Serving requests built with its own Python API,
and the binary end to end."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from electra_tf.export import pipeline, saved_model, serving, tflite, verify, warmup
from electra_tf.export.calibration import load_calibration_data
from electra_tf.export.source import ExportError, load_export_source
from test_export_support import (SENTENCES, make_finetuned_dir, make_model_dir, run_cli,
                                 vocab_tokens)

CLASS_NAMES = ["负面", "positive"]
TAG_NAMES = ["O", "B-LOC", "I-LOC"]
# Chinese characters in the vocabulary: each ideograph is its own word piece.
TOKENS = vocab_tokens(extra=("负", "面", "好", "很", "北", "京"))
TEXTS = sorted(set(SENTENCES)) + ["很好", "北京 is a big red house", "负面", ""]
PAIRS = TEXTS[::-1]
LENGTH = 20  # finetune.json's max_seq_length; the config says 24


def _export(root, kind, labels, *, formats, quantize="none", styles="ids",
            input_sensitive=False, seed=0):
    # Seeds are fixed: full-integer int8 on a tiny random model is far noisier than on a
    # trained one, and some initialisations miss the int8 floors (strict export refuses
    # them, as it should); these meet every floor with a wide margin.
    model_dir = make_finetuned_dir(str(root / "run"), kind, labels, tokens=TOKENS,
                                   max_seq_length=LENGTH, input_sensitive=input_sensitive,
                                   seed=seed)
    source = load_export_source(model_dir)
    calibration = load_calibration_data(source.tokenizer, source.max_seq_length,
                                        texts=SENTENCES, num_examples=16)
    report = pipeline.export_all(source, str(root / "out"), formats=formats,
                                 quantize=quantize, styles=styles, calibration=calibration,
                                 log=lambda _: None)
    return source, report


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("cls"), "classification", CLASS_NAMES,
                   formats="saved_model", input_sensitive=True)


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("reg"), "regression", [], formats="all",
                   quantize="none,int8")


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("tag"), "tagging", TAG_NAMES, formats="all",
                   quantize="none,dynamic,int8", styles="ids,text", seed=4)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    source = load_export_source(make_model_dir(str(root / "run")))
    calibration = load_calibration_data(source.tokenizer, source.max_seq_length,
                                        texts=SENTENCES, num_examples=4)
    report = pipeline.export_all(source, str(root / "out"), formats="saved_model",
                                 calibration=calibration, log=lambda _: None)
    return source, report


def keras_logits(source, texts, pairs=None):
    features = source.tokenizer.encode(texts, pairs, max_seq_length=source.max_seq_length)
    out = source.model({k: v for k, v in features.items()}, training=False)["logits"]
    return out.numpy(), {k: v.numpy() for k, v in features.items()}


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def decode(array):
    return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(np.asarray(array))


def signature_calls(source, texts, pairs):
    """(signature, kwargs) of each SavedModel signature on the same texts."""
    ids = source.tokenizer.encode(texts, max_seq_length=source.max_seq_length)
    return [("serving_default", {"text": tf.constant(texts)}),
            ("serving_pair", {"text": tf.constant(texts), "text_pair": tf.constant(pairs)}),
            ("serve_ids", {k: ids[k] for k in serving.ID_INPUTS})]


def test_source_reads_finetune_json(classifier):
    source, report = classifier
    assert (source.task, source.labels) == ("classification", tuple(CLASS_NAMES))
    assert source.max_seq_length == LENGTH and source.finetune["task"] == "sst2"
    assert type(source.model).__name__ == "ElectraTaskModel"
    written = json.load(open(os.path.join(report["paths"]["saved_model"], "assets.extra",
                                          verify.REPORT_FILE), encoding="utf-8"))
    assert (written["task"], written["labels"], written["finetune_task"]) == (
        "classification", CLASS_NAMES, "sst2")


def test_classifier_signatures_return_label_names(classifier):
    source, report = classifier
    loaded = tf.saved_model.load(report["paths"]["saved_model"])
    seen = set()
    for signature, kwargs in signature_calls(source, TEXTS, PAIRS):
        out = {k: v.numpy() for k, v in loaded.signatures[signature](**kwargs).items()}
        assert sorted(out) == ["label", "labels", "logits", "probabilities"], signature
        logits, _ = keras_logits(source, TEXTS, PAIRS if signature == "serving_pair" else None)
        np.testing.assert_allclose(out["logits"], logits, atol=1e-5)
        np.testing.assert_allclose(out["probabilities"], softmax(logits), atol=1e-5)
        assert decode(out["labels"]).tolist() == [CLASS_NAMES] * len(TEXTS)
        want = [CLASS_NAMES[i] for i in out["probabilities"].argmax(-1)]
        assert decode(out["label"]).tolist() == want
        seen |= set(want)
    # The texts fall on both sides of the boundary, so each name is checked as an answer.
    assert seen == set(CLASS_NAMES)


def test_regression_returns_score(regressor):
    source, report = regressor
    loaded = tf.saved_model.load(report["paths"]["saved_model"])
    for signature, kwargs in signature_calls(source, TEXTS, PAIRS):
        out = {k: v.numpy() for k, v in loaded.signatures[signature](**kwargs).items()}
        assert sorted(out) == ["logits", "score"], signature
        logits, _ = keras_logits(source, TEXTS, PAIRS if signature == "serving_pair" else None)
        assert out["score"].shape == (len(TEXTS),) and out["score"].dtype == np.float32
        np.testing.assert_allclose(out["score"], logits[:, 0], atol=1e-5)
    variants = report["tflite"]["variants"]
    assert sorted(variants) == ["ids_float32", "ids_int8"]
    assert all(m["passed"] for m in variants.values())
    assert {"relative_score_error", "score_correlation"} <= set(variants["ids_int8"])
    assert variants["ids_float32"]["max_abs_logit_diff"] <= 1e-4
    assert tflite.LABELS_FILE not in os.listdir(report["paths"]["tflite"])
    out = tflite.run(tflite.load_interpreter(os.path.join(
        report["paths"]["tflite"], "electra_ids_float32.tflite")), keras_logits(source, TEXTS)[1])
    assert sorted(out) == ["logits", "score"]


def test_tagger_returns_tags_per_word_piece(tagger):
    source, report = tagger
    loaded = tf.saved_model.load(report["paths"]["saved_model"])
    for signature, kwargs in signature_calls(source, TEXTS, PAIRS):
        out = {k: v.numpy() for k, v in loaded.signatures[signature](**kwargs).items()}
        text_outputs = ["padding_mask", "token_ids"] if signature != "serve_ids" else []
        assert sorted(out) == sorted(["logits", "probabilities", "tags"] + text_outputs)
        logits, features = keras_logits(source, TEXTS,
                                        PAIRS if signature == "serving_pair" else None)
        width = out["tags"].shape[1]
        assert out["tags"].shape == (len(TEXTS), width) == out["logits"].shape[:2]
        mask = features["padding_mask"][:, :width].astype(bool)
        if text_outputs:
            np.testing.assert_array_equal(out["padding_mask"], features["padding_mask"][:, :width])
        tags = decode(out["tags"])
        assert set(tags.ravel()) <= set(TAG_NAMES)
        np.testing.assert_array_equal(tags, np.array(TAG_NAMES, object)[
            out["probabilities"].argmax(-1)])
        np.testing.assert_allclose(out["probabilities"][mask],
                                   softmax(logits[:, :width])[mask], atol=1e-5)
    directory = report["paths"]["tflite"]
    with open(os.path.join(directory, tflite.LABELS_FILE), encoding="utf-8") as f:
        assert f.read().splitlines() == TAG_NAMES
    variants = report["tflite"]["variants"]
    for key, m in variants.items():
        assert m["passed"] and m["tokens"] > 50, (key, m)
    for style in ("ids", "text"):
        assert variants[f"{style}_float32"]["max_abs_logit_diff"] <= 1e-4
        assert variants[f"{style}_dynamic_int8"]["argmax_agreement"] >= 0.9
        assert variants[f"{style}_int8"]["argmax_agreement"] >= 0.8
    # TFLite keeps numeric outputs only; the names are in labels.txt.
    out = tflite.run(tflite.load_interpreter(os.path.join(
        directory, "electra_text_float32.tflite")), {"text": TEXTS})
    assert sorted(out) == ["logits", "padding_mask", "probabilities", "token_ids"]
    assert out["probabilities"].shape == (len(TEXTS), LENGTH, len(TAG_NAMES))


def _predict_request(name, signature, inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    # Through the wire format, as TF Serving receives it.
    return predict_pb2.PredictRequest.FromString(request.SerializeToString())


@pytest.mark.parametrize("which", ["pretrained", "classifier"])
def test_predict_request_for_every_signature(which, request):
    source, report = request.getfixturevalue(which)
    loaded = tf.saved_model.load(report["paths"]["saved_model"])
    texts = ["the quick brown fox", "很好 a cat sat on the mat", ""]
    pairs = ["a lazy dog", "", "北京"]
    ids = {k: v.numpy() for k, v in source.tokenizer.encode(
        texts, max_seq_length=source.max_seq_length).items()}
    calls = {"serving_default": ({"text": np.array(texts, object)}, None),
             "serving_pair": ({"text": np.array(texts, object),
                               "text_pair": np.array(pairs, object)}, pairs),
             "serve_ids": (ids, None)}
    assert set(calls) == set(saved_model.SIGNATURES) <= set(loaded.signatures)
    task = "replaced_token" if which == "pretrained" else "classification"
    for signature, (inputs, text_pairs) in calls.items():
        req = _predict_request("electra", signature, inputs)
        fn = loaded.signatures[req.model_spec.signature_name]
        out = fn(**{k: tf.make_ndarray(v) for k, v in req.inputs.items()})
        # The response TF Serving would send back, parsed as a client would.
        response = predict_pb2.PredictResponse()
        for key, value in out.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
        got = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
        want = saved_model.keras_reference(source.model, source.tokenizer, texts, task=task,
                                           max_seq_length=source.max_seq_length,
                                           text_pairs=text_pairs, labels=source.labels)
        diff, differing = saved_model.compare_outputs(got, want, task)
        assert diff <= 1e-5 and differing == [], (signature, diff, differing)
        if task == "replaced_token":
            expected = {"logits", "replaced_probability"} | (
                {"token_ids", "padding_mask"} if signature != "serve_ids" else set())
            assert set(got) == expected
        else:
            assert set(got) == {"logits", "probabilities", "labels", "label"}
            assert decode(got["labels"]).tolist() == [CLASS_NAMES] * len(texts)
            assert set(decode(got["label"])) <= set(CLASS_NAMES)


def test_warmup_file_holds_one_request_per_signature(classifier):
    source, report = classifier
    path = os.path.join(report["paths"]["saved_model"], "assets.extra", warmup.WARMUP_FILE)
    logs = [prediction_log_pb2.PredictionLog.FromString(record)
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator()]
    requests = [log.predict_log.request for log in logs]
    assert sorted(r.model_spec.signature_name for r in requests) == sorted(
        saved_model.SIGNATURES)
    assert {r.model_spec.name for r in requests} == {"electra"}
    loaded = tf.saved_model.load(report["paths"]["saved_model"])
    for r in requests:
        out = loaded.signatures[r.model_spec.signature_name](
            **{k: tf.make_ndarray(v) for k, v in r.inputs.items()})
        assert set(decode(out["label"].numpy())) <= set(CLASS_NAMES)


def test_cli_exports_a_finetuned_dir(tmp_path):
    model_dir = make_finetuned_dir(str(tmp_path / "run"), "classification", CLASS_NAMES,
                                   tokens=TOKENS, max_seq_length=LENGTH, input_sensitive=True)
    out = str(tmp_path / "out")
    proc = run_cli(f"--model_dir={model_dir}", f"--output={out}", "--quantize=dynamic",
                   "--num_examples=16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["passed"] and result["task"] == "classification"
    saved, lite = result["paths"]["saved_model"], result["paths"]["tflite"]
    assert saved == os.path.join(out, "electra", "1")
    served = tf.saved_model.load(saved).signatures["serving_default"](
        text=tf.constant(["很好", "a cat sat"]))
    assert decode(served["labels"].numpy()).tolist() == [CLASS_NAMES] * 2
    assert sorted(os.listdir(lite)) == sorted([
        "electra_ids_dynamic_int8.tflite", "electra_text_dynamic_int8.tflite",
        tflite.LABELS_FILE, "vocab.txt", verify.REPORT_FILE])
    with open(os.path.join(lite, tflite.LABELS_FILE), encoding="utf-8") as f:
        assert f.read() == "负面\npositive\n"
    report = json.load(open(os.path.join(lite, verify.REPORT_FILE), encoding="utf-8"))
    assert report["labels"] == CLASS_NAMES and report["max_seq_length"] == LENGTH
    for key, m in report["tflite"]["variants"].items():
        assert m["passed"] and m["floor"] == "argmax_agreement >= 0.9", (key, m)
        assert m["argmax_agreement"] >= 0.9


def test_finetune_json_that_does_not_fit_is_refused(tmp_path):
    model_dir = make_finetuned_dir(str(tmp_path / "run"), "classification", CLASS_NAMES,
                                   tokens=TOKENS)
    info_path = os.path.join(model_dir, "finetune.json")
    info = json.load(open(info_path, encoding="utf-8"))
    cases = [({"labels": CLASS_NAMES + ["neutral"]}, "3 label names"),
             ({"labels": ["a", "a"]}, "repeat"),
             ({"kind": "ranking"}, "kind='ranking'"),
             ({"labels": []}, "no labels"),
             ({"max_seq_length": 1000}, "outside 3..64")]
    for change, words in cases:
        copy = str(tmp_path / "copy")
        shutil.copytree(model_dir, copy)
        with open(os.path.join(copy, "finetune.json"), "w", encoding="utf-8") as f:
            json.dump({**info, **change}, f)
        # labels=[] builds a 1-output head, so the checkpoint no longer fits either: the
        # finetune.json check must come first and name the file.
        with pytest.raises(ExportError, match="finetune.json") as e:
            load_export_source(copy)
        assert words in str(e.value) and "\n" not in str(e.value)
        shutil.rmtree(copy)


def test_detect_task_prefers_the_known_kind(regressor):
    import keras

    source, _ = regressor
    assert serving.detect_task(source.model) == "regression"  # ElectraTaskModel.kind
    inputs = {k: keras.Input((None,), dtype="int32", name=k) for k in serving.ID_INPUTS}
    cls = keras.layers.Embedding(10, 4)(inputs["token_ids"])[:, 0, :]
    one_output = keras.Model(inputs, {"logits": keras.layers.Dense(1)(cls)})
    assert serving.detect_task(one_output) == "classification"  # a guess cannot tell
    assert serving.detect_task(one_output, "regression") == "regression"
    with pytest.raises(ExportError, match="ranking"):
        serving.detect_task(one_output, "ranking")
