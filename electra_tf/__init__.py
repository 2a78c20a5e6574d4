"""electra_tf: pretrain, fine-tune and ship ELECTRA text encoders with TensorFlow and Keras 3."""

__version__ = "0.1.0"
