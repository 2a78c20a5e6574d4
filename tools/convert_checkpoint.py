"""Converts ELECTRA checkpoints in and out of this project's model dir.

In (a released checkpoint -> a model dir the train, fine-tune and export binaries take):
  python tools/convert_checkpoint.py --from=google_tf1 --input=electra_small/electra_small \\
      --output=models/electra_small                       # vocab.txt beside the checkpoint
  python tools/convert_checkpoint.py --from=google_tf1 \\
      --input=chinese_electra_base/electra_180g_base.ckpt \\
      --config=chinese_electra_base/base_discriminator_config.json --output=models/zh_base
  python tools/convert_checkpoint.py --from=huggingface --input=electra-small-discriminator \\
      --generator_input=electra-small-generator --output=models/electra_small
  python tools/convert_checkpoint.py --from=keras_hub --input=PRESET_DIR --output=models/kh

Out (a model dir -> another library):
  python tools/convert_checkpoint.py --to=huggingface --model_dir=models/run \\
      --output=hf/discriminator --generator_output=hf/generator
  python tools/convert_checkpoint.py --to=keras_hub --model_dir=models/run --output=preset

A discriminator-only source (most HuggingFace downloads, every keras-hub preset) converts to a
model dir for fine-tuning and export; continuing pretraining needs its generator
(--generator_input) or a fresh one (--init_generator=random). A source without the
replaced-token head (keras-hub, HF ElectraModel) gets a fresh head.

Exit status: 0 done; 1 the inputs have problems: every one is listed on stderr, one per line,
and nothing is written; 2 bad flags (one line); 130 interrupted (nothing is left behind).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from electra_tf import cli  # noqa: E402

PROG = "convert_checkpoint"
FLAGS = flags.FLAGS
flags.DEFINE_enum("from", None, ["google_tf1", "huggingface", "keras_hub"],
                  "Import: the layout of --input.")
flags.DEFINE_enum("to", None, ["huggingface", "keras_hub"],
                  "Export: the layout to write --model_dir in.")
flags.DEFINE_string("input", None, "Import: the checkpoint (TF1 prefix or directory; HF or "
                    "keras-hub directory).")
flags.DEFINE_string("generator_input", None, "Import: the generator, when it is a separate "
                    "checkpoint (a HuggingFace ElectraForMaskedLM directory, or a TF1 "
                    "checkpoint holding generator/*).")
flags.DEFINE_string("output", None, "Import: the model dir to create. Export: the directory "
                    "to create (the discriminator, or the keras-hub preset).")
flags.DEFINE_string("generator_output", None, "Export to HuggingFace: also write the "
                    "generator (ElectraForMaskedLM) here.")
flags.DEFINE_string("model_dir", None, "Export: the model dir to convert.")
flags.DEFINE_string("vocab", None, "Import: vocab.txt (default: the one beside --input).")
flags.DEFINE_bool("lower_case", None, "Import: uncased tokenizer (default: the source's "
                  "tokenizer config, else true).")
flags.DEFINE_enum("init_generator", "none", ["none", "random"], "Import of a source without "
                  "a generator: 'random' adds a freshly initialised one to continue "
                  "pretraining.")
flags.DEFINE_float("generator_hidden_fraction", 0.25, "Width of a --init_generator=random "
                   "generator relative to the discriminator.")
flags.DEFINE_string("config", None, "Import from google_tf1: a BERT-style config JSON with "
                    "num_attention_heads (default: hidden // 64, true of every release).")
flags.DEFINE_string("generator_config", None, "Import from google_tf1: the generator's "
                    "config JSON.")
flags.DEFINE_enum("embedding_sharing", "tied", ["tied", "untied"], "Import from huggingface "
                  "with --generator_input: 'untied' keeps the generator's own embeddings (a "
                  "model trained with untied or GDES sharing); 'tied' requires them equal.")
flags.DEFINE_integer("seed", 0, "Initialisation seed of freshly initialised parts.")


def _usage_error(text: str) -> int:
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return 2


def _check_flags():
    source, target = FLAGS["from"].value, FLAGS.to
    if bool(source) == bool(target):
        return "pass exactly one of --from (import) or --to (export)"
    if not FLAGS.output:
        return "--output is required"
    if source:
        if not FLAGS.input:
            return "--input is required with --from"
        for name in ("model_dir", "generator_output"):
            if FLAGS[name].value:
                return f"--{name} is for --to (export); with --from use --input and --output"
        if not 0 < FLAGS.generator_hidden_fraction <= 1:
            return "--generator_hidden_fraction must be in (0, 1]"
        if source != "google_tf1":
            for name in ("config", "generator_config"):
                if FLAGS[name].value:
                    return (f"--{name} is for --from=google_tf1 (a HuggingFace config.json or "
                            "a keras-hub preset gives the head count itself)")
        if source != "huggingface" and FLAGS.embedding_sharing != "tied":
            return "--embedding_sharing=untied is for --from=huggingface with --generator_input"
    else:
        if not FLAGS.model_dir:
            return "--model_dir is required with --to"
        for name in ("input", "generator_input", "vocab", "config", "generator_config",
                     "lower_case"):
            if FLAGS[name].value is not None:
                return f"--{name} is for --from (import); with --to use --model_dir"
        for name in ("init_generator", "generator_hidden_fraction", "embedding_sharing"):
            if FLAGS[name].present:
                return f"--{name} is for --from (import); with --to use --model_dir"
        if target == "keras_hub" and FLAGS.generator_output:
            return "--generator_output: a keras-hub preset holds the discriminator's encoder only"
    return None


def main(argv):
    del argv
    problem = _check_flags()
    if problem:
        return _usage_error(problem)
    from absl import logging

    from electra_tf import model_dir as model_dir_lib
    from electra_tf.convert import exporter, importer

    logging.set_verbosity(logging.WARNING)  # no INFO lines from checkpoint saving
    try:
        if FLAGS["from"].value:
            importer.convert(
                FLAGS["from"].value, FLAGS.input, FLAGS.output,
                generator_input=FLAGS.generator_input, vocab=FLAGS.vocab,
                lower_case=FLAGS.lower_case, init_generator=FLAGS.init_generator,
                generator_hidden_fraction=FLAGS.generator_hidden_fraction,
                config=FLAGS.config, generator_config=FLAGS.generator_config,
                embedding_sharing=FLAGS.embedding_sharing, seed=FLAGS.seed)
        elif FLAGS.to == "huggingface":
            exporter.to_huggingface(FLAGS.model_dir, FLAGS.output,
                                    generator_output=FLAGS.generator_output)
        else:
            exporter.to_keras_hub(FLAGS.model_dir, FLAGS.output, seed=FLAGS.seed)
    except importer.ConversionError as e:
        print(f"{PROG}: {len(e.problems)} problem(s); nothing was written:", file=sys.stderr)
        for line in e.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    except model_dir_lib.ModelDirError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = getattr(e, "filename", None) or FLAGS.output
        print(f"{PROG}: {model_dir_lib.output_error(e, flag='--output', path=where)}; nothing "
              "was written", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    cli.run(main, PROG)
