r"""Builds sharded pretraining TFRecords from text (reference `build_pretraining_dataset.py`).

`build_pretraining_data` reads text files (a blank line ends a document), tokenizes many
lines per `ElectraTokenizer.tokenize` call, packs them with `packing.ExampleBuilder` and
writes `input_ids`, `input_mask`, `segment_ids` (int64, fixed length) into
`DIR/pretrain-SSSSS-of-NNNNN.tfrecord[.gz]`, plus the sidecar `DIR/dataset.json`.

Units and determinism: the work is cut into units, an input file or, for a file larger
than `split_bytes` (64 MiB), byte ranges of it cut at document boundaries
(`build_plan.plan_units`). `unit_encoder.UnitEncoder` reads, tokenizes, packs and
serializes one unit with its own `random.Random` (`unit_encoder.unit_rng`, seeded from the
seed and the unit's identity: its file's position in the sorted input list and its start
offset) and its own `packing.ExampleBuilder`, so the set of examples depends only on the
inputs, vocabulary, seed, `max_seq_length`, casing, `split_bytes` (and the document and
truncation options), not on the number of workers or the executor.

Two executors run the same `UnitEncoder`: this module's local one (`--runner=local`: K
worker processes, unit u and shard s to worker u % K and s % K, each worker writing its
examples round-robin to its shards, so which shard holds an example, and the shards'
bytes, depend on K as well), and `beam_pipeline` (`--runner=beam`: Apache Beam, local or on
a cluster).

No text is lost (docs/architecture.md, "Pretraining data"; `unit_encoder`): a line longer
than an example is split into sentences, a sentence still too long is cut into pieces, and
what does not fit an example is carried into the next one. The sidecar counts `text_tokens`,
`truncated_tokens` (0 unless `reference_truncation`) and `split_lines`.

Refused before any work, with one line: an output directory that cannot be written, binary
or non-UTF-8 inputs, inputs with no text (`corpus.check_inputs`); a build that still yields
no example is not published. A write that fails mid-build (a full disk) is a one-line
`DataError`; the unfinished worker's files are removed and a rerun resumes.

The units, the workers' jobs and the sidecar: `build_plan`. Where things go, how an
interrupted build resumes and when an output directory is refused: `build_output`. Running
the workers in processes with a progress bar: `worker_pool`. What one worker does:
`run_worker`; what is done to each unit: `unit_encoder.UnitEncoder.encode`.

Example:

>>> import tempfile
>>> from electra_tf.text.vocab import SPECIAL_TOKENS, write_vocab
>>> root = tempfile.mkdtemp()
>>> write_vocab(list(SPECIAL_TOKENS) + ["the", "cat", "sat", ".", "猫", "坐"], f"{root}/vocab.txt")
>>> with open(f"{root}/corpus.txt", "w", encoding="utf-8") as f:
...     _ = f.write("the cat sat .\nthe cat sat .\n\n猫坐了。\n")
>>> sidecar = build_pretraining_data(f"{root}/corpus.txt", f"{root}/vocab.txt",
...                                  f"{root}/data", max_seq_length=16, num_shards=2)
>>> sidecar["documents"], sidecar["max_seq_length"], len(sidecar["shards"])
(2, 16, 2)
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
from typing import Callable, Optional, Sequence, Union

from electra_tf.data import build_output, build_plan, worker_pool
from electra_tf.data.build_output import write_json
from electra_tf.data.build_plan import WorkerJob, shard_name
from electra_tf.data.pretraining_reader import DataError
# What is done to each unit lives in its own module; re-exported here.
from electra_tf.data.unit_encoder import (DEFAULT_TOKENIZE_BATCH_LINES,  # noqa: F401
                                          UnitEncoder, electra_tokenizer_factory, unit_rng)

# Each worker holds one open file per shard it writes.
MAX_SHARDS = 10000


def run_worker(job: WorkerJob, progress: Optional[Callable] = None) -> dict:
    """Tokenizes, packs and writes one local worker's units into its shards.

    Args:
        job: the worker's assignment.
        progress: optional callback(bytes_read, tokens_written) called after each batch.

    Returns:
        The worker's statistics (also written to its done-marker).

    Raises:
        CorpusError: an input file is unreadable or not text.
        DataError: a shard or the done-marker cannot be written (a full disk); this
            worker's unfinished shards are removed first, so a rerun starts it afresh.
    """
    import tensorflow as tf

    partial_paths = [os.path.join(job.build_dir, shard_name(s, job.num_shards, job.compression)
                                  + ".partial") for s in job.shards]
    writers = []
    try:
        return _run_worker(job, progress, partial_paths, writers)
    except BaseException as e:
        for writer in writers:
            with contextlib.suppress(Exception):
                writer.close()
        # The rerun redoes this worker from its start: free the space its shards hold.
        for path in partial_paths + [p[:-len(".partial")] for p in partial_paths]:
            with contextlib.suppress(OSError):
                os.remove(path)
        if isinstance(e, (OSError, tf.errors.OpError)):
            # TensorFlow's errors do not cross process boundaries (they do not unpickle);
            # their message names the file.
            where = getattr(e, "filename", None) or os.path.dirname(job.build_dir)
            raise build_output.write_error(where, e) from None
        raise


def _run_worker(job: WorkerJob, progress: Optional[Callable], partial_paths: list,
                writers: list) -> dict:
    import tensorflow as tf

    encoder = UnitEncoder(job.spec)
    stats = collections.Counter()
    shard_examples = [0] * len(job.shards)
    options = tf.io.TFRecordOptions(compression_type=job.compression)
    writers.extend(tf.io.TFRecordWriter(p, options) for p in partial_paths)
    n_written = 0
    for unit in job.units:
        for records in encoder.encode(unit, stats, progress):
            for record in records:
                # Round-robin over this worker's shards, as the reference ExampleWriter.
                writers[n_written % len(writers)].write(record)
                shard_examples[n_written % len(writers)] += 1
                n_written += 1
                if job.fail_after_examples is not None and n_written >= job.fail_after_examples:
                    raise RuntimeError(f"test hook: worker {job.worker_index} stopped after "
                                       f"{n_written} examples")

    while writers:
        writers.pop(0).close()
    for partial in partial_paths:
        os.replace(partial, partial[:-len(".partial")])
    result = {
        "worker_index": job.worker_index,
        "stats": dict(stats),
        "shards": {shard_name(s, job.num_shards, job.compression): n
                   for s, n in zip(job.shards, shard_examples)},
    }
    # Written last: its presence says every shard of this worker is complete.
    write_json(job.marker_path(), result)
    return result


def check_arguments(*, max_seq_length: int, num_shards: int, num_workers: int,
                    compression: str, tokenize_batch_lines: int, split_bytes: int) -> None:
    """Refuses build settings out of range, before any work (both executors).

    Raises:
        DataError: one line naming the setting, its value and the range.
    """
    if compression not in ("", "GZIP"):
        raise DataError(f"compression={compression!r} is not supported; use '' or 'GZIP'")
    if num_shards < 1 or num_workers < 1:
        raise DataError(f"num_shards={num_shards} and num_workers={num_workers} must be >= 1")
    if not 5 <= max_seq_length <= 1 << 16:
        raise DataError(f"max_seq_length={max_seq_length} is out of range; use 5..65536 "
                        f"(128 or 512 as the paper)")
    if num_shards > MAX_SHARDS:
        raise DataError(f"num_shards={num_shards} is too many (each worker keeps its shards "
                        f"open at once); use at most {MAX_SHARDS}")
    if tokenize_batch_lines < 1:
        raise DataError(f"tokenize_batch_lines={tokenize_batch_lines} must be at least 1")
    if split_bytes < build_plan.MIN_SPLIT_BYTES:
        raise DataError(f"split_bytes={split_bytes} is too small; use at least "
                        f"{build_plan.MIN_SPLIT_BYTES} (the default, "
                        f"{build_plan.DEFAULT_SPLIT_BYTES}, is 64 MiB)")


def build_pretraining_data(
        inputs: Union[str, Sequence[str]],
        vocab: Union[str, Sequence[str]],
        output_dir: str,
        *,
        max_seq_length: int = 128,
        num_shards: int = 1,
        num_workers: int = 1,
        seed: int = 0,
        compression: str = "",
        blank_lines_separate_docs: bool = True,
        lower_case: bool = True,
        reference_truncation: bool = False,
        tokenize_batch_lines: int = DEFAULT_TOKENIZE_BATCH_LINES,
        split_bytes: int = build_plan.DEFAULT_SPLIT_BYTES,
        progress: bool = False,
        tokenizer_factory: Callable = electra_tokenizer_factory,
        _fail_after_examples: Optional[dict] = None,
        _sequential: bool = False) -> dict:
    """Builds (or resumes, or confirms) a sharded pretraining dataset.

    Args:
        inputs: a glob, comma-separated globs or a list of files (`expand_inputs`).
        vocab: path of vocab.txt, or the token list.
        output_dir: destination directory (created).
        max_seq_length: length of every example.
        num_shards: number of output shards.
        num_workers: worker processes; clamped to the number of shards and units.
        seed: seed of every random decision.
        compression: "" or "GZIP".
        blank_lines_separate_docs: a blank line ends a document (else one document per file).
        lower_case: lower-case and strip accents when tokenizing.
        reference_truncation: drop the tokens that overflow an example, as the reference
            does (counted in the sidecar's `truncated_tokens`), instead of carrying them into
            the next example.
        tokenize_batch_lines: lines per tokenize call.
        split_bytes: input files larger than this are cut into ranges of about this size at
            document boundaries, each a unit of work with its own random stream (part of the
            build: it changes the examples).
        progress: show a tqdm bar (bytes read, tokens/s, ETA).
        tokenizer_factory: module-level (vocab, lower_case) -> tokenize(lines) ->
            (flat ids, row_splits); the default is `ElectraTokenizer`.
        _fail_after_examples: test hook {worker index: n}: that worker raises after n examples.
        _sequential: run the workers one after another in this process (tests: the bytes
            equal those of the parallel build, which depends only on the jobs).

    Returns:
        The sidecar written to `output_dir/dataset.json`.

    Raises:
        CorpusError (bad input files: no match, unreadable, binary, no text at all),
        VocabError (bad vocabulary), DataError (bad arguments, an output directory that
        cannot be written, a write that failed, no example built), DataMismatchError
        (output_dir holds another build), `worker_pool.BuildInterrupted` (a worker process
        died).
    """
    from electra_tf.text import corpus, vocab as vocab_lib

    check_arguments(max_seq_length=max_seq_length, num_shards=num_shards,
                    num_workers=num_workers, compression=compression,
                    tokenize_batch_lines=tokenize_batch_lines, split_bytes=split_bytes)
    build_output.check_output_dir(output_dir)
    if isinstance(vocab, (str, os.PathLike)):
        tokens = vocab_lib.load_vocab(os.fspath(vocab))
    else:
        tokens = list(vocab)
        vocab_lib.check_vocab(tokens, "token list")
    files = corpus.expand_inputs(inputs)
    corpus.check_inputs(files)  # Binary input, or no text at all: refused before any work.
    units = build_plan.plan_units(files, split_bytes, blank_lines_separate_docs)
    build = build_plan.describe_build(
        tokens, files, max_seq_length=max_seq_length, num_shards=num_shards,
        num_workers=num_workers, seed=seed, compression=compression,
        blank_lines_separate_docs=blank_lines_separate_docs, lower_case=lower_case,
        reference_truncation=reference_truncation, split_bytes=split_bytes,
        num_units=len(units))
    existed = os.path.isdir(output_dir)
    previous = build_output.prepare_output_dir(output_dir, build)
    if previous is not None:
        return previous

    spec = build_plan.packing_spec(build, tokens, tokenize_batch_lines=tokenize_batch_lines,
                                   tokenizer_factory=tokenizer_factory)
    jobs = build_plan.plan_jobs(build, units, spec,
                                os.path.join(output_dir, build_output.BUILD_DIR),
                                fail_after_examples=_fail_after_examples)
    results = {}
    todo = []
    for job in jobs:
        done = build_output.finished_result(job, output_dir)
        if done is not None:
            results[job.worker_index] = done
        else:
            todo.append(job)
    workers = build["num_workers"]
    todo_bytes = sum(unit.size for job in todo for unit in job.units)
    build_dir = os.path.join(output_dir, build_output.BUILD_DIR)
    try:
        ran = worker_pool.run_jobs(run_worker, todo, total_bytes=todo_bytes,
                                   show_progress=progress,
                                   in_processes=workers > 1 and not _sequential)
    except BaseException:
        # Workers stopped by another's failure leave unfinished shards: free their space
        # (the rerun redoes every worker without a done-marker from its start).
        for name in os.listdir(build_dir) if os.path.isdir(build_dir) else []:
            if name.endswith(".partial"):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(build_dir, name))
        raise
    results.update((job.worker_index, result) for job, result in zip(todo, ran))

    sidecar = build_plan.describe_sidecar(build, results)
    if sidecar["examples"] == 0:
        # Text that tokenizes to nothing (control or format characters only): an empty
        # build is refused rather than published (training on it would wait forever).
        shutil.rmtree(build_dir, ignore_errors=True)
        if not existed:
            with contextlib.suppress(OSError):
                os.rmdir(output_dir)
        raise DataError(f"the input ({corpus.describe_files(files)}) gave no example: its "
                        f"text tokenizes to nothing (only control or format characters); "
                        f"nothing was written, give text files")
    # Every worker is done: move the shards into place, then the sidecar, last.
    build_output.publish(output_dir, sidecar)
    return sidecar
