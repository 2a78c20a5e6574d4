"""Repository-level pytest set-up: what the docstring examples of `electra_tf` may use.

`make test` collects every docstring example of the package (`--doctest-modules`), so the
examples in docstrings run and stay true.
"""

import importlib.util
import os

# Quiet TensorFlow's start-up chatter; tests and examples run on CPU only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

# Binaries define absl flags at import (some share names, e.g. --max_seq_length), and the
# tools and benchmarks are scripts: none has docstring examples to collect. Collecting
# electra_tf/export/__init__.py would resolve its lazy re-exports, the binary's included.
collect_ignore = ["setup.py", "benchmarks", "tools", "electra_tf/train.py",
                  "electra_tf/demo.py", "electra_tf/finetune.py", "electra_tf/export/cli.py",
                  "electra_tf/export/__main__.py", "electra_tf/export/__init__.py"]
# Apache Beam is an optional extra (pip install -e .[beam]).
if importlib.util.find_spec("apache_beam") is None:
    collect_ignore += ["electra_tf/data/beam_pipeline.py", "electra_tf/data/beam_transforms.py"]


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    doctest_namespace.update(np=np, tf=tf, keras=keras, keras_hub=keras_hub)
