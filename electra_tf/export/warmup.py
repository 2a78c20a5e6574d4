r"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays the records of that file (a TFRecord of `tensorflow.serving.PredictionLog`)
when it loads a model version, so the first real request does not pay for graph
initialisation. The messages are defined here by hand, because `tensorflow_serving.apis`
(the `tensorflow-serving-api` package) is not installed in this stack and pulling it in for
four small messages would pin another TensorFlow-versioned package. The definitions below
mirror tensorflow/serving's `apis/model.proto`, `apis/predict.proto` and
`apis/prediction_log.proto` field for field (only the fields we write), so the bytes are
exactly what TF Serving parses; `TensorProto` is TensorFlow's own.

Example:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "tf_serving_warmup_requests")
>>> write_warmup_requests(path, "electra", [("serving_default", {"text": ["一句话"]})])
>>> [(spec, sorted(inputs)) for spec, inputs in read_warmup_requests(path)]
[(('electra', 'serving_default'), ['text'])]
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tensorflow.core.framework import tensor_pb2

from electra_tf.files import atomic_write

WARMUP_FILE = "tf_serving_warmup_requests"

# (message, [(field, number, type, message type)]) of the minimal schema. Field numbers are
# tensorflow/serving's: ModelSpec.signature_name is 3 (2 is the Int64Value version, which
# we never set), PredictRequest.inputs is 2, PredictLog.request is 1 and
# PredictionLog.predict_log is 6 (inside the `log_type` oneof).
_F = descriptor_pb2.FieldDescriptorProto
_SCHEMA = (
    ("ModelSpec", [("name", 1, _F.TYPE_STRING, None),
                   ("signature_name", 3, _F.TYPE_STRING, None)]),
    ("PredictRequest", [("model_spec", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.ModelSpec"),
                        ("inputs", 2, _F.TYPE_MESSAGE,
                         ".tensorflow.serving.PredictRequest.InputsEntry"),
                        ("output_filter", 3, _F.TYPE_STRING, None)]),
    ("PredictLog", [("request", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PredictRequest")]),
    ("PredictionLog", [("predict_log", 6, _F.TYPE_MESSAGE, ".tensorflow.serving.PredictLog")]),
)


def _add_file_with_deps(pool, file_descriptor, added):
    for dep in file_descriptor.dependencies:
        _add_file_with_deps(pool, dep, added)
    if file_descriptor.name not in added:
        proto = descriptor_pb2.FileDescriptorProto()
        file_descriptor.CopyToProto(proto)
        pool.Add(proto)
        added.add(file_descriptor.name)


@functools.lru_cache(maxsize=None)
def _classes():
    """Message classes built in a private descriptor pool (no clash if the real API appears)."""
    pool = descriptor_pool.DescriptorPool()
    _add_file_with_deps(pool, tensor_pb2.DESCRIPTOR, set())
    proto = descriptor_pb2.FileDescriptorProto(
        name="electra_tf/export/tensorflow_serving_min.proto", package="tensorflow.serving",
        syntax="proto3", dependency=[tensor_pb2.DESCRIPTOR.name])
    for name, fields in _SCHEMA:
        message = proto.message_type.add(name=name)
        for field_name, number, field_type, type_name in fields:
            label = (_F.LABEL_REPEATED if field_name in ("inputs", "output_filter")
                     else _F.LABEL_OPTIONAL)
            field = message.field.add(name=field_name, number=number, type=field_type,
                                      label=label)
            if type_name:
                field.type_name = type_name
        if name == "PredictRequest":
            # map<string, TensorProto> is a repeated nested entry message with map_entry set.
            entry = message.nested_type.add(name="InputsEntry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
            entry.field.add(name="value", number=2, type=_F.TYPE_MESSAGE,
                            label=_F.LABEL_OPTIONAL, type_name=".tensorflow.TensorProto")
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"tensorflow.serving.{name}")) for name, _ in _SCHEMA}


def prediction_log(model_name: str, signature_name: str, inputs: dict) -> bytes:
    """One serialized `PredictionLog` holding a `PredictRequest`.

    Args:
      model_name: the servable name TF Serving loads the model under (`--model_name`).
      signature_name: the signature to call (`serving_default`, `serve_ids`, ...).
      inputs: input name -> array-like (strings or numbers), as in the signature.
    """
    classes = _classes()
    log = classes["PredictionLog"]()
    request = log.predict_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for key, value in inputs.items():
        request.inputs[key].ParseFromString(
            tf.make_tensor_proto(np.asarray(value)).SerializeToString())
    return log.SerializeToString()


def write_warmup_requests(path: str, model_name: str, requests) -> None:
    """Writes the warm-up TFRecord atomically (`electra_tf.files.atomic_write`).

    Args:
      path: usually `<version dir>/assets.extra/tf_serving_warmup_requests`.
      model_name: servable name.
      requests: iterable of (signature_name, inputs dict).
    """
    with atomic_write(path, "wb") as f:
        # TFRecordWriter takes a file name, not a file object: it fills the temporary file
        # by name; atomic_write then syncs it (same inode) and renames it over `path`.
        with tf.io.TFRecordWriter(f.name) as writer:
            for signature_name, inputs in requests:
                writer.write(prediction_log(model_name, signature_name, inputs))


def read_warmup_requests(path: str) -> list:
    """Parses a warm-up file back: [((model_name, signature_name), {input: ndarray})].

    Args:
      path: a `tf_serving_warmup_requests` file.
    """
    classes = _classes()
    out = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = classes["PredictionLog"].FromString(record)
        request = log.predict_log.request
        inputs = {}
        for key, value in request.inputs.items():
            tensor = tensor_pb2.TensorProto.FromString(value.SerializeToString())
            inputs[key] = tf.make_ndarray(tensor)
        out.append(((request.model_spec.name, request.model_spec.signature_name), inputs))
    return out
