"""TFLite export: four numeric variants x two input styles, TFLite builtins only.

Variants (`quantize`):
  - `none`: float32.
  - `float16`: float16 weights (dequantized at load; float32 arithmetic).
  - `dynamic`: dynamic-range int8 (int8 weights, activations quantized on the fly).
  - `int8`: full integer (int8 weights and activations, scales calibrated on a
    representative dataset drawn from training data); int32 ids in, float32 out.
Input styles:
  - `ids`: `token_ids`, `segment_ids`, `padding_mask` int32 [batch, max_seq_length]; the
    sequence length is fixed, the batch is resizable (signature `serve_ids`).
  - `text`: raw strings [batch] (signature `serve_text`); FastBertTokenizer runs as TF Text
    custom ops, so the interpreter must be `InterpreterWithCustomOps(custom_op_registerers=
    tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS)` (use `load_interpreter`).
Outputs are the numeric ones of the SavedModel (serving.py): `logits` and
`replaced_probability` (discriminator), `probabilities` (classifier, tagger), `score`
(regression), plus `token_ids` and `padding_mask` of the text style for per-token tasks.
The string outputs (`labels`, `label`, `tags`) are left out: every variant, the full-integer
one included, is then the same numeric graph, whose outputs `verify.py` checks against Keras
with one set of floors, and an on-device app maps an argmax to a name with `labels.txt`
(written beside the models for classifiers and taggers: one name per line, in class-id
order) instead of carrying strings through the interpreter.
Only TFLITE_BUILTINS (+ TF Text custom ops): Flex (select TF) ops do not run in ai-edge-litert.
Converted from a SavedModel (docs/architecture.md, "Facts about the stack": the supported path), written by ExportArchive to a
scratch directory with fixed-length signatures.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import tensorflow as tf

from electra_tf.export import serving
from electra_tf.export.choices import INPUT_STYLES, QUANTIZATIONS  # noqa: F401  (re-exported)

SIGNATURE = {"ids": "serve_ids", "text": "serve_text"}
LABELS_FILE = "labels.txt"
VARIANT_NAMES = {"none": "float32", "float16": "float16", "dynamic": "dynamic_int8",
                 "int8": "int8"}


def tflite_file_name(name: str, style: str, quantize: str) -> str:
    """`NAME_ids_float32.tflite`, `NAME_text_dynamic_int8.tflite`, ..."""
    return f"{name}_{style}_{VARIANT_NAMES[quantize]}.tflite"


def write_conversion_source(model, tokenizer, directory: str, *, task: str, style: str,
                            max_seq_length: int) -> str:
    """Writes the fixed-shape SavedModel the converter reads; returns its path.

    Args:
      model: the Keras model.
      tokenizer: its `ElectraTokenizer` (used by the `text` style).
      directory: scratch directory (created).
      task: one of `serving.TASKS`.
      style: `ids` or `text`.
      max_seq_length: the fixed sequence length.
    """
    import keras  # pylint: disable=import-outside-toplevel

    path = os.path.join(directory, f"source_{style}")
    archive = keras.export.ExportArchive()
    archive.track(model)
    if style == "ids":
        fn = serving.make_ids_function(model, task, seq_length=max_seq_length, names=False)
    else:
        archive.track(tokenizer)
        fn = serving.make_text_function(model, tokenizer, task, max_seq_length, trim=False,
                                        names=False)
    archive.add_endpoint(SIGNATURE[style], fn)
    archive.write_out(path, verbose=False)
    return path


def convert(saved_model_dir: str, *, style: str, quantize: str,
            representative: Optional[list] = None) -> bytes:
    """Converts one variant.

    Args:
      saved_model_dir: from `write_conversion_source`.
      style: `ids` or `text`.
      quantize: one of QUANTIZATIONS.
      representative: for `int8`, a list of input dicts (batch 1 each) keyed by input name.

    Returns:
      The .tflite flatbuffer.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=[SIGNATURE[style]])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if style == "text":
        converter.allow_custom_ops = True  # the TF Text tokenizer ops
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        if not representative:
            raise ValueError("int8 quantization needs a representative dataset")
        converter.representative_dataset = lambda: iter(representative)
        # Full integer: every builtin op int8 (ids and outputs stay int32/float32).
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if style == "text":
            # Calibration runs the model in TFLite, which must know the tokenizer ops. The
            # converter has no public switch for custom op resolvers during calibration;
            # this private attribute is the one its own code reads (tf.lite lite.py).
            import tensorflow_text  # pylint: disable=import-outside-toplevel

            converter.target_spec._experimental_custom_op_registerers = list(  # pylint: disable=protected-access
                tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS)
    return converter.convert()


def load_interpreter(model, num_threads: Optional[int] = None):
    """An ai-edge-litert interpreter that also runs the TF Text tokenizer ops.

    Args:
      model: path of a .tflite file, or its bytes.
      num_threads: CPU threads (None: the runtime's default).
    """
    import tensorflow_text  # pylint: disable=import-outside-toplevel
    from ai_edge_litert import interpreter as litert  # pylint: disable=import-outside-toplevel

    kwargs = {"model_content": model} if isinstance(model, (bytes, bytearray)) else {
        "model_path": os.fspath(model)}
    return litert.InterpreterWithCustomOps(
        custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS,
        num_threads=num_threads, **kwargs)


def run(interpreter, inputs: dict, *, style: Optional[str] = None) -> dict:
    """Runs the model's (only) signature on `inputs`; the batch is resized as needed.

    Args:
      interpreter: from `load_interpreter`.
      inputs: `{"text": [str]}` or the three id arrays.
      style: `ids` or `text`; None infers it from `inputs`.
    """
    style = style or ("text" if "text" in inputs else "ids")
    runner = interpreter.get_signature_runner(SIGNATURE[style])
    if style == "text":
        # Encoded explicitly: NumPy's str -> bytes conversion is ASCII-only.
        feed = {"text": np.array([t.encode("utf-8") if isinstance(t, str) else bytes(t)
                                  for t in inputs["text"]], dtype=bytes)}
    else:
        feed = {k: np.asarray(inputs[k], dtype=np.int32) for k in serving.ID_INPUTS}
    return runner(**feed)


def write_labels(directory: str, labels) -> str:
    """Writes `labels.txt` (one label name per line, in class-id order); returns its path.

    Args:
      directory: the TFLite version directory.
      labels: the label names.

    Example:

    >>> import tempfile
    >>> path = write_labels(tempfile.mkdtemp(), ["负面", "positive"])
    >>> open(path, encoding="utf-8").read().splitlines()
    ['负面', 'positive']
    """
    from electra_tf.files import atomic_write_bytes  # pylint: disable=import-outside-toplevel

    path = os.path.join(directory, LABELS_FILE)
    atomic_write_bytes(path, "".join(f"{name}\n" for name in labels).encode("utf-8"))
    return path


def representative_inputs(calibration, style: str) -> list:
    """Batch-1 input dicts for the converter's representative dataset.

    Args:
      calibration: a `CalibrationData`.
      style: `ids` or `text`.
    """
    if style == "text":
        return [{"text": np.array([t.encode("utf-8")])} for t in calibration.calibration_texts]
    rows = calibration.calibration["token_ids"].shape[0]
    return [{k: calibration.calibration[k][i:i + 1].astype(np.int32) for k in serving.ID_INPUTS}
            for i in range(rows)]
