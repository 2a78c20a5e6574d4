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
