"""Where a pretraining step's time goes: the top ops by total time, from a TF profiler trace.

Builds the trainer's own step (`PretrainingStep.train_loop`, as benchmarks/train_step.py
does), runs --warmup_steps, records --steps steps with `tf.profiler.experimental`, then reads
the trace (the XPlane protobuf TensorFlow writes) and sums the host's TensorFlow op events by
op type. Op times overlap when ops run in parallel (inter-op threads), so shares are of the
summed op time, not of wall time.

Prints ONE JSON line: step time, and the top --top op types with total ms per step and share.
Usage: python benchmarks/profile_step.py [--precision=fp32|bf16] [--batch_size=32]
"""

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
_OP_EVENT = re.compile(r"^[^:]+:([A-Za-z0-9_]+)$")


def _build_step(config, precision_name, batch_size, seq_length, jit_compile):
    import numpy as np
    import tensorflow as tf

    from electra_tf import config as config_lib
    from electra_tf.training import precision, step as step_lib

    cfg = config_lib.load_config(os.path.join(REPO, "configs", config),
                                 [f"data.max_seq_length={seq_length}"])
    precision.configure_precision("mixed_bfloat16" if precision_name == "bf16" else "none")
    strategy = tf.distribute.get_strategy()
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"w{i}" for i in range(cfg.model.vocab_size - len(tokens))]
    state = step_lib.create_train_state(cfg, tokens, strategy)
    layout = step_lib.BatchLayout.plan(global_batch=batch_size, num_replicas=1,
                                       num_local_replicas=1)
    step = step_lib.PretrainingStep(
        state["model"], state["optimizer"], strategy, layout, step=state["step"],
        rng=tf.random.Generator.from_seed(0), accumulator=state["accumulator"],
        jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, cfg.model.vocab_size, (batch_size, seq_length)).astype("int32")
    ids[:, 0], ids[:, -1] = 2, 3
    batch = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
             "padding_mask": np.ones_like(ids)}
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    one = tf.constant(1, tf.int32)
    return lambda: np.asarray(step.train_loop(iterator, one)[0])


def op_times(logdir):
    """{op type: total microseconds} of the host's TensorFlow op events in a trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals = collections.Counter()
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            names = {k: v.name for k, v in plane.event_metadata.items()}
            for line in plane.lines:
                # The executor's threads; their op events are "op/name:OpType" (the
                # framework's own events, e.g. "ExecutorState::Process", contain "::").
                if not line.name.startswith("tf_Compute"):
                    continue
                for event in line.events:
                    match = _OP_EVENT.match(names.get(event.metadata_id, ""))
                    if match:
                        totals[match.group(1)] += event.duration_ps / 1e6
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="electra_small.yaml")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup_steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--jit_compile", action="store_true")
    args = parser.parse_args()

    import tensorflow as tf

    run = _build_step(args.config, args.precision, args.batch_size, args.seq_length,
                      args.jit_compile)
    for _ in range(args.warmup_steps):
        run()
    logdir = tempfile.mkdtemp(prefix="profile_step_")
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(args.steps):
        run()
    wall = (time.perf_counter() - start) / args.steps
    tf.profiler.experimental.stop()
    totals = op_times(logdir)
    summed = sum(totals.values())
    top = [{"op": op, "ms_per_step": round(us / 1e3 / args.steps, 1),
            "share": round(us / summed, 3)} for op, us in totals.most_common(args.top)]
    print(json.dumps({"benchmark": "profile_step", "config": args.config,
                      "precision": args.precision, "batch_size": args.batch_size,
                      "seq_length": args.seq_length, "jit_compile": args.jit_compile,
                      "step_s": round(wall, 3),
                      "op_ms_per_step": round(summed / 1e3 / args.steps, 1), "top": top}))


if __name__ == "__main__":
    main()
