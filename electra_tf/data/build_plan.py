"""The plan of a pretraining-data build: its description, its units of work, what each local
worker does and the sidecar that describes the result.

Units (docs/architecture.md, "Pretraining data"): an input file, or for a file larger than
`split_bytes` (default 64 MiB) byte ranges of it cut at document boundaries
(`documents.document_cuts`, found at planning time by reading small windows), listed by
`plan_units`. A unit is read, tokenized and packed on its own, with its own random stream
(`unit_encoder.unit_rng`): the set of examples does not depend on who runs the units. The
local executor (`plan_jobs`) gives unit u to worker u % K, and shard s to worker s % K, each
worker writing its examples round-robin to its shards, so which shard holds an example
depends on K; the Beam executor (`beam_pipeline`) runs the same units.

A build is described by `describe_build` (everything the output bytes depend on: two runs
with equal descriptions are one build, `check_same_build`), and a finished one by its
sidecar (`describe_sidecar`). Where they are written, how an interrupted build resumes and
when an output directory is refused: `build_output` (the local executor) and `beam_output`
(the Beam executor).

Example:

>>> shard_name(3, 64), shard_name(0, 2, "GZIP")
('pretrain-00003-of-00064.tfrecord', 'pretrain-00000-of-00002.tfrecord.gz')
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Callable, Optional, Sequence

from electra_tf._lazy import lazy_exports
from electra_tf.data.pretraining_reader import SHARD_PREFIX, DataMismatchError

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


def plan_units(files: Sequence[str], split_bytes: int,
               blank_lines_separate_docs: bool) -> list[Unit]:
    """The units of a build: each file, or its ranges when larger than `split_bytes`.

    Args:
        files: the input files, sorted (`corpus.expand_inputs`).
        split_bytes: files larger than this are cut near its multiples
            (`documents.document_cuts`: only small windows of the file are read).
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
    from electra_tf.text.documents import document_cuts, file_size

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
    from electra_tf.text.documents import file_size
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


# The local output directory moved to build_output.py (which imports this module, hence lazy).
__getattr__, __dir__ = lazy_exports(__name__, {
    name: "electra_tf.data.build_output"
    for name in ("BUILD_DIR", "PLAN_NAME", "write_error", "write_json", "check_output_dir",
                 "prepare_output_dir", "finished_result", "publish")})
