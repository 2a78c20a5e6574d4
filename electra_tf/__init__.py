"""electra_tf: pretrain, fine-tune and ship ELECTRA text encoders with TensorFlow and Keras 3."""

__version__ = "0.1.0"

# Loaders are re-exported lazily so that `import electra_tf` (e.g. for the config or the
# tokenizer) does not import TensorFlow and Keras.
_LAZY = {
    "load_pretrainer": "electra_tf.training.model_dir",
    "load_discriminator": "electra_tf.training.model_dir",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'electra_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
