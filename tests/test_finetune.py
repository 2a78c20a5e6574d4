"""Fine-tuning end to end on tiny data: learning a separable task, tagging, resume, refusals,
and the binary's exit codes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS_POS = ["good", "great", "fine", "好", "棒"]
WORDS_NEG = ["bad", "awful", "poor", "差", "烂"]
FILLER = ["the", "a", "film", "movie", "这", "部", "电", "影"]
TINY = ["model.embedding_size=16", "model.hidden_size=32", "model.intermediate_size=64",
        "model.num_layers=2", "model.num_heads=2"]


def _vocab(directory):
    from electra_tf.text.vocab import SPECIAL_TOKENS, write_vocab

    tokens = list(SPECIAL_TOKENS) + sorted(set(WORDS_POS + WORDS_NEG + FILLER)) + [
        "new", "york", "paris", "john", "smith", "lives", "in", "##s"]
    path = os.path.join(str(directory), "vocab.txt")
    write_vocab(tokens, path)
    return path


def _sentiment_csv(path, n, seed):
    """Sentences whose label is set by one polar word among fillers (a separable task);
    quoted commas and Chinese in the text."""
    import csv
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "sentiment"])
        for _ in range(n):
            positive = bool(rng.integers(2))
            words = list(rng.choice(FILLER, size=int(rng.integers(2, 6))))
            words.insert(int(rng.integers(len(words) + 1)),
                         str(rng.choice(WORDS_POS if positive else WORDS_NEG)))
            writer.writerow([", ".join(words), "正面" if positive else "负面"])


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment")
    data = root / "data"
    data.mkdir()
    _sentiment_csv(data / "train.csv", 320, 0)
    _sentiment_csv(data / "dev.csv", 96, 1)
    return root, str(data), _vocab(root)


def _options(data, out, vocab, **kwargs):
    from electra_tf.training.finetuning import FinetuneOptions

    base = dict(task="classification", data_dir=data, output_dir=out, init="none",
                config=os.path.join(REPO, "configs", "electra_tiny.yaml"), vocab=vocab,
                overrides=TINY, epochs=4, learning_rate=2e-3, batch_size=16,
                text_column="review", label_column="sentiment", max_seq_length=16,
                show_progress=False)
    base.update(kwargs)
    return FinetuneOptions(**base)


def test_separable_task_reaches_95_percent_and_writes_results(sentiment):
    import keras
    from electra_tf.training.finetuning import run_finetuning

    root, data, vocab = sentiment
    out = str(root / "run")
    results = run_finetuning(_options(data, out, vocab, seeds=(1, 2)), log=lambda s: None)
    keras.backend.clear_session()
    assert results["median"]["accuracy"] >= 0.95, results
    with open(os.path.join(out, "results.json")) as f:
        saved = json.load(f)
    assert set(saved["seeds"]) == {"1", "2"}
    accuracies = sorted(r["accuracy"] for r in saved["seeds"].values())
    assert saved["median"]["accuracy"] == pytest.approx(float(np.median(accuracies)))
    with open(os.path.join(out, "finetune.json")) as f:
        info = json.load(f)
    assert info["labels"] == ["正面", "负面"] and info["kind"] == "classification"
    # Per-epoch dev metrics were kept, and the best epoch is the one reported.
    for seed, record in saved["seeds"].items():
        epochs = saved["epochs"][seed]
        assert len(epochs) == 4
        best = max(epochs, key=lambda e: e["metrics"]["accuracy"])
        assert record["accuracy"] == best["metrics"]["accuracy"]
    # The kept model reloads and scores the dev set as reported.
    from electra_tf.model_loading import load_task_model
    from electra_tf.data import task_features, tasks
    from electra_tf.text.tokenizer import ElectraTokenizer
    model, loaded = load_task_model(out)
    dev = tasks.load_task_data("classification", data, text_column="review",
                               label_column="sentiment").dev
    tok = ElectraTokenizer(os.path.join(out, "vocab.txt"))
    features = task_features.encode_texts(tok, dev, "classification",
                                          {n: i for i, n in enumerate(loaded["labels"])}, 16)
    predicted = model(features.inputs)["logits"].numpy().argmax(-1)
    kept = saved["seeds"][str(saved["kept_seed"])]["accuracy"]
    assert float(np.mean(predicted == features.labels)) == pytest.approx(kept)
    # TensorBoard scalars per seed.
    assert os.listdir(os.path.join(out, "seed-1", "logs"))


def test_tagging_labels_first_pieces_and_maps_back_to_words(tmp_path):
    import keras
    from electra_tf.training.finetuning import run_finetuning

    vocab = _vocab(tmp_path)
    data = tmp_path / "conll"
    data.mkdir()
    rng = np.random.default_rng(0)
    # Names get B-PER (two-piece "johns" too: only its first piece is labelled), cities LOC.
    for name, n in (("train.txt", 200), ("dev.txt", 40)):
        with open(data / name, "w", encoding="utf-8") as f:
            for _ in range(n):
                person = str(rng.choice(["john", "johns", "smith"]))
                city = str(rng.choice(["paris", "york"]))
                for word, tag in ((person, "B-PER"), ("lives", "O"), ("in", "O"),
                                  (city, "B-LOC")):
                    f.write(f"{word} NNP O {tag}\n")
                f.write("\n")
    out = str(tmp_path / "run")
    results = run_finetuning(_options(str(data), out, vocab, task="tagging", epochs=6,
                                      text_column=None, label_column=None),
                             log=lambda s: None)
    keras.backend.clear_session()
    assert results["median"]["f1"] >= 0.95, results


def test_interrupted_run_resumes_to_the_same_weights(sentiment, tmp_path):
    """Killed right after a mid-epoch checkpoint, the same command finishes with the weights
    of an uninterrupted run (subprocesses with op determinism)."""
    root, data, vocab = sentiment
    script = f"""
import os, signal, sys
sys.path.insert(0, {REPO!r})
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
from electra_tf.training.finetuning import FinetuneOptions, run_finetuning
kill_at = int(sys.argv[2])
class Kill:
    def on_checkpoint(self, step, path):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
run_finetuning(FinetuneOptions(task="classification", data_dir={data!r}, output_dir=sys.argv[1],
    init="none", config={os.path.join(REPO, "configs", "electra_tiny.yaml")!r}, vocab={vocab!r},
    overrides={TINY!r}, epochs=2, learning_rate=2e-3, batch_size=16, text_column="review",
    label_column="sentiment", max_seq_length=16, checkpoint_every=7, show_progress=False),
    log=lambda s: None, callbacks=[Kill()])
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    straight, broken = str(tmp_path / "straight"), str(tmp_path / "broken")

    def run(out, kill_at):
        return subprocess.run([sys.executable, "-c", script, out, str(kill_at)], env=env,
                              capture_output=True, text=True, timeout=600)

    first = run(broken, 7)
    assert first.returncode == -9, first.stderr[-2000:]
    assert not os.path.exists(os.path.join(broken, "results.json"))
    for out in (broken, straight):
        done = run(out, -1)
        assert done.returncode == 0, done.stderr[-2000:]
    from test_trainer import checkpoint_values
    a = checkpoint_values(os.path.join(straight, "seed-1", "ckpt-40"))
    b = checkpoint_values(os.path.join(broken, "seed-1", "ckpt-40"))
    assert a.keys() == b.keys() and any(k.startswith("dropout_seeds/") for k in a)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], atol=1e-6, rtol=0, err_msg=name)
    with open(os.path.join(straight, "results.json")) as f, \
            open(os.path.join(broken, "results.json")) as g:
        assert json.load(f)["seeds"] == json.load(g)["seeds"]


def _refused(fn, match, out):
    from electra_tf.data.tasks import TaskDataError
    from electra_tf.model_dir import ModelDirError
    from electra_tf.training.finetuning import FinetuneError

    with pytest.raises((TaskDataError, ModelDirError, FinetuneError)) as e:
        fn()
    message = str(e.value)
    assert "\n" not in message and match in message, message
    assert not os.path.exists(out), "a refused run wrote its output dir"


def test_bad_input_is_refused_with_one_line_and_nothing_written(sentiment, tmp_path):
    from electra_tf.text.vocab import SPECIAL_TOKENS, write_vocab
    from electra_tf.training.finetuning import FinetuneError, run_finetuning

    root, data, vocab = sentiment
    out = str(tmp_path / "out")
    quiet = dict(log=lambda s: None)
    _refused(lambda: run_finetuning(_options(data, out, vocab, task="sst3"), **quiet),
             "sst3", out)
    _refused(lambda: run_finetuning(_options(data, out, vocab, label_column="stars"), **quiet),
             "stars", out)
    _refused(lambda: run_finetuning(_options(data, out, None), **quiet), "--vocab is required",
             out)
    _refused(lambda: run_finetuning(_options(data, out, vocab, batch_size=1000), **quiet),
             "fewer than one batch", out)
    # A dev label never seen in training.
    odd = tmp_path / "odd"
    odd.mkdir()
    _sentiment_csv(odd / "train.csv", 40, 0)
    with open(odd / "dev.csv", "w", encoding="utf-8") as f:
        f.write("review,sentiment\nthe good film,neutral\n")
    _refused(lambda: run_finetuning(_options(str(odd), out, vocab), **quiet), "neutral", out)
    # Every training example with one label: nothing to learn.
    one = tmp_path / "one_label"
    one.mkdir()
    for name in ("train.csv", "dev.csv"):
        with open(one / name, "w", encoding="utf-8") as f:
            f.write("review,sentiment\n" + "".join(f"好电影 {i},正面\n" for i in range(40)))
    _refused(lambda: run_finetuning(_options(str(one), out, vocab), **quiet),
             "has a single label '正面'", out)
    # A pretraining model dir whose vocabulary differs from --vocab; and a loaded head with
    # another label count (a fine-tuned 2-label dir used as --init for a 3-label task).
    other = tmp_path / "other_vocab.txt"
    write_vocab(list(SPECIAL_TOKENS) + ["x", "y"], str(other))
    finetuned = str(root / "run")  # from the first test in this module, or built here
    if not os.path.exists(os.path.join(finetuned, "results.json")):
        run_finetuning(_options(data, finetuned, vocab, epochs=1), **quiet)
    _refused(lambda: run_finetuning(_options(data, out, str(other), init=finetuned),
                                    **quiet), "differs from", out)
    three = tmp_path / "three"
    three.mkdir()
    for name in ("train.csv", "dev.csv"):
        with open(three / name, "w", encoding="utf-8") as f:
            f.write("review,sentiment\n" + "".join(
                f"the film {w},{lab}\n" for w, lab in
                (("good", "pos"), ("bad", "neg"), ("fine", "mid")) * 12))
    _refused(lambda: run_finetuning(_options(str(three), out, None, init=finetuned), **quiet),
             "head of 2 labels", out)
    # Never written over: the init itself, or another run's model dir.
    before = sorted(os.listdir(finetuned))
    with pytest.raises(FinetuneError, match="--output_dir is --init"):
        run_finetuning(_options(data, finetuned, None, init=finetuned), **quiet)
    other_run = tmp_path / "pretraining_run"
    other_run.mkdir()
    (other_run / "config.yaml").write_text("model: {}\n")
    with pytest.raises(FinetuneError, match="holds another run"):
        run_finetuning(_options(data, str(other_run), vocab), **quiet)
    assert sorted(os.listdir(finetuned)) == before
    for bad, match in ((dict(seeds=(-1,)), "non-negative"), (dict(warmup_fraction=-0.1),
                       "warmup_fraction"), (dict(epochs=0), "--epochs=0"),
                       (dict(strategy="multi_worker_mirrored"), "not supported"),
                       (dict(seeds=(1, 1)), "repeats a seed"),
                       (dict(checkpoint_every=-1), "--checkpoint_every=-1 must be >= 0"),
                       (dict(learning_rate=float("nan")), "positive finite"),
                       (dict(learning_rate=float("inf")), "positive finite"),
                       (dict(layerwise_lr_decay=-1.0), "in (0, 1]"),
                       (dict(layerwise_lr_decay=0.0), "in (0, 1]"),
                       (dict(weight_decay=-1.0), "non-negative")):
        _refused(lambda: run_finetuning(_options(data, out, vocab, **bad), **quiet), match, out)


def test_binary_exit_codes(sentiment, tmp_path):
    root, data, vocab = sentiment
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    out = str(tmp_path / "bin")
    base = [sys.executable, "-m", "electra_tf.finetune", f"--data_dir={data}",
            f"--output_dir={out}", "--init=none", f"--vocab={vocab}",
            f"--config={os.path.join(REPO, 'configs', 'electra_tiny.yaml')}",
            "--text_column=review", "--label_column=sentiment", "--max_seq_length=16",
            "--batch_size=16", "--noprogress"] + [f"--override={o}" for o in TINY]
    bad = subprocess.run(base + ["--task=glue_sst"], env=env, capture_output=True, text=True,
                         timeout=300)
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
    assert bad.returncode == 2 and len(errors) == 1 and "glue_sst" in errors[0], bad.stderr
    assert "Traceback" not in bad.stderr and not os.path.exists(out)
    # Under MirroredStrategy on two logical CPU devices, like pretraining.
    good = subprocess.run(base + ["--task=classification", "--epochs=1", "--seeds=3",
                                  "--strategy=mirrored", "--num_cpu_devices=2"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert good.returncode == 0, good.stderr[-3000:]
    summary = json.loads(good.stdout.strip().splitlines()[-1])
    assert set(summary["seeds"]) == {"3"} and 0.0 <= summary["median"]["accuracy"] <= 1.0
