"""Packing tokenized documents into fixed-length ELECTRA pretraining examples (docs/architecture.md, "Pretraining data").

`ExampleBuilder` reproduces the decisions of the reference `build_pretraining_dataset.py`
ExampleBuilder (lines accumulate until the target length or the end of the document; 10% of
examples have one segment; segment A targets (target - 3) // 2 tokens; with probability 0.05
the next target length is randint(5, max_len)), drawing its random numbers from a
`random.Random` in the same order as the reference, so a given seed gives the same examples.
One difference by default: the tokens that do not fit an example (the reference drops them)
are carried into the next example of the document, so no text is lost;
`keep_overflow=False` drops and counts them as the reference does.

Long lines: `split_sentences` cuts a line at sentence ends (Chinese 。！？；, and . ! ?
followed by a space) and `chunk` cuts what is still longer than an example; the builder
(`unit_encoder.UnitEncoder`) applies both to lines longer than `max_seq_length - 2`
tokens before packing.

`examples_to_arrays` lays the segments out as `[CLS] A [SEP] B [SEP]` + padding with NumPy
(`example_encoding.serialize_examples` then turns the rows into `tf.train.Example` bytes).

Example:

>>> import random
>>> builder = ExampleBuilder(16, rng=random.Random(0))
>>> pairs = builder.add_document([[5, 6, 7], [8, 9]])
>>> ids, mask, segments = examples_to_arrays(pairs, 16, cls_id=2, sep_id=3)
>>> split_sentences("北京是首都。上海很大！Is it? Yes.")
['北京是首都。', '上海很大！', 'Is it?', 'Yes.']
"""

from __future__ import annotations

import random
import re
from typing import Iterable, Sequence

import numpy as np

# Probabilities and limits of the reference ExampleBuilder (docs/architecture.md, "Pretraining data").
SINGLE_SEGMENT_PROB = 0.1
SHORT_TARGET_PROB = 0.05
SHORT_TARGET_MIN = 5
# "Target" for segment A of a single-segment example: never reached, so every line goes to A.
_NO_SEGMENT_B_TARGET = 100000

# A sentence ends after 。！？； (full-width; closing quotes or brackets may follow) or after
# . ! ? followed by white space (alphabetic scripts: "3.14" and "a.b" are not cut). Every cut
# falls on white space or right after punctuation, which the BERT tokenizer always splits
# off, so the sentences' tokens are exactly the line's tokens.
_SENTENCE_END = re.compile(r"[。！？；]+[”’」』）》\"')\]]*\s*|[.!?]+[”’」』）》\"')\]]*\s+")


def split_sentences(line: str) -> list[str]:
    """Cuts a line (a paragraph) into sentences, keeping every character but edge spaces.

    Args:
        line: text.

    Returns:
        The non-empty, stripped sentences, in order (the line itself when it has no
        sentence end).

    Example:

    >>> split_sentences("他说：“走吧。”我们走了；天黑了. Then we ran")
    ['他说：“走吧。”', '我们走了；', '天黑了.', 'Then we ran']
    """
    out, start = [], 0
    for match in _SENTENCE_END.finditer(line):
        sentence = line[start:match.end()].strip()
        if sentence:
            out.append(sentence)
        start = match.end()
    rest = line[start:].strip()
    if rest:
        out.append(rest)
    return out


def chunk(ids: Sequence[int], size: int) -> list:
    """Cuts a token sequence into consecutive pieces of at most `size` tokens.

    >>> chunk([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    if size < 1:
        raise ValueError(f"chunk size {size} must be at least 1")
    ids = list(ids)
    return [ids[i:i + size] for i in range(0, len(ids), size)]


class ExampleBuilder:
    """Accumulates the tokenized lines of documents and cuts them into example segments.

    The state carried from one document to the next is only the target length (the reference
    draws the next target when it emits an example); a document's last partial example is
    emitted at the document's end, so examples never span documents. A long document may be
    fed in parts with `add_lines`.

    Overflow: an example holds at most max_seq_length - 2 tokens of text (- 3 with segment
    B), and the reference cuts an example only once the lines reach the target, so the
    last line usually overshoots and its tail (or all of B, or the tail of a line longer
    than an example) is cut off. With `keep_overflow` (the default) what is cut off (A's
    tail, then B's) starts the next example of the same document, and a document's end
    emits examples until nothing is left: every token of the text lands in an example.
    With `keep_overflow=False` it is dropped as in the reference and counted in
    `truncated_tokens`. Both make the same random draws in the same order as long as
    nothing is cut off.

    Args:
        max_seq_length: length of every example, [CLS] and [SEP]s included.
        rng: the `random.Random` all decisions are drawn from (the builder uses one per
            unit of work, seeded: `unit_encoder.unit_rng`).
        keep_overflow: carry the tokens that do not fit into the next example (no text
            lost), else drop them (the reference).
    """

    def __init__(self, max_seq_length: int, *, rng: random.Random, keep_overflow: bool = True):
        if max_seq_length < 5:
            raise ValueError(f"max_seq_length={max_seq_length} is too small; use at least 5")
        self.max_seq_length = max_seq_length
        self.rng = rng
        self.keep_overflow = keep_overflow
        self.target_length = max_seq_length
        # Lines of the example being accumulated (only across `add_lines` calls).
        self._current, self._current_length = [], 0
        # Counters of the random decisions, for statistics and tests.
        self.single_segment_examples = 0
        self.short_targets = 0
        # Tokens cut off and dropped (only with keep_overflow=False), and carried over.
        self.truncated_tokens = 0
        self.carried_tokens = 0

    def add_document(self, sentences: Iterable[Sequence[int]]) -> list[tuple[list, list]]:
        """Packs one document's tokenized lines; returns its examples as (A, B) id lists.

        Args:
            sentences: the document's lines, each a sequence of token ids (wordpieces).

        Returns:
            A list of (first_segment, second_segment) pairs, already truncated so that
            `[CLS] A [SEP] B [SEP]` fits in max_seq_length; B may be empty.
        """
        return self.add_lines(sentences, end_of_document=True)

    def add_lines(self, sentences: Iterable[Sequence[int]],
                  end_of_document: bool) -> list[tuple[list, list]]:
        """Like `add_document` for a part of a document, so huge documents stream.

        Args:
            sentences: the next lines of the current document (token id sequences).
            end_of_document: these are the document's last lines.

        Returns:
            The examples completed by these lines, as (A, B) id lists.
        """
        examples = []
        for sentence in sentences:
            self._current.append(sentence)
            self._current_length += len(sentence)
            # As the reference: an example is cut once the accumulated length reaches the
            # target (tokens without [CLS]/[SEP]); what overshoots is carried (or dropped).
            # Each example takes at least one token, so the loop ends.
            while self._current_length >= self.target_length:
                examples.append(self._emit())
        if end_of_document:
            # The reference emits whatever has accumulated at a document's end (if any
            # token), so examples never span documents.
            while self._current_length:
                examples.append(self._emit())
            self._current, self._current_length = [], 0
        return examples

    def _emit(self) -> tuple[list, list]:
        """Makes an example of the accumulated lines; carries or drops what did not fit."""
        pair, overflow = self._create_example(self._current)
        n_over = sum(len(piece) for piece in overflow)
        if self.keep_overflow and n_over:
            self._current, self._current_length = overflow, n_over
            self.carried_tokens += n_over
        else:
            self._current, self._current_length = [], 0
            self.truncated_tokens += n_over
        return pair

    def _create_example(self, sentences: list) -> tuple[tuple[list, list], list]:
        rng = self.rng
        # Small chance of a single segment, as in classification tasks (reference).
        if rng.random() < SINGLE_SEGMENT_PROB:
            first_target = _NO_SEGMENT_B_TARGET
            self.single_segment_examples += 1
        else:
            # -3: [CLS] and two [SEP] are not in the accumulated length yet.
            first_target = (self.target_length - 3) // 2
        first, second = [], []
        for sentence in sentences:
            # A line goes to A when A is empty, when it keeps A under its target, or (the
            # reference's extra rule) half the time when A is still short and B is empty.
            # The coin is drawn only when the first two tests fail, as `or` short-circuits
            # in the reference, so the random stream stays aligned with it.
            if (not first
                    or len(first) + len(sentence) < first_target
                    or (not second and len(first) < first_target and rng.random() < 0.5)):
                first.extend(sentence)
            else:
                second.extend(sentence)
        # Truncate, leaving room for [CLS] A [SEP] and for B's [SEP].
        first, first_over = first[:self.max_seq_length - 2], first[self.max_seq_length - 2:]
        keep = max(0, self.max_seq_length - len(first) - 3)
        second, second_over = second[:keep], second[keep:]
        # Next example's target: usually max_seq_length, 5% a random shorter one.
        if rng.random() < SHORT_TARGET_PROB:
            self.target_length = rng.randint(SHORT_TARGET_MIN, self.max_seq_length)
            self.short_targets += 1
        else:
            self.target_length = self.max_seq_length
        return (first, second), [piece for piece in (first_over, second_over) if piece]


def examples_to_arrays(pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                       max_seq_length: int, *, cls_id: int, sep_id: int, pad_id: int = 0):
    """Lays out (A, B) segment pairs as `[CLS] A [SEP] B [SEP]` rows padded with pad_id.

    Args:
        pairs: (first_segment, second_segment) id sequences; B empty for one segment.
        max_seq_length: row length.
        cls_id: id of [CLS].
        sep_id: id of [SEP].
        pad_id: id used for padding (0, as the reference).

    Returns:
        (input_ids, input_mask, segment_ids), int64 arrays [len(pairs), max_seq_length];
        segment ids are 0 for [CLS] A [SEP], 1 for B [SEP], 0 on padding.
    """
    n = len(pairs)
    input_ids = np.full((n, max_seq_length), pad_id, dtype=np.int64)
    len_a = np.empty(n, dtype=np.int64)
    lengths = np.empty(n, dtype=np.int64)
    for i, (first, second) in enumerate(pairs):
        row = [cls_id, *first, sep_id]
        if second:
            row += second
            row.append(sep_id)
        if len(row) > max_seq_length:
            raise ValueError(f"example {i} has {len(row)} tokens > max_seq_length "
                             f"{max_seq_length}; segments must be truncated first")
        input_ids[i, :len(row)] = row
        len_a[i] = len(first) + 2
        lengths[i] = len(row)
    positions = np.arange(max_seq_length, dtype=np.int64)[None, :]
    input_mask = (positions < lengths[:, None]).astype(np.int64)
    segment_ids = ((positions >= len_a[:, None]) & (positions < lengths[:, None])).astype(np.int64)
    return input_ids, input_mask, segment_ids
