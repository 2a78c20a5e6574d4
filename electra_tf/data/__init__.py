"""Pretraining data: example packing and encoding, the sharded TFRecord builder (its plan,
its local worker pool and its Apache Beam pipeline) and the tf.data reader.

Names are resolved lazily so that importing `electra_tf.data.packing` does not load
TensorFlow.
"""

from electra_tf._lazy import lazy_exports

_EXPORTS = {
    "build_pretraining_data": "electra_tf.data.pretraining_builder",
    "build_pretraining_data_beam": "electra_tf.data.beam_pipeline",
    "BuildInterrupted": "electra_tf.data.worker_pool",
    "ExampleBuilder": "electra_tf.data.packing",
    "pretraining_dataset": "electra_tf.data.pretraining_reader",
    "read_sidecar": "electra_tf.data.pretraining_reader",
    "check_sidecar": "electra_tf.data.pretraining_reader",
    "DataError": "electra_tf.data.pretraining_reader",
    "DataMismatchError": "electra_tf.data.pretraining_reader",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
