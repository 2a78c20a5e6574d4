"""Checkpoint conversion: Google's TF1 ELECTRA (and HFL's Chinese ELECTRA), HuggingFace
and keras-hub in; HuggingFace and keras-hub out (docs/architecture.md, "Checkpoint
conversion"). `tools/convert_checkpoint.py` is the command line."""
