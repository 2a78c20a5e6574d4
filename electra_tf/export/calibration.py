"""Inputs for quantization (representative data) and for verification (held-out, corrupted).

Drawn from training data: the pretraining TFRecords when given (their `dataset.json` must
name the same vocabulary), else text (the embedded standard-library corpus, or sentences
made from the vocabulary's own whole words when that corpus is unavailable). The two sets are
disjoint: even-numbered examples calibrate, odd-numbered ones verify.

Held-out inputs are also *corrupted* as ELECTRA's generator would: 15% of the real tokens
(not [CLS]/[SEP]/[PAD]) replaced by random vocabulary tokens, giving true replaced-token
labels for the discriminator AUC.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from electra_tf.export.source import ExportError
from electra_tf.files import default_cache_dir


@dataclasses.dataclass
class CalibrationData:
    """Representative and held-out inputs at one sequence length.

    Args:
      calibration: dict of int32 [N, S] id features (representative dataset).
      calibration_texts: N raw strings (representative dataset of raw-string models).
      heldout: dict of int32 [M, S] id features, corrupted (see `corrupt`).
      heldout_labels: int32 [M, S], 1 where `corrupt` replaced the token.
      heldout_texts: M raw strings (clean) for raw-string models.
      source: where the examples came from (recorded in the verification report).
    """

    calibration: dict
    calibration_texts: list
    heldout: dict
    heldout_labels: np.ndarray
    heldout_texts: list
    source: str


def ids_to_text(tokenizer, ids, mask) -> str:
    """Word pieces back to text ('##' pieces glued on; specials dropped)."""
    words = []
    for token in tokenizer.convert_ids_to_tokens(np.asarray(ids)[np.asarray(mask) > 0]):
        if token in ("[CLS]", "[SEP]", "[PAD]"):
            continue
        if token.startswith("##") and words:
            words[-1] += token[2:]
        else:
            words.append(token)
    return " ".join(words)


def corrupt(features: dict, tokenizer, *, rate: float = 0.15, seed: int = 0):
    """Replaces `rate` of the real tokens with uniformly drawn non-special vocabulary ids.

    Args:
      features: dict of int32 [B, S] `token_ids`, `segment_ids`, `padding_mask`.
      tokenizer: the `ElectraTokenizer` (for the special ids and vocab size).
      rate: fraction of replaceable tokens to replace.
      seed: NumPy seed.

    Returns:
      (corrupted features, labels int32 [B, S]: 1 where the id changed).
    """
    rng = np.random.default_rng(seed)
    ids = np.asarray(features["token_ids"]).copy()
    specials = {tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
                tokenizer.mask_id}
    candidates = np.asarray([i for i in range(tokenizer.vocab_size) if i not in specials])
    replaceable = (np.asarray(features["padding_mask"]) > 0) & ~np.isin(ids, list(specials))
    chosen = replaceable & (rng.random(ids.shape) < rate)
    new = candidates[rng.integers(0, len(candidates), size=ids.shape)]
    out = np.where(chosen, new, ids).astype(np.int32)
    labels = (out != ids).astype(np.int32)
    corrupted = dict(features)
    corrupted["token_ids"] = out
    return corrupted, labels


def _texts_from_vocab(tokenizer, count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    words = [t for t in tokenizer.vocab if not t.startswith("##") and not t.startswith("[")
             and any(c.isalpha() for c in t)] or ["a"]
    return [" ".join(rng.choice(words, size=int(rng.integers(4, 40)))) for _ in range(count)]


def _texts_from_corpus(cache_dir: Optional[str], count: int) -> list:
    """Up to `count` lines of the embedded corpus, spread over all of it.

    Args:
      cache_dir: where the corpus is cached; None: `electra_tf.files.default_cache_dir()`,
        looked up now so that $ELECTRA_TF_CACHE set after import is honoured.
      count: lines wanted.
    """
    from electra_tf.text import documents  # pylint: disable=import-outside-toplevel
    from electra_tf.text import embedded_corpus  # pylint: disable=import-outside-toplevel

    lines = []
    for path in embedded_corpus.embedded_corpus_files(cache_dir or default_cache_dir()):
        for document in documents.iter_documents(path):
            lines += [line for line in document if len(line.split()) >= 4]
    if not lines:
        return []
    # Spread the picks over the whole corpus (it is ordered by module name).
    step = max(1, len(lines) // count)
    return lines[::step][:count]


def _features_from_tfrecords(pattern: str, tokenizer, max_seq_length: int, count: int):
    from electra_tf.data import pretraining_reader as reader  # pylint: disable=import-outside-toplevel

    try:
        sidecar = reader.read_sidecar(pattern)
        reader.check_sidecar(sidecar, vocab_hash=tokenizer.vocab_hash, max_seq_length=None,
                             where="the exported model's vocab.txt")
        data_length = int(sidecar["max_seq_length"])
        dataset = reader.pretraining_dataset(pattern, 1, data_length, shuffle=False,
                                             repeat=False)
        rows = [{k: v.numpy()[0] for k, v in batch.items()} for batch in dataset.take(count)]
    except (reader.DataError, ValueError) as e:
        raise ExportError(f"--representative_data={pattern}: {e}") from None
    if not rows:
        raise ExportError(f"--representative_data={pattern} holds no examples; pass shards "
                          "written by tools/build_pretraining_data.py")
    features = {}
    for key in ("token_ids", "segment_ids", "padding_mask"):
        column = np.stack([r[key] for r in rows]).astype(np.int32)
        if column.shape[1] >= max_seq_length:
            column = column[:, :max_seq_length]
        else:
            column = np.pad(column, [[0, 0], [0, max_seq_length - column.shape[1]]])
        features[key] = column
    return features


def load_calibration_data(tokenizer, max_seq_length: int, *,
                          representative_data: Optional[str] = None,
                          texts: Optional[Sequence[str]] = None,
                          cache_dir: Optional[str] = None, num_examples: int = 64,
                          seed: int = 0) -> CalibrationData:
    """Representative and held-out examples (num_examples of each).

    Args:
      tokenizer: the model's `ElectraTokenizer`.
      max_seq_length: the exported sequence length.
      representative_data: pretraining TFRecords (directory or glob with `dataset.json`).
      texts: raw training sentences to use instead (Python callers, tests).
      cache_dir: where the embedded corpus is cached (default
        `electra_tf.files.default_cache_dir()`).
      num_examples: examples in each of the two sets.
      seed: seed of the corruption and of vocabulary sentences.
    """
    total = 2 * num_examples
    if representative_data:
        features = _features_from_tfrecords(representative_data, tokenizer, max_seq_length,
                                            total)
        rows = features["token_ids"].shape[0]
        all_texts = [ids_to_text(tokenizer, features["token_ids"][i],
                                 features["padding_mask"][i]) for i in range(rows)]
        source = f"tfrecords:{representative_data}"
    else:
        if texts is not None:
            all_texts, source = list(texts)[:total], "texts"
        else:
            try:
                all_texts = _texts_from_corpus(cache_dir, total)
                source = "embedded stdlib corpus"
            except Exception:  # pylint: disable=broad-except
                all_texts = []
            if len(all_texts) < 4:
                all_texts, source = _texts_from_vocab(tokenizer, total, seed), "vocab sentences"
        features = {k: v.numpy() for k, v in
                    tokenizer.encode(all_texts, max_seq_length=max_seq_length).items()}
    if len(all_texts) < 2:
        raise ExportError(f"need at least 2 representative examples, got {len(all_texts)} "
                          f"from {source}; pass more data")
    cal = {k: v[0::2] for k, v in features.items()}
    held = {k: v[1::2] for k, v in features.items()}
    held_corrupted, labels = corrupt(held, tokenizer, seed=seed)
    return CalibrationData(calibration=cal, calibration_texts=all_texts[0::2],
                           heldout=held_corrupted, heldout_labels=labels,
                           heldout_texts=all_texts[1::2], source=source)
