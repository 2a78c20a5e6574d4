r"""Builds sharded pretraining TFRecords from text (reference `build_pretraining_dataset.py`).

`build_pretraining_data` reads text files (a blank line ends a document), tokenizes many
lines per `ElectraTokenizer.tokenize` call, packs them with `packing.ExampleBuilder` and
writes `input_ids`, `input_mask`, `segment_ids` (int64, fixed length) into
`DIR/pretrain-SSSSS-of-NNNNN.tfrecord[.gz]`, plus the sidecar `DIR/dataset.json`.

Units and determinism: the work is cut into units, an input file or, for a file larger
than `split_bytes` (64 MiB), byte ranges of it cut at document boundaries
(`build_plan.plan_units`). `UnitEncoder` reads, tokenizes, packs and serializes one unit
with its own `random.Random` (`unit_rng`, seeded from the seed and the unit's identity: its
file's position in the sorted input list and its start offset) and its own
`packing.ExampleBuilder`, so the set of examples depends only on the inputs, vocabulary,
seed, `max_seq_length`, casing, `split_bytes` (and the document and truncation options),
not on the number of workers or the executor.

Two executors run the same `UnitEncoder`: this module's local one (`--runner=local`: K
worker processes, unit u and shard s to worker u % K and s % K, each worker writing its
examples round-robin to its shards, so which shard holds an example, and the shards'
bytes, depend on K as well), and `beam_pipeline` (`--runner=beam`: Apache Beam, local or on
a cluster).

No text is lost (docs/architecture.md, "Pretraining data"): a line longer than an example
(`max_seq_length - 2` tokens) is split into sentences (`packing.split_sentences`) and a
sentence still too long is cut into pieces (`packing.chunk`); what does not fit an example
is carried into the next one (`packing.ExampleBuilder`). The sidecar counts `text_tokens`,
`truncated_tokens` (0 unless `reference_truncation`) and `split_lines`.

Refused before any work, with one line: an output directory that cannot be written, binary
or non-UTF-8 inputs, inputs with no text (`corpus.check_inputs`); a build that still yields
no example is not published. A write that fails mid-build (a full disk) is a one-line
`DataError`; the unfinished worker's files are removed and a rerun resumes.

Where things go, how an interrupted build resumes and when an output directory is refused:
`build_plan`. Running the workers in processes with a progress bar: `worker_pool`. What one
worker does: `run_worker`; what is done to each unit: `UnitEncoder.encode`.

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
import random
import shutil
from typing import Callable, Iterator, Optional, Sequence, Union

from electra_tf.data import build_plan, packing, worker_pool
from electra_tf.data.build_plan import PackingSpec, Unit, WorkerJob, shard_name, write_json
from electra_tf.data.example_encoding import serialize_examples
from electra_tf.data.pretraining_reader import FEATURES, DataError

# Lines per tokenize call: large enough that per-call overhead vanishes, small enough that
# memory stays flat (a few MB of text).
DEFAULT_TOKENIZE_BATCH_LINES = 4096
# Each worker holds one open file per shard it writes.
MAX_SHARDS = 10000


def electra_tokenizer_factory(vocab: Sequence[str], lower_case: bool) -> Callable:
    """Default tokenizer of the builder: `ElectraTokenizer.tokenize` on batches of lines.

    Args:
        vocab: the vocabulary tokens.
        lower_case: lower-case and strip accents.

    Returns:
        A function lines (list[str]) -> (flat ids np.ndarray, row_splits np.ndarray).
    """
    import tensorflow as tf

    from electra_tf.text.tokenizer import ElectraTokenizer

    tokenizer = ElectraTokenizer(list(vocab), lower_case=lower_case)

    # One traced graph for every batch: eager dispatch of the tokenizer's ops costs more
    # than tokenizing a few hundred lines. No autograph: there is no Python control flow to
    # convert, and converting tensorflow-text's sources takes seconds.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def tokenize(lines):
        ragged = tokenizer.tokenize(lines)
        return ragged.flat_values, ragged.row_splits

    def run(lines):
        values, splits = tokenize(tf.constant(lines, dtype=tf.string))
        return values.numpy(), splits.numpy()

    return run


def unit_rng(seed: int, unit: Unit) -> random.Random:
    """The random stream of one unit: a function of (seed, file position, start offset) only.

    >>> unit = Unit(file_index=0, path="a.txt", start=0, end=None, size=10)
    >>> unit_rng(0, unit).random() == unit_rng(0, unit).random() != unit_rng(1, unit).random()
    True
    """
    # A str seed is hashed with SHA-512 by `random.seed`, independent of PYTHONHASHSEED.
    return random.Random(f"electra_tf-pretraining-data:{seed}:{unit.file_index}:{unit.start}")


def _tokenize_units(lines: list, limit: int, tokenize: Callable,
                    stats: collections.Counter) -> list:
    """Each line's packing units: its tokens, or its sentences' tokens cut to `limit`.

    A line of more than `limit` characters (so possibly of more than `limit` tokens) is cut
    into sentences before the one tokenize call of the batch; the cuts fall where the
    tokenizer splits anyway (`packing.split_sentences`), so its sentences' tokens are the
    line's tokens. If they number at most `limit`, they stay one unit, as the whole line;
    else each sentence is a unit, cut into pieces of `limit` tokens if still too long.

    Args:
        lines: the texts of a batch.
        limit: the most tokens a unit may have.
        tokenize: the batch tokenizer.
        stats: counts `text_tokens` and `split_lines` (lines longer than `limit` tokens).

    Returns:
        One list of units (token id lists) per line; the units of a line together are
        exactly its tokens, in order.
    """
    parts = [packing.split_sentences(line) if len(line) > limit else [line] for line in lines]
    values, splits = tokenize([part for group in parts for part in group])
    flat, splits = values.tolist(), splits.tolist()
    stats["text_tokens"] += len(flat)
    units, k = [], 0
    for group in parts:
        start, end = splits[k], splits[k + len(group)]
        if end - start <= limit:
            units.append([flat[start:end]])
        else:
            stats["split_lines"] += 1
            units.append([piece for i in range(k, k + len(group))
                          for piece in packing.chunk(flat[splits[i]:splits[i + 1]], limit)])
        k += len(group)
    return units


class UnitEncoder:
    """Reads, tokenizes, packs and serializes units: the per-unit code of both executors.

    Built once per worker (the tokenizer is traced once); `encode` then runs unit after unit.

    Args:
        spec: how units are read, tokenized and packed.
    """

    def __init__(self, spec: PackingSpec):
        from electra_tf.text.vocab import special_ids

        self.spec = spec
        ids = special_ids(spec.vocab)
        self._cls_id, self._sep_id, self._pad_id = ids["cls_id"], ids["sep_id"], ids["pad_id"]
        self._tokenize = spec.tokenizer_factory(spec.vocab, spec.lower_case)

    def encode(self, unit: Unit, stats: collections.Counter,
               progress: Optional[Callable] = None) -> Iterator[list]:
        """Yields the serialized `tf.train.Example`s of one unit, a batch at a time.

        The unit gets a fresh `random.Random` (`unit_rng`) and a fresh
        `packing.ExampleBuilder`; a document's end emits everything it holds, and a unit
        ends at a document's end, so nothing is left in the builder afterwards.

        Args:
            unit: the unit.
            stats: counts of the unit, added in place as it goes (`documents`, `lines`,
                `text_tokens`, `split_lines`, `examples`, `tokens`, the bad-input counts;
                `single_segment_examples`, `short_target_examples`, `truncated_tokens`,
                `units` and `files` when the unit ends or stops).
            progress: optional callback(bytes_read, tokens_written) after each batch.

        Yields:
            list[bytes]: the records of the next tokenize batch (possibly empty).

        Raises:
            CorpusError: the unit's file is unreadable or not text.
        """
        from electra_tf.text.corpus import iter_document_range

        spec = self.spec
        builder = packing.ExampleBuilder(spec.max_seq_length, rng=unit_rng(spec.seed, unit),
                                         keep_overflow=not spec.reference_truncation)
        batch = spec.tokenize_batch_lines
        pieces, n_lines, n_chars = [], 0, 0
        try:
            for document in iter_document_range(unit.path, unit.start, unit.end,
                                                spec.blank_lines_separate_docs, stats):
                # A document longer than a batch (e.g. a whole file without blank lines) is
                # cut into parts, so memory stays bounded by the batch size.
                for start in range(0, len(document), batch):
                    piece = document[start:start + batch]
                    pieces.append((piece, start + batch >= len(document)))
                    n_lines += len(piece)
                    n_chars += sum(len(line) + 1 for line in piece)
                    if n_lines >= batch:
                        yield self._pack(pieces, builder, stats, n_chars, progress)
                        pieces, n_lines, n_chars = [], 0, 0
            yield self._pack(pieces, builder, stats, n_chars, progress)
        finally:
            stats["single_segment_examples"] += builder.single_segment_examples
            stats["short_target_examples"] += builder.short_targets
            stats["truncated_tokens"] += builder.truncated_tokens
            stats["units"] += 1
            stats["files"] += unit.start == 0

    def _pack(self, pieces: list, builder: packing.ExampleBuilder,
              stats: collections.Counter, n_chars: int, progress: Optional[Callable]) -> list:
        """Tokenizes pieces (lines, end_of_document) in one call, packs and serializes them."""
        spec = self.spec
        lines = [line for piece, _ in pieces for line in piece]
        units = _tokenize_units(lines, spec.max_seq_length - 2, self._tokenize, stats) \
            if lines else []
        pairs, line = [], 0
        for piece, end_of_document in pieces:
            sentences = [unit for j in range(line, line + len(piece)) for unit in units[j]]
            line += len(piece)
            pairs.extend(builder.add_lines(sentences, end_of_document))
        records, tokens = [], 0
        if pairs:
            input_ids, input_mask, segment_ids = packing.examples_to_arrays(
                pairs, spec.max_seq_length, cls_id=self._cls_id, sep_id=self._sep_id,
                pad_id=self._pad_id)
            records = serialize_examples(
                dict(zip(FEATURES, (input_ids, input_mask, segment_ids))))
            tokens = int(input_mask.sum())
            stats["examples"] += len(records)
            stats["tokens"] += tokens
        if progress:
            progress(n_chars, tokens)
        return records


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
            raise build_plan.write_error(where, e) from None
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
    build_plan.check_output_dir(output_dir)
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
    previous = build_plan.prepare_output_dir(output_dir, build)
    if previous is not None:
        return previous

    spec = build_plan.packing_spec(build, tokens, tokenize_batch_lines=tokenize_batch_lines,
                                   tokenizer_factory=tokenizer_factory)
    jobs = build_plan.plan_jobs(build, units, spec,
                                os.path.join(output_dir, build_plan.BUILD_DIR),
                                fail_after_examples=_fail_after_examples)
    results = {}
    todo = []
    for job in jobs:
        done = build_plan.finished_result(job, output_dir)
        if done is not None:
            results[job.worker_index] = done
        else:
            todo.append(job)
    workers = build["num_workers"]
    todo_bytes = sum(unit.size for job in todo for unit in job.units)
    build_dir = os.path.join(output_dir, build_plan.BUILD_DIR)
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
    build_plan.publish(output_dir, sidecar)
    return sidecar
