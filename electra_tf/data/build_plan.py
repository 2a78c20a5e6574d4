"""The plan of a pretraining-data build: its units of work, what each worker does and what
the output holds.

Units (docs/architecture.md, "Pretraining data"): an input file, or for a file larger than
`split_bytes` (default 64 MiB) byte ranges of it cut at document boundaries
(`corpus.document_cuts`, found at planning time by reading small windows), listed by
`plan_units`. A unit is read, tokenized and packed on its own, with its own random stream
(`pretraining_builder.unit_rng`): the set of examples does not depend on who runs the
units. The local executor (`plan_jobs`) gives unit u to worker u % K, and shard s to worker
s % K, each worker writing its examples round-robin to its shards, so which shard holds an
example depends on K; the Beam executor (`beam_pipeline`) runs the same units.

Layout of an output directory DIR:
  DIR/pretrain-SSSSS-of-NNNNN.tfrecord[.gz]   the shards (`shard_name`)
  DIR/dataset.json                            the sidecar (`describe_sidecar`), written last
  DIR/.build/build.json                       the build description (`describe_build`)
  DIR/.build/pretrain-*.tfrecord[.partial]    shards being written / closed by their worker
  DIR/.build/worker-WWWWW-of-KKKKK.json       a worker's done-marker (`WorkerJob.marker_path`)
  DIR/.build/beam/                            the Beam executor's staging (`beam_pipeline`)

Crash safety: shards are written under `DIR/.build/` and renamed there when their worker
closes them; the worker then writes its done-marker. Only when every worker is done are the
shards moved into DIR and `dataset.json` written (`publish`). An interrupted build therefore
leaves no shard in DIR that looks finished; running the same command again skips the workers
that finished (`finished_result`) and redoes the others from their start, giving the same
bytes. DIR holding shards of another configuration is refused (`prepare_output_dir`).
Temporaries that a killed build left (`*.tmp-PID` of dead processes, in DIR and
`DIR/.build/`) are removed at start; a write that fails (a full disk, no permission) is a
one-line `DataError`, and the output directory is checked before any work
(`check_output_dir`).

The sidecar lists `shards`, `examples_per_shard` and `shard_bytes` (each shard's size in
bytes, measured once the shards are final), in shard order; sidecars of older versions may
lack `shard_bytes`.

Example:

>>> shard_name(3, 64), shard_name(0, 2, "GZIP")
('pretrain-00003-of-00064.tfrecord', 'pretrain-00000-of-00002.tfrecord.gz')
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
from typing import Callable, Optional, Sequence

from electra_tf.data.pretraining_reader import (SHARD_PREFIX, SIDECAR_NAME, DataError,
                                                DataMismatchError)
from electra_tf.files import atomic_write, remove_stale_temporaries

BUILD_DIR = ".build"
PLAN_NAME = "build.json"
# 2: long lines split into sentences, overflow carried into the next example (version 1
# truncated as the reference); docs/architecture.md, "Pretraining data".
# 3: units of work (files, or byte ranges of large files) each with its own random stream
# and packer (version 2 had one stream per worker across its files).
_FORMAT_VERSION = 3
# Files larger than this are cut into ranges of about this size (`plan_units`).
DEFAULT_SPLIT_BYTES = 64 << 20
# Smaller ranges only add per-unit overhead (and planning reads).
MIN_SPLIT_BYTES = 4096
# Counts reported at the end and recorded in the sidecar.
BAD_INPUT_COUNTS = ("invalid_utf8_lines", "empty_files", "empty_documents")


def shard_name(index: int, num_shards: int, compression: str = "") -> str:
    """File name of shard `index` (0-based): `pretrain-SSSSS-of-NNNNN.tfrecord[.gz]`.

    Args:
        index: shard index.
        num_shards: total number of shards.
        compression: "" or "GZIP".
    """
    suffix = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    return f"{SHARD_PREFIX}{index:05d}-of-{num_shards:05d}{suffix}"


def shard_names(build: dict) -> list[str]:
    """Names of every shard of a build, in index order.

    Args:
        build: a build description from `describe_build`.
    """
    return [shard_name(i, build["num_shards"], build["compression"])
            for i in range(build["num_shards"])]


@dataclasses.dataclass(frozen=True)
class Unit:
    """One unit of work: a whole input file, or a byte range of one cut at documents.

    Its identity, (file_index, start), seeds its random stream.

    Args:
        file_index: position of the file in the sorted input list.
        path: the file.
        start: byte offset of the range (0 for a whole file).
        end: byte offset where the range ends; None for the end of the file.
        size: bytes of the range (as stored: compressed for `.gz`), for progress.
    """

    file_index: int
    path: str
    start: int
    end: Optional[int]
    size: int


@dataclasses.dataclass
class PackingSpec:
    """How every unit is read, tokenized and packed: the same for both executors.

    Args:
        vocab: vocabulary tokens.
        lower_case: tokenizer casing.
        max_seq_length: example length.
        seed: build seed.
        blank_lines_separate_docs: a blank line ends a document.
        reference_truncation: drop the tokens that overflow an example (the reference)
            instead of carrying them into the next one.
        tokenize_batch_lines: lines per tokenize call.
        tokenizer_factory: (vocab, lower_case) -> tokenize function; module-level, picklable.
    """

    vocab: list
    lower_case: bool
    max_seq_length: int
    seed: int
    blank_lines_separate_docs: bool
    reference_truncation: bool
    tokenize_batch_lines: int
    tokenizer_factory: Callable


@dataclasses.dataclass
class WorkerJob:
    """What one local worker reads and writes; picklable, so it crosses into processes.

    Args:
        worker_index: index of this worker in [0, num_workers).
        num_workers: number of workers of the build.
        units: the units of this worker (`Unit`), in order.
        shards: shard indices this worker writes.
        build_dir: directory for partial shards and done-markers.
        num_shards: total number of shards.
        compression: "" or "GZIP".
        spec: how the units are packed.
        fail_after_examples: test hook: raise after writing this many examples (a crash).
    """

    worker_index: int
    num_workers: int
    units: list
    shards: list
    build_dir: str
    num_shards: int
    compression: str
    spec: PackingSpec
    fail_after_examples: Optional[int] = None

    def marker_path(self) -> str:
        """The done-marker: present only once every shard of this worker is complete."""
        return os.path.join(self.build_dir,
                            f"worker-{self.worker_index:05d}-of-{self.num_workers:05d}.json")


def write_error(path: str, e: BaseException) -> DataError:
    """The one-line `DataError` for a write that failed (a full disk, no permission).

    Args:
        path: the file that could not be written.
        e: the `OSError` or `tf.errors.OpError`.
    """
    reason = (getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
              or type(e).__name__)
    return DataError(f"cannot write {path}: {reason}; nothing was published: free space (or "
                     f"fix permissions), then run the same command again to resume")


def write_json(path: str, data: dict) -> None:
    """Writes `data` as sorted, indented JSON, atomically (markers, plan, sidecar).

    Args:
        path: destination file.
        data: JSON-serialisable mapping.

    Raises:
        DataError: the file cannot be written (nothing is left at `path`).
    """
    try:
        with atomic_write(path) as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
    except OSError as e:
        raise write_error(path, e) from None


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} ({e}): it is not this tool's JSON; delete "
                        f"{os.path.dirname(path)} or use another --output_dir") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not this tool's JSON (not an object); delete it or use "
                        f"another --output_dir")
    return data


def check_output_dir(output_dir: str) -> None:
    """Refuses an output directory that cannot be written, before any work starts.

    Args:
        output_dir: the destination directory (need not exist yet).

    Raises:
        DataError: `output_dir` is a file, a file is in the way, or no file can be created
            there (permissions, a read-only file system).
    """
    from electra_tf.text.corpus import output_path_problem

    problem = output_path_problem(output_dir, directory=True)
    if problem:
        raise DataError(f"cannot write --output_dir: {problem}; give a directory in a "
                        f"writable place")


def plan_units(files: Sequence[str], split_bytes: int,
               blank_lines_separate_docs: bool) -> list[Unit]:
    """The units of a build: each file, or its ranges when larger than `split_bytes`.

    Args:
        files: the input files, sorted (`corpus.expand_inputs`).
        split_bytes: files larger than this are cut near its multiples
            (`corpus.document_cuts`: only small windows of the file are read).
        blank_lines_separate_docs: a blank line ends a document (else a file is one
            document and is never cut).

    Returns:
        The units, by file then offset.

    Raises:
        CorpusError: a file's size or windows cannot be read (the units would otherwise
            depend on a read that happened to fail, and with them the examples).

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "big.txt")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write("the cat sat.\\n北京。\\n\\n" * 1000)  # 24 bytes per document
    >>> [(u.start, u.end) for u in plan_units([path], 8192, True)]
    [(0, 8208), (8208, 16416), (16416, None)]
    """
    from electra_tf.text.corpus import document_cuts, file_size

    units = []
    for index, path in enumerate(files):
        size = file_size(path)
        cuts = document_cuts(path, split_bytes, blank_lines_separate_docs)
        bounds = [0] + cuts + [None]
        for start, end in zip(bounds, bounds[1:]):
            units.append(Unit(index, path, start, end, (size if end is None else end) - start))
    return units


def _absolute(path: str) -> str:
    """A local path made absolute; a URL (gs://, hdfs://) as it is."""
    return path if "://" in path else os.path.abspath(path)


def describe_build(tokens: Sequence[str], files: Sequence[str], *, max_seq_length: int,
                   num_shards: int, num_workers: Optional[int], seed: int, compression: str,
                   blank_lines_separate_docs: bool, lower_case: bool,
                   reference_truncation: bool = False, split_bytes: int = DEFAULT_SPLIT_BYTES,
                   num_units: Optional[int] = None, runner: str = "local") -> dict:
    """Everything the output bytes depend on; two runs with equal descriptions are one build.

    Args:
        tokens: the vocabulary.
        files: the input files, sorted (`corpus.expand_inputs`).
        max_seq_length: length of every example.
        num_shards: number of output shards.
        num_workers: requested local workers; clamped to the number of shards and units.
            None for the Beam executor (its runner decides).
        seed: build seed.
        compression: "" or "GZIP".
        blank_lines_separate_docs: a blank line ends a document.
        lower_case: tokenizer casing.
        reference_truncation: drop the tokens that overflow an example, as the reference.
        split_bytes: files larger than this are cut into ranges (`plan_units`).
        num_units: the number of units (`plan_units`); default one per file.
        runner: "local" or "beam": which executor wrote the shards (the set of examples is
            the same, their order and shard placement are not).

    Returns:
        A JSON-serialisable dict, kept in `.build/build.json` and the sidecar's `build`.
    """
    from electra_tf.text.corpus import file_size
    from electra_tf.text.vocab import vocab_hash

    units = len(files) if num_units is None else num_units
    workers = (None if num_workers is None
               else max(1, min(num_workers, num_shards, units)))
    return {
        "format_version": _FORMAT_VERSION,
        "runner": runner,
        "vocab_hash": vocab_hash(tokens),
        "vocab_size": len(tokens),
        "lower_case": bool(lower_case),
        "max_seq_length": int(max_seq_length),
        "num_shards": int(num_shards),
        "num_workers": None if workers is None else int(workers),
        "seed": int(seed),
        "compression": compression,
        "blank_lines_separate_docs": bool(blank_lines_separate_docs),
        "reference_truncation": bool(reference_truncation),
        "split_bytes": int(split_bytes),
        "inputs": [[_absolute(f), file_size(f)] for f in files],
    }


def packing_spec(build: dict, tokens: Sequence[str], *, tokenize_batch_lines: int,
                 tokenizer_factory: Callable) -> PackingSpec:
    """The packing settings of a build (`describe_build`), for either executor.

    Args:
        build: the build description.
        tokens: the vocabulary.
        tokenize_batch_lines: lines per tokenize call.
        tokenizer_factory: module-level (vocab, lower_case) -> tokenize function.
    """
    return PackingSpec(
        vocab=list(tokens), lower_case=build["lower_case"],
        max_seq_length=build["max_seq_length"], seed=build["seed"],
        blank_lines_separate_docs=build["blank_lines_separate_docs"],
        reference_truncation=build["reference_truncation"],
        tokenize_batch_lines=int(tokenize_batch_lines), tokenizer_factory=tokenizer_factory)


def plan_jobs(build: dict, units: Sequence[Unit], spec: PackingSpec, build_dir: str, *,
              fail_after_examples: Optional[dict] = None) -> list[WorkerJob]:
    """Splits a local build into worker jobs: unit u and shard s go to worker u % K, s % K.

    Args:
        build: the build description (`describe_build`).
        units: the units (`plan_units`).
        spec: how the units are packed (`packing_spec`).
        build_dir: the build's `.build` directory.
        fail_after_examples: test hook {worker index: n}: that worker raises after n examples.

    Returns:
        One job per worker, in worker order.
    """
    workers, num_shards = build["num_workers"], build["num_shards"]
    return [WorkerJob(
        worker_index=w, num_workers=workers,
        units=[unit for u, unit in enumerate(units) if u % workers == w],
        shards=[s for s in range(num_shards) if s % workers == w],
        build_dir=build_dir, num_shards=num_shards, compression=build["compression"],
        spec=spec, fail_after_examples=(fail_after_examples or {}).get(w))
        for w in range(workers)]


def _describe(key, value):
    if key == "inputs" and isinstance(value, list):
        return f"{len(value)} input files ({sum(size for _, size in value)} bytes)"
    if key == "format_version" and value != _FORMAT_VERSION:
        return f"format_version={value!r} (another version of this tool)"
    return f"{key}={value!r}"


def check_same_build(found: dict, wanted: dict, output_dir: str, source: str) -> None:
    """Raises DataMismatchError naming the first setting where two build descriptions differ.

    Args:
        found: the description recorded in `output_dir`.
        wanted: the description of this build.
        output_dir: the output directory (named in the message).
        source: the file `found` was read from (named in the message).
    """
    for key in wanted:
        if found.get(key) != wanted[key]:
            raise DataMismatchError(
                f"{output_dir} holds shards of another configuration ({source} has "
                f"{_describe(key, found.get(key))}, this build {_describe(key, wanted[key])}); "
                f"use another --output_dir or delete {output_dir}")


def prepare_output_dir(output_dir: str, build: dict) -> Optional[dict]:
    """Readies `output_dir` for `build`: recognises the same build, refuses another one.

    A finished build of the same description is returned as is. Shards removed by hand from
    a finished build, and an interrupted build of the same description, are resumed; an
    interrupted build in which no worker finished is discarded. Shards of another build
    (with or without a sidecar or plan) are refused. On return `.build/` exists and holds
    the plan.

    Args:
        output_dir: the destination directory.
        build: this build's description (`describe_build`).

    Returns:
        The previous sidecar, with `already_complete` set, when the build is already done;
        else None.

    Raises:
        DataMismatchError: `output_dir` holds shards of another build.
    """
    try:
        return _prepare_output_dir(output_dir, build)
    except OSError as e:
        raise write_error(e.filename or output_dir, e) from None


def _shards_intact(output_dir: str, sidecar: dict, names: Sequence[str]) -> bool:
    """Every shard is there, with the size the sidecar recorded (when it did)."""
    sizes = sidecar.get("shard_bytes")
    for i, name in enumerate(names):
        path = os.path.join(output_dir, name)
        if not os.path.isfile(path):
            return False
        if isinstance(sizes, list) and len(sizes) == len(names) and \
                os.path.getsize(path) != sizes[i]:
            return False
    return True


def _prepare_output_dir(output_dir: str, build: dict) -> Optional[dict]:
    build_dir = os.path.join(output_dir, BUILD_DIR)
    sidecar_path = os.path.join(output_dir, SIDECAR_NAME)
    plan_path = os.path.join(build_dir, PLAN_NAME)
    # What a killed build left: `.dataset.json.tmp-PID`, `.worker-*.json.tmp-PID`, ...
    remove_stale_temporaries(output_dir)
    remove_stale_temporaries(build_dir)
    ours = False  # the shards in output_dir are known to come from this very build
    if os.path.exists(sidecar_path):
        previous = _read_json(sidecar_path)
        check_same_build(previous.get("build", {}), build, output_dir, sidecar_path)
        if _shards_intact(output_dir, previous, shard_names(build)):
            previous["already_complete"] = True
            return previous
        # Shards removed (or cut short) by hand: they are rebuilt, the sidecar goes first.
        os.remove(sidecar_path)
        ours = True
    if os.path.exists(plan_path):
        plan = _read_json(plan_path)
        if any(n.startswith("worker-") for n in os.listdir(build_dir)):
            # Some workers finished: their shards are only reusable by the same build.
            check_same_build(plan, build, output_dir, plan_path)
            ours = True
        elif plan == build:
            ours = True  # the same build, interrupted before any worker finished
        else:
            # Nothing finished (e.g. a bad input file stopped it): start afresh.
            shutil.rmtree(build_dir)
    if not ours and not os.path.exists(plan_path) and os.path.isdir(output_dir):
        foreign = sorted(n for n in os.listdir(output_dir) if n.startswith(SHARD_PREFIX))
        if foreign:
            raise DataMismatchError(
                f"{output_dir} holds shards ({foreign[0]}, ...) with no {SIDECAR_NAME} or "
                f"build plan of this tool; use another --output_dir or delete them")
    os.makedirs(build_dir, exist_ok=True)
    if not os.path.exists(plan_path):
        write_json(plan_path, build)
    return None


def finished_result(job: WorkerJob, output_dir: str) -> Optional[dict]:
    """The statistics of a job a previous run finished, or None when it must run (again).

    Args:
        job: the worker's job.
        output_dir: the destination directory (a finished shard may already be there).
    """
    if not os.path.exists(job.marker_path()):
        return None
    result = _read_json(job.marker_path())
    for s in job.shards:
        name = shard_name(s, job.num_shards, job.compression)
        if not any(os.path.exists(os.path.join(d, name)) for d in (job.build_dir, output_dir)):
            return None
    return result


def describe_sidecar(build: dict, results: dict,
                     skipped_files: Sequence[dict] = ()) -> dict:
    """The sidecar of a finished build: its settings, counts and shard list.

    Args:
        build: the build description (`describe_build`).
        results: worker index -> the worker's result (`stats`, examples per `shards`); the
            Beam executor passes one result for the whole pipeline.
        skipped_files: inputs left out ({"path", "reason"}: only the Beam executor skips
            unreadable or binary files; the local one refuses them before any work).

    Returns:
        The dict written to `dataset.json` (`publish` adds `shard_bytes`).
    """
    stats = collections.Counter()
    shard_examples = {}
    for w in sorted(results):
        stats.update(results[w]["stats"])
        shard_examples.update(results[w]["shards"])
    names = shard_names(build)
    examples, n_tokens = stats["examples"], stats["tokens"]
    max_seq_length = build["max_seq_length"]
    sidecar = {
        "vocab_hash": build["vocab_hash"],
        "vocab_size": build["vocab_size"],
        "lower_case": build["lower_case"],
        "max_seq_length": max_seq_length,
        "documents": stats["documents"],
        "lines": stats["lines"],
        "examples": examples,
        "tokens": n_tokens,
        "padding_fraction": (round(1.0 - n_tokens / (examples * max_seq_length), 6)
                             if examples else 0.0),
        "single_segment_examples": stats["single_segment_examples"],
        "short_target_examples": stats["short_target_examples"],
        # Tokens of the text (without [CLS]/[SEP]), and those left out of every example
        # (0 unless reference_truncation): docs/architecture.md, "Pretraining data".
        "text_tokens": stats["text_tokens"],
        "truncated_tokens": stats["truncated_tokens"],
        "truncated_fraction": (round(stats["truncated_tokens"] / stats["text_tokens"], 6)
                               if stats["text_tokens"] else 0.0),
        "split_lines": stats["split_lines"],
        "reference_truncation": build.get("reference_truncation", False),
        "num_shards": build["num_shards"],
        "num_workers": build["num_workers"],
        "runner": build.get("runner", "local"),
        "units": stats["units"],
        "compression": build["compression"],
        "seed": build["seed"],
        "input_files": len(build["inputs"]),
        "skipped_files": [dict(entry) for entry in skipped_files],
        "input_bytes": sum(size for _, size in build["inputs"]),
        "shards": names,
        "examples_per_shard": [shard_examples.get(n, 0) for n in names],
        "build": build,
    }
    for key in BAD_INPUT_COUNTS:
        sidecar[key] = stats[key]
    return sidecar


def publish(output_dir: str, sidecar: dict) -> None:
    """Moves every finished shard into `output_dir`, then writes the sidecar, last.

    Sets `sidecar["shard_bytes"]`: the size of each shard, in shard order, measured on the
    final (closed and renamed) files. The sidecar's bytes are written and flushed to disk
    under a temporary name before any shard moves, so a full disk here leaves the output
    directory as it was; renames need no space.

    Args:
        output_dir: the destination directory.
        sidecar: from `describe_sidecar`; `shard_bytes` is added to it.

    Raises:
        DataError: a finished shard is missing, or the sidecar cannot be written.
    """
    build_dir = os.path.join(output_dir, BUILD_DIR)
    sources = []
    for name in sidecar["shards"]:
        closed, final = os.path.join(build_dir, name), os.path.join(output_dir, name)
        source = closed if os.path.exists(closed) else final
        if not os.path.isfile(source):
            raise DataError(f"shard {name} of the build is missing from {build_dir} and "
                            f"{output_dir}; run the same command again to rebuild it")
        sources.append((source, final))
    sidecar["shard_bytes"] = [os.path.getsize(source) for source, _ in sources]
    sidecar_path = os.path.join(output_dir, SIDECAR_NAME)
    try:
        with atomic_write(sidecar_path) as f:
            json.dump(sidecar, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())  # A full disk fails here, before any shard moves.
            for source, final in sources:
                if source != final:
                    os.replace(source, final)
    except OSError as e:
        raise write_error(sidecar_path, e) from None
    shutil.rmtree(build_dir, ignore_errors=True)
