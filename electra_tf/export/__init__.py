"""Export: SavedModel for TF Serving, TFLite variants, and their verification.

`python -m electra_tf.export --model_dir=DIR --output=OUT` (console script `electra-export`)
runs the binary in cli.py. Names are re-exported lazily so that importing this package does
not load TensorFlow until something is used.
"""

from electra_tf._lazy import lazy_exports

_EXPORTS = {
    "ExportError": ".source",
    "ExportSource": ".source",
    "load_export_source": ".source",
    "export_saved_model": ".saved_model",
    "export_all": ".pipeline",
    "load_calibration_data": ".calibration",
    "load_interpreter": ".tflite",
    "roc_auc": ".verify",
    "read_warmup_requests": ".warmup",
    "write_warmup_requests": ".warmup",
    "predict_request": ".warmup",
    "demo_replaced_tokens": ".demo",
    "run": ".cli",
    "main": ".cli",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
