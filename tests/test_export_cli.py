"""The export binary: bad input gives one line and exit 2 with nothing written; a good run
prints the published paths."""

import json
import os
import shutil

import pytest

from test_export_support import make_finetuned_dir, make_model_dir, run_cli, vocab_tokens


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(str(tmp_path_factory.mktemp("cli") / "run"))


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def assert_refused(proc, out, *words):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    # Nothing half-written: the output root holds no version and no temporary directory.
    leftovers = [os.path.join(r, d) for r, ds, _ in os.walk(out) for d in ds
                 if d.isdigit() or ".tmp-" in d] if os.path.exists(out) else []
    assert leftovers == []


def test_no_checkpoint(model_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.yaml", "vocab.txt"):
        shutil.copy(os.path.join(model_dir, name), bare / name)
    out = str(tmp_path / "out")
    assert_refused(run_cli(f"--model_dir={bare}", f"--output={out}"), out,
                   "no checkpoint", str(bare))


def test_vocab_size_differs_from_model(model_dir, tmp_path):
    other = tmp_path / "vocab.txt"
    other.write_text("\n".join(vocab_tokens(extra=("zebra",))) + "\n")
    out = str(tmp_path / "out")
    assert_refused(run_cli(f"--model_dir={model_dir}", f"--output={out}", f"--vocab={other}"),
                   out, "model.vocab_size", "tokens")


def test_vocab_hash_differs_from_recorded(model_dir, tmp_path):
    # Same size, two tokens swapped: only the fingerprint tells them apart.
    tokens = vocab_tokens()
    tokens[5], tokens[6] = tokens[6], tokens[5]
    other = tmp_path / "vocab.txt"
    other.write_text("\n".join(tokens) + "\n")
    out = str(tmp_path / "out")
    assert_refused(run_cli(f"--model_dir={model_dir}", f"--output={out}", f"--vocab={other}"),
                   out, "hash", "vocab.txt")
    # The same refusal when the model dir records a data sidecar of another vocabulary.
    copy = tmp_path / "run_copy"
    shutil.copytree(model_dir, copy)
    (copy / "dataset.json").write_text(json.dumps({"vocab_hash": "0" * 64}))
    assert_refused(run_cli(f"--model_dir={copy}", f"--output={out}"), out, "hash",
                   "dataset.json")


@pytest.mark.parametrize("flag, word", [("--format=onnx", "--format"),
                                        ("--quantize=none,int4", "--quantize"),
                                        ("--tflite_inputs=images", "--tflite_inputs")])
def test_unknown_choices(model_dir, tmp_path, flag, word):
    out = str(tmp_path / "out")
    assert_refused(run_cli(f"--model_dir={model_dir}", f"--output={out}", flag), out, word,
                   "allowed")


def test_good_run_then_existing_version_refused(model_dir, tmp_path):
    out = str(tmp_path / "out")
    proc = run_cli(f"--model_dir={model_dir}", f"--output={out}", "--format=saved_model",
                   "--version=3", "--num_examples=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["passed"] and result["paths"]["saved_model"] == os.path.join(out, "electra", "3")
    assert result["task"] == "replaced_token"
    assert sorted(os.listdir(os.path.join(out, "electra"))) == ["3"]
    again = run_cli(f"--model_dir={model_dir}", f"--output={out}", "--version=3")
    assert again.returncode == 2 and len(error_lines(again)) == 1
    assert "already exists" in error_lines(again)[0]
    assert sorted(os.listdir(os.path.join(out, "electra"))) == ["3"]


def test_finetuned_dir_whose_labels_do_not_fit_the_head(tmp_path):
    run = make_finetuned_dir(str(tmp_path / "run"), "classification", ["neg", "pos"])
    with open(os.path.join(run, "finetune.json"), encoding="utf-8") as f:
        info = json.load(f)
    with open(os.path.join(run, "finetune.json"), "w", encoding="utf-8") as f:
        json.dump({**info, "labels": ["neg", "neutral", "pos"]}, f)
    out = str(tmp_path / "out")
    assert_refused(run_cli(f"--model_dir={run}", f"--output={out}"), out, "finetune.json",
                   "3 label names", "2 outputs")
