"""electra_tf: pretrain, fine-tune and ship ELECTRA text encoders with TensorFlow and Keras 3."""

from electra_tf._lazy import lazy_exports

__version__ = "0.1.0"

# Loaders are re-exported lazily so that `import electra_tf` (e.g. for the config or the
# tokenizer) does not import TensorFlow and Keras.
_LAZY = {
    "load_pretrainer": "electra_tf.model_loading",
    "load_discriminator": "electra_tf.model_loading",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
