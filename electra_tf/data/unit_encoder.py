"""What both executors of the pretraining-data builder do to each unit of work: read,
tokenize, pack and serialize it (`UnitEncoder`), with its own random stream (`unit_rng`).

A unit (`build_plan.Unit`: an input file, or a byte range of one cut at document
boundaries) gets its own `random.Random`, seeded from the seed and the unit's identity (its
file's position in the sorted input list and its start offset), and its own
`packing.ExampleBuilder`, so the set of examples depends only on the inputs, vocabulary,
seed, `max_seq_length`, casing, `split_bytes` (and the document and truncation options),
not on the number of workers or the executor.

No text is lost (docs/architecture.md, "Pretraining data"): a line longer than an example
(`max_seq_length - 2` tokens) is split into sentences (`packing.split_sentences`) and a
sentence still too long is cut into pieces (`packing.chunk`); what does not fit an example
is carried into the next one (`packing.ExampleBuilder`). The unit's counts include
`text_tokens`, `truncated_tokens` (0 unless `reference_truncation`) and `split_lines`.

Lines are tokenized many per call (`DEFAULT_TOKENIZE_BATCH_LINES`) by the tokenizer of
`PackingSpec.tokenizer_factory`, by default `electra_tokenizer_factory`.
"""

from __future__ import annotations

import collections
import random
from typing import Callable, Iterator, Optional, Sequence

from electra_tf.data import packing
from electra_tf.data.build_plan import PackingSpec, Unit
from electra_tf.data.example_encoding import serialize_examples
from electra_tf.data.pretraining_reader import FEATURES

# Lines per tokenize call: large enough that per-call overhead vanishes, small enough that
# memory stays flat (a few MB of text).
DEFAULT_TOKENIZE_BATCH_LINES = 4096


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
        from electra_tf.text.documents import iter_document_range

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
