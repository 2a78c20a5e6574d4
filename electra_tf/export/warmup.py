r"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays the records of that file (a TFRecord of `tensorflow.serving.PredictionLog`)
when it loads a model version, so the first real request does not pay for graph
initialisation. The records are built with TF Serving's own Python messages
(`tensorflow_serving.apis`, package `tensorflow-serving-api`, pinned to the TensorFlow
release), so the bytes are what TF Serving parses by construction.

Example:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "tf_serving_warmup_requests")
>>> write_warmup_requests(path, "electra", [("serving_default", {"text": ["一句话"]})])
>>> [(spec, sorted(inputs)) for spec, inputs in read_warmup_requests(path)]
[(('electra', 'serving_default'), ['text'])]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from electra_tf.files import atomic_write

WARMUP_FILE = "tf_serving_warmup_requests"


def predict_request(model_name: str, signature_name: str, inputs: dict):
    """A `PredictRequest` for one signature, inputs as `TensorProto`s.

    Args:
      model_name: the servable name TF Serving loads the model under (`--model_name`).
      signature_name: the signature to call (`serving_default`, `serve_ids`, ...).
      inputs: input name -> array-like (strings or numbers), as in the signature.

    Example:

    >>> request = predict_request("electra", "serve_ids", {"token_ids": [[2, 5, 3]]})
    >>> request.model_spec.signature_name, tf.make_ndarray(request.inputs["token_ids"]).shape
    ('serve_ids', (1, 3))
    """
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return request


def prediction_log(model_name: str, signature_name: str, inputs: dict) -> bytes:
    """One serialized `PredictionLog` holding a `PredictRequest` (see `predict_request`).

    Args:
      model_name: the servable name.
      signature_name: the signature to call.
      inputs: input name -> array-like.
    """
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(
            request=predict_request(model_name, signature_name, inputs)))
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
    out = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        inputs = {key: tf.make_ndarray(value) for key, value in request.inputs.items()}
        out.append(((request.model_spec.name, request.model_spec.signature_name), inputs))
    return out
