"""WordPiece vocabularies: load, check, write and fingerprint them (learning one:
`vocab_learning.py`).

A vocabulary is a list of tokens; a token's id is its position. Learned vocabularies put the
special tokens first (`[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4). Existing BERT
vocabularies (`[PAD]`=0, `[unused*]`, `[UNK]`=100, `[CLS]`=101, `[SEP]`=102, `[MASK]`=103) work
too: every consumer finds the special ids by token (see `special_ids`), never by position.

Example:

>>> import tempfile
>>> tokens = list(SPECIAL_TOKENS) + ["the", "cat", "猫", "##s"]
>>> path = os.path.join(tempfile.mkdtemp(), "vocab.txt")
>>> write_vocab(tokens, path); load_vocab(path) == tokens
True
>>> special_ids(tokens)["mask_id"], len(vocab_hash(tokens))
(4, 64)
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

from electra_tf.files import atomic_write_text

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")



class VocabError(ValueError):
    """A vocabulary file or token list is unusable (one-line message naming the source)."""


def vocab_hash(tokens: Sequence[str]) -> str:
    """Fingerprint of a vocabulary, recorded in dataset sidecars and model dirs.

    Args:
      tokens: the vocabulary, in id order.

    Returns:
      The sha256 hex digest of the tokens joined by newlines.
    """
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def check_vocab(tokens: Sequence[str], where: str) -> None:
    """Raises `VocabError` unless `tokens` holds every special token exactly once.

    Args:
      tokens: the vocabulary, in id order.
      where: what to name in the message (a file path, or "token list").
    """
    if not tokens:
        raise VocabError(f"vocabulary {where} is empty: give a WordPiece vocab.txt with one "
                         f"token per line (tools/build_vocab.py learns one)")
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise VocabError(
            f"vocabulary {where} lacks the special token(s) {', '.join(missing)}: every vocab "
            f"needs {', '.join(SPECIAL_TOKENS)} (learn one with tools/build_vocab.py or add them)")
    seen = set()
    for i, token in enumerate(tokens):
        if token in seen:
            raise VocabError(f"vocabulary {where} lists token {token!r} twice (again at line "
                             f"{i + 1}): ids must be unique, remove the duplicate")
        if not token or token != token.strip(" \t\r") or "\n" in token:
            raise VocabError(f"vocabulary {where} has an empty or whitespace-padded token at "
                             f"line {i + 1}: one token per line, no surrounding spaces")
        seen.add(token)


def special_ids(tokens: Sequence[str]) -> dict:
    """Ids of the special tokens, found by token so that BERT-style vocabs work.

    Args:
      tokens: a vocabulary that passed `check_vocab`.

    Returns:
      A dict `{"pad_id", "unk_id", "cls_id", "sep_id", "mask_id"}` of ints.
    """
    index = {t: i for i, t in enumerate(tokens)}
    names = ("pad_id", "unk_id", "cls_id", "sep_id", "mask_id")
    return {name: index[tok] for name, tok in zip(names, SPECIAL_TOKENS)}


def load_vocab(path: str) -> list[str]:
    """Reads a vocab.txt (one token per line, id = line number) and validates it.

    Args:
      path: the file (local path or any `tf.io.gfile` URL).

    Returns:
      The tokens in id order.

    Raises:
      VocabError: the file is missing, unreadable, not UTF-8 or lacks a special token.
    """
    import tensorflow as tf  # Deferred: plain local files should not need TensorFlow.

    try:
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
        else:
            with tf.io.gfile.GFile(path, "rb") as f:
                data = f.read()
    except (OSError, tf.errors.OpError) as e:
        raise VocabError(f"cannot read vocabulary {path}: {getattr(e, 'message', e)}; "
                         f"give the path of an existing vocab.txt") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise VocabError(f"vocabulary {path} is not UTF-8 (byte {e.start}): re-save it "
                         f"as UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # The final newline does not start another token.
    tokens = [line.rstrip("\r") for line in lines]
    check_vocab(tokens, path)
    return tokens


def write_vocab(tokens: Sequence[str], path: str) -> None:
    """Writes tokens one per line, UTF-8, atomically (`electra_tf.files.atomic_write`).

    Args:
      tokens: the vocabulary, in id order; validated with `check_vocab` first.
      path: where to write; its directory is created if missing.

    Raises:
      VocabError: the tokens are not a valid vocabulary, or the file cannot be written (a
        full disk, a directory in the way, no permission); nothing is left at `path` then
        (an older file there is kept as it was).
    """
    check_vocab(tokens, "to be written to " + path)
    try:
        atomic_write_text(path, "\n".join(tokens) + "\n")
    except OSError as e:
        raise VocabError(f"cannot write vocabulary {path}: {e.strerror or e}; nothing was "
                         f"written: free space or fix the path, then run again") from None
