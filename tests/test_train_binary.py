"""`python -m electra_tf.train` end to end: text -> the data engineer's TFRecord builder ->
the binary (flags over config, model_dir contents, metrics) -> loaders; bad input exits 2
with one line, a non-finite loss exits 3."""

import os
import sys

import numpy as np
import pytest

from test_trainer import REPO, make_vocab, run_binary


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    from electra_tf.data import pretraining_builder

    root = tmp_path_factory.mktemp("binary")
    vocab, tokens = make_vocab(root)
    rng = np.random.RandomState(0)
    corpus = root / "corpus.txt"
    with open(corpus, "w") as f:
        for _ in range(40):  # documents of a few lines of known words
            for _ in range(rng.randint(2, 6)):
                f.write(" ".join(rng.choice(tokens[5:], rng.randint(4, 12))) + "\n")
            f.write("\n")
    data_dir = str(root / "data")
    sidecar = pretraining_builder.build_pretraining_data(
        str(corpus), vocab, data_dir, max_seq_length=32, num_shards=2)
    model_dir = str(root / "run")
    args = [sys.executable, "-m", "electra_tf.train",
            f"--config={os.path.join(REPO, 'configs', 'electra_tiny.yaml')}",
            f"--train_data={data_dir}", f"--eval_data={data_dir}", f"--model_dir={model_dir}",
            f"--vocab={vocab}", "--override=data.max_seq_length=32",
            "--override=objective.max_predictions_per_seq=5", "--override=model.num_layers=1",
            "--train_steps=4", "--batch_size=8", "--steps_per_loop=2", "--log_every=2",
            "--checkpoint_every=2", "--eval_every=4", "--eval_steps=1", "--seed=3",
            "--peak_tflops=0.05"]
    rc, out, err = run_binary(args)
    return dict(root=root, vocab=vocab, tokens=tokens, data=data_dir, model_dir=model_dir,
                sidecar=sidecar, rc=rc, out=out, err=err)


def test_binary_trains_and_writes_a_self_describing_model_dir(binary_run):
    import tensorflow as tf
    import electra_tf
    from electra_tf import config as config_lib
    from electra_tf.training import metrics_log

    assert binary_run["rc"] == 0, binary_run["err"][-3000:]
    model_dir = binary_run["model_dir"]
    cfg = config_lib.load_config(os.path.join(model_dir, "config.yaml"))
    # Flags override the YAML; --override too; vocab_size comes from the vocabulary.
    assert (cfg.training.train_steps, cfg.training.batch_size, cfg.training.seed) == (4, 8, 3)
    assert (cfg.model.num_layers, cfg.data.max_seq_length, cfg.model.vocab_size) == (1, 32, 64)
    with open(os.path.join(model_dir, "vocab.txt")) as f, open(binary_run["vocab"]) as g:
        assert f.read() == g.read()
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-4")
    records = metrics_log.read_metrics(model_dir)
    assert [(r["split"], r["step"]) for r in records] == [
        ("train", 2), ("train", 4), ("eval", 4)]
    for r in records:
        assert r["loss"] == pytest.approx(r["mlm_loss"] + 50.0 * r["disc_loss"], rel=1e-5)
    # The console shows the per-interval line with the same numbers.
    assert f"step 4/4 | loss {records[1]['loss']:.4f}" in binary_run["err"]

    discriminator = electra_tf.load_discriminator(model_dir)
    ids = tf.constant([[2] + list(range(5, 35)) + [3]], tf.int32)
    logits = discriminator({"token_ids": ids, "segment_ids": tf.zeros_like(ids),
                            "padding_mask": tf.ones_like(ids)})
    assert logits.shape == (1, 32) and np.all(np.isfinite(logits.numpy()))


def _main(argv, capsys):
    """Runs the binary's main() in-process; returns (exit code, stderr)."""
    from electra_tf import train as train_bin

    train_bin.FLAGS.unparse_flags()
    train_bin.FLAGS(["electra_tf.train"] + argv)
    with pytest.raises(SystemExit) as e:
        train_bin.main([])
    return e.value.code, capsys.readouterr().err


def test_bad_input_exits_2_with_one_line(binary_run, tmp_path, capsys):
    config = f"--config={os.path.join(REPO, 'configs', 'electra_tiny.yaml')}"
    data = f"--train_data={binary_run['data']}"
    cases = [
        # No vocabulary on a first run.
        ([config, data, f"--model_dir={tmp_path / 'a'}"], "--vocab is required"),
        # An unknown config key.
        ([config, data, f"--model_dir={tmp_path / 'b'}", f"--vocab={binary_run['vocab']}",
          "--override=training.bogus=1"], "unknown key 'training.bogus'"),
        # Resuming with another model width.
        ([config, data, f"--model_dir={binary_run['model_dir']}",
          "--override=data.max_seq_length=32", "--override=model.num_layers=2"],
         "model.num_layers=1"),
        # Data built with another sequence length than the config's.
        ([config, data, f"--model_dir={tmp_path / 'c'}", f"--vocab={binary_run['vocab']}"],
         "max_seq_length=32"),
        # keras-hub's block takes one dropout rate: a config error, not a traceback.
        ([config, data, f"--model_dir={tmp_path / 'd'}", f"--vocab={binary_run['vocab']}",
          "--override=model.attention_dropout=0.2"], "model.attention_dropout=0.2 is invalid"),
        # The seed grouping is saved in config.yaml; a resume cannot change the masks.
        ([f"--train_data={binary_run['data']}", f"--model_dir={binary_run['model_dir']}",
          "--seed_group_size=4"], "training.seed_group_size=0"),
    ]
    for argv, expected in cases:
        code, err = _main(argv, capsys)
        assert code == 2, (argv, err)
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and expected in lines[0], err
        assert "Traceback" not in err


def test_stray_positional_argument_is_refused(binary_run, capsys):
    """`--deterministic false` used to turn determinism on and ignore "false"."""
    from electra_tf import train as train_bin

    train_bin.FLAGS.unparse_flags()
    train_bin.FLAGS(["electra_tf.train", f"--train_data={binary_run['data']}",
                     f"--model_dir={binary_run['model_dir']}", "--deterministic", "false"])
    with pytest.raises(SystemExit) as e:
        train_bin.main(["electra_tf.train", "false"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "unexpected argument 'false'" in err
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 1


def test_non_finite_loss_exits_3_and_keeps_checkpoint(binary_run, tmp_path, capsys):
    import shutil
    import tensorflow as tf

    model_dir = str(tmp_path / "run")
    shutil.copytree(binary_run["model_dir"], model_dir)
    code, err = _main([f"--train_data={binary_run['data']}", f"--model_dir={model_dir}",
                       "--train_steps=8", "--override=optimizer.learning_rate=1e30",
                       "--peak_tflops=0.05"], capsys)
    assert code == 3
    assert "non-finite" in err and "ckpt-4" in err
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-4")
