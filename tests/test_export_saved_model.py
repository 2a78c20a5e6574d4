"""SavedModel export: serving in a fresh process without electra_tf/keras, signatures as
shown by saved_model_cli, warm-up records on the wire, versions, classifiers."""

import os
import re
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import prediction_log_pb2

from electra_tf.export import pipeline, saved_model, serving, warmup
from electra_tf.export.calibration import load_calibration_data
from electra_tf.export.source import ExportError, load_export_source
from test_export_support import SENTENCES, make_model_dir, run_fresh_python

LONG = " ".join(["the quick brown fox"] * 300)
TEXTS = ["the quick brown fox jumps over the lazy dog", "", LONG, "a cat sat on the mat"]
PAIRS = ["a cat sat", "the big red house is small", "", LONG]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("sm")
    source = load_export_source(make_model_dir(str(root / "run")))
    calibration = load_calibration_data(source.tokenizer, source.max_seq_length,
                                        texts=SENTENCES, num_examples=4)
    report = pipeline.export_all(source, str(root / "out"), formats="saved_model",
                                 calibration=calibration, log=lambda _: None)
    return source, report, root


def test_fresh_process_matches_keras_on_both_signatures(exported):
    source, report, root = exported
    version_dir = report["paths"]["saved_model"]
    ids = source.tokenizer.encode(TEXTS, max_seq_length=source.max_seq_length)
    np.savez(root / "ids.npz", **{k: v.numpy() for k, v in ids.items()})
    run_fresh_python(f"""
        import numpy as np, tensorflow as tf, tensorflow_text  # noqa
        m = tf.saved_model.load({version_dir!r})
        texts = tf.constant({TEXTS!r}); pairs = tf.constant({PAIRS!r})
        ids = dict(np.load({str(root / 'ids.npz')!r}))
        out = {{}}
        for sig, kwargs in (("serving_default", dict(text=texts)),
                            ("serving_pair", dict(text=texts, text_pair=pairs)),
                            ("serve_ids", {{k: tf.constant(v) for k, v in ids.items()}})):
            for k, v in m.signatures[sig](**kwargs).items():
                out[sig + "." + k] = v.numpy()
        np.savez({str(root / 'served.npz')!r}, **out)
        """, cwd=str(root))
    served = dict(np.load(root / "served.npz"))
    length = source.max_seq_length
    for sig, pairs in (("serving_default", None), ("serving_pair", PAIRS), ("serve_ids", None)):
        want = saved_model.keras_reference(source.model, source.tokenizer, TEXTS,
                                           task="replaced_token", max_seq_length=length,
                                           text_pairs=pairs)
        got_logits = served[f"{sig}.logits"]
        assert got_logits.dtype == np.float32
        width = got_logits.shape[1]
        mask = want["padding_mask"][:, :width].astype(bool)
        np.testing.assert_allclose(got_logits[mask], want["logits"][:, :width][mask], atol=1e-5)
        np.testing.assert_allclose(served[f"{sig}.replaced_probability"][mask],
                                   1 / (1 + np.exp(-want["logits"][:, :width][mask])), atol=1e-5)
    # Raw text: the empty string is [CLS] [SEP]; the long one is cut to max_seq_length and
    # outputs are trimmed to the longest row (here the long one, so exactly max_seq_length).
    default_mask = served["serving_default.padding_mask"]
    assert default_mask.shape == (4, length)
    assert default_mask.sum(axis=1).tolist()[1:3] == [2, length]
    tokens = served["serving_default.token_ids"]
    assert tokens[1, :2].tolist() == [source.tokenizer.cls_id, source.tokenizer.sep_id]
    assert tokens[2, length - 1] == source.tokenizer.sep_id


def test_trim_to_longest_row_and_batch_sizes(exported):
    source, report, _ = exported
    loaded = tf.saved_model.load(report["paths"]["saved_model"])
    for batch in (1, 3, 7):
        out = loaded.signatures["serving_default"](text=tf.constant(["a cat sat"] * batch))
        # [CLS] a cat sat [SEP] -> 5 columns whatever max_seq_length is.
        assert out["logits"].shape == (batch, 5)
    ids = {k: tf.ones([2, 40], tf.int32) for k in serving.ID_INPUTS}  # longer than 24
    assert loaded.signatures["serve_ids"](**ids)["logits"].shape == (2, 40)


def test_saved_model_cli_shows_signatures(exported):
    _, report, _ = exported
    cli = os.path.join(os.path.dirname(os.path.realpath(os.sys.executable)), "saved_model_cli")
    if not os.path.exists(cli):
        cli = os.path.join(os.path.dirname(os.sys.executable), "saved_model_cli")
    text = subprocess.run([cli, "show", "--dir", report["paths"]["saved_model"], "--all"],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).stdout
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:\n(.*?)(?=\nsignature_def|\n\n|\Z)",
                             text, re.S))
    assert {"serving_default", "serving_pair", "serve_ids"} <= set(blocks)

    def tensors(block, kind):
        part = block.split(f"The given SavedModel SignatureDef contains the following {kind}")[1]
        part = part.split("Method name")[0].split("output(s)")[0]
        return {name: (dtype, shape) for name, dtype, shape in re.findall(
            r"\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", part)}

    assert tensors(blocks["serving_default"], "input") == {"text": ("DT_STRING", "(-1)")}
    assert tensors(blocks["serving_pair"], "input") == {
        "text": ("DT_STRING", "(-1)"), "text_pair": ("DT_STRING", "(-1)")}
    assert tensors(blocks["serve_ids"], "input") == {
        k: ("DT_INT32", "(-1, -1)") for k in serving.ID_INPUTS}
    for sig in ("serving_default", "serving_pair"):
        assert tensors(blocks[sig], "output") == {
            "logits": ("DT_FLOAT", "(-1, -1)"), "replaced_probability": ("DT_FLOAT", "(-1, -1)"),
            "token_ids": ("DT_INT32", "(-1, -1)"), "padding_mask": ("DT_INT32", "(-1, -1)")}
    assert tensors(blocks["serve_ids"], "output") == {
        "logits": ("DT_FLOAT", "(-1, -1)"), "replaced_probability": ("DT_FLOAT", "(-1, -1)")}


def _wire_fields(data):
    """Minimal protobuf wire decoder: [(field number, wire type, value bytes or int)]."""
    fields, i = [], 0

    def varint(i):
        shift = value = 0
        while True:
            b = data[i]
            value |= (b & 0x7F) << shift
            i += 1
            shift += 7
            if b < 0x80:
                return value, i

    while i < len(data):
        key, i = varint(i)
        number, wire = key >> 3, key & 7
        if wire == 2:
            size, i = varint(i)
            fields.append((number, wire, data[i:i + size]))
            i += size
        elif wire == 0:
            value, i = varint(i)
            fields.append((number, wire, value))
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return fields


def test_warmup_requests_parse_back_and_use_serving_field_numbers(exported):
    _, report, _ = exported
    path = os.path.join(report["paths"]["saved_model"], "assets.extra", warmup.WARMUP_FILE)
    parsed = warmup.read_warmup_requests(path)
    # One request per signature: each is one graph with dynamic dimensions.
    assert [spec for spec, _ in parsed] == [
        ("electra", "serving_default"), ("electra", "serving_pair"), ("electra", "serve_ids")]
    assert parsed[0][1]["text"].dtype == object and parsed[2][1]["token_ids"].dtype == np.int32
    # TF Serving's own messages read the same records.
    logs = [prediction_log_pb2.PredictionLog.FromString(r)
            for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * 3
    record = next(iter(tf.data.TFRecordDataset(path))).numpy()
    (log_field,) = _wire_fields(record)
    assert log_field[:2] == (6, 2)  # PredictionLog.predict_log
    (request_field,) = _wire_fields(log_field[2])
    assert request_field[:2] == (1, 2)  # PredictLog.request
    request = _wire_fields(request_field[2])
    spec = dict((n, v) for n, _, v in _wire_fields(request[0][2]))
    assert request[0][0] == 1 and spec == {1: b"electra", 3: b"serving_default"}
    entry = dict((n, v) for n, _, v in _wire_fields(request[1][2]))
    assert request[1][0] == 2 and entry[1] == b"text"  # inputs map entry: key=1, value=2
    tensor = tf.make_ndarray(tensor_pb2.TensorProto.FromString(entry[2]))
    assert tensor.shape == parsed[0][1]["text"].shape
    assert tensor[0].decode() == parsed[0][1]["text"][0].decode()
    # Every request runs against the exported signature it names.
    loaded = tf.saved_model.load(report["paths"]["saved_model"])
    for (_, signature), inputs in parsed:
        out = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        assert np.isfinite(out["logits"].numpy()).all()


def test_versions_are_atomic_and_existing_ones_refused(exported, tmp_path):
    source, report, root = exported
    out = os.path.dirname(os.path.dirname(report["paths"]["saved_model"]))
    assert sorted(os.listdir(os.path.join(out, "electra"))) == ["1"]  # no temp dir left
    assert saved_model.next_version([os.path.join(out, "electra")]) == 2
    with pytest.raises(ExportError, match="already exists"):
        saved_model.export_saved_model(source.model, source.tokenizer, out, version=1,
                                       max_seq_length=source.max_seq_length)
    assert sorted(os.listdir(os.path.join(out, "electra"))) == ["1"]
    second = saved_model.export_saved_model(source.model, source.tokenizer, str(tmp_path),
                                            max_seq_length=source.max_seq_length)
    assert second.endswith(os.path.join("electra", "1"))
    assert sorted(os.listdir(tmp_path / "electra")) == ["1"]


def test_classifier_exports_float32_logits_and_probabilities(exported, tmp_path):
    import keras

    source, _, _ = exported
    from electra_tf.model_loading import load_pretrainer

    encoder = load_pretrainer(source.model_dir).discriminator_encoder
    inputs = {k: keras.Input((None,), dtype="int32", name=k) for k in serving.ID_INPUTS}
    cls_vector = encoder(inputs)[:, 0, :]
    # A bfloat16 head: the export must still answer float32.
    logits = keras.layers.Dense(3, dtype="mixed_bfloat16", name="classifier")(cls_vector)
    classifier = keras.Model(inputs, {"logits": logits})
    assert serving.detect_task(classifier) == "classification"
    version_dir = saved_model.export_saved_model(
        classifier, source.tokenizer, str(tmp_path), name="cls", max_seq_length=16)
    loaded = tf.saved_model.load(version_dir)
    out = loaded.signatures["serving_default"](text=tf.constant(TEXTS))
    assert out["logits"].dtype == tf.float32 and out["logits"].shape == (4, 3)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, atol=1e-6)
    want = saved_model.keras_reference(classifier, source.tokenizer, TEXTS,
                                       task="classification", max_seq_length=16)
    np.testing.assert_allclose(out["logits"].numpy(), want["logits"], atol=1e-5)
    assert "token_ids" not in out
    # Without names the classes are numbered, in the column order of `probabilities`.
    assert out["labels"].numpy().tolist() == [[b"0", b"1", b"2"]] * 4
    assert out["label"].numpy().tolist() == [
        str(i).encode() for i in out["probabilities"].numpy().argmax(-1)]
