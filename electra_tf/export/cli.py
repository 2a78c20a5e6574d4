"""The `electra-export` binary: flags -> `load_export_source` -> `export_all`.

A pretraining model dir exports its discriminator; a fine-tuned one (with the
`finetune.json` of `electra_tf.finetune`) exports its classifier, regressor or tagger with
the label names recorded there.

    python -m electra_tf.export --model_dir=runs/small --output=exports \
        [--name=electra] [--format=saved_model|tflite|all] \
        [--quantize=none,float16,dynamic,int8] [--max_seq_length=128] [--version=N]

Bad input (no checkpoint, a vocabulary that does not fit, unknown choices, an existing
version, a --name that is not one file name, an --output that is a file or cannot be
written, a disk that fills up during the export) prints one line and exits with status 2;
nothing is left half-written. The flags and the output are checked before the model is
loaded. SIGINT and SIGTERM stop the export with one line (exit 130, 143) after its
temporaries are removed; a SIGKILLed export's temporaries are removed by the next export
into the same --output (docs/architecture.md, "Export").
"""

from __future__ import annotations

import json
import signal
import sys

from absl import flags, logging

from electra_tf import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Training or fine-tuning run directory (config.yaml, "
                    "vocab.txt, ckpt-N; finetune.json for a fine-tuned model).")
flags.DEFINE_string("output", None, "Export root: SavedModel in OUTPUT/NAME/VERSION, TFLite in "
                    "OUTPUT/NAME.tflite/VERSION.")
flags.DEFINE_string("name", "electra", "Servable name (TF Serving --model_name).")
flags.DEFINE_string("format", "all", "saved_model, tflite or all (comma-separated).")
flags.DEFINE_string("quantize", "none,float16,dynamic,int8",
                    "TFLite variants: none (float32), float16, dynamic (dynamic-range int8), "
                    "int8 (full integer), comma-separated, or all.")
flags.DEFINE_string("tflite_inputs", "ids,text", "TFLite input styles: ids, text.")
flags.DEFINE_integer("max_seq_length", None, "Sequence length of the raw-text signatures and "
                     "TFLite models (default: finetune.json's max_seq_length for a fine-tuned "
                     "model, else the config's data.max_seq_length).")
flags.DEFINE_integer("version", None, "Version number (default: the next free one); an "
                     "existing version is refused.")
flags.DEFINE_string("vocab", None, "vocab.txt to serve with (default: MODEL_DIR/vocab.txt); "
                    "must be the model's vocabulary.")
flags.DEFINE_string("representative_data", None, "Pretraining TFRecords (directory or glob "
                    "with dataset.json) for int8 calibration and verification; default: the "
                    "embedded corpus.")
flags.DEFINE_string("cache_dir", None, "Cache of the embedded corpus (default: "
                    "$ELECTRA_TF_CACHE, else $XDG_CACHE_HOME/electra_tf, else "
                    "~/.cache/electra_tf).")
flags.DEFINE_integer("num_examples", 64, "Representative and held-out examples (each).")
flags.DEFINE_bool("strict", True, "Refuse to publish when a variant misses its verification "
                  "floor.")


def _stop_on_sigterm(signum, frame):
    del frame
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup short
    raise _Stopped(signum)


class _Stopped(BaseException):
    """SIGTERM as an exception, so that the export's `finally` blocks remove temporaries."""


def main(argv):
    """Runs one export from flags; bad input -> one line on stderr, exit 2."""
    del argv
    logging.set_verbosity(logging.WARNING)  # TF's per-function save chatter hides the result
    from electra_tf.export import choices  # pylint: disable=import-outside-toplevel
    from electra_tf.config import ConfigError  # pylint: disable=import-outside-toplevel
    from electra_tf.export.source import ExportError, load_export_source  # pylint: disable=import-outside-toplevel
    from electra_tf.model_dir import ModelDirError  # pylint: disable=import-outside-toplevel
    from electra_tf.text.vocab import VocabError  # pylint: disable=import-outside-toplevel

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        for flag in ("model_dir", "output"):
            if not getattr(FLAGS, flag):
                raise ExportError(f"--{flag} is required")
        # Cheap checks before the model is loaded: flags, then where the export will go.
        formats, _, _ = choices.check_choices(FLAGS.format, FLAGS.quantize,
                                              FLAGS.tflite_inputs)
        choices.check_counts(FLAGS.version, FLAGS.num_examples, FLAGS.max_seq_length)
        choices.check_output(FLAGS.output, FLAGS.name, formats)
        choices.check_version_free(FLAGS.output, FLAGS.name, FLAGS.version)
        from electra_tf.export.pipeline import export_all  # pylint: disable=import-outside-toplevel

        source = load_export_source(FLAGS.model_dir, vocab=FLAGS.vocab,
                                    max_seq_length=FLAGS.max_seq_length)
        report = export_all(
            source, FLAGS.output, name=FLAGS.name, formats=FLAGS.format,
            quantize=FLAGS.quantize, styles=FLAGS.tflite_inputs, version=FLAGS.version,
            representative_data=FLAGS.representative_data, cache_dir=FLAGS.cache_dir,
            num_examples=FLAGS.num_examples, strict=FLAGS.strict,
            log=lambda line: print(line, flush=True))
    except (ExportError, ModelDirError, ConfigError, VocabError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        # A path the export reads or writes that the system refuses (permissions, a
        # directory where a file belongs): the path and the reason, not a traceback.
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}; check that path and run again (nothing was "
              "published)", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, _Stopped) as e:
        signum = e.args[0] if isinstance(e, _Stopped) else signal.SIGINT
        print(f"error: stopped by {signal.Signals(signum).name}; nothing was published "
              "(temporaries removed)", file=sys.stderr)
        sys.exit(128 + int(signum))
    print(json.dumps({"paths": report["paths"], "passed": report["passed"],
                      "task": report["task"]}))


def run():
    """Console entry point `electra-export`."""
    cli.run(main, "electra-export")
