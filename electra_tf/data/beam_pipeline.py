r"""The pretraining-data builder as an Apache Beam pipeline (`--runner=beam`).

One builder, two executors: this module runs the units of `build_plan.plan_units` through
the same `unit_encoder.UnitEncoder` as the local workers (same reading, tokenizing,
packing, serializing, same per-unit random stream), so for the same inputs and settings it
writes the same set of examples and the same corpus-level counts as the local executor; only
which shard holds which example (and so `examples_per_shard` and `shard_bytes`) differs.

The pipeline (its transforms: `beam_transforms`):

    Create(units) -> Reshuffle -> ParDo(EncodeUnits) --records--> Write(file sink, N shards)
                                      |--stats (per unit)---> CombineGlobally(sum)
                                      '--skipped (per unit)-> ToList
    finalized shards -> count records per shard
    the sums, the skipped units and the counts (side inputs) -> one JSON report

Records go through Beam's own file sink (`Write` of a `FileBasedSink`, as
`beam.io.WriteToTFRecord`): bundles write temporary files that are renamed into
`OUT/.build/beam/pretrain-SSSSS-of-NNNNN.tfrecord[.gz]` once, when every bundle has
committed, so a bundle that a runner retries neither duplicates nor loses examples. The
records are framed as TFRecords inside `EncodeUnits` by TensorFlow's own writer
(`beam_transforms.frame_records`) because `WriteToTFRecord` computes its CRC32C with python-snappy,
google-crc32c or crcmod, which the `beam` extra does not install. Runners differ on retries:
Beam's Python DirectRunner for batch (the FnApiRunner) runs a failed bundle once and fails
the pipeline; `BundleBasedDirectRunner` retries a bundle up to 4 times; Dataflow retries a
bundle 4 times in batch, Flink and Spark restart failed tasks.

A unit whose file is unreadable or not text (`CorpusError`) does not fail the build: it is
counted and named in the sidecar's `skipped_files`. When the pipeline has finished, the
driver moves the shards into `OUT` under the local builder's names, measures them and writes
`dataset.json` last, with the local builder's fields (plus `runner: "beam"`). A failed
pipeline publishes nothing; running the same command again starts it afresh (a finished
pipeline whose publishing was interrupted is only published). The staging directory and
publishing: `beam_output`.

Inputs, outputs and the sidecar go through `tf.io.gfile` (gs://, hdfs:// where TensorFlow's
file systems work); the staging shards through Beam's file systems (gs:// needs
`apache-beam[gcp]`, which Dataflow's workers have).

Example (DirectRunner, in this process):

>>> import tempfile
>>> from electra_tf.text.vocab import SPECIAL_TOKENS, write_vocab
>>> root = tempfile.mkdtemp()
>>> write_vocab(list(SPECIAL_TOKENS) + ["the", "cat", "sat", ".", "猫", "坐"],
...             f"{root}/vocab.txt")
>>> with open(f"{root}/corpus.txt", "w", encoding="utf-8") as f:
...     _ = f.write("the cat sat .\nthe cat sat .\n\n猫坐了。\n")
>>> sidecar = build_pretraining_data_beam(f"{root}/corpus.txt", f"{root}/vocab.txt",
...                                       f"{root}/data", max_seq_length=16, num_shards=2)
>>> sidecar["documents"], sidecar["runner"], sidecar["shards"]
(2, 'beam', ['pretrain-00000-of-00002.tfrecord', 'pretrain-00001-of-00002.tfrecord'])
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Callable, Optional, Sequence, Union

import apache_beam as beam
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from electra_tf.data import build_output, build_plan
from electra_tf.data.beam_output import (PUBLISH_THREADS, REPORT_NAME,  # noqa: F401
                                         STAGING_DIR, _finished_report, _join,
                                         _merge_skipped, _read_json, prepare_output_dir,
                                         publish)
# The pipeline's transforms live in their own module; re-exported here.
from electra_tf.data.beam_transforms import (SKIPPED_TAG, STATS_TAG,  # noqa: F401
                                             EncodeUnits, FramedRecordSink, SumCounts,
                                             build_pipeline, count_records, frame_records,
                                             write_report)
from electra_tf.data.build_output import BUILD_DIR
from electra_tf.data.build_plan import PackingSpec, Unit
from electra_tf.data.pretraining_builder import check_arguments
from electra_tf.data.pretraining_reader import DataError
from electra_tf.data.unit_encoder import DEFAULT_TOKENIZE_BATCH_LINES, electra_tokenizer_factory

DEFAULT_BEAM_RUNNER = "DirectRunner"


# --- Options and runner ---------------------------------------------------------------------


def pipeline_options(beam_options: Sequence[str]) -> PipelineOptions:
    """Beam's pipeline options from `--beam_options` words, refusing what Beam would not take.

    Args:
        beam_options: e.g. ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
            or Dataflow's ["--project=P", "--region=R", "--temp_location=gs://B/tmp"].

    Raises:
        DataError: one line: a runner given here (it is `--beam_runner`), an option no Beam
            options class knows, or a value Beam refuses.

    >>> pipeline_options(["--direct_num_workers=2"]).get_all_options()["direct_num_workers"]
    2
    """
    flags = [str(word) for word in beam_options]
    if any(word == "--runner" or word.startswith("--runner=") for word in flags):
        raise DataError("--beam_options names a runner: give it with --beam_runner=NAME "
                        "(DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...) instead")
    options = PipelineOptions(flags)
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            known = options.get_all_options()
            everything = options.get_all_options(retain_unknown_options=True)
    except SystemExit:
        last = (errors.getvalue().strip().splitlines() or ["a value Beam refuses"])[-1]
        raise DataError(f"--beam_options: {last.split('error: ', 1)[-1]}; see Beam's "
                        f"pipeline options") from None
    unknown = sorted(set(everything) - set(known))
    if unknown:
        raise DataError(f"--beam_options has {', '.join('--' + k for k in unknown)}, which no "
                        f"Beam pipeline option knows; check the spelling (Beam would "
                        f"silently drop it)")
    return options


def make_runner(name: str, options: PipelineOptions):
    """The Beam runner for `--beam_runner`.

    "DirectRunner" is Beam's FnApiRunner, which Beam 2.77's DirectRunner uses for batch
    pipelines when it does not run them on Prism (a Go binary it downloads from GitHub at
    first use); it honours `--direct_num_workers` and `--direct_running_mode`. Any other
    name goes to Beam (`PrismRunner`, `BundleBasedDirectRunner`, `DataflowRunner`,
    `FlinkRunner`, `SparkRunner`, ...).

    Raises:
        DataError: a name Beam does not know (one line).
    """
    if name == DEFAULT_BEAM_RUNNER:
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import JobServiceHandle

        # As Beam's SwitchingDirectRunner does: the workers see the pipeline's options.
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))
    from apache_beam.runners.runner import create_runner

    try:
        return create_runner(name)
    except (ValueError, ImportError) as e:
        raise DataError(f"--beam_runner={name} is not a Beam runner here "
                        f"({str(e).splitlines()[0][:160]}); use DirectRunner, "
                        f"BundleBasedDirectRunner, PrismRunner, DataflowRunner, FlinkRunner "
                        f"or SparkRunner") from None


# --- The build ------------------------------------------------------------------------------


def build_pretraining_data_beam(
        inputs: Union[str, Sequence[str]],
        vocab: Union[str, Sequence[str]],
        output_dir: str,
        *,
        max_seq_length: int = 128,
        num_shards: int = 1,
        seed: int = 0,
        compression: str = "",
        blank_lines_separate_docs: bool = True,
        lower_case: bool = True,
        reference_truncation: bool = False,
        tokenize_batch_lines: int = DEFAULT_TOKENIZE_BATCH_LINES,
        split_bytes: int = build_plan.DEFAULT_SPLIT_BYTES,
        beam_runner: str = DEFAULT_BEAM_RUNNER,
        beam_options: Sequence[str] = (),
        tokenizer_factory: Callable = electra_tokenizer_factory,
        _fail_once: Optional[tuple] = None) -> dict:
    """Builds (or confirms) a sharded pretraining dataset with an Apache Beam pipeline.

    The arguments shared with `pretraining_builder.build_pretraining_data` mean the same and
    give the same set of examples (`num_workers` has no equivalent: the runner decides).

    Args:
        inputs: a glob, comma-separated globs or a list of files (local or gs://, hdfs://).
        vocab: path of vocab.txt (local or remote), or the token list.
        output_dir: destination directory (local or remote).
        max_seq_length: length of every example.
        num_shards: number of output shards.
        seed: seed of every random decision.
        compression: "" or "GZIP".
        blank_lines_separate_docs: a blank line ends a document.
        lower_case: lower-case and strip accents when tokenizing.
        reference_truncation: drop the tokens that overflow an example, as the reference.
        tokenize_batch_lines: lines per tokenize call.
        split_bytes: files larger than this are cut into ranges at document boundaries.
        beam_runner: `make_runner`'s name: DirectRunner (default), DataflowRunner, ...
        beam_options: words for Beam's `PipelineOptions` (`pipeline_options`).
        tokenizer_factory: module-level (vocab, lower_case) -> tokenize(lines).
        _fail_once: test hook (marker path, n): see `EncodeUnits`.

    Returns:
        The sidecar written to `output_dir/dataset.json` (`skipped_files` names the inputs
        left out), or the previous one with `already_complete` when the same build is there.

    Raises:
        CorpusError (no input matches), VocabError, DataError (bad arguments or options, a
        failed pipeline: nothing is published; no example at all), DataMismatchError
        (output_dir holds another build).
    """
    from electra_tf.text import corpus, vocab as vocab_lib

    check_arguments(max_seq_length=max_seq_length, num_shards=num_shards, num_workers=1,
                    compression=compression, tokenize_batch_lines=tokenize_batch_lines,
                    split_bytes=split_bytes)
    if "://" not in output_dir:
        build_output.check_output_dir(output_dir)
    options = pipeline_options(beam_options)
    runner = make_runner(beam_runner, options)
    if isinstance(vocab, (str, os.PathLike)):
        tokens = vocab_lib.load_vocab(os.fspath(vocab))
    else:
        tokens = list(vocab)
        vocab_lib.check_vocab(tokens, "token list")
    files = corpus.expand_inputs(inputs)  # Not checked here: bad files are skipped, named.
    units = build_plan.plan_units(files, split_bytes, blank_lines_separate_docs)
    build = build_plan.describe_build(
        tokens, files, max_seq_length=max_seq_length, num_shards=num_shards,
        num_workers=None, seed=seed, compression=compression,
        blank_lines_separate_docs=blank_lines_separate_docs, lower_case=lower_case,
        reference_truncation=reference_truncation, split_bytes=split_bytes,
        num_units=len(units), runner="beam")
    existed = tf.io.gfile.isdir(output_dir)
    previous = prepare_output_dir(output_dir, build)
    if previous is not None:
        return previous
    report = _finished_report(output_dir, build)
    if report is None:
        spec = build_plan.packing_spec(build, tokens, tokenize_batch_lines=tokenize_batch_lines,
                                       tokenizer_factory=tokenizer_factory)
        report = _run(runner, options, units, spec, output_dir, build, _fail_once)
    if report["stats"].get("examples", 0) == 0:
        _discard(output_dir, existed)
        skipped = _merge_skipped(report["skipped"])
        why = (f"{len(skipped)} of the {len(files)} inputs were skipped (first: "
               f"{skipped[0]['reason']})" if skipped else
               "its text tokenizes to nothing (only control or format characters)")
        raise DataError(f"the input ({corpus.describe_files(files)}) gave no example: {why}; "
                        f"nothing was written, give text files")
    return publish(output_dir, build, report)


def _run(runner, options: PipelineOptions, units: Sequence[Unit], spec: PackingSpec,
         output_dir: str, build: dict, fail_once: Optional[tuple]) -> dict:
    """Runs the pipeline into a fresh staging directory; returns its report."""
    staging = _join(_join(output_dir, BUILD_DIR), STAGING_DIR)
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)  # What a failed earlier run left.
    tf.io.gfile.makedirs(staging)
    pipeline = beam.Pipeline(runner=runner, options=options)
    build_pipeline(pipeline, units, spec, staging_dir=staging, num_shards=build["num_shards"],
                   compression=build["compression"], fail_once=fail_once)
    try:
        state = pipeline.run().wait_until_finish()
    except Exception as e:  # The runner's error, whatever its type: one line.
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(f"the Beam pipeline failed ({type(e).__name__}: {first[:300]}); "
                        f"nothing was published under {output_dir}: run the same command "
                        f"again") from None
    report_path = _join(staging, REPORT_NAME)
    if not tf.io.gfile.exists(report_path):
        raise DataError(f"the Beam pipeline ended in state {state} without its report "
                        f"({report_path}); nothing was published under {output_dir}: run "
                        f"the same command again")
    return _read_json(report_path)


def _discard(output_dir: str, existed: bool) -> None:
    """Removes what the build wrote (and `output_dir` when it created it, if empty)."""
    build_dir = _join(output_dir, BUILD_DIR)
    if tf.io.gfile.exists(build_dir):
        tf.io.gfile.rmtree(build_dir)
    if not existed and tf.io.gfile.isdir(output_dir) and not tf.io.gfile.listdir(output_dir):
        tf.io.gfile.rmtree(output_dir)
