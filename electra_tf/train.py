"""Pretrain ELECTRA: `python -m electra_tf.train` (console script `electra-train`).

    python -m electra_tf.train --config=configs/electra_small.yaml \
        --train_data='data/pretrain-*.tfrecord' --vocab=vocab.txt --model_dir=runs/small

Running the same command again resumes from the newest checkpoint in `--model_dir`.
Flags override the config's values; the resolved config is saved to `model_dir/config.yaml`.
Exit status: 0 done; 2 bad input (one `error:` line on stderr); 3 the loss became non-finite
(the last good checkpoint is kept); 143 stopped by SIGTERM after saving a checkpoint.
Everything here is flag parsing: the run itself is `electra_tf.training.trainer.train`.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS

flags.DEFINE_string("config", None, "YAML experiment file (configs/electra_*.yaml); may be "
                    "omitted when --model_dir already holds a config.yaml.")
flags.DEFINE_multi_string("override", [], "Config override section.key=value (repeatable).")
flags.DEFINE_string("train_data", None, "Glob or directory of pretraining TFRecords.")
flags.DEFINE_string("eval_data", None, "Glob or directory of held-out pretraining TFRecords.")
flags.DEFINE_string("model_dir", None, "Run directory: config, vocab, checkpoints, metrics.")
flags.DEFINE_string("vocab", None, "vocab.txt the data was built with (copied into model_dir; "
                    "required on the first run).")
flags.DEFINE_enum("strategy", "one_device",
                  ["one_device", "mirrored", "multi_worker_mirrored", "tpu"],
                  "tf.distribute strategy.")
flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu ('' or local: local).")
flags.DEFINE_integer("num_gpus", 0, "GPUs for one_device/mirrored (0: CPU).")
flags.DEFINE_integer("num_cpu_devices", 0, "Split the CPU into this many logical devices "
                     "(for --strategy=mirrored without GPUs; testing multi-device on CPU).")
flags.DEFINE_string("all_reduce_alg", None, "nccl | hierarchical_copy (mirrored), "
                    "ring | nccl (multi_worker_mirrored).")
flags.DEFINE_integer("train_steps", None, "training.train_steps (optimizer updates).")
flags.DEFINE_integer("steps_per_loop", None, "training.steps_per_loop (steps per tf.function).")
flags.DEFINE_integer("log_every", None, "training.log_every.")
flags.DEFINE_integer("checkpoint_every", None, "training.checkpoint_every.")
flags.DEFINE_integer("eval_every", None, "training.eval_every (0: only at the end).")
flags.DEFINE_integer("eval_steps", None, "training.eval_steps.")
flags.DEFINE_enum("mixed_precision", None, ["none", "mixed_bfloat16", "mixed_float16"],
                  "training.mixed_precision.")
flags.DEFINE_boolean("jit_compile", None, "training.jit_compile (XLA for the step).")
flags.DEFINE_integer("seed", None, "training.seed.")
flags.DEFINE_integer("batch_size", None, "training.batch_size (global, all replicas).")
flags.DEFINE_float("peak_tflops", None, "Per-device peak TFLOP/s for MFU (default: measured).")
flags.DEFINE_boolean("deterministic", False, "Enable TF op determinism (exact reruns on CPU).")
flags.DEFINE_integer("seed_group_size", 0, "Examples sharing one masking seed (0: the "
                     "per-replica batch); a fixed size keeps masks independent of the "
                     "number of replicas.")
flags.DEFINE_integer("debug_sigkill_after_checkpoint", None,
                     "Testing: SIGKILL the process right after saving this step.")
flags.DEFINE_integer("debug_sigterm_at_step", None, "Testing: SIGTERM the process at this step.")

_FLAG_TO_KEY = {
    "train_steps": "training.train_steps", "steps_per_loop": "training.steps_per_loop",
    "log_every": "training.log_every", "checkpoint_every": "training.checkpoint_every",
    "eval_every": "training.eval_every", "eval_steps": "training.eval_steps",
    "mixed_precision": "training.mixed_precision", "jit_compile": "training.jit_compile",
    "seed": "training.seed", "batch_size": "training.batch_size",
}


def resolve_config(config_path, overrides, flag_values: dict, model_dir: str):
    """The run's config: YAML (or model_dir/config.yaml), then --override, then flags.

    Args:
      config_path: --config, or None to reuse `model_dir/config.yaml`.
      overrides: --override values.
      flag_values: flag name -> value for the flags in `_FLAG_TO_KEY` (None: not given).
      model_dir: the run directory.
    """
    from electra_tf import config as config_lib
    from electra_tf.training import model_dir as model_dir_lib

    if config_path is None:
        config_path = os.path.join(model_dir, model_dir_lib.CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise config_lib.ConfigError(
                f"--config is required: {model_dir!r} has no {model_dir_lib.CONFIG_FILE} "
                "yet; pass one of configs/*.yaml")
    from_flags = [f"{_FLAG_TO_KEY[name]}={str(value).lower() if isinstance(value, bool) else value}"
                  for name, value in flag_values.items() if value is not None]
    return config_lib.load_config(config_path, list(overrides) + from_flags)


def main(argv):
    del argv
    for name in ("train_data", "model_dir"):
        if not getattr(FLAGS, name):
            print(f"error: --{name} is required", file=sys.stderr)
            sys.exit(2)

    # Before anything initialises TensorFlow's devices.
    from electra_tf.training import strategy as strategy_lib
    strategy_lib.configure_cpu_devices(FLAGS.num_cpu_devices)

    from absl import logging
    from electra_tf.config import ConfigError
    from electra_tf.data.pretraining_reader import DataError
    from electra_tf.text.vocab import VocabError
    from electra_tf.training import model_dir as model_dir_lib
    from electra_tf.training import trainer

    logging.set_verbosity(logging.INFO)
    bad_input = (ConfigError, DataError, VocabError, model_dir_lib.ModelDirError,
                 trainer.TrainerError, strategy_lib.StrategyError)
    try:
        cfg = resolve_config(FLAGS.config, FLAGS.override,
                             {name: getattr(FLAGS, name) for name in _FLAG_TO_KEY},
                             FLAGS.model_dir)
        result = trainer.train(
            cfg, train_data=FLAGS.train_data, model_dir=FLAGS.model_dir, vocab=FLAGS.vocab,
            eval_data=FLAGS.eval_data, strategy_name=FLAGS.strategy, num_gpus=FLAGS.num_gpus,
            all_reduce_alg=FLAGS.all_reduce_alg, tpu_address=FLAGS.tpu,
            peak_tflops=FLAGS.peak_tflops, deterministic=FLAGS.deterministic,
            seed_group_size=FLAGS.seed_group_size,
            debug_sigkill_after_checkpoint=FLAGS.debug_sigkill_after_checkpoint,
            debug_sigterm_at_step=FLAGS.debug_sigterm_at_step)
    except bad_input as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except trainer.NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    if result["preempted"]:
        sys.exit(trainer.PREEMPTED_EXIT_CODE)


def run():
    """Console entry point `electra-train`."""
    app.run(main)


if __name__ == "__main__":
    run()
