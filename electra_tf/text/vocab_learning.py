"""Learning a WordPiece vocabulary from text with tensorflow-text's learner.

Learning uses tensorflow-text's WordPiece learner (`wordpiece_tokenizer_learner_lib`, the
library behind `bert_vocab_from_dataset`); words come from the run-time normaliser
(`FastBertNormalizer`) and tensorflow-text's BERT `BasicTokenizer` split, which puts every
CJK character in its own word exactly as the tokenizer does at run time. Learned
vocabularies put the special tokens first (`[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3,
`[MASK]`=4) and have exactly the size asked for.

Example:

>>> tokens = learn_vocab(["the cat sat on the mat"] * 50 + ["猫坐在垫子上"] * 50,
...                      vocab_size=64)
>>> tokens[:5], len(tokens), "猫" in tokens
(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'], 64, True)
"""

from __future__ import annotations

import collections
from typing import Iterable, Optional

from electra_tf.files import default_cache_dir
from electra_tf.text.vocab import (SPECIAL_TOKENS, VocabError, check_vocab, vocab_hash,
                                   write_vocab)

# Words handed to the learner per batch of the word-splitting tf.function. Large enough that
# the per-call overhead vanishes, small enough to keep memory flat on a multi-GB corpus.
_SPLIT_BATCH = 4096


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


# Far above any published vocabulary (multilingual ones are ~250k): a larger --vocab_size
# is a typo, and padding to it would write gigabytes of [unusedN] lines.
MAX_VOCAB_SIZE = 1_000_000


def _check_vocab_size(vocab_size: int) -> None:
    if vocab_size <= len(SPECIAL_TOKENS):
        raise VocabError(f"vocab_size={vocab_size} leaves no room after the "
                         f"{len(SPECIAL_TOKENS)} special tokens: use a larger vocab_size")
    if vocab_size > MAX_VOCAB_SIZE:
        raise VocabError(f"vocab_size={vocab_size} is above {MAX_VOCAB_SIZE:,}; ELECTRA's "
                         "vocabularies have 30,522 (English) or 21,128 (Chinese) tokens")


def learn_vocab(texts: Iterable[str], vocab_size: int, lower_case: bool = True, *,
                max_lines: Optional[int] = None, max_input_words: int = 200_000,
                max_unique_chars: int = 1000, pad_to_size: bool = True) -> list[str]:
    """Learns a WordPiece vocabulary of exactly `vocab_size` tokens with tensorflow-text's learner.

    Each candidate vocabulary comes from tensorflow-text's `learn_with_thresh` (the WordPiece
    learner behind `bert_vocab_from_dataset`) for one count threshold; `_search_threshold`
    picks the threshold (see there for why the library's own `learn` search is not used). The
    result is the vocabulary of the smallest threshold that fits in `vocab_size`, topped up to
    exactly `vocab_size` with extra pieces of the next lower threshold's vocabulary (shortest
    first). Only when even threshold 1 (every piece the learner can find) stays below
    `vocab_size` -- a corpus too small for the size asked -- is the rest filled with
    `[unusedN]` tokens (as BERT's vocab reserves them), with `pad_to_size`.

    Args:
      texts: lines of text (an iterable of str).
      vocab_size: the number of tokens wanted, special tokens included.
      lower_case: uncased vocabulary (lower-case + strip accents), else cased.
      max_lines: learn from at most this many non-empty lines (None: all).
      max_input_words: keep only the most frequent distinct words as learner input; this
        bounds the learning time (the learner is pure Python, quadratic in word length).
      max_unique_chars: alphabet size: only the most frequent characters get a token (and a
        `##` form); words with rarer characters are left out of learning, and those characters
        become `[UNK]` at run time.
      pad_to_size: fill a corpus-too-small shortfall up to `vocab_size` with `[unusedN]`.

    Returns:
      The tokens in id order: `SPECIAL_TOKENS` at ids 0-4, then single characters, their
      `##` suffix forms, then learned word pieces by decreasing count.

    Raises:
      VocabError: vocab_size too small for the alphabet, or no text given.
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    _check_vocab_size(vocab_size)
    if max_unique_chars < 1:
        raise VocabError(f"max_unique_chars={max_unique_chars} leaves no alphabet: use at "
                         f"least 1 (1000 is the learner's default)")
    counts = count_words(texts, lower_case=lower_case, max_lines=max_lines)
    # Whitespace-like characters that survive the TF word split (e.g. U+001C, which Python's
    # str.split treats as a line break) cannot live in a one-token-per-line file; words with
    # them are left out before the alphabet is chosen, so they use no alphabet slot.
    counts = {w: c for w, c in counts.items() if w and not any(ch.isspace() for ch in w)}
    if not counts:
        raise VocabError("no text to learn a vocabulary from: the inputs hold no non-empty line")

    params = learner.Params(
        upper_thresh=None, lower_thresh=1, num_iterations=4, max_input_tokens=max_input_words,
        max_token_length=50, max_unique_chars=max_unique_chars, vocab_size=vocab_size,
        slack_ratio=0.0, include_joiner_token=True, joiner="##",
        reserved_tokens=list(SPECIAL_TOKENS))
    # The library's own input preparation (what `learner.learn` does before its search): drop
    # over-long words, keep the `max_unique_chars` most frequent characters, drop words with
    # other characters, keep the `max_input_words` most frequent words (sorted by count).
    words = learner.get_input_words(counts.items(), params.reserved_tokens,
                                    params.max_token_length)
    allowed_chars = learner.get_allowed_chars(words, params.max_unique_chars)
    words = learner.filter_input_words(words, allowed_chars, params.max_input_tokens)
    if not words:
        raise VocabError(f"no word of the text fits the learner's limits (at most "
                         f"{params.max_token_length} characters, of the {max_unique_chars} "
                         f"most frequent characters): raise max_unique_chars")
    alphabet = learner.extract_char_tokens(words)
    smallest = len(SPECIAL_TOKENS) + 2 * len(alphabet)  # Every character and its ## form.
    if smallest > vocab_size:
        raise VocabError(
            f"vocab_size={vocab_size} is smaller than the alphabet of the text ({len(alphabet)} "
            f"characters, {smallest} tokens with their ## forms and the special tokens): raise "
            f"vocab_size or lower max_unique_chars")

    tokens, fill_from = _search_threshold(
        lambda thresh: learner.learn_with_thresh(words, thresh, params),
        [c for _, c in words], vocab_size, smallest)
    if fill_from is not None and len(tokens) < vocab_size:
        # Top up with the pieces the next lower threshold adds. Those nearly all have the same
        # count (the lower threshold), and the library orders equal counts alphabetically, so
        # its order would fill with words from "a" to wherever the room ends (seen: hapaxes
        # "a..." to "bu..." for 30522 on 8 MB). Shorter pieces first instead: they are reused
        # by more words; the sort is stable, so the library's order decides among equals.
        present = set(tokens)
        extra = sorted((t for t in fill_from if t not in present),
                       key=lambda t: len(t[2:]) if t.startswith("##") else len(t))
        tokens = tokens + extra[:vocab_size - len(tokens)]
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


def _search_threshold(learn, word_counts, vocab_size, smallest, max_steps=16):
    """Finds the smallest count threshold whose learned vocabulary fits in `vocab_size`.

    Written here rather than using the library's `learn`/`learn_binary_search` because that
    search can end above `vocab_size`: it returns whatever it holds once `thresh <= 1` or
    `lower >= upper` (measured on 8 MB of Gutenberg text: vocab_size=30522 ended at threshold
    1 with 41255 tokens, never trying threshold 2), and it starts from the most frequent
    word's count, spending ~10 slow steps on tiny vocabularies. Here the learned size s(t)
    (which falls as t grows) is bracketed between a threshold `lo` with s(lo) > vocab_size
    and `hi` with s(hi) <= vocab_size until they are adjacent (or s(hi) == vocab_size).
    Each next threshold is predicted from the word counts: s(t) ~ smallest + r * n(t), where
    n(t) counts words seen at least t times and r (pieces per frequent word, ~1.1-1.3 on
    English) is measured at the last threshold tried; geometric bisection keeps the worst
    case logarithmic. Measured on 8 MB of Gutenberg text: 2-3 learner calls for
    8000 or 30522 tokens (the library search: 2 to 19).

    Args:
      learn: threshold -> vocabulary (tensorflow-text's `learn_with_thresh`).
      word_counts: counts of the learner's input words, in decreasing order.
      vocab_size: the size wanted.
      smallest: the size at a threshold so high that only the alphabet remains.
      max_steps: learner calls at most (then the best bracket found is used).

    Returns:
      (tokens, fill_from): the vocabulary of the smallest fitting threshold found, and the
      vocabulary of the largest threshold found too big (None if none was tried), from which
      the caller tops up.
    """
    import bisect
    import math

    ascending = word_counts[::-1]

    def n_at_least(t):
        return len(ascending) - bisect.bisect_left(ascending, t)

    def predict(size, t):
        # Ratio measured at t, then the threshold whose word count would give vocab_size.
        r = max(size - smallest, 1) / max(n_at_least(t), 1)
        rank = int((vocab_size - smallest) / r)
        if rank <= 0:
            return word_counts[0] + 1
        return word_counts[min(rank, len(word_counts)) - 1]

    tried = {}
    lo = hi = None  # s(lo) > vocab_size >= s(hi); lo < hi.
    # First guess: r = 1.2, so n(t) ~ (vocab_size - smallest) / 1.2 words.
    rank = max(int((vocab_size - smallest) / 1.2), 1)
    t = word_counts[min(rank, len(word_counts)) - 1]
    narrowing = 0
    for _ in range(max_steps):
        tried[t] = learn(t)
        size = len(tried[t])
        if size > vocab_size:
            lo = t
        else:
            hi = t
        if hi is not None and (hi == 1 or len(tried[hi]) == vocab_size or
                               (lo is not None and hi - lo <= 1)):
            break
        guess = predict(size, t)
        if lo is None:  # Too small so far: go lower, at least by one, at most 16x.
            guess = min(max(guess, math.ceil(hi / 16)), hi - 1)
        elif hi is None:  # Too big so far: go higher, at least by one, at most 16x.
            guess = max(min(guess, lo * 16), lo + 1)
        else:
            narrowing += 1
            if narrowing % 3 == 0 or not lo < guess < hi:  # Keep the worst case logarithmic.
                guess = int(round(math.sqrt(lo * hi)))
            guess = min(max(guess, lo + 1), hi - 1)
        t = guess
    if hi is None:
        # Still too big after max_steps (not seen in practice): a threshold above any piece's
        # count (a word of at most 50 characters holds fewer than 50 copies of a piece)
        # leaves only the alphabet, which fits (the caller checked `smallest`).
        hi = sum(word_counts) * 50 + 1
        tried[hi] = learn(hi)
    return tried[hi], (tried[lo] if lo is not None else None)


def build_vocab_file(output: str, vocab_size: int, inputs=None, lower_case: bool = True,
                     blank_lines_separate_docs: bool = True, max_lines: Optional[int] = None,
                     max_input_words: int = 200_000, cache_dir: Optional[str] = None,
                     max_unique_chars: int = 1000) -> dict:
    """Learns a vocabulary from text files (or the embedded corpus) and writes vocab.txt.

    What `tools/build_vocab.py` runs.

    Args:
      output: path of the vocab.txt to write (atomically).
      vocab_size: tokens wanted, special tokens included.
      inputs: glob, comma-separated globs or list of them; None uses the embedded corpus
        (Python standard-library docstrings, see `embedded_corpus.embedded_corpus_files`).
      lower_case: uncased vocabulary (lower-case + strip accents).
      blank_lines_separate_docs: how documents are delimited (only affects the counts).
      max_lines: learn from at most this many lines (a sample bound for huge corpora).
      max_input_words: most frequent distinct words given to the learner (time bound).
      cache_dir: embedded corpus cache (default `electra_tf.files.default_cache_dir()`).
      max_unique_chars: alphabet size (the most frequent characters; see `learn_vocab`).

    Returns:
      dict: `output`, `tokens` (written), `learned` (excluding [unusedN] padding),
      `seconds`, `files`, `corpus` ("embedded" or the input), `lines_used` (lines learned
      from) and the reading counts of `documents.iter_documents`.

    Raises:
      VocabError: bad sizes, an output that cannot be written (checked before learning; a
        full disk at the end leaves no vocab.txt), or text too small for the size asked.
      CorpusError: bad inputs: no match, unreadable, binary, or no text at all.
    """
    import collections
    import os
    import time

    from electra_tf.files import remove_stale_temporaries
    from electra_tf.text import corpus, documents, embedded_corpus

    start = time.time()
    # Everything that can be checked is checked before the learning (minutes on a large
    # corpus) starts: the sizes, the output path, the inputs (docs/architecture.md,
    # "Pretraining data": binary and empty inputs are refused).
    _check_vocab_size(vocab_size)
    for name, value in (("max_lines", max_lines), ("max_input_words", max_input_words),
                        ("max_unique_chars", max_unique_chars)):
        if value is not None and value < 1:
            raise VocabError(f"{name}={value} must be at least 1")
    problem = corpus.output_path_problem(output, directory=False)
    if problem:
        raise VocabError(f"cannot write the vocabulary: {problem}; give the path of the "
                         f"vocab.txt to write (e.g. --output=DIR/vocab.txt) in a writable "
                         f"directory")
    # Temporaries of an earlier run that was killed (SIGKILL, out of memory).
    remove_stale_temporaries(os.path.dirname(os.path.abspath(output)))
    if inputs is None or inputs == "" or inputs == []:
        files = embedded_corpus.embedded_corpus_files(cache_dir or default_cache_dir())
        source = "embedded"
    else:
        files = corpus.expand_inputs(inputs)
        source = inputs if isinstance(inputs, str) else ",".join(inputs)
        corpus.check_inputs(files)  # Binary input, or no text at all: refused now.
    stats = collections.Counter()

    def lines():
        for path in files:
            for document in documents.iter_documents(path, blank_lines_separate_docs, stats):
                for line in document:
                    if max_lines is not None and stats["lines_used"] >= max_lines:
                        return
                    stats["lines_used"] += 1
                    yield line
                    if max_lines is not None and stats["lines_used"] >= max_lines:
                        return  # The sample bound: stop reading, not just stop learning.

    tokens = learn_vocab(lines(), vocab_size, lower_case=lower_case,
                         max_input_words=max_input_words, max_unique_chars=max_unique_chars)
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
