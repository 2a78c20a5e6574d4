#!/usr/bin/env python
"""Turns text files into sharded ELECTRA pretraining TFRecords plus a dataset.json sidecar.

Packing follows the reference `build_pretraining_dataset.py` (docs/architecture.md, "Pretraining data"), except that no text is
lost: long lines are split into sentences and what does not fit an example starts the next
one (--reference_truncation drops it as the reference). Running the same command again after
an interruption resumes it; an output directory holding another build is refused.

Exit status: 0 done (a one-line warning on stderr when over 1% of the text's tokens were
truncated, or when shards are empty); 2 bad input or output, with one line on stderr naming
it: no match, a binary or non-UTF-8 file, no text at all, a bad vocabulary, an output
directory that is a file or not writable (all found before any work), a write that failed
(a full disk: nothing is published, the rerun resumes); 1 a worker process died (the rerun
resumes); 130 interrupted (Ctrl-C).

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
flags.DEFINE_bool("reference_truncation", False, "Drop the tokens that do not fit an "
                  "example, as the reference build_pretraining_dataset.py does (counted in "
                  "dataset.json), instead of starting the next example with them.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")

# Above this share of the text's tokens left out of every example, a warning is printed.
TRUNCATION_WARNING = 0.01


def resolve_cache_dir(flag_value):
    """The embedded corpus cache: --cache_dir, else `electra_tf.files.default_cache_dir()`.

    Args:
      flag_value: the --cache_dir flag (None when not given).
    """
    from electra_tf.files import default_cache_dir

    return flag_value or default_cache_dir()


def _fail(message: str, status: int = 2) -> None:
    print(f"build_pretraining_data: {message}", file=sys.stderr)
    sys.exit(status)


def _warn(message: str) -> None:
    print(f"build_pretraining_data: warning: {message}", file=sys.stderr)


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; every option is a --flag (quote globs)")
    if not FLAGS.vocab:
        _fail("--vocab is required: pass a WordPiece vocab.txt (learn one with "
              "tools/build_vocab.py)")
    if not FLAGS.output_dir:
        _fail("--output_dir is required: the directory for the shards and dataset.json")
    if FLAGS.input is not None and not FLAGS.input.strip():
        # Usually an unset shell variable; the embedded corpus is for no --input at all.
        _fail("--input is empty; give text files (a glob or comma-separated globs), or leave "
              "--input out for the embedded corpus")

    from electra_tf.text.corpus import (CorpusError, check_inputs, check_text_file,
                                        embedded_corpus_files, expand_inputs,
                                        output_path_problem)
    from electra_tf.text.vocab import SPECIAL_TOKENS, VocabError, check_vocab

    # Bad outputs, globs, inputs (binary, no text) and vocabularies without special tokens
    # fail here, before TensorFlow loads (seconds); the library checks everything again.
    try:
        problem = output_path_problem(FLAGS.output_dir, directory=True)
        if problem:
            _fail(f"cannot write --output_dir: {problem}; give a directory in a writable "
                  f"place")
        inputs = (FLAGS.input if FLAGS.input
                  else embedded_corpus_files(resolve_cache_dir(FLAGS.cache_dir)))
        files = expand_inputs(inputs)
        local = [f for f in files if "://" not in f]
        if len(local) == len(files):
            check_inputs(files)  # Binary files, or no text at all.
        else:  # Remote files are checked by the library (it needs TensorFlow to read them).
            for path in local:
                check_text_file(path)
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
    from electra_tf.data.worker_pool import BuildInterrupted

    try:
        sidecar = build_pretraining_data(
            inputs, FLAGS.vocab, FLAGS.output_dir,
            max_seq_length=FLAGS.max_seq_length, num_shards=FLAGS.num_shards,
            num_workers=FLAGS.num_workers, seed=FLAGS.seed,
            compression="GZIP" if FLAGS.gzip else "",
            blank_lines_separate_docs=FLAGS.blank_lines_separate_docs,
            lower_case=FLAGS.lower_case, reference_truncation=FLAGS.reference_truncation,
            progress=FLAGS.progress)
    except (CorpusError, VocabError, DataError) as e:
        _fail(str(e))
    except BuildInterrupted as e:
        _fail(str(e), status=1)
    except KeyboardInterrupt:
        _fail(f"interrupted; nothing was published under {FLAGS.output_dir}: run the same "
              f"command again to resume", status=130)
    state = ("already complete, nothing written:" if sidecar.get("already_complete")
             else "wrote")
    bad = ", ".join(f"{k.replace('_', ' ')} {sidecar.get(k, 0)}" for k in BAD_INPUT_COUNTS)
    truncated = sidecar.get("truncated_tokens", 0)
    print(f"{state} {sidecar['examples']} examples ({sidecar['tokens']} tokens, "
          f"{100 * sidecar['padding_fraction']:.1f}% padding) from {sidecar['documents']} "
          f"documents in {sidecar['num_shards']} shards under {FLAGS.output_dir}; {bad}; "
          f"truncated tokens {truncated}")
    if sidecar.get("truncated_fraction", 0.0) > TRUNCATION_WARNING:
        _warn(f"{truncated} of the text's {sidecar['text_tokens']} tokens "
              f"({100 * sidecar['truncated_fraction']:.1f}%) are in no example "
              f"(--reference_truncation drops what does not fit an example); rebuild "
              f"without it to keep them")
    empty = sum(1 for n in sidecar.get("examples_per_shard", []) if n == 0)
    if empty:
        _warn(f"{empty} of the {sidecar['num_shards']} shards hold no example (only "
              f"{sidecar['examples']} examples): use fewer --num_shards")


if __name__ == "__main__":
    cli.run(main, "build_pretraining_data")
