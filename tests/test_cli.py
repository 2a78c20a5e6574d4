"""Every binary ends a flag it cannot parse, or a stray word, with one line and exit status 2.

Run as subprocesses: the binaries define their absl flags at import, and two of them in one
process would collide.
"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BINARIES = {
    "electra-train": ["-m", "electra_tf.train"],
    "electra-finetune": ["-m", "electra_tf.finetune"],
    "electra-export": ["-m", "electra_tf.export"],
    "build_vocab": [os.path.join(REPO, "tools", "build_vocab.py")],
    "build_pretraining_data": [os.path.join(REPO, "tools", "build_pretraining_data.py")],
}


def _run(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=300)


@pytest.mark.parametrize("prog", sorted(BINARIES))
@pytest.mark.parametrize("bad, expect", [
    ("--no_such_flag=1", "Unknown command line flag 'no_such_flag'"),
    ("stray", "unexpected argument 'stray'"),
])
def test_flag_errors_exit_2_with_one_line(prog, bad, expect):
    result = _run(BINARIES[prog] + [bad])
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"{prog}: error: ") and expect in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


def test_unparsable_flag_value_names_the_flag():
    result = _run(BINARIES["electra-train"] + ["--num_gpus=two"])
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "--num_gpus=two" in last and "Traceback" not in result.stderr


def test_ctrl_c_while_starting_is_one_line_and_130(tmp_path):
    """SIGINT while the binary is still loading TensorFlow (before its own handler)."""
    import signal
    import time

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen(
        [sys.executable, "-m", "electra_tf.train", f"--train_data={tmp_path}/none-*",
         f"--config={os.path.join(REPO, 'configs', 'electra_tiny.yaml')}",
         f"--model_dir={tmp_path / 'run'}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        # A background job of a non-interactive shell (a CI runner) starts with SIGINT
        # ignored, and an ignored SIGINT is inherited: the child would never see it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Send it once TensorFlow's library is being loaded (it is imported inside `main`, under
    # `cli.run`, and takes seconds), not after a fixed sleep: on a loaded machine the child
    # may not even have started Python after a second or two.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/maps") as f:
                if "libtensorflow_framework" in f.read():
                    break
        except OSError:
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("electra-train: interrupted (Ctrl-C); run the same "
                                            "command again to continue")
    assert not (tmp_path / "run").exists()
