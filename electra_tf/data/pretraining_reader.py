r"""tf.data reader of the pretraining TFRecords, and the checks of their `dataset.json` sidecar.

The shards hold `input_ids`, `input_mask` and `segment_ids` (int64, fixed length, the
reference schema; docs/architecture.md, "Pretraining data"); the reader yields keras-hub names (`token_ids`, `padding_mask`,
`segment_ids`, int32) in batches of static shape. Order follows the reference
`pretrain_data.get_input_fn`: files -> repeat -> shuffle files -> parallel interleave ->
shuffle examples -> batch with drop_remainder.

Example:

>>> import tempfile
>>> from electra_tf.data.pretraining_builder import build_pretraining_data
>>> from electra_tf.text.vocab import SPECIAL_TOKENS, vocab_hash, write_vocab
>>> root = tempfile.mkdtemp()
>>> tokens = list(SPECIAL_TOKENS) + ["北", "京", "is", "a", "city"]
>>> write_vocab(tokens, f"{root}/vocab.txt")
>>> with open(f"{root}/corpus.txt", "w", encoding="utf-8") as f:
...     _ = f.write("北京 is a city\n" * 8)
>>> _ = build_pretraining_data(f"{root}/corpus.txt", f"{root}/vocab.txt", f"{root}/data",
...                            max_seq_length=16)
>>> check_sidecar(read_sidecar(f"{root}/data"), vocab_hash=vocab_hash(tokens),
...               max_seq_length=16, where="this run")
>>> batch = next(iter(pretraining_dataset(f"{root}/data", 2, 16)))
>>> batch["token_ids"].shape, batch["token_ids"].dtype
(TensorShape([2, 16]), tf.int32)
"""

from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

SIDECAR_NAME = "dataset.json"
SHARD_PREFIX = "pretrain-"
FEATURES = ("input_ids", "input_mask", "segment_ids")
# Files read at once by the interleave (the reference uses min(4 CPU threads, #files)).
_CYCLE_LENGTH = 8


class DataError(ValueError):
    """Pretraining data is missing or unusable (one-line message naming the path)."""


class DataMismatchError(DataError):
    """Pretraining data was built for another vocabulary, sequence length or configuration."""


def _sidecar_path(file_pattern: str) -> str:
    """`dataset.json` next to the shards: in the directory itself, or beside the pattern."""
    if tf.io.gfile.isdir(file_pattern):
        return os.path.join(file_pattern, SIDECAR_NAME)
    return os.path.join(os.path.dirname(file_pattern) or ".", SIDECAR_NAME)


def read_sidecar(file_pattern: str) -> dict:
    """Reads the `dataset.json` written by tools/build_pretraining_data.py next to the shards.

    Args:
        file_pattern: the shards' directory, or a glob of shards in one directory
            (e.g. `DIR/pretrain-*.tfrecord`).

    Returns:
        The sidecar as a dict (`vocab_hash`, `vocab_size`, `lower_case`, `max_seq_length`,
        `examples`, `tokens`, `num_shards`, `compression`, `shards`, ...), with the key
        `path` set to the sidecar's path.

    Raises:
        DataError: no sidecar (an unfinished build, or data not made by this project), or
            a sidecar that is not valid JSON.
    """
    path = _sidecar_path(file_pattern)
    if not tf.io.gfile.exists(path):
        raise DataError(
            f"no {SIDECAR_NAME} next to {file_pattern}: the build there is unfinished or was "
            f"not made by tools/build_pretraining_data.py; (re)run that tool on it")
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            sidecar = json.loads(f.read())
    except (ValueError, tf.errors.OpError) as e:
        raise DataError(f"{path} is not a readable JSON sidecar ({e}); rebuild the data "
                        f"with tools/build_pretraining_data.py") from None
    if not isinstance(sidecar, dict) or "max_seq_length" not in sidecar:
        raise DataError(f"{path} lacks max_seq_length: not a pretraining data sidecar; rebuild "
                        f"the data with tools/build_pretraining_data.py")
    sidecar["path"] = path
    return sidecar


def check_sidecar(sidecar: dict, *, vocab_hash: Optional[str], max_seq_length: Optional[int],
                  where: str) -> None:
    """Refuses data built with another vocabulary or sequence length than the model's.

    Args:
        sidecar: as returned by `read_sidecar`.
        vocab_hash: the model's `vocab_hash(tokens)`; None skips this check.
        max_seq_length: the model's sequence length; None skips this check.
        where: what holds the expected values (a config file, a model dir), for the message.

    Raises:
        DataMismatchError: naming the key, the data's value and the expected value.
    """
    source = sidecar.get("path", "the data's sidecar")
    for key, expected, fix in (
            ("vocab_hash", vocab_hash, "rebuild the data with the model's vocab.txt or train "
                                       "with the vocabulary the data was built with"),
            ("max_seq_length", max_seq_length, "rebuild the data with that --max_seq_length "
                                               "or set data.max_seq_length to match")):
        if expected is None:
            continue
        found = sidecar.get(key)
        if found != expected:
            raise DataMismatchError(
                f"{source} has {key}={found!r} but {where} has {key}={expected!r}; {fix}")


def _shard_files(file_pattern: str, sidecar: dict) -> list[str]:
    if tf.io.gfile.isdir(file_pattern):
        files = [os.path.join(file_pattern, name) for name in sidecar.get("shards", [])]
        missing = [f for f in files if not tf.io.gfile.exists(f)]
        if missing:
            raise DataError(f"{missing[0]} is listed in {sidecar.get('path')} but missing "
                            f"({len(missing)} of {len(files)} shards); rerun "
                            f"tools/build_pretraining_data.py with the same flags to rebuild")
    else:
        files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise DataError(f"{file_pattern} matches no TFRecord shard; pass the directory "
                        f"written by tools/build_pretraining_data.py or a glob of its shards")
    return files


def pretraining_dataset(file_pattern: str, batch_size: int, max_seq_length: int, *,
                        input_context: Optional[tf.distribute.InputContext] = None,
                        shuffle: bool = True, repeat: bool = True, seed: int = 0,
                        shuffle_buffer_size: int = 1000) -> tf.data.Dataset:
    """Batches of pretraining examples for one input pipeline.

    Args:
        file_pattern: the shards' directory or a glob of shards next to a `dataset.json`.
        batch_size: examples per batch of this pipeline (per replica when used with
            `strategy.distribute_datasets_from_function`).
        max_seq_length: must equal the sidecar's (DataMismatchError otherwise).
        input_context: `tf.distribute.InputContext`; the pipeline reads its share: whole
            files when there are at least as many files as pipelines, else every n-th example.
        shuffle: shuffle files and examples (training); False keeps file order (evaluation).
        repeat: repeat forever (training); False reads each example once.
        seed: seed of both shuffles; the same seed gives the same order.
        shuffle_buffer_size: examples in the shuffle buffer.

    Returns:
        A `tf.data.Dataset` of dicts `token_ids`, `segment_ids`, `padding_mask`, each int32
        [batch_size, max_seq_length] (remainder dropped).

    Raises:
        DataError: no sidecar or no shard; DataMismatchError: other max_seq_length.
    """
    sidecar = read_sidecar(file_pattern)
    check_sidecar(sidecar, vocab_hash=None, max_seq_length=max_seq_length,
                  where="pretraining_dataset(max_seq_length=...)")
    files = _shard_files(file_pattern, sidecar)
    compression = sidecar.get("compression", "")

    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    shard_files = num_pipelines > 1 and len(files) >= num_pipelines

    d = tf.data.Dataset.from_tensor_slices(tf.constant(files))
    if shard_files:
        d = d.shard(num_pipelines, pipeline_id)
    n_files = -(-len(files) // num_pipelines) if shard_files else len(files)
    if repeat:
        d = d.repeat()
    if shuffle:
        # Every pipeline uses the same seed, so with example-level sharding all of them
        # see one file order and `shard` below splits it into disjoint parts.
        d = d.shuffle(n_files, seed=seed, reshuffle_each_iteration=True)
    d = d.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type=compression),
        cycle_length=min(_CYCLE_LENGTH, n_files), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if num_pipelines > 1 and not shard_files:
        d = d.shard(num_pipelines, pipeline_id)
    if shuffle:
        d = d.shuffle(shuffle_buffer_size, seed=seed + 1000003 * pipeline_id,
                      reshuffle_each_iteration=True)
    d = d.batch(batch_size, drop_remainder=True)

    spec = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64) for name in FEATURES}

    def decode(serialized):
        # Parsing whole batches is several times faster than one example at a time.
        features = tf.io.parse_example(serialized, spec)
        return {
            "token_ids": tf.cast(features["input_ids"], tf.int32),
            "segment_ids": tf.cast(features["segment_ids"], tf.int32),
            "padding_mask": tf.cast(features["input_mask"], tf.int32),
        }

    d = d.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return d.prefetch(tf.data.AUTOTUNE)
