r"""The pretraining-data builder as an Apache Beam pipeline (`--runner=beam`).

One builder, two executors: this module runs the units of `build_plan.plan_units` through
the same `pretraining_builder.UnitEncoder` as the local workers (same reading, tokenizing,
packing, serializing, same per-unit random stream), so for the same inputs and settings it
writes the same set of examples and the same corpus-level counts as the local executor; only
which shard holds which example (and so `examples_per_shard` and `shard_bytes`) differs.

The pipeline:

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
(`frame_records`) because `WriteToTFRecord` computes its CRC32C with python-snappy,
google-crc32c or crcmod, which the `beam` extra does not install. Runners differ on retries:
Beam's Python DirectRunner for batch (the FnApiRunner) runs a failed bundle once and fails
the pipeline; `BundleBasedDirectRunner` retries a bundle up to 4 times; Dataflow retries a
bundle 4 times in batch, Flink and Spark restart failed tasks.

A unit whose file is unreadable or not text (`CorpusError`) does not fail the build: it is
counted and named in the sidecar's `skipped_files`. When the pipeline has finished, the
driver moves the shards into `OUT` under the local builder's names, measures them and writes
`dataset.json` last, with the local builder's fields (plus `runner: "beam"`). A failed
pipeline publishes nothing; running the same command again starts it afresh (a finished
pipeline whose publishing was interrupted is only published).

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

import collections
import concurrent.futures
import contextlib
import io
import json
import os
import uuid
from typing import Callable, Optional, Sequence, Union

import apache_beam as beam
import tensorflow as tf
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.options.pipeline_options import PipelineOptions

from electra_tf.data import build_plan
from electra_tf.data.build_plan import BUILD_DIR, PLAN_NAME, PackingSpec, Unit
from electra_tf.data.pretraining_builder import (DEFAULT_TOKENIZE_BATCH_LINES, UnitEncoder,
                                                 check_arguments, electra_tokenizer_factory)
from electra_tf.data.pretraining_reader import (SHARD_PREFIX, SIDECAR_NAME, DataError,
                                                DataMismatchError)
from electra_tf.text.corpus import CorpusError

# Under OUT/.build: Beam's output (its temporary files, then the finalized shards) and the
# pipeline's report.
STAGING_DIR = "beam"
REPORT_NAME = "report.json"
# Tags of the per-unit side outputs of `EncodeUnits`.
STATS_TAG, SKIPPED_TAG = "stats", "skipped"
DEFAULT_BEAM_RUNNER = "DirectRunner"
# Shards moved into place at once when publishing.
PUBLISH_THREADS = 16


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


# --- Records --------------------------------------------------------------------------------


def frame_records(records: Sequence[bytes]) -> list[bytes]:
    """Each record framed as in a TFRecord file (length, its CRC, data, its CRC).

    TensorFlow's `TFRecordWriter` (the local builder's writer) frames the whole batch in
    memory (`ram://`), so the CRC32C runs in C++.

    >>> framed = frame_records([b"abc", "北京".encode("utf-8")])
    >>> [len(f) for f in framed], framed[0][:8], framed[0][12:15]
    ([19, 22], b'\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00', b'abc')
    """
    if not records:
        return []
    path = f"ram://electra_tf-frames-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                writer.write(record)
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
    finally:
        with contextlib.suppress(Exception):
            tf.io.gfile.remove(path)
    framed, position = [], 0
    for record in records:
        size = len(record) + 16  # length (8) + its CRC (4) + data + data CRC (4)
        framed.append(data[position:position + size])
        position += size
    return framed


class FramedRecordSink(filebasedsink.FileBasedSink):
    """Beam's file sink for records already framed by `frame_records`: writes them as is.

    Args:
        file_path_prefix: the shards' path without the shard part (`.../pretrain`).
        num_shards: number of shards (`-SSSSS-of-NNNNN` is appended to the prefix).
        compression: "" or "GZIP" (the whole file is gzip, as TensorFlow reads it).
    """

    def __init__(self, file_path_prefix: str, num_shards: int, compression: str):
        super().__init__(
            file_path_prefix, coder=beam.coders.BytesCoder(),
            file_name_suffix=".tfrecord.gz" if compression == "GZIP" else ".tfrecord",
            num_shards=num_shards, shard_name_template="-SSSSS-of-NNNNN",
            compression_type=(CompressionTypes.GZIP if compression == "GZIP"
                              else CompressionTypes.UNCOMPRESSED))

    def write_encoded_record(self, file_handle, encoded_value: bytes) -> None:
        """Writes one framed record."""
        file_handle.write(encoded_value)


def _limit_tensorflow_threads() -> None:
    """One TensorFlow thread per worker process, as the local workers (one per core)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already runs in this process (in_memory mode): leave it as it is.


class EncodeUnits(beam.DoFn):
    """Runs `UnitEncoder.encode` on each unit: framed records out, plus the unit's report.

    Main output: the unit's examples, framed TFRecords. Tagged outputs: `STATS_TAG`, the
    unit's counts (a dict, also for a skipped unit: what it wrote before failing); and
    `SKIPPED_TAG`, for a unit whose file is unreadable or not text, {"path", "reason",
    "examples_kept"}.

    Args:
        spec: how units are packed (`build_plan.packing_spec`).
        fail_once: test hook (marker path, n): the first time a unit has yielded n examples,
            in any process, the marker is created and the unit raises, as a worker crash
            would (mid-unit: its counts are not out yet).
    """

    def __init__(self, spec: PackingSpec, fail_once: Optional[tuple] = None):
        super().__init__()
        self._spec = spec
        self._fail_once = fail_once
        self._encoder = None

    def setup(self):
        _limit_tensorflow_threads()
        self._encoder = UnitEncoder(self._spec)

    def process(self, unit: Unit):
        stats = collections.Counter()
        written = 0
        try:
            for records in self._encoder.encode(unit, stats):
                for record in frame_records(records):
                    yield record
                    written += 1
                    self._maybe_fail(unit, written)
        except CorpusError as e:
            if e.transient:
                # A storage hiccup, not a bad file: fail the bundle so the runner retries it
                # (skipping would lose the rest of the unit and make the build irreproducible).
                raise
            yield beam.pvalue.TaggedOutput(SKIPPED_TAG, {
                "path": unit.path, "reason": str(e), "examples_kept": written})
        yield beam.pvalue.TaggedOutput(STATS_TAG, dict(stats))

    def _maybe_fail(self, unit: Unit, written: int) -> None:
        if self._fail_once is None:
            return
        marker, after = self._fail_once
        if written >= after and not tf.io.gfile.exists(marker):
            with tf.io.gfile.GFile(marker, "w") as f:
                f.write(f"{unit.path}:{unit.start}\n")
            raise RuntimeError(f"test hook: failed once in unit {unit.path}:{unit.start} "
                               f"after {written} examples")


class SumCounts(beam.CombineFn):
    """Adds dicts of counts key by key (the units' statistics)."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, counts):
        for key, value in counts.items():
            accumulator[key] = accumulator.get(key, 0) + value
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = {}
        for accumulator in accumulators:
            self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        return dict(sorted(accumulator.items()))


def count_records(path: str, compression: str) -> dict:
    """{shard name: number of records} of one finalized shard (reads it, checking CRCs)."""
    import numpy as np

    dataset = tf.data.TFRecordDataset(path, compression_type=compression)
    return {_basename(path): int(dataset.reduce(np.int64(0), lambda n, _: n + 1))}


def write_report(_, path: str, compression: str, stats: dict, skipped: list,
                 shard_counts: list) -> None:
    """Writes the pipeline's combined statistics as JSON (atomically: temporary + rename).

    Args:
        _: the one element that triggers the write.
        path: the report's path.
        stats: the units' counts, summed.
        skipped: the skipped units' entries.
        compression: the shards' compression ("" or "GZIP").
        shard_counts: {shard name: records} of each shard (`count_records`).
    """
    counts = SumCounts().merge_accumulators(shard_counts)
    # A runner that retries the finalize step yields only the shards its last attempt
    # renamed: count every finalized shard the counts do not name, and check the total.
    staging = path.rsplit("/", 1)[0]
    for shard in tf.io.gfile.glob(_join(staging, SHARD_PREFIX + "*")):
        if _basename(shard) not in counts and ".tmp" not in _basename(shard):
            counts.update(count_records(shard, compression))
    total, produced = sum(counts.values()), int(stats.get("examples", 0))
    if total != produced:
        raise RuntimeError(f"the finalized shards in {staging} hold {total} records but the "
                           f"units produced {produced}; run the build again")
    report = {"stats": stats, "skipped": sorted(skipped, key=lambda e: e["path"]),
              "examples_per_shard": counts}
    _write_json(path, report)


def _write_json(path: str, data: dict) -> None:
    temporary = _join(path.rsplit("/", 1)[0], f".{_basename(path)}.tmp-{os.getpid()}")
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tf.io.gfile.rename(temporary, path, overwrite=True)


def _read_json(path: str) -> dict:
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            data = json.loads(f.read())
    except (ValueError, tf.errors.OpError) as e:
        raise DataError(f"cannot read {path} ({e}): it is not this tool's JSON; delete it "
                        f"or use another --output_dir") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not this tool's JSON (not an object); delete it or use "
                        f"another --output_dir")
    return data


# --- The pipeline ---------------------------------------------------------------------------


def build_pipeline(pipeline: beam.Pipeline, units: Sequence[Unit], spec: PackingSpec, *,
                   staging_dir: str, num_shards: int, compression: str,
                   fail_once: Optional[tuple] = None) -> None:
    """Adds the builder's transforms to `pipeline` (see the module's docstring).

    Args:
        pipeline: an empty pipeline.
        units: the units (`build_plan.plan_units`).
        spec: how units are packed.
        staging_dir: where the shards and the report are written.
        num_shards: number of shards.
        compression: "" or "GZIP".
        fail_once: test hook of `EncodeUnits`.
    """
    outputs = (pipeline
               | "Units" >> beam.Create(list(units))
               | "Spread" >> beam.Reshuffle()
               | "Encode" >> beam.ParDo(EncodeUnits(spec, fail_once)).with_outputs(
                   STATS_TAG, SKIPPED_TAG, main="records"))
    shards = (outputs.records
              | "Write" >> beam.io.Write(FramedRecordSink(
                  _join(staging_dir, SHARD_PREFIX.rstrip("-")), num_shards, compression)))
    stats = outputs[STATS_TAG] | "SumStats" >> beam.CombineGlobally(SumCounts())
    skipped = outputs[SKIPPED_TAG] | "ListSkipped" >> beam.combiners.ToList()
    # A side input, not a combine: Beam's finalize step stamps the shard names with the end
    # of time, and a runner that drops late data (BundleBasedDirectRunner) would drop them
    # at a combine's grouping.
    counts = shards | "Count" >> beam.Map(count_records, compression)
    _ = (pipeline
         | "Once" >> beam.Create([None])
         | "Report" >> beam.Map(write_report, _join(staging_dir, REPORT_NAME), compression,
                                beam.pvalue.AsSingleton(stats),
                                beam.pvalue.AsSingleton(skipped),
                                beam.pvalue.AsList(counts)))


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


# --- The output directory -------------------------------------------------------------------


def _shards_intact(output_dir: str, sidecar: dict, names: Sequence[str]) -> bool:
    sizes = sidecar.get("shard_bytes")
    for i, name in enumerate(names):
        path = _join(output_dir, name)
        if not tf.io.gfile.exists(path):
            return False
        if isinstance(sizes, list) and len(sizes) == len(names) and \
                tf.io.gfile.stat(path).length != sizes[i]:
            return False
    return True


def prepare_output_dir(output_dir: str, build: dict) -> Optional[dict]:
    """`build_plan.prepare_output_dir` through `tf.io.gfile`, for the Beam executor.

    A finished build of the same description is returned (with `already_complete`); another
    build's sidecar, another build's unfinished local workers or foreign shards are refused;
    an unfinished build of another description with nothing finished is discarded. On
    return `OUT/.build/build.json` holds this build's description. (Whether the directory
    can be written at all is checked before any work: `build_plan.check_output_dir`.)

    Raises:
        DataMismatchError: `output_dir` holds shards of another build.
    """
    if "://" not in output_dir and os.path.isdir(output_dir):
        from electra_tf.files import remove_stale_temporaries

        remove_stale_temporaries(output_dir)  # What a killed run left (`.NAME.tmp-PID`).
    sidecar_path = _join(output_dir, SIDECAR_NAME)
    build_dir = _join(output_dir, BUILD_DIR)
    plan_path = _join(build_dir, PLAN_NAME)
    ours = False
    if tf.io.gfile.exists(sidecar_path):
        previous = _read_json(sidecar_path)
        build_plan.check_same_build(previous.get("build", {}), build, output_dir, sidecar_path)
        if _shards_intact(output_dir, previous, build_plan.shard_names(build)):
            previous["already_complete"] = True
            return previous
        tf.io.gfile.remove(sidecar_path)  # Shards removed or cut short: rebuilt.
        ours = True
    if tf.io.gfile.exists(plan_path):
        plan = _read_json(plan_path)
        if plan == build:
            ours = True
        elif any(name.startswith("worker-") for name in tf.io.gfile.listdir(build_dir)):
            build_plan.check_same_build(plan, build, output_dir, plan_path)
        else:
            tf.io.gfile.rmtree(build_dir)  # Another build that finished nothing: start afresh.
    if not ours and tf.io.gfile.isdir(output_dir):
        foreign = sorted(n for n in tf.io.gfile.listdir(output_dir) if n.startswith(SHARD_PREFIX))
        if foreign:
            raise DataMismatchError(
                f"{output_dir} holds shards ({foreign[0]}, ...) with no {SIDECAR_NAME} or "
                f"build plan of this tool; use another --output_dir or delete them")
    tf.io.gfile.makedirs(build_dir)
    if not tf.io.gfile.exists(plan_path):
        _write_json(plan_path, build)
    return None


def _finished_report(output_dir: str, build: dict) -> Optional[dict]:
    """The report of a pipeline that finished but was not published (all shards found)."""
    staging = _join(_join(output_dir, BUILD_DIR), STAGING_DIR)
    report_path = _join(staging, REPORT_NAME)
    if not tf.io.gfile.exists(report_path):
        return None
    for name in build_plan.shard_names(build):
        if not any(tf.io.gfile.exists(_join(d, name)) for d in (staging, output_dir)):
            return None
    return _read_json(report_path)


def publish(output_dir: str, build: dict, report: dict) -> dict:
    """Moves the staged shards into `output_dir`, measures them, writes the sidecar last.

    Returns:
        The sidecar written to `output_dir/dataset.json`.
    """
    build_dir = _join(output_dir, BUILD_DIR)
    staging = _join(build_dir, STAGING_DIR)
    names = build_plan.shard_names(build)
    # A rename is a copy and a delete on object stores: many at once.
    with concurrent.futures.ThreadPoolExecutor(PUBLISH_THREADS) as pool:
        sizes = list(pool.map(_move_and_measure, [_join(staging, n) for n in names],
                              [_join(output_dir, n) for n in names]))
    result = {"stats": report["stats"], "shards": report["examples_per_shard"]}
    sidecar = build_plan.describe_sidecar(build, {0: result}, _merge_skipped(report["skipped"]))
    sidecar["shard_bytes"] = sizes
    _write_json(_join(output_dir, SIDECAR_NAME), sidecar)
    tf.io.gfile.rmtree(build_dir)
    return sidecar


def _move_and_measure(source: str, final: str) -> int:
    """Moves a staged shard into place (unless a previous publish did); returns its size."""
    if tf.io.gfile.exists(source):
        tf.io.gfile.rename(source, final, overwrite=True)
    return tf.io.gfile.stat(final).length


def _merge_skipped(entries: Sequence[dict]) -> list[dict]:
    """One entry per skipped file (a split file fails in each of its units)."""
    merged: dict = {}
    for entry in entries:
        if entry["path"] in merged:
            merged[entry["path"]]["examples_kept"] += entry["examples_kept"]
        else:
            merged[entry["path"]] = dict(entry)
    return [merged[path] for path in sorted(merged)]


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
        build_plan.check_output_dir(output_dir)
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
