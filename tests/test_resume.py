"""Exact resume: a run killed with SIGKILL, then preempted with SIGTERM, then stopped with
Ctrl-C (SIGINT) ends with the same weights as a run that went straight through (CPU,
--deterministic, dropout on)."""

import os

import numpy as np
import tensorflow as tf

from test_trainer import (binary_args, checkpoint_values, make_vocab, run_binary, start_binary,
                          write_data)

FAULT_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "fault_injection_train.py")


def with_faults(args, *faults):
    """The binary's command line run through the fault-injecting runner (trainer callbacks)."""
    return [args[0], FAULT_RUNNER] + args[3:] + list(faults)

STEPS = 10


def test_sigkill_then_sigterm_then_resume_matches_straight_run(tmp_path):
    from electra_tf.training import metrics_log

    vocab, tokens = make_vocab(tmp_path)
    data = write_data(str(tmp_path / "data"), tokens)
    common = [f"--train_steps={STEPS}", "--deterministic", "--steps_per_loop=2",
              "--log_every=2", "--checkpoint_every=4"]
    straight_dir, broken_dir = str(tmp_path / "straight"), str(tmp_path / "broken")

    # The straight run and the first (crashing) run go in parallel.
    straight = start_binary(binary_args(data, straight_dir, vocab, *common))
    rc, _, err = run_binary(with_faults(binary_args(data, broken_dir, vocab, *common),
                                        "--kill_after_checkpoint=4"))
    assert rc == -9, err[-2000:]
    assert tf.train.latest_checkpoint(broken_dir).endswith("ckpt-4")

    # Resume, then get preempted (SIGTERM) at step 6: it saves ckpt-6 and exits 143.
    rc, _, err = run_binary(with_faults(binary_args(data, broken_dir, None, *common),
                                        "--signal_at_step=6"))
    assert rc == 143, err[-2000:]
    assert "resumed from" in err and "ckpt-4" in err
    assert tf.train.latest_checkpoint(broken_dir).endswith("ckpt-6")

    # Resume, then Ctrl-C (SIGINT) at step 8: treated like SIGTERM, ckpt-8 saved, exit 130.
    rc, _, err = run_binary(with_faults(binary_args(data, broken_dir, None, *common),
                                        "--signal_at_step=8", "--signal=INT"))
    assert rc == 130, err[-2000:]
    assert "Traceback" not in err and "SIGINT received: saved step 8" in err
    assert tf.train.latest_checkpoint(broken_dir).endswith("ckpt-8")

    # The same command again finishes the run.
    rc, _, err = run_binary(binary_args(data, broken_dir, None, *common))
    assert rc == 0, err[-2000:]
    out, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err[-2000:]

    # Same weights, optimizer slots, RNG and dropout-seed state as the straight run.
    a = checkpoint_values(os.path.join(straight_dir, f"ckpt-{STEPS}"))
    b = checkpoint_values(os.path.join(broken_dir, f"ckpt-{STEPS}"))
    assert a.keys() == b.keys()
    assert any(k.startswith("dropout_seeds/") for k in a)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], atol=1e-6, rtol=0, err_msg=name)
    # Per-step losses agree too, and the resumed log has each step exactly once.
    losses_a = [(r["step"], r["loss"]) for r in metrics_log.read_metrics(straight_dir, "train")]
    losses_b = [(r["step"], r["loss"]) for r in metrics_log.read_metrics(broken_dir, "train")]
    assert [s for s, _ in losses_b] == [2, 4, 6, 8, 10]
    np.testing.assert_allclose([l for _, l in losses_b], [l for _, l in losses_a], atol=1e-6)
