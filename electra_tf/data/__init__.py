"""Pretraining data: example packing, the sharded TFRecord builder and the tf.data reader.

Names are resolved lazily so that importing `electra_tf.data.packing` does not load
TensorFlow.
"""

_EXPORTS = {
    "build_pretraining_data": "electra_tf.data.pretraining_builder",
    "BuildInterrupted": "electra_tf.data.pretraining_builder",
    "ExampleBuilder": "electra_tf.data.packing",
    "pretraining_dataset": "electra_tf.data.pretraining_reader",
    "read_sidecar": "electra_tf.data.pretraining_reader",
    "check_sidecar": "electra_tf.data.pretraining_reader",
    "DataError": "electra_tf.data.pretraining_reader",
    "DataMismatchError": "electra_tf.data.pretraining_reader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'electra_tf.data' has no attribute {name!r}")
