"""Distribution on CPU: MirroredStrategy over two logical CPUs equals one device on the same
global batch; MultiWorkerMirroredStrategy with two local workers trains, checkpoints and
resumes; the step compiles with XLA (jit_compile=True: no host ops, static shapes)."""

import json
import math
import os
import socket

import numpy as np
import tensorflow as tf

from test_trainer import (binary_args, checkpoint_values, make_vocab, start_binary, tiny_config,
                          write_data)

NO_DROPOUT = ["--override=model.hidden_dropout=0", "--override=model.attention_dropout=0"]


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _finish(procs):
    results = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    return [err for _, err in results]


def test_mirrored_two_cpus_equals_one_device(tmp_path):
    from electra_tf.training import metrics_log

    vocab, tokens = make_vocab(tmp_path)
    # Full-length examples: every example has the same number of tokens and masked positions,
    # so the mean of the two replicas' losses is exactly the global batch's loss.
    data = write_data(str(tmp_path / "data"), tokens, full_length=True)
    # Masking seeds per group of 4 examples of the global batch (the per-replica batch under
    # two replicas): the same examples get the same masks however the batch is split.
    common = ["--train_steps=4", "--log_every=1", "--steps_per_loop=2", "--num_cpu_devices=2",
              "--seed_group_size=4", "--deterministic"] + NO_DROPOUT
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    _finish([start_binary(binary_args(data, one, vocab, *common, "--strategy=one_device")),
             start_binary(binary_args(data, two, vocab, *common, "--strategy=mirrored"))])

    # The flags are config keys: config.yaml records them, so a resume reuses them.
    from electra_tf import model_dir as model_dir_lib
    saved = model_dir_lib.read_config(two)
    assert (saved.training.seed_group_size, saved.runtime.deterministic,
            saved.runtime.strategy, saved.runtime.num_cpu_devices) == (4, True, "mirrored", 2)
    a = metrics_log.read_metrics(one, "train")
    b = metrics_log.read_metrics(two, "train")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        for key in ("loss", "mlm_loss", "disc_loss"):
            assert abs(ra[key] - rb[key]) <= 1e-5 * max(1.0, abs(ra[key])), (key, ra, rb)
    # Weights after 4 updates agree too (the update uses the all-reduced, then clipped
    # gradient); Adam without bias correction amplifies float rounding, hence 1e-4.
    wa = checkpoint_values(os.path.join(one, "ckpt-4"))
    wb = checkpoint_values(os.path.join(two, "ckpt-4"))
    assert wa.keys() == wb.keys()
    for name in wa:
        np.testing.assert_allclose(wb[name], wa[name], atol=1e-4, rtol=1e-4, err_msg=name)


def test_multi_worker_two_processes_train_checkpoint_resume(tmp_path):
    from electra_tf.training import metrics_log

    vocab, tokens = make_vocab(tmp_path)
    data = write_data(str(tmp_path / "data"), tokens, shards=4)
    model_dir = str(tmp_path / "run")

    def run_workers(steps, first):
        ports = [_free_port(), _free_port()]
        procs = []
        for index in range(2):
            tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                         "task": {"type": "worker", "index": index}}
            args = binary_args(data, model_dir, vocab if first else None,
                               f"--train_steps={steps}", "--steps_per_loop=2", "--log_every=2",
                               "--checkpoint_every=2", "--strategy=multi_worker_mirrored")
            procs.append(start_binary(args, {"TF_CONFIG": json.dumps(tf_config)}))
        return _finish(procs)

    run_workers(4, first=True)
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-4")
    # Each worker keeps its own input-pipeline state; only the chief keeps the model.
    for index in range(2):
        assert tf.train.latest_checkpoint(
            os.path.join(model_dir, f"worker-{index}")).endswith("ckpt-4")
    assert not os.path.exists(os.path.join(model_dir, ".worker-1-tmp"))
    at_4 = checkpoint_values(os.path.join(model_dir, "ckpt-4"))

    errs = run_workers(6, first=False)
    assert all("resumed from" in e and "ckpt-4" in e for e in errs)
    records = metrics_log.read_metrics(model_dir, "train")
    assert [r["step"] for r in records] == [2, 4, 6]
    assert all(math.isfinite(r["loss"]) for r in records)
    # Synchronous training: both workers log the same global loss at step 6.
    losses = [float(e.split("step 6/6 | loss ")[1].split()[0]) for e in errs]
    assert losses[0] == losses[1] == round(records[-1]["loss"], 4)
    at_6 = checkpoint_values(os.path.join(model_dir, "ckpt-6"))
    assert int(at_6["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 6
    moved = [k for k in at_4 if k.startswith("optimizer/") and at_4[k].dtype == np.float32
             and at_4[k].size > 1 and not np.array_equal(at_4[k], at_6[k])]
    assert moved and all(np.all(np.isfinite(at_6[k])) for k in moved)


def test_step_compiles_with_xla(tmp_path):
    import keras
    from electra_tf.training import metrics_log, trainer

    vocab, tokens = make_vocab(tmp_path)
    data = write_data(str(tmp_path / "data"), tokens)
    cfg = tiny_config("training.train_steps=2", "training.log_every=1",
                      "training.jit_compile=true")
    model_dir = str(tmp_path / "run")
    # No --peak_tflops: the MFU denominator is the measured matmul peak.
    trainer.train(cfg, train_data=data, model_dir=model_dir, vocab=vocab, log_fn=lambda s: None)
    keras.backend.clear_session()
    first = metrics_log.read_metrics(model_dir, "train")[0]
    # At initialisation the generator is near uniform over the 64-token vocabulary and the
    # discriminator near 1/2: the compiled step computes the ELECTRA losses.
    assert abs(first["mlm_loss"] - math.log(64)) < 0.1
    assert abs(first["disc_loss"] - math.log(2)) < 0.05
    assert 0.0 < first["mfu"] < 1.0
