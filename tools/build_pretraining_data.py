#!/usr/bin/env python
"""Turns text files into sharded ELECTRA pretraining TFRecords plus a dataset.json sidecar.

Packing follows the reference `build_pretraining_dataset.py` (docs/architecture.md, "Pretraining data"), except that no text is
lost: long lines are split into sentences and what does not fit an example starts the next
one (--reference_truncation drops it as the reference). Running the same command again after
an interruption resumes it; an output directory holding another build is refused.

Units of work: each input file, or for a file larger than --split_bytes (64 MiB) byte ranges
of it cut at document boundaries; each unit is packed with its own random stream, so the set
of examples depends only on the inputs, vocabulary, --seed, --max_seq_length, casing and
--split_bytes, not on the executor or its number of workers. Two executors:

  --runner=local (default): --num_workers processes on this machine (unit u and shard s go
      to worker u % K and s % K, so which shard holds an example depends on K); an
      interrupted build resumes the workers that did not finish. Binary or non-UTF-8 inputs
      are refused before any work.
  --runner=beam: an Apache Beam pipeline (pip install -e '.[beam]'), on --beam_runner
      (DirectRunner here; DataflowRunner, FlinkRunner, SparkRunner on a cluster) with Beam's
      options in --beam_options. Inputs and output may be gs:// or hdfs:// paths. An input
      that is unreadable or not text is skipped, named on stderr and in dataset.json
      (skipped_files); a failed pipeline publishes nothing, and the same command starts it
      again. Which shard holds an example depends on the runner.

Exit status: 0 done (a one-line warning on stderr when over 1% of the text's tokens were
truncated, or when shards are empty); 2 bad input or output, with one line on stderr naming
it: no match, a binary or non-UTF-8 file, no text at all, a bad vocabulary, an output
directory that is a file or not writable (all found before any work), a write that failed
(a full disk: nothing is published, the rerun resumes); 1 a worker process died (the rerun
resumes); 130 interrupted (Ctrl-C). With --runner=beam, a failed pipeline is exit 2 with
one line (nothing published), and skipped inputs are one warning line each.

Usage:
  python tools/build_pretraining_data.py --input='corpus/*.txt' --vocab=vocab.txt \
      --output_dir=data/ --max_seq_length=128 --num_shards=64 --num_workers=8
  (without --input the embedded corpus, Python standard-library docstrings, is used)

  python tools/build_pretraining_data.py --runner=beam --input='corpus/*.txt' \
      --vocab=vocab.txt --output_dir=data/ --num_shards=64 \
      --beam_options='--direct_num_workers=8 --direct_running_mode=multi_processing'

  python tools/build_pretraining_data.py --runner=beam --beam_runner=DataflowRunner \
      --input='gs://BUCKET/corpus/*.txt' --vocab=gs://BUCKET/vocab.txt \
      --output_dir=gs://BUCKET/data --num_shards=1024 --beam_options='--project=PROJECT \
      --region=REGION --temp_location=gs://BUCKET/tmp --setup_file=./setup.py \
      --max_num_workers=32'
"""

import logging
import os
import shlex
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
flags.DEFINE_integer("num_workers", 1, "--runner=local: worker processes (worker w takes the "
                     "units u with u % K == w).")
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
flags.DEFINE_bool("progress", True, "Show a progress bar (--runner=local).")
flags.DEFINE_enum("runner", "local", ["local", "beam"], "Executor: 'local' (worker processes "
                  "here) or 'beam' (an Apache Beam pipeline: --beam_runner, --beam_options).")
flags.DEFINE_integer("split_bytes", 64 << 20, "Input files larger than this are cut into "
                     "ranges of about this size at document boundaries, each a unit of work "
                     "(part of the build: another value gives other examples).")
flags.DEFINE_string("beam_runner", "DirectRunner", "--runner=beam: Beam's runner: "
                    "DirectRunner (this machine), BundleBasedDirectRunner, PrismRunner, "
                    "DataflowRunner, FlinkRunner, SparkRunner, PortableRunner.")
flags.DEFINE_string("beam_options", "", "--runner=beam: Beam pipeline options, one quoted "
                    "string, e.g. '--direct_num_workers=2 --direct_running_mode="
                    "multi_processing' or '--project=P --region=R --temp_location=gs://B/tmp'.")

# Above this share of the text's tokens left out of every example, a warning is printed.
TRUNCATION_WARNING = 0.01
# Skipped inputs named one per warning line, at most.
MAX_SKIPPED_SHOWN = 10


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
    beam_options = _check_runner_flags()

    from electra_tf.text.corpus import (CorpusError, check_inputs, check_text_file,
                                        expand_inputs, output_path_problem)
    from electra_tf.text.embedded_corpus import embedded_corpus_files
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
        if FLAGS.runner == "beam":
            pass  # Binary or unreadable inputs are skipped and named by the pipeline.
        elif len(local) == len(files):
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

    common = dict(max_seq_length=FLAGS.max_seq_length, num_shards=FLAGS.num_shards,
                  seed=FLAGS.seed, compression="GZIP" if FLAGS.gzip else "",
                  blank_lines_separate_docs=FLAGS.blank_lines_separate_docs,
                  lower_case=FLAGS.lower_case, reference_truncation=FLAGS.reference_truncation,
                  split_bytes=FLAGS.split_bytes)
    try:
        if FLAGS.runner == "beam":
            build_beam = _beam_builder()
            sidecar = build_beam(inputs, FLAGS.vocab, FLAGS.output_dir,
                                 beam_runner=FLAGS.beam_runner, beam_options=beam_options,
                                 **common)
        else:
            sidecar = build_pretraining_data(inputs, FLAGS.vocab, FLAGS.output_dir,
                                             num_workers=FLAGS.num_workers,
                                             progress=FLAGS.progress, **common)
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
    skipped = sidecar.get("skipped_files") or []
    for entry in skipped[:MAX_SKIPPED_SHOWN]:
        kept = entry.get("examples_kept", 0)
        _warn(f"skipped {entry['path']}: {entry['reason']}"
              + (f" ({kept} of its examples were written before)" if kept else ""))
    if len(skipped) > MAX_SKIPPED_SHOWN:
        _warn(f"skipped {len(skipped) - MAX_SKIPPED_SHOWN} more input files; dataset.json "
              f"lists them all (skipped_files)")
    if sidecar.get("truncated_fraction", 0.0) > TRUNCATION_WARNING:
        _warn(f"{truncated} of the text's {sidecar['text_tokens']} tokens "
              f"({100 * sidecar['truncated_fraction']:.1f}%) are in no example "
              f"(--reference_truncation drops what does not fit an example); rebuild "
              f"without it to keep them")
    empty = sum(1 for n in sidecar.get("examples_per_shard", []) if n == 0)
    if empty:
        _warn(f"{empty} of the {sidecar['num_shards']} shards hold no example (only "
              f"{sidecar['examples']} examples): use fewer --num_shards")


def _check_runner_flags() -> list:
    """Refuses flags of the other executor; returns --beam_options as words."""
    if FLAGS.runner == "local":
        given = [f"--{name}" for name in ("beam_runner", "beam_options") if FLAGS[name].present]
        if given:
            _fail(f"{' and '.join(given)} apply to --runner=beam; add --runner=beam or drop "
                  f"them")
        return []
    if FLAGS["num_workers"].present:
        _fail("--num_workers counts local worker processes; with --runner=beam the runner "
              "decides: pass e.g. --beam_options='--direct_num_workers=2 "
              "--direct_running_mode=multi_processing' (or a cluster's worker options)")
    try:
        return shlex.split(FLAGS.beam_options)
    except ValueError as e:
        _fail(f"--beam_options={FLAGS.beam_options!r} cannot be split into words ({e}); quote "
              f"it as one string of --name=value options")


def _beam_builder():
    """`beam_pipeline.build_pretraining_data_beam`, or one line when Beam is missing."""
    # Beam's notes and warnings (optional cloud file systems and clients not installed, at
    # import) are not this tool's business; its errors (a bundle that failed) still show.
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        from electra_tf.data.beam_pipeline import build_pretraining_data_beam
    except ImportError as e:
        _fail(f"--runner=beam needs Apache Beam ({e}); install it with pip install -e "
              f"'.[beam]'")
    finally:
        root.setLevel(level)
    return build_pretraining_data_beam


if __name__ == "__main__":
    cli.run(main, "build_pretraining_data")
