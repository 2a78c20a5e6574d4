"""Fault injection for export: bad flags, bad outputs, a full disk, killed exports, a damaged
checkpoint, non-ASCII text and out-of-range ids through the eager API.

The binary runs as a subprocess (absl flags collide in one process). Every refusal must be
exit status 2, exactly one `error:` line on stderr, no traceback, and nothing half-written
(no version directory, no `.tmp-PID` temporary) where it was going.

| input | expected outcome | test |
|---|---|---|
| `--output` is a file, or lies under a file | exit 2, one line naming the path, before the model loads | test_output_that_is_not_a_directory |
| `--output=OUT` where `OUT/NAME` is a file | exit 2, one line naming `OUT/NAME` | test_output_that_is_not_a_directory |
| `--output` on a read-only filesystem (or a directory without write permission) | exit 2, one line "cannot write in ..."; nothing written | test_unwritable_output |
| disk fills up while the SavedModel or the TFLite variants are written | exit 2, one line "No space left on device", no partial version / .tflite / temporary, the earlier version byte for byte intact | test_full_disk_during_export |
| `--name=../../escaped`, `a/b`, `.hidden`, `..`, empty, `x.tmp-123` | exit 2, one line naming `--name`; nothing written outside (or inside) `--output` | test_name_that_is_not_one_file_name |
| `--num_examples` 0 or negative, `--version` 0 or negative, `--max_seq_length` 0 or above the model's | exit 2, one line naming the flag | test_loose_numbers |
| `--version` that exists (in the TFLite dir only) | exit 2, one line "already exists" | test_loose_numbers |
| unknown `--format` / `--quantize` | exit 2, one line naming the flag and the allowed values | test_loose_numbers (and test_export_cli.test_unknown_choices) |
| temporaries of a SIGKILLed export (`.electra.scratch.tmp-PID`, `electra/.1.tmp-PID`, `electra.tflite/.1.tmp-PID`) | removed by the next export; a live process's kept, and other programs' in the export root | test_stale_temporaries_of_dead_exports_are_removed |
| SIGTERM during an export | exit 143, one line, temporaries removed, nothing published | test_sigterm_removes_temporaries |
| a version that appears while exporting (concurrent export) | ExportError, the format already renamed is taken back | test_publish_is_all_or_nothing |
| newest checkpoint's data file truncated, an older one intact | export succeeds from the older one, a warning names the damaged one | test_truncated_newest_checkpoint_falls_back |
| `--representative_data` of Chinese text; `tflite.run` on Chinese strings | export and verification pass (SavedModel, text TFLite float32 and int8); `tflite.run` matches Keras | test_chinese_representative_data_and_tflite_run |
| `load_discriminator(dir)` called eagerly with token id -1, an id >= vocab size, segment id 2, too many positions | ValueError naming the id, its position and the valid range; graph execution unchanged | test_eager_call_refuses_ids_outside_the_model |
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from test_export_support import (REPO, SENTENCES, make_model_dir, make_tfrecords, run_cli,
                                 vocab_tokens)

DEAD_PID = 999999999  # above the kernel's pid_max: never a live process
FAST = ("--num_examples=2", "--quantize=none", "--tflite_inputs=ids")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(str(tmp_path_factory.mktemp("faults") / "run"))


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def assert_refused(proc, *words):
    """Exit 2, exactly one error line holding `words`, no traceback; returns the line."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def tree(root):
    """Every file and directory under `root` (relative), with the bytes of each file."""
    out = {}
    for directory, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(directory, d), root) + "/"] = None
        for f in files:
            path = os.path.join(directory, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


def fake_earlier_export(out):
    """A published version 1 of both formats (stand-ins: only their bytes matter here)."""
    for rel, size in (("electra/1/saved_model.pb", 3000),
                      ("electra/1/variables/variables.index", 200),
                      ("electra.tflite/1/electra_ids_float32.tflite", 3000)):
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(np.random.default_rng(size).bytes(size))


# --- outputs -------------------------------------------------------------------------------

def test_output_that_is_not_a_directory(model_dir, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory\n")
    started = time.time()
    line = assert_refused(run_cli(f"--model_dir={model_dir}", f"--output={a_file}", *FAST),
                          f"{a_file} is not a directory", "--output")
    assert time.time() - started < 60  # refused before TensorFlow loads the model
    assert_refused(run_cli(f"--model_dir={model_dir}", f"--output={a_file}/exports", *FAST),
                   f"{a_file}/exports cannot be created", f"{a_file} is not a directory")
    assert a_file.read_text() == "not a directory\n", line
    # The servable's own directory is a file: named, with the way out.
    out = tmp_path / "out"
    out.mkdir()
    (out / "electra").write_text("x")
    assert_refused(run_cli(f"--model_dir={model_dir}", f"--output={out}", *FAST),
                   f"{out / 'electra'} is not a directory", "--name")
    assert sorted(os.listdir(out)) == ["electra"]


def test_unwritable_output(model_dir, tmp_path, small_disk):
    if os.geteuid() == 0:
        # Permission bits do not stop root: a read-only mount does.
        disk = small_disk(256)
        remount = subprocess.run(["mount", "-o", "remount,ro", disk], capture_output=True,
                                 text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        reason = "Read-only file system"
    else:
        disk = str(tmp_path / "locked")
        os.mkdir(disk, 0o555)
        reason = "Permission denied"
    out = os.path.join(disk, "exports")
    assert_refused(run_cli(f"--model_dir={model_dir}", f"--output={out}", *FAST),
                   f"cannot write in {disk}", reason)
    assert os.listdir(disk) == []


@pytest.mark.parametrize("fmt", ["saved_model", "tflite"])
def test_full_disk_during_export(model_dir, small_disk, fmt):
    # 400 KiB holds the earlier version but not a new SavedModel (~2 MB) nor the TFLite
    # conversion's fixed-shape SavedModel (~0.8 MB).
    out = os.path.join(small_disk(400), "exports")
    fake_earlier_export(out)
    before = tree(out)
    proc = run_cli(f"--model_dir={model_dir}", f"--output={out}", f"--format={fmt}", *FAST)
    assert_refused(proc, "No space left on device", f"writing the export under {out}",
                   "nothing was published")
    # Nothing half-written: no version 2, no partial .tflite, no temporary; version 1 intact.
    assert tree(out) == before


# --- loose flags ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../escaped", "a/b", ".hidden", "..", "", "x.tmp-123"])
def test_name_that_is_not_one_file_name(model_dir, tmp_path, name):
    out = tmp_path / "a" / "out"
    assert_refused(run_cli(f"--model_dir={model_dir}", f"--output={out}", f"--name={name}",
                           "--format=saved_model", *FAST), "--name=", "single file name")
    assert sorted(os.listdir(tmp_path)) == []  # nothing outside --output, nor --output itself


@pytest.mark.parametrize("flag, words", [
    ("--num_examples=-1", ("--num_examples=-1", "at least 1")),
    ("--num_examples=0", ("--num_examples=0", "at least 1")),
    ("--version=0", ("--version=0", "positive")),
    ("--version=-3", ("--version=-3", "positive")),
    ("--max_seq_length=0", ("--max_seq_length=0", "at least 3")),
    ("--max_seq_length=1000", ("--max_seq_length=1000", "3..64", "config.yaml")),
    ("--version=5", ("electra.tflite/5 already exists", "--version")),
    ("--format=onnx", ("--format=", "allowed")),
    ("--quantize=int4", ("--quantize=", "allowed")),
])
def test_loose_numbers(model_dir, tmp_path, flag, words):
    out = tmp_path / "out"
    os.makedirs(out / "electra.tflite" / "5")  # an existing version (the number is shared)
    before = tree(out)
    assert_refused(run_cli(f"--model_dir={model_dir}", f"--output={out}",
                           "--format=saved_model", "--num_examples=2", flag), *words)
    assert tree(out) == before


# --- leftovers -----------------------------------------------------------------------------

def test_stale_temporaries_of_dead_exports_are_removed(model_dir, tmp_path):
    out = tmp_path / "out"
    live = os.getpid()  # this test process: alive while the export runs
    stale = [f".electra.scratch.tmp-{DEAD_PID}/source_ids/saved_model.pb",
             f"electra/.1.tmp-{DEAD_PID}/saved_model.pb",
             f"electra.tflite/.1.tmp-{DEAD_PID}/.electra_ids_float32.tflite.tmp-{DEAD_PID}",
             f"electra.tflite/.electra_ids_int8.tflite.tmp-{DEAD_PID}"]
    # Kept: a live process's, and in the export root (shared with anything) what is not
    # the export's own.
    alive = [f".electra.scratch.tmp-{live}/source_ids/saved_model.pb",
             f"electra/.7.tmp-{live}/saved_model.pb", f".notes.txt.tmp-{DEAD_PID}"]
    for rel in stale + alive:
        os.makedirs(os.path.dirname(out / rel), exist_ok=True)
        (out / rel).write_bytes(b"half")
    proc = run_cli(f"--model_dir={model_dir}", f"--output={out}", "--format=saved_model",
                   *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1])["paths"] == {
        "saved_model": str(out / "electra" / "1")}
    assert sorted(os.listdir(out)) == [f".electra.scratch.tmp-{live}",
                                       f".notes.txt.tmp-{DEAD_PID}", "electra",
                                       "electra.tflite"]
    assert sorted(os.listdir(out / "electra")) == [f".7.tmp-{live}", "1"]
    assert os.listdir(out / "electra.tflite") == []
    for rel in alive:
        assert (out / rel).read_bytes() == b"half"


def test_sigterm_removes_temporaries(model_dir, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": REPO}
    proc = subprocess.Popen([sys.executable, "-m", "electra_tf.export", f"--model_dir={model_dir}",
                             f"--output={out}", "--format=saved_model", *FAST],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    temp = out / "electra" / f".1.tmp-{proc.pid}"
    deadline = time.time() + 240
    while not temp.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert temp.exists(), "the export never started writing"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "SIGTERM" in lines[0] and "Traceback" not in stderr, stderr
    assert not os.path.exists(out)  # no version, no temporary, no empty directories


def test_publish_is_all_or_nothing(tmp_path):
    from electra_tf.export import pipeline
    from electra_tf.export.source import ExportError

    bases = {"saved_model": str(tmp_path / "electra"), "tflite": str(tmp_path / "electra.tflite")}
    temps = {fmt: os.path.join(base, f".2.tmp-{os.getpid()}") for fmt, base in bases.items()}
    finals = {fmt: os.path.join(base, "2") for fmt, base in bases.items()}
    for fmt, temp in temps.items():
        os.makedirs(temp)
        open(os.path.join(temp, fmt), "w").close()
    os.makedirs(os.path.join(finals["saved_model"], "variables"))  # another export's version 2
    with pytest.raises(ExportError, match="appeared while exporting"):
        pipeline._publish(["saved_model", "tflite"], temps, finals, bases)
    # The TFLite dir (renamed first) was taken back; the other export's version untouched.
    assert not os.path.exists(finals["tflite"])
    assert os.listdir(temps["tflite"]) == ["tflite"]
    assert os.listdir(finals["saved_model"]) == ["variables"]


# --- the model dir -------------------------------------------------------------------------

def _two_checkpoints(path):
    """A model dir with ckpt-1 and ckpt-2; ckpt-2's replaced-token bias is 7 higher, so
    which one was exported shows in every logit."""
    import tensorflow as tf

    from electra_tf.model_dir import open_model_dir
    from electra_tf.model_loading import build_pretrainer
    from electra_tf.training.checkpointing import TrainCheckpoint

    make_model_dir(path)
    opened = open_model_dir(path)
    pretrainer = build_pretrainer(opened.config, opened.tokens)
    tf.train.Checkpoint(model=pretrainer).read(opened.checkpoint).expect_partial()
    for v in pretrainer.discriminator.weights:
        if v.path.endswith("dense_prediction/bias"):
            v.assign(v.numpy() + 7.0)
    TrainCheckpoint(path, max_to_keep=2, model=pretrainer).save(2)
    return path


def test_truncated_newest_checkpoint_falls_back(tmp_path):
    """Needs the fallback in electra_tf/model_checkpoints.py (`_restore`, which
    model_loading.py's loaders call)."""
    import tensorflow as tf

    from electra_tf.model_loading import load_discriminator

    run = _two_checkpoints(str(tmp_path / "run"))
    # What ckpt-1 alone gives: a copy of the dir whose index names only ckpt-1.
    older = tmp_path / "older"
    shutil.copytree(run, older)
    for f in os.listdir(older):
        if f.startswith("ckpt-2"):
            os.remove(older / f)
    (older / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n'
                                      'all_model_checkpoint_paths: "ckpt-1"\n')
    ids = np.array([[2, 7, 8, 9, 10, 3, 0, 0]], "int32")
    features = {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": (ids > 0).astype("int32")}
    want = load_discriminator(str(older))(features).numpy()

    damaged = os.path.join(run, "ckpt-2.data-00000-of-00001")
    with open(damaged, "r+b") as f:
        f.truncate(os.path.getsize(damaged) // 2)
    out = tmp_path / "out"
    proc = run_cli(f"--model_dir={run}", f"--output={out}", "--format=saved_model", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # One warning line names the damaged checkpoint (its format is the model dir's).
    warnings = [line for line in proc.stderr.splitlines()
                if os.path.join(run, "ckpt-2") in line and not line.startswith("error: ")]
    assert len(warnings) == 1, proc.stderr[-3000:]
    loaded = tf.saved_model.load(str(out / "electra" / "1"))
    got = loaded.signatures["serve_ids"](**{k: tf.constant(v) for k, v in features.items()})
    mask = features["padding_mask"].astype(bool)
    np.testing.assert_allclose(got["logits"].numpy()[mask], want[mask], atol=1e-5)


# --- text and ids --------------------------------------------------------------------------

CHINESE = ("北", "京", "是", "一", "个", "大", "城", "市", "中", "文", "很", "好", "的", "天", "气")
CHINESE_SENTENCES = ["北京是一个大城市", "中文很好", "今天的天气很好", "the big red house 是 大 的",
                     "一个 cat sat on the mat", "北京 的 river stone", "好 天气", "中文 is light"] * 4


def test_chinese_representative_data_and_tflite_run(tmp_path):
    import tensorflow as tf

    from electra_tf.export import tflite
    from electra_tf.export.source import load_export_source

    run = make_model_dir(str(tmp_path / "run"), tokens=vocab_tokens(extra=CHINESE))
    source = load_export_source(run)
    pattern = make_tfrecords(str(tmp_path / "data"), source.tokenizer, source.max_seq_length,
                             texts=CHINESE_SENTENCES + SENTENCES)
    out = tmp_path / "out"
    proc = run_cli(f"--model_dir={run}", f"--output={out}", "--format=all",
                   "--quantize=none,int8", "--tflite_inputs=text", "--num_examples=16",
                   f"--representative_data={pattern}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.load(open(out / "electra.tflite" / "1" / "verification.json", encoding="utf-8"))
    assert report["passed"] and report["data_source"].startswith("tfrecords:")
    assert sorted(report["tflite"]["variants"]) == ["text_float32", "text_int8"]
    assert report["tflite"]["variants"]["text_float32"]["max_abs_logit_diff"] <= 1e-4
    # The SavedModel answers Chinese raw text as Keras does (checked at export, and here).
    texts = ["北京很好", "中文 and the lazy dog", "", "天气"]
    enc = {k: v.numpy() for k, v in source.tokenizer.encode(
        texts, max_seq_length=source.max_seq_length).items()}
    assert source.tokenizer.unk_id not in enc["token_ids"][enc["padding_mask"] > 0]
    want = source.model(enc).numpy()
    mask = enc["padding_mask"].astype(bool)
    served = tf.saved_model.load(str(out / "electra" / "1")).signatures["serving_default"](
        text=tf.constant(texts))
    width = served["logits"].shape[1]  # trimmed to the longest row
    np.testing.assert_allclose(served["logits"].numpy()[mask[:, :width]],
                               want[:, :width][mask[:, :width]], atol=1e-5)
    # The public helper takes Python str (encoded as UTF-8, not NumPy's ASCII).
    interpreter = tflite.load_interpreter(str(out / "electra.tflite" / "1" /
                                              "electra_text_float32.tflite"))
    got = tflite.run(interpreter, {"text": texts})
    np.testing.assert_array_equal(got["token_ids"], enc["token_ids"])
    np.testing.assert_allclose(got["logits"][mask], want[mask], atol=1e-4)


def test_eager_call_refuses_ids_outside_the_model(model_dir):
    import tensorflow as tf

    from electra_tf.model_loading import load_discriminator

    model = load_discriminator(model_dir)
    vocab_size = len(vocab_tokens())
    ids = np.array([[2, 7, 8, 9, 3, 0], [2, 10, 11, 3, 0, 0]], "int32")
    good = {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": (ids > 0).astype("int32")}
    eager = model(good).numpy()
    for bad_id in (-1, vocab_size, vocab_size + 1000):
        bad = dict(good, token_ids=ids.copy())
        bad["token_ids"][1, 2] = bad_id
        with pytest.raises(ValueError, match=rf"token_ids\[1, 2\] = {bad_id} is not a token id "
                                             rf"of this model: valid ids are 0\.\.{vocab_size - 1}"):
            model(bad)
        with pytest.raises(ValueError, match=rf"token_ids\[1, 2\] = {bad_id}"):
            model.encoder({k: tf.constant(v) for k, v in bad.items()})
    with pytest.raises(ValueError, match=r"segment_ids\[0, 0\] = 2 .* valid ids are 0\.\.1"):
        model(dict(good, segment_ids=2 * np.ones_like(ids)))
    long = np.ones((1, 65), "int32")
    with pytest.raises(ValueError, match="65 positions but the model takes at most 64"):
        model({"token_ids": long, "segment_ids": 0 * long, "padding_mask": long})
    # Graph execution is not checked (nothing added to the graph) and gives the same answer.
    traced = tf.function(lambda x: model(x))
    np.testing.assert_allclose(traced({k: tf.constant(v) for k, v in good.items()}).numpy(),
                               eager, atol=1e-6)
    np.testing.assert_allclose(model.predict(good, verbose=0), eager, atol=1e-6)
