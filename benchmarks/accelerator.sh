#!/usr/bin/env bash
# ELECTRA-Small and ELECTRA-Base pretraining steps on one accelerator, mixed_bfloat16 + XLA.
#
# Prints one JSON line per model (benchmarks/train_step.py --which=ours --accelerator):
# sequences/s and MFU against the bf16 matmul peak measured on the same device in the same
# run (8192-wide matmuls). The step is the trainer's own (`PretrainingStep.train_loop`).
# Sized to finish in under 5 minutes on one GPU (XLA compilation included).
#
# Usage: bash benchmarks/accelerator.sh            (PYTHON=... to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

"$PY" - <<'PYEOF'
import json, tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
details = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
print(json.dumps({"accelerators": details}))
if not gpus:
    raise SystemExit("accelerator.sh: no GPU is visible to TensorFlow; this benchmark is "
                     "for an accelerator (the CPU figures come from train_step.py)")
PYEOF

run() {  # config batch seq
  "$PY" benchmarks/train_step.py --accelerator --which=ours --precision=bf16 --jit_compile \
    --config="configs/electra_$1.yaml" --batch_size="$2" --seq_length="$3" \
    --steps=10 --warmup_steps=3 --rounds=2 --peak_matmul_size=8192
}
run small 128 128   # the paper's Small batch and length
run base 64 512     # Base at its sequence length (the paper's 256 is 4 of these)
