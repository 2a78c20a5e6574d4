"""`ElectraTokenizer`: the one in-graph WordPiece tokenizer of the project.

A thin wrapper over tensorflow-text's `FastBertTokenizer`, used by the pretraining data
builder, the fine-tuning readers and the exported SavedModel/TFLite models, so that the same
vocabulary and normalisation run everywhere. `encode` lays out `[CLS] A [SEP] (B [SEP])` with
dense ops only (the ragged output is densified with `to_tensor(shape=...)` first), so the whole
function converts to TFLite with `allow_custom_ops=True` and runs in ai-edge-litert with
`tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`.

Chinese: `FastBertTokenizer`'s pre-tokenisation already splits every CJK ideograph into its own
word, as BERT's `BasicTokenizer._tokenize_chinese_chars` does (checked in
tests/test_tokenizer.py), so no extra op is needed and TFLite conversion is unaffected.

Example:

>>> tok = ElectraTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"])
>>> tok.tokenize(tf.constant(["Hello world!"])).to_list()
[[5, 6, 1]]
>>> tok.encode(["hello"], max_seq_length=5)["token_ids"].numpy().tolist()
[[2, 5, 3, 0, 0]]
"""

from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from electra_tf.text import vocab as vocab_lib


class _Tokens:
    """Holds the vocabulary out of `tf.Module`'s attribute tracking.

    A plain list on a `tf.Module` becomes a tracked `ListWrapper` walked by every variable
    query and by SavedModel export; 30k strings there are pure overhead.
    """

    def __init__(self, tokens):
        self.tokens = list(tokens)


class ElectraTokenizer(tf.Module):
    """WordPiece tokenizer (FastBertTokenizer) with BERT-style pair encoding.

    Args:
      vocab: path of a vocab.txt, or the token list itself. Must contain `[PAD]`, `[UNK]`,
        `[CLS]`, `[SEP]` and `[MASK]` anywhere; their ids are looked up by token.
      lower_case: lower-case, NFD-normalise and strip accents (`lower_case_nfd_strip_accents`,
        uncased BERT/ELECTRA); False keeps case and accents (cased vocabularies).
      max_bytes_per_word: words longer than this (in UTF-8 bytes) become `[UNK]`, as in BERT.

    Attributes:
      vocab: the tokens in id order (list[str]).
      vocab_size, vocab_hash, lower_case, pad_id, unk_id, cls_id, sep_id, mask_id.

    Example:

    >>> tok = ElectraTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a",
    ...                         "question", "passage", "北", "京"])
    >>> batch = tok.encode(["a question"], ["北京 passage"], max_seq_length=8)
    >>> batch["token_ids"].numpy().tolist()
    [[2, 5, 6, 3, 8, 9, 7, 3]]
    >>> batch["segment_ids"].numpy().tolist()
    [[0, 0, 0, 0, 1, 1, 1, 1]]
    """

    def __init__(self, vocab: Union[str, os.PathLike, Sequence[str]], lower_case: bool = True,
                 max_bytes_per_word: int = 100):
        super().__init__(name="electra_tokenizer")
        if isinstance(vocab, (str, os.PathLike)):
            tokens = vocab_lib.load_vocab(os.fspath(vocab))
        else:
            tokens = [str(t) for t in vocab]
            vocab_lib.check_vocab(tokens, "token list")
        self._tokens = _Tokens(tokens)
        self.vocab_size = len(tokens)
        self.vocab_hash = vocab_lib.vocab_hash(tokens)
        self.lower_case = bool(lower_case)
        ids = vocab_lib.special_ids(tokens)
        self.pad_id = ids["pad_id"]
        self.unk_id = ids["unk_id"]
        self.cls_id = ids["cls_id"]
        self.sep_id = ids["sep_id"]
        self.mask_id = ids["mask_id"]
        self._fast_bert = tf_text.FastBertTokenizer(
            vocab=tokens,
            token_out_type=tf.int32,
            unknown_token="[UNK]",
            max_bytes_per_word=max_bytes_per_word,
            lower_case_nfd_strip_accents=self.lower_case,
        )

    @property
    def vocab(self) -> list[str]:
        return self._tokens.tokens

    def tokenize(self, strings) -> tf.RaggedTensor:
        """Word-piece ids of each string.

        Args:
          strings: rank-1 string tensor (or list of str) [batch].

        Returns:
          int32 `tf.RaggedTensor` [batch, (wordpieces)].
        """
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        return self._fast_bert.tokenize(strings)

    def encode(self, text, text_pair=None, max_seq_length: int = 128) -> dict:
        """Tokenizes and lays out `[CLS] A [SEP] (B [SEP])`, padded to `max_seq_length`.

        Truncation follows BERT's `_truncate_seq_pair`: tokens are removed from the end of the
        longer segment first (from B on a tie) until everything fits. Written with dense ops
        after `.to_tensor(shape=...)` so it converts to TFLite (no ragged slicing ops).

        Args:
          text: string tensor (or list of str) [batch] for segment A; a scalar is one row.
          text_pair: optional string tensor [batch] for segment B.
          max_seq_length: output length, including [CLS]/[SEP]; at least 2 (3 for pairs).

        Returns:
          dict of int32 [batch, max_seq_length] tensors: `token_ids` (padding = pad id),
          `segment_ids` (0 for [CLS] A [SEP], 1 for B [SEP], 0 on padding), `padding_mask`
          (1 on real tokens, 0 on padding).
        """
        length = int(max_seq_length)
        if length < (3 if text_pair is not None else 2):
            raise ValueError(f"max_seq_length={length} cannot hold [CLS] and [SEP]: use >= 3")
        text = tf.reshape(tf.convert_to_tensor(text, dtype=tf.string), [-1])
        ids_a, len_a = self._dense(text, length)
        if text_pair is None:
            budget = length - 2
            len_a = tf.minimum(len_a, budget)
            ids_b = tf.zeros_like(ids_a)
            len_b = tf.zeros_like(len_a)
            n_seps = 1
        else:
            text_pair = tf.reshape(tf.convert_to_tensor(text_pair, dtype=tf.string), [-1])
            ids_b, len_b = self._dense(text_pair, length)
            budget = length - 3
            # Closed form of BERT's pop-from-the-longer loop: A keeps ceil(budget / 2) when
            # both are long, all of itself when short, or what B leaves when B is short.
            keep_a = tf.minimum(len_a, tf.maximum((budget + 1) // 2, budget - len_b))
            len_b = tf.minimum(len_b, budget - keep_a)
            len_a = keep_a
            n_seps = 2

        # Position p of the output: 0 -> [CLS]; 1..len_a -> A[p-1]; len_a+1 -> [SEP];
        # then B[p-len_a-2] and a final [SEP] for pairs.
        pos = tf.range(length, dtype=tf.int32)[tf.newaxis, :]  # [1, L]
        la = len_a[:, tf.newaxis]
        lb = len_b[:, tf.newaxis]
        idx_a = tf.clip_by_value(pos - 1, 0, length - 1) + tf.zeros_like(la)
        idx_b = tf.clip_by_value(pos - la - 2, 0, length - 1)
        tok_a = tf.gather(ids_a, idx_a, batch_dims=1)
        tok_b = tf.gather(ids_b, idx_b, batch_dims=1)
        in_a = (pos >= 1) & (pos <= la)
        in_b = (pos >= la + 2) & (pos <= la + 1 + lb)
        is_sep = tf.equal(pos, la + 1)
        total = la + lb + 1 + n_seps
        if text_pair is not None:
            # B's [SEP]; an empty B still gets it (BERT's `[CLS] A [SEP] [SEP]`).
            is_sep |= tf.equal(pos, la + lb + 2)
        padding_mask = pos < total
        token_ids = tf.where(in_a, tok_a, tf.where(in_b, tok_b, self.pad_id))
        token_ids = tf.where(is_sep, self.sep_id, token_ids)
        token_ids = tf.where(tf.equal(pos, 0), self.cls_id, token_ids)
        segment_ids = tf.cast(in_b | (is_sep & (pos > la + 1)), tf.int32)
        return {
            "token_ids": tf.cast(token_ids, tf.int32),
            "segment_ids": segment_ids,
            "padding_mask": tf.cast(padding_mask, tf.int32),
        }

    def _dense(self, strings, length):
        """Word pieces padded/cropped to [batch, length] plus each row's full length."""
        ragged = self._fast_bert.tokenize(strings)
        # row_lengths from row_splits is plain subtraction: converts to TFLite builtins.
        splits = tf.cast(ragged.row_splits, tf.int32)
        lengths = splits[1:] - splits[:-1]
        dense = ragged.to_tensor(default_value=self.pad_id, shape=[None, length])
        return tf.cast(dense, tf.int32), tf.minimum(lengths, length)

    def convert_ids_to_tokens(self, ids) -> list[str]:
        """Tokens of a 1-D sequence of ids (list, NumPy array or tensor).

        Args:
          ids: ints in [0, vocab_size).

        Returns:
          list[str] of the same length.
        """
        if isinstance(ids, (tf.Tensor, tf.Variable)):
            ids = ids.numpy()
        flat = np.asarray(ids).reshape(-1).tolist()
        tokens = self._tokens.tokens
        out = []
        for i in flat:
            if not 0 <= int(i) < len(tokens):
                raise ValueError(f"token id {i} is outside the vocabulary [0, {len(tokens)})")
            out.append(tokens[int(i)])
        return out
