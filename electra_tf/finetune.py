"""Fine-tune ELECTRA: `python -m electra_tf.finetune` (console script `electra-finetune`).

    python -m electra_tf.finetune --task=sst2 --data_dir=glue/SST-2 --init=runs/small \
        --output_dir=runs/sst2 [--seeds=1,2,3] [--epochs=3] [--learning_rate=3e-4]

    python -m electra_tf.finetune --task=classification --data_dir=my_data \
        --text_column=review --label_column=label --init=runs/small --output_dir=runs/mine

Running the same command again resumes where it stopped. Exit status: 0 done; 2 bad input
(one `error:` line on stderr, nothing written; also an output dir in use by another run, or
a full disk, with what was finished kept); 3 the loss became non-finite. Everything here
is flag parsing: the run is `electra_tf.training.finetuning.run_finetuning`.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from electra_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("task", None, "cola|sst2|mrpc|stsb|qqp|mnli|qnli|rte|wnli, or "
                    "classification|regression|tagging for your own data.")
flags.DEFINE_string("data_dir", None, "Directory of the task's train and dev files.")
flags.DEFINE_string("init", None, "A pretraining (or converted) model dir, or 'none' for "
                    "random initialisation (the baseline).")
flags.DEFINE_string("output_dir", None, "Where results.json, checkpoints and the kept model go.")
flags.DEFINE_string("config", None, "Model size YAML for --init=none (default: "
                    "ELECTRA-Small's sizes).")
flags.DEFINE_string("vocab", None, "vocab.txt (required with --init=none; else must match "
                    "the model dir's).")
flags.DEFINE_multi_string("override", [], "Config override section.key=value: of the model "
                          "config (--init=none), or on --init's config.yaml, where the "
                          "model's sizes may not change (e.g. model.hidden_dropout may).")
flags.DEFINE_integer("epochs", None, "Epochs (default: 3, 10 for RTE and STS-B).")
flags.DEFINE_float("learning_rate", None, "Peak learning rate (default by model size: 3e-4 "
                   "Small, 1e-4 Base, 5e-5 Large).")
flags.DEFINE_float("layerwise_lr_decay", None, "Per-layer learning-rate decay (default 0.8, "
                   "0.9 for Large).")
flags.DEFINE_bool("reference_layerwise_decay", False, "Reproduce the reference code's extra "
                  "decay factor below the head.")
flags.DEFINE_list("seeds", ["1"], "Fine-tuning seeds; results give each and the median.")
flags.DEFINE_integer("max_seq_length", None, "Tokens per example (default 128).")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_float("warmup_fraction", 0.1, "Fraction of the steps spent warming up.")
flags.DEFINE_float("weight_decay", 0.01, "Decoupled weight decay (reference code: 0.01).")
flags.DEFINE_string("text_column", None, "Column (or 0-based index) of the text.")
flags.DEFINE_string("text_pair_column", None, "Column of the second text (pair tasks).")
flags.DEFINE_string("label_column", None, "Column of the label.")
flags.DEFINE_string("train_file", None, "Training file in --data_dir (default train.*).")
flags.DEFINE_string("dev_file", None, "Evaluation file in --data_dir (default dev.*).")
flags.DEFINE_enum("header", "auto", ["auto", "yes", "no"], "Whether CSV/TSV files have a "
                  "header row.")
flags.DEFINE_enum("strategy", "one_device", ["one_device", "mirrored", "tpu"],
                  "tf.distribute strategy (multi-worker fine-tuning is not supported yet).")
flags.DEFINE_integer("num_gpus", 0, "GPUs for one_device/mirrored.")
flags.DEFINE_integer("num_cpu_devices", 0, "Logical CPU devices (mirrored without GPUs).")
flags.DEFINE_string("all_reduce_alg", None, "Cross-device all-reduce algorithm.")
flags.DEFINE_string("tpu", None, "TPU name or address.")
flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_bfloat16", "mixed_float16"],
                  "Mixed precision policy.")
flags.DEFINE_integer("checkpoint_every", 200, "Also checkpoint every N steps within an epoch.")
flags.DEFINE_bool("progress", True, "Progress bar with ETA per epoch.")
flags.DEFINE_integer("max_train_examples", None, "Train on a fixed random subset of this "
                     "many examples (the same for every seed).")


def options_from_flags():
    """The `FinetuneOptions` of the parsed flags."""
    from electra_tf.training.finetuning import FinetuneError, FinetuneOptions

    try:
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError:
        raise FinetuneError(f"--seeds={','.join(FLAGS.seeds)} must be integers, e.g. "
                            "--seeds=1,2,3") from None
    return FinetuneOptions(
        task=FLAGS.task, data_dir=FLAGS.data_dir, output_dir=FLAGS.output_dir,
        init=FLAGS.init, config=FLAGS.config, vocab=FLAGS.vocab, overrides=FLAGS.override,
        epochs=FLAGS.epochs, learning_rate=FLAGS.learning_rate,
        layerwise_lr_decay=FLAGS.layerwise_lr_decay,
        reference_layerwise_decay=FLAGS.reference_layerwise_decay, seeds=seeds,
        max_seq_length=FLAGS.max_seq_length, batch_size=FLAGS.batch_size,
        warmup_fraction=FLAGS.warmup_fraction, weight_decay=FLAGS.weight_decay,
        text_column=FLAGS.text_column, text_pair_column=FLAGS.text_pair_column,
        label_column=FLAGS.label_column, train_file=FLAGS.train_file,
        dev_file=FLAGS.dev_file, header=FLAGS.header, strategy=FLAGS.strategy,
        num_gpus=FLAGS.num_gpus, all_reduce_alg=FLAGS.all_reduce_alg, tpu=FLAGS.tpu,
        mixed_precision=FLAGS.mixed_precision, checkpoint_every=FLAGS.checkpoint_every,
        show_progress=FLAGS.progress, max_train_examples=FLAGS.max_train_examples)


def main(argv, callbacks=()):
    """Runs the binary from parsed flags; `callbacks` go to the loop (tests)."""
    if len(argv) > 1:
        print(f"error: unexpected argument {argv[1]!r}; flags take the form --name=value",
              file=sys.stderr)
        sys.exit(2)
    for name in ("task", "data_dir", "init", "output_dir"):
        if not getattr(FLAGS, name):
            print(f"error: --{name} is required" + (" (a model dir, or 'none')"
                                                    if name == "init" else ""),
                  file=sys.stderr)
            sys.exit(2)

    from absl import logging
    from electra_tf.config import ConfigError
    from electra_tf.data.tasks import TaskDataError
    from electra_tf.model_dir import ModelDirError
    from electra_tf.text.vocab import VocabError
    from electra_tf.training import strategy as strategy_lib
    from electra_tf.training.checkpointing import CheckpointError
    from electra_tf.training.finetuning import FinetuneError, run_finetuning

    logging.set_verbosity(logging.WARNING)
    try:
        strategy_lib.configure_cpu_devices(FLAGS.num_cpu_devices)
        results = run_finetuning(options_from_flags(), callbacks=callbacks,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
    except (ConfigError, TaskDataError, ModelDirError, VocabError, FinetuneError,
            strategy_lib.StrategyError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    print(json.dumps({"task": results["task"], "median": results["median"],
                      "seeds": results["seeds"]}))


def run():
    """Console entry point `electra-finetune`."""
    cli.run(main, "electra-finetune")


if __name__ == "__main__":
    run()
