"""WordPiece vocabularies: learn, load, write and fingerprint them.

A vocabulary is a list of tokens; a token's id is its position. Learned vocabularies put the
special tokens first (`[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4). Existing BERT
vocabularies (`[PAD]`=0, `[unused*]`, `[UNK]`=100, `[CLS]`=101, `[SEP]`=102, `[MASK]`=103) work
too: every consumer finds the special ids by token (see `special_ids`), never by position.

Learning uses tensorflow-text's WordPiece learner (`wordpiece_tokenizer_learner_lib`, the
library behind `bert_vocab_from_dataset`); words come from the run-time normaliser
(`FastBertNormalizer`) and tensorflow-text's BERT `BasicTokenizer` split, which puts every
CJK character in its own word exactly as the tokenizer does at run time.

Example:

>>> tokens = learn_vocab(["the cat sat on the mat"] * 50, vocab_size=64)
>>> tokens[:5]
['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
>>> write_vocab(tokens, "/tmp/vocab.txt"); load_vocab("/tmp/vocab.txt") == tokens
True
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Iterable, Optional, Sequence

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Words handed to the learner per batch of the word-splitting tf.function. Large enough that
# the per-call overhead vanishes, small enough to keep memory flat on a multi-GB corpus.
_SPLIT_BATCH = 4096


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
    """Writes tokens one per line, atomically (temporary file, then rename).

    Args:
      tokens: the vocabulary, in id order; validated with `check_vocab` first.
      path: where to write; its directory is created if missing.
    """
    check_vocab(tokens, "to be written to " + path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".vocab.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(tokens) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def count_words(texts: Iterable[str], lower_case: bool = True,
                max_lines: Optional[int] = None) -> "collections.Counter[str]":
    """Splits texts into BERT words and counts them (the learner's input).

    Text is first normalised by `FastBertNormalizer`, the very normaliser `ElectraTokenizer`
    runs (with `lower_case`: lower-case, NFD, strip accents; else only control characters
    become spaces), then split by tensorflow-text's BERT `BasicTokenizer` (the splitter
    `bert_vocab_from_dataset` uses): whitespace and punctuation separate words and each CJK
    character is a word of its own, as the run-time pre-tokenisation does.

    Args:
      texts: lines of text.
      lower_case: lower-case and strip accents (uncased vocab), else keep case.
      max_lines: read at most this many non-empty lines (None: all).

    Returns:
      A `collections.Counter` mapping word -> count.
    """
    import collections

    import tensorflow as tf
    from tensorflow_text.python.ops import bert_tokenizer

    import tensorflow_text as tf_text

    normalizer = tf_text.FastBertNormalizer(lower_case_nfd_strip_accents=lower_case)
    basic = bert_tokenizer.BasicTokenizer(lower_case=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def split(lines):
        return basic.tokenize(normalizer.normalize(lines)).flat_values

    counts = collections.Counter()
    batch, n = [], 0
    for line in texts:
        if max_lines is not None and n >= max_lines:
            break
        if not line.strip():
            continue
        batch.append(line)
        n += 1
        if len(batch) == _SPLIT_BATCH:
            counts.update(split(tf.constant(batch)).numpy().tolist())
            batch = []
    if batch:
        counts.update(split(tf.constant(batch)).numpy().tolist())
    return collections.Counter({w.decode("utf-8"): c for w, c in counts.items()})


def learn_vocab(texts: Iterable[str], vocab_size: int, lower_case: bool = True, *,
                max_lines: Optional[int] = None, max_input_words: int = 200_000,
                max_unique_chars: int = 1000, pad_to_size: bool = True) -> list[str]:
    """Learns a WordPiece vocabulary with tensorflow-text's learner.

    The learner binary-searches a count threshold so that the vocabulary lands within 5% below
    `vocab_size`; with `pad_to_size` the rest is filled with `[unusedN]` tokens (as BERT's vocab
    reserves them) so the file has exactly `vocab_size` tokens and matches `model.vocab_size`.

    Args:
      texts: lines of text (an iterable of str).
      vocab_size: the number of tokens wanted, special tokens included.
      lower_case: uncased vocabulary (lower-case + strip accents), else cased.
      max_lines: learn from at most this many non-empty lines (None: all).
      max_input_words: keep only the most frequent distinct words as learner input; this
        bounds the learning time (the learner is pure Python, quadratic in word length).
      max_unique_chars: alphabet size; words with rarer characters are dropped from learning.
      pad_to_size: fill up to exactly `vocab_size` tokens with `[unusedN]`.

    Returns:
      The tokens in id order: `SPECIAL_TOKENS` at ids 0-4, then single characters, their
      `##` suffix forms, then learned word pieces by decreasing count.

    Raises:
      VocabError: vocab_size too small or no text given.
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    if vocab_size <= len(SPECIAL_TOKENS):
        raise VocabError(f"vocab_size={vocab_size} leaves no room after the "
                         f"{len(SPECIAL_TOKENS)} special tokens: use a larger vocab_size")
    counts = count_words(texts, lower_case=lower_case, max_lines=max_lines)
    if not counts:
        raise VocabError("no text to learn a vocabulary from: the inputs hold no non-empty line")
    def learn(upper_thresh):
        return learner.learn(
            counts,
            vocab_size=vocab_size,
            reserved_tokens=list(SPECIAL_TOKENS),
            upper_thresh=upper_thresh,
            # 1, not the library's 10, so that small corpora still come close to vocab_size.
            lower_thresh=1,
            max_input_tokens=max_input_words,
            max_unique_chars=max_unique_chars,
        )

    # The learner binary-searches a count threshold from the most frequent word's count down;
    # the high thresholds are the slowest steps (few tokens -> expensive splitting). A learned
    # vocab holds every word whose count passes the threshold (plus pieces and characters), so
    # the count of the (vocab_size // 4)-th most frequent word is a safe upper bound: measured
    # ~3x fewer steps on the embedded corpus. If the bound proves too low, search in full.
    ranked = sorted(counts.values(), reverse=True)
    rank = vocab_size // 4
    tokens = learn(ranked[rank] if rank < len(ranked) else None)
    if len(tokens) > vocab_size:
        tokens = learn(None)
    # Whitespace-like characters that survive word splitting (e.g. U+001C, which Python's
    # str.split treats as a line break) cannot live in a one-token-per-line file.
    tokens = [t for t in tokens if t and t == "".join(t.split())]
    if len(tokens) > vocab_size:
        # The alphabet alone (every character and its ## form) can exceed the target.
        raise VocabError(
            f"vocab_size={vocab_size} is smaller than the alphabet of the text ({len(tokens)} "
            f"tokens needed): raise vocab_size or lower max_unique_chars")
    if pad_to_size:
        present = set(tokens)
        i = 0
        while len(tokens) < vocab_size:
            name = f"[unused{i}]"
            if name not in present:
                tokens.append(name)
            i += 1
    check_vocab(tokens, "learned")
    return tokens


def default_cache_dir() -> str:
    """Where the embedded corpus is cached: $ELECTRA_TF_CACHE or ~/.cache/electra_tf."""
    return os.environ.get("ELECTRA_TF_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "electra_tf"))


def build_vocab_file(output: str, vocab_size: int, inputs=None, lower_case: bool = True,
                     blank_lines_separate_docs: bool = True, max_lines: Optional[int] = None,
                     max_input_words: int = 200_000, cache_dir: Optional[str] = None) -> dict:
    """Learns a vocabulary from text files (or the embedded corpus) and writes vocab.txt.

    What `tools/build_vocab.py` runs.

    Args:
      output: path of the vocab.txt to write (atomically).
      vocab_size: tokens wanted, special tokens included.
      inputs: glob, comma-separated globs or list of them; None uses the embedded corpus
        (Python standard-library docstrings, see `corpus.embedded_corpus_files`).
      lower_case: uncased vocabulary (lower-case + strip accents).
      blank_lines_separate_docs: how documents are delimited (only affects the counts).
      max_lines: learn from at most this many lines (a sample bound for huge corpora).
      max_input_words: most frequent distinct words given to the learner (time bound).
      cache_dir: embedded corpus cache (default `default_cache_dir()`).

    Returns:
      dict: `output`, `tokens` (written), `learned` (excluding [unusedN] padding),
      `seconds`, `files`, `corpus` ("embedded" or the input), `lines_used` (lines learned
      from) and the reading counts of `corpus.iter_documents`.
    """
    import collections
    import time

    from electra_tf.text import corpus

    start = time.time()
    if inputs is None or inputs == "" or inputs == []:
        files = corpus.embedded_corpus_files(cache_dir or default_cache_dir())
        source = "embedded"
    else:
        files = corpus.expand_inputs(inputs)
        source = inputs if isinstance(inputs, str) else ",".join(inputs)
    stats = collections.Counter()

    def lines():
        for path in files:
            for document in corpus.iter_documents(path, blank_lines_separate_docs, stats):
                for line in document:
                    if max_lines is not None and stats["lines_used"] >= max_lines:
                        return
                    stats["lines_used"] += 1
                    yield line
                    if max_lines is not None and stats["lines_used"] >= max_lines:
                        return  # The sample bound: stop reading, not just stop learning.

    tokens = learn_vocab(lines(), vocab_size, lower_case=lower_case,
                         max_input_words=max_input_words)
    write_vocab(tokens, output)
    summary = {
        "output": output,
        "tokens": len(tokens),
        "learned": sum(1 for t in tokens if not t.startswith("[unused")),
        "seconds": round(time.time() - start, 2),
        "files": len(files),
        "corpus": source,
        "lower_case": lower_case,
        "vocab_hash": vocab_hash(tokens),
    }
    summary.update(stats)
    return summary
