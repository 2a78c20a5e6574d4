"""The transforms of the Beam pipeline of the pretraining-data builder (`build_pipeline`):
framing records as TFRecords (`frame_records`), the file sink that writes them
(`FramedRecordSink`), the DoFn that encodes units (`EncodeUnits`), the sum of the units'
counts (`SumCounts`) and the pipeline's report (`count_records`, `write_report`).

The DoFns and the functions given to `beam.Map` are module-level, so that Beam pickles
them by reference to this module.
"""

from __future__ import annotations

import collections
import contextlib
import os
import uuid
from typing import Optional, Sequence

import apache_beam as beam
import tensorflow as tf
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes

from electra_tf.data.beam_output import REPORT_NAME, _basename, _join, _write_json
from electra_tf.data.build_plan import PackingSpec, Unit
from electra_tf.data.pretraining_reader import SHARD_PREFIX
from electra_tf.data.unit_encoder import UnitEncoder
from electra_tf.text.corpus import CorpusError

# Tags of the per-unit side outputs of `EncodeUnits`.
STATS_TAG, SKIPPED_TAG = "stats", "skipped"


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


# --- The pipeline ---------------------------------------------------------------------------


def build_pipeline(pipeline: beam.Pipeline, units: Sequence[Unit], spec: PackingSpec, *,
                   staging_dir: str, num_shards: int, compression: str,
                   fail_once: Optional[tuple] = None) -> None:
    """Adds the builder's transforms to `pipeline` (see `beam_pipeline`'s docstring).

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

