"""benchmarks/train_step.py times the trainer's own step function (tiny sizes, one round)."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_train_step_benchmark_runs_the_trainers_step():
    import inspect
    # Read as text: importing the script would define its absl flags in this process.
    with open(os.path.join(REPO, "benchmarks", "train_step.py"), encoding="utf-8") as f:
        script = f.read()
    source = script[script.index("def worker_ours"):script.index("def worker_mg")]
    # The timed function is PretrainingStep.train_loop, the one trainer.train runs.
    assert "PretrainingStep" in source and ".train_loop(" in source
    from electra_tf.training import trainer
    assert "pretraining_step.train_loop(" in inspect.getsource(trainer._train_locked)

    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "train_step.py"), "--which=ours",
         f"--config={os.path.join(REPO, 'configs', 'electra_tiny.yaml')}", "--batch_size=4",
         "--seq_length=32", "--steps=2", "--warmup_steps=1", "--rounds=1",
         # This checkout as its own baseline: the 'before' worker runs the same step.
         f"--baseline_repo={REPO}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["benchmark"] == "train_step" and result["ours_seq_per_s"] > 0
    assert 0 < result["ours_mfu"] < 1.5 and result["model_flops_per_seq"] > 0
    assert result["before_seq_per_s"] > 0 and result["before_params"] == result["ours_params"]
    assert result["ratio_ours_over_before"] == round(
        result["ours_seq_per_s"] / result["before_seq_per_s"], 3)


def test_train_step_benchmark_refuses_a_baseline_that_is_not_a_checkout(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "train_step.py"), "--which=ours",
         f"--baseline_repo={tmp_path}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == (f"train_step: --baseline_repo={tmp_path}: no benchmarks/train_step.py "
                         "there; give a checkout of electra_tf")
    assert "Traceback" not in proc.stderr


def test_baseline_worker_gets_its_own_flags_and_an_old_result_is_one_clear_line(tmp_path):
    # A stand-in "older checkout": it fails like absl on a flag it does not know, and
    # otherwise reports a result from before the memory figures existed.
    stub = tmp_path / "benchmarks" / "train_step.py"
    stub.parent.mkdir()
    stub.write_text(
        "import json, sys\n"
        "if any('baseline_repo' in a for a in sys.argv):\n"
        "    sys.exit(\"FATAL Flags parsing error: Unknown command line flag 'baseline_repo'\\n"
        "Pass --helpshort or --helpfull to see help on flags.\")\n"
        "print(json.dumps({'times': [1.0], 'peak_flops': 1e9, 'first_step_s': 1.0,"
        " 'params': 1}))\n")
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "train_step.py"), "--which=ours",
         f"--config={os.path.join(REPO, 'configs', 'electra_tiny.yaml')}", "--batch_size=2",
         "--seq_length=32", "--steps=1", "--warmup_steps=1", "--rounds=1",
         f"-baseline_repo={tmp_path}"],  # absl's one-dash form is filtered out too
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "train_step: the before worker's result lacks peak_rss_gib, rss_first_gib, "
        "rss_last_gib (a baseline checkout older than this benchmark's memory figures?)")
