#!/usr/bin/env python
"""Turns text files into sharded ELECTRA pretraining TFRecords plus a dataset.json sidecar.

Packing follows the reference `build_pretraining_dataset.py` (docs/architecture.md, "Pretraining data"). Running the same
command again after an interruption resumes it; an output directory holding another build is
refused. Bad input prints one line and exits with status 2.

Usage:
  python tools/build_pretraining_data.py --input='corpus/*.txt' --vocab=vocab.txt \
      --output_dir=data/ --max_seq_length=128 --num_shards=64 --num_workers=8
  (without --input the embedded corpus, Python standard-library docstrings, is used)
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tokenizing and writing run on CPU: keep TensorFlow off any GPU (no memory grab, no
# driver chatter). Set CUDA_VISIBLE_DEVICES yourself to override.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
try:
    import electra_tf  # noqa: F401
except ImportError:  # Run from a checkout without installing the package.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags

from electra_tf import cli  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Text files: a glob, or comma-separated globs. Default: the "
                    "embedded corpus (Python standard-library docstrings and comments).")
flags.DEFINE_string("vocab", None, "WordPiece vocab.txt (tools/build_vocab.py learns one).")
flags.DEFINE_string("output_dir", None, "Directory for the shards and dataset.json.")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per example, [CLS]/[SEP] included.")
flags.DEFINE_integer("num_shards", 16, "Number of output TFRecord files.")
flags.DEFINE_integer("num_workers", 1, "Worker processes (each takes input files i % K).")
flags.DEFINE_integer("seed", 0, "Seed of the packing's random decisions.")
flags.DEFINE_bool("gzip", False, "Write GZIP-compressed shards (.tfrecord.gz).")
flags.DEFINE_bool("blank_lines_separate_docs", True, "A blank line ends a document; with "
                  "--noblank_lines_separate_docs each file is one document.")
flags.DEFINE_bool("lower_case", True, "Lower-case and strip accents (uncased vocabularies); "
                  "--nolower_case for cased ones.")
flags.DEFINE_string("cache_dir", None, "Where the embedded corpus is written when --input is "
                    "not given (default: $ELECTRA_TF_CACHE, else $XDG_CACHE_HOME/electra_tf, "
                    "else ~/.cache/electra_tf).")
flags.DEFINE_bool("progress", True, "Show a progress bar.")


def resolve_cache_dir(flag_value):
    """The embedded corpus cache: --cache_dir, else `electra_tf.files.default_cache_dir()`.

    Args:
      flag_value: the --cache_dir flag (None when not given).
    """
    from electra_tf.files import default_cache_dir

    return flag_value or default_cache_dir()


def _fail(message: str) -> None:
    print(f"build_pretraining_data: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; every option is a --flag (quote globs)")
    if not FLAGS.vocab:
        _fail("--vocab is required: pass a WordPiece vocab.txt (learn one with "
              "tools/build_vocab.py)")
    if not FLAGS.output_dir:
        _fail("--output_dir is required: the directory for the shards and dataset.json")

    from electra_tf.text.corpus import CorpusError, embedded_corpus_files, expand_inputs
    from electra_tf.text.vocab import SPECIAL_TOKENS, VocabError, check_vocab

    # Bad globs and vocabularies without special tokens fail here, before TensorFlow loads
    # (seconds); the library checks everything again.
    try:
        inputs = (FLAGS.input if FLAGS.input
                  else embedded_corpus_files(resolve_cache_dir(FLAGS.cache_dir)))
        expand_inputs(inputs)
        if os.path.isfile(FLAGS.vocab):
            with open(FLAGS.vocab, encoding="utf-8", errors="replace") as f:
                tokens = [line.rstrip("\r\n") for line in f]
            if not set(SPECIAL_TOKENS) <= set(tokens):
                check_vocab(tokens, FLAGS.vocab)
    except (CorpusError, VocabError) as e:
        _fail(str(e))

    from electra_tf.data.build_plan import BAD_INPUT_COUNTS
    from electra_tf.data.pretraining_builder import build_pretraining_data
    from electra_tf.data.pretraining_reader import DataError

    try:
        sidecar = build_pretraining_data(
            inputs, FLAGS.vocab, FLAGS.output_dir,
            max_seq_length=FLAGS.max_seq_length, num_shards=FLAGS.num_shards,
            num_workers=FLAGS.num_workers, seed=FLAGS.seed,
            compression="GZIP" if FLAGS.gzip else "",
            blank_lines_separate_docs=FLAGS.blank_lines_separate_docs,
            lower_case=FLAGS.lower_case, progress=FLAGS.progress)
    except (CorpusError, VocabError, DataError) as e:
        _fail(str(e))
    state = ("already complete, nothing written:" if sidecar.get("already_complete")
             else "wrote")
    bad = ", ".join(f"{k.replace('_', ' ')} {sidecar[k]}" for k in BAD_INPUT_COUNTS)
    print(f"{state} {sidecar['examples']} examples ({sidecar['tokens']} tokens, "
          f"{100 * sidecar['padding_fraction']:.1f}% padding) from {sidecar['documents']} "
          f"documents in {sidecar['num_shards']} shards under {FLAGS.output_dir}; {bad}")


if __name__ == "__main__":
    cli.run(main, "build_pretraining_data")
