import os
import sys

import numpy as np

# Quiet TensorFlow's start-up chatter in test logs; tests run on CPU only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# A script the resume test runs in a subprocess, not a test module.
collect_ignore = ["fault_injection_train.py"]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


def tiny_batch():
    """Two rows of a pretraining batch (ids < 26): one full row, one with two segments and
    padding; shared by the modeling and objective tests."""
    token_ids = np.array([[2, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 3],
                          [2, 21, 22, 23, 3, 24, 25, 3, 0, 0, 0, 0]], dtype="int32")
    padding_mask = (token_ids != 0).astype("int32")
    segment_ids = np.zeros_like(token_ids)
    segment_ids[1, 5:8] = 1
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}


import contextlib  # noqa: E402
import subprocess  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def small_disk(tmp_path):
    """A factory for a directory on a tiny tmpfs (`small_disk(kib)` -> path), to fill the disk.

    Mounting needs root; elsewhere the test is skipped with the reason. Unmounted at the end.
    """
    mounts = []

    def make(kib: int) -> str:
        path = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        path.mkdir()
        if os.geteuid() != 0:
            pytest.skip("filling a disk needs a tmpfs mount, which needs root")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(kib)}k", "tmpfs",
                                 str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounts.append(path)
        return str(path)

    yield make
    for path in mounts:
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
