"""Pretrain ELECTRA: `python -m electra_tf.train` (console script `electra-train`).

    python -m electra_tf.train --config=configs/electra_small.yaml \
        --train_data='data/pretrain-*.tfrecord' --vocab=vocab.txt --model_dir=runs/small

Running the same command again resumes from the newest checkpoint in `--model_dir`.
Flags override the config's values; the resolved config is saved to `model_dir/config.yaml`.
Exit status: 0 done; 2 bad input (one `error:` line on stderr: a bad flag, config or data, a
model dir in use by another run, a damaged shard met mid-run, a full disk; the last good
checkpoint is kept); 3 the loss became non-finite (the last good checkpoint is kept); 143
(SIGTERM) or 130 (SIGINT, Ctrl-C): stopped after saving a checkpoint.
Everything here is flag parsing: the run itself is `electra_tf.training.trainer.train`.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from electra_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("config", None, "YAML experiment file (configs/electra_*.yaml); may be "
                    "omitted when --model_dir already holds a config.yaml.")
flags.DEFINE_multi_string("override", [], "Config override section.key=value (repeatable).")
flags.DEFINE_string("train_data", None, "Glob or directory of pretraining TFRecords.")
flags.DEFINE_string("eval_data", None, "Glob or directory of held-out pretraining TFRecords.")
flags.DEFINE_string("model_dir", None, "Run directory: config, vocab, checkpoints, metrics.")
flags.DEFINE_string("vocab", None, "vocab.txt the data was built with (copied into model_dir; "
                    "required on the first run).")
# Every flag below is a config key (`_FLAG_TO_KEY`), so model_dir/config.yaml records the
# whole run and a resume with fewer flags behaves the same. Paths stay flags.
flags.DEFINE_enum("strategy", None, ["one_device", "mirrored", "multi_worker_mirrored", "tpu"],
                  "runtime.strategy: the tf.distribute strategy.")
flags.DEFINE_string("tpu", None, "runtime.tpu: TPU name or address for --strategy=tpu.")
flags.DEFINE_integer("num_gpus", None, "runtime.num_gpus for one_device/mirrored (0: CPU).")
flags.DEFINE_integer("num_cpu_devices", None, "runtime.num_cpu_devices: split the CPU into "
                     "this many logical devices (--strategy=mirrored without GPUs).")
flags.DEFINE_string("all_reduce_alg", None, "runtime.all_reduce_alg: nccl | hierarchical_copy "
                    "(mirrored), ring | nccl (multi_worker_mirrored).")
flags.DEFINE_float("peak_tflops", None, "runtime.peak_tflops: per-device peak TFLOP/s for MFU "
                   "(default: measured).")
flags.DEFINE_boolean("deterministic", None, "runtime.deterministic: TF op determinism (exact "
                     "reruns on CPU).")
flags.DEFINE_boolean("verify_data", None, "runtime.verify_data: read every record of the "
                     "data back before training (CRC, schema, counts against dataset.json); "
                     "without it only the shard sizes are checked.")
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
flags.DEFINE_integer("seed_group_size", None, "training.seed_group_size: examples sharing one "
                     "masking seed (0: the per-replica batch); a fixed size keeps masks "
                     "independent of the number of replicas.")

_FLAG_TO_KEY = {
    "strategy": "runtime.strategy", "tpu": "runtime.tpu", "num_gpus": "runtime.num_gpus",
    "num_cpu_devices": "runtime.num_cpu_devices", "all_reduce_alg": "runtime.all_reduce_alg",
    "peak_tflops": "runtime.peak_tflops", "deterministic": "runtime.deterministic",
    "verify_data": "runtime.verify_data",
    "train_steps": "training.train_steps", "steps_per_loop": "training.steps_per_loop",
    "log_every": "training.log_every", "checkpoint_every": "training.checkpoint_every",
    "eval_every": "training.eval_every", "eval_steps": "training.eval_steps",
    "mixed_precision": "training.mixed_precision", "jit_compile": "training.jit_compile",
    "seed": "training.seed", "batch_size": "training.batch_size",
    "seed_group_size": "training.seed_group_size",
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
    from electra_tf import model_dir as model_dir_lib

    if config_path is None:
        config_path = os.path.join(model_dir, model_dir_lib.CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise config_lib.ConfigError(
                f"--config is required: {model_dir!r} has no {model_dir_lib.CONFIG_FILE} "
                "yet; pass one of configs/*.yaml")
    from_flags = [f"{_FLAG_TO_KEY[name]}={str(value).lower() if isinstance(value, bool) else value}"
                  for name, value in flag_values.items() if value is not None]
    return config_lib.load_config(config_path, list(overrides) + from_flags)


def check_vocab_size_override(overrides, vocab_path: str) -> None:
    """Refuses `--override model.vocab_size=N` unless N is the vocabulary's size.

    The run sets `model.vocab_size` from the vocabulary (docs/architecture.md, "The model
    dir"), so any other value would be silently replaced; fine-tuning's `--override` treats
    it the same way.

    Args:
      overrides: the --override values.
      vocab_path: the vocabulary the run will use (--vocab, or model_dir/vocab.txt).
    """
    from electra_tf import config as config_lib
    from electra_tf.text import vocab as vocab_lib

    for text in overrides:
        (section, *rest), value = config_lib.parse_override(text, "--override")
        if [section] + rest != ["model", "vocab_size"] or not os.path.isfile(vocab_path):
            continue
        size = len(vocab_lib.load_vocab(vocab_path))
        if value != size:
            raise config_lib.ConfigError(
                f"--override {text}: model.vocab_size is set from the vocabulary, and "
                f"{vocab_path} has {size} tokens; drop the override (or pass the vocabulary "
                "of that size with --vocab)")


def main(argv, callbacks=()):
    """Runs the binary from parsed flags; `callbacks` are passed to the trainer (tests)."""
    if len(argv) > 1:
        # absl leaves unparsed words in argv: `--deterministic false` would otherwise turn
        # determinism on and silently ignore "false".
        print(f"error: unexpected argument {argv[1]!r}; flags take the form --name=value "
              "(booleans: --name or --noname)", file=sys.stderr)
        sys.exit(2)
    for name in ("train_data", "model_dir"):
        if not getattr(FLAGS, name):
            print(f"error: --{name} is required", file=sys.stderr)
            sys.exit(2)

    from absl import logging
    from electra_tf.config import ConfigError
    from electra_tf.training import trainer
    from electra_tf.data.pretraining_reader import DataError
    from electra_tf import model_dir as model_dir_lib
    from electra_tf.model_dir import ModelDirError
    from electra_tf.text.vocab import VocabError
    from electra_tf.training import step as step_lib
    from electra_tf.training import strategy as strategy_lib
    from electra_tf.training.checkpointing import CheckpointError

    logging.set_verbosity(logging.INFO)
    bad_input = (ConfigError, DataError, VocabError, ModelDirError, step_lib.BatchLayoutError,
                 strategy_lib.StrategyError, trainer.TrainerError, CheckpointError)
    try:
        # Before any work: a --model_dir that is a file or cannot be written.
        model_dir_lib.check_writable_dir(FLAGS.model_dir)
        cfg = resolve_config(FLAGS.config, FLAGS.override,
                             {name: getattr(FLAGS, name) for name in _FLAG_TO_KEY},
                             FLAGS.model_dir)
        check_vocab_size_override(
            FLAGS.override,
            FLAGS.vocab or os.path.join(FLAGS.model_dir, model_dir_lib.VOCAB_FILE))
        # Before anything initialises TensorFlow's devices.
        strategy_lib.configure_cpu_devices(cfg.runtime.num_cpu_devices)
        result = trainer.train(
            cfg, train_data=FLAGS.train_data, model_dir=FLAGS.model_dir, vocab=FLAGS.vocab,
            eval_data=FLAGS.eval_data, callbacks=callbacks)
    except bad_input as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except trainer.NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    if result["preempted"]:
        sys.exit(128 + int(result["preempted"]))


def run():
    """Console entry point `electra-train`."""
    cli.run(main, "electra-train")


if __name__ == "__main__":
    run()
