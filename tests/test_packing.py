"""Example packing (docs/architecture.md, "Pretraining data", reference `build_pretraining_dataset.py`) and record encoding."""

import math
import random

import numpy as np
import pytest

from electra_tf.data import packing
from electra_tf.data.example_encoding import serialize_examples
from electra_tf.data.packing import ExampleBuilder, examples_to_arrays

CLS, SEP = 2, 3


class LiteralReference:
    """The packing rules (docs/architecture.md, "Pretraining data") read literally, as a line-at-a-time state machine (like the reference's
    `add_line`): an empty line closes the document. Independent of ExampleBuilder's
    document-at-a-time structure, drawing random numbers in the order the rules list them."""

    def __init__(self, max_len, rng):
        self.max_len, self.rng = max_len, rng
        self.lines, self.length, self.target = [], 0, max_len
        self.out = []

    def add_line(self, ids):
        if ids is None:  # document end
            if self.length:
                self.emit()
            return
        self.lines.append(list(ids))
        self.length += len(ids)
        if self.length >= self.target:
            self.emit()

    def emit(self):
        single = self.rng.random() < 0.1
        a_target = 10 ** 9 if single else (self.target - 3) // 2
        a, b = [], []
        for line in self.lines:
            to_a = len(a) == 0
            if not to_a:
                to_a = len(a) + len(line) < a_target
            if not to_a and len(b) == 0 and len(a) < a_target:
                to_a = self.rng.random() < 0.5
            if to_a:
                a = a + line
            else:
                b = b + line
        a = a[:self.max_len - 2]
        b = b[:max(0, self.max_len - len(a) - 3)]
        self.out.append((a, b))
        self.lines, self.length = [], 0
        self.target = (self.rng.randint(5, self.max_len) if self.rng.random() < 0.05
                       else self.max_len)


def _random_documents(seed, n_docs, max_lines=30, max_line_len=50):
    r = np.random.default_rng(seed)
    return [[r.integers(5, 1000, size=r.integers(0, max_line_len)).tolist()
             for _ in range(r.integers(1, max_lines))] for _ in range(n_docs)]


@pytest.mark.parametrize("max_len", [16, 128])
def test_builder_matches_literal_spec_example_for_example(max_len):
    docs = _random_documents(0, 400)
    builder = ExampleBuilder(max_len, rng=random.Random(7), keep_overflow=False)
    ours = [pair for doc in docs for pair in builder.add_document(doc)]
    ref = LiteralReference(max_len, random.Random(7))
    for doc in docs:
        for line in doc:
            ref.add_line(line)
        ref.add_line(None)
    assert len(ours) > 500
    assert ours == ref.out
    # Feeding each document in parts (how the builder streams long documents) changes nothing.
    chunked = ExampleBuilder(max_len, rng=random.Random(7), keep_overflow=False)
    parts = []
    for doc in docs:
        cuts = [0, len(doc) // 3, len(doc) // 2, len(doc)]
        for i in range(3):
            parts += chunked.add_lines(doc[cuts[i]:cuts[i + 1]], end_of_document=i == 2)
    assert parts == ours


class ScriptedRandom:
    """random.Random stand-in returning scripted values, to hit each packing branch."""

    def __init__(self, values, randint_value=None):
        self.values, self.randint_value = list(values), randint_value

    def random(self):
        return self.values.pop(0)

    def randint(self, lo, hi):
        assert (lo, hi) == (5, 128)
        return self.randint_value


def _seg(n, start):
    return list(range(start, start + n))


def test_segment_a_b_rules_and_truncation():
    s1, s2, s3 = _seg(40, 100), _seg(30, 200), _seg(70, 300)
    # two segments (0.5 >= 0.1); A target (128 - 3) // 2 = 62. s1 -> A (A empty);
    # s2: 40 + 30 >= 62, B empty and A short -> coin 0.7 >= 0.5 -> B; s3 -> B (B not empty).
    builder = ExampleBuilder(128, rng=ScriptedRandom([0.5, 0.7, 0.9]), keep_overflow=False)
    [(a, b)] = builder.add_document([s1, s2, s3])
    assert a == s1
    assert b == (s2 + s3)[:128 - 40 - 3]  # B truncated to max_len - len(A) - 3
    # Same lines, coin 0.3 < 0.5: s2 joins A (A still short, B empty); s3 goes to B.
    builder = ExampleBuilder(128, rng=ScriptedRandom([0.5, 0.3, 0.9]), keep_overflow=False)
    [(a, b)] = builder.add_document([s1, s2, s3])
    assert a == s1 + s2 and b == s3[:128 - 70 - 3]
    # A short line after B started still goes to A when it keeps A under target (reference).
    s4 = _seg(5, 400)
    builder = ExampleBuilder(128, rng=ScriptedRandom([0.5, 0.7, 0.9]), keep_overflow=False)
    [(a, b)] = builder.add_document([s1, s2, s4, _seg(60, 500)])
    assert a == s1 + s4 and b == (s2 + _seg(60, 500))[:128 - 45 - 3]


def test_single_segment_and_truncation_to_max_len_minus_2():
    lines = [_seg(100, 1000), _seg(100, 2000)]
    builder = ExampleBuilder(128, rng=ScriptedRandom([0.05, 0.9]), keep_overflow=False)  # 0.05 < 0.1: one segment
    [(a, b)] = builder.add_document(lines)
    assert b == [] and a == (lines[0] + lines[1])[:126]
    ids, mask, seg = examples_to_arrays([(a, b)], 128, cls_id=CLS, sep_id=SEP)
    assert ids[0, 0] == CLS and ids[0, 127] == SEP and mask.sum() == 128 and seg.sum() == 0


def test_short_target_applies_to_next_example_only():
    # First example: two segments (0.5), then 0.01 < 0.05 -> next target randint(5, 128) = 20.
    builder = ExampleBuilder(128, rng=ScriptedRandom([0.5, 0.01, 0.5, 0.9, 0.5, 0.9],
                                                     randint_value=20), keep_overflow=False)
    lines = [_seg(130, 0), _seg(8, 200), _seg(8, 300), _seg(8, 400), _seg(200, 500)]
    examples = builder.add_document(lines)
    # Second example is cut as soon as 20 tokens accumulate (8 + 8 + 8 = 24 >= 20).
    assert [len(a) + len(b) for a, b in examples[1:2]] == [24]
    # A target (20 - 3) // 2 = 8: first line to A, second does not fit (8 + 8 >= 8),
    # A is not short (8 >= 8) so no coin: B.
    assert examples[1] == (_seg(8, 200), _seg(8, 300) + _seg(8, 400))
    assert builder.target_length == 128 and len(examples) == 3


def test_document_end_emits_partial_example_and_no_cross_document_packing():
    builder = ExampleBuilder(128, rng=random.Random(1))
    first = builder.add_document([[5, 6], [7]])
    second = builder.add_document([[8, 9, 10]])
    assert [a + b for a, b in first] == [[5, 6, 7]]
    assert [a + b for a, b in second] == [[8, 9, 10]]
    assert builder.add_document([[], []]) == []  # a document without tokens gives nothing


def test_layout_of_every_example():
    docs = _random_documents(3, 300, max_line_len=90)
    builder = ExampleBuilder(64, rng=random.Random(3))
    pairs = [p for d in docs for p in builder.add_document(d)]
    ids, mask, seg = examples_to_arrays(pairs, 64, cls_id=CLS, sep_id=SEP)
    assert ids.shape == mask.shape == seg.shape == (len(pairs), 64) and ids.dtype == np.int64
    for i, (a, b) in enumerate(pairs):
        assert 1 <= len(a) <= 62 and len(a) + len(b) + (3 if b else 2) <= 64
        expected = [CLS] + a + [SEP] + (b + [SEP] if b else [])
        n = len(expected)
        assert ids[i, :n].tolist() == expected and not ids[i, n:].any()  # padding id 0
        assert mask[i].tolist() == [1] * n + [0] * (64 - n)
        assert seg[i].tolist() == [0] * (len(a) + 2) + [1] * (n - len(a) - 2) + [0] * (64 - n)


def _within(k, n, p, sigmas=4.0):
    return abs(k - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_single_segment_short_target_and_coin_rates():
    # Lines of exactly 10 tokens in long documents: a full-target example accumulates 130
    # tokens (13 lines) and fills all 128 positions; a target t <= 120 gives 10*ceil(t/10)
    # tokens, visibly short. Two-segment examples have A = 60 (+10 with the 50% coin) and a
    # non-empty B; single-segment ones have no B. Each document's last example is partial and
    # the first example has no previous draw, so both are left out of the counts.
    builder = ExampleBuilder(128, rng=random.Random(11), keep_overflow=False)
    n = single = short = two = a70 = 0
    first = True
    for d in range(1500):
        doc = [[5 + (d + j) % 900] * 10 for j in range(13 * 12 + 5)]
        examples = builder.add_document(doc)
        for a, b in examples[:-1]:
            if first:
                first = False
                continue
            total = len(a) + len(b)
            n += 1
            short += total < 120
            if total >= 120 and not b:
                single += 1
            if total >= 120 and b:
                two += 1
                a70 += len(a) == 70
    assert n > 15000
    # P(short and visible) = 0.05 * P(randint(5, 128) <= 120) = 0.05 * 116 / 124.
    assert _within(short, n, 0.05 * 116 / 124), short / n
    full = n - short
    assert _within(single, full, 0.1), single / full
    assert _within(a70, two, 0.5), a70 / two
    assert builder.single_segment_examples > 0 and builder.short_targets > 0


def test_too_long_rows_are_refused():
    with pytest.raises(ValueError, match="max_seq_length 8"):
        examples_to_arrays([(list(range(5, 12)), [])], 8, cls_id=CLS, sep_id=SEP)


def test_serialized_records_parse_back_with_tensorflow():
    import tensorflow as tf

    r = np.random.default_rng(5)
    ids = r.integers(0, 300_000, size=(40, 33))
    ids[0, :6] = [0, 127, 128, 16383, 16384, (1 << 21) + 5]  # varint byte-count boundaries
    mask = r.integers(0, 2, size=(40, 33))
    seg = r.integers(0, 2, size=(40, 33))
    records = serialize_examples({"input_ids": ids, "input_mask": mask, "segment_ids": seg})
    for i, record in enumerate(records):
        example = tf.train.Example.FromString(record)
        got = {k: list(v.int64_list.value) for k, v in example.features.feature.items()}
        assert got == {"input_ids": ids[i].tolist(), "input_mask": mask[i].tolist(),
                       "segment_ids": seg[i].tolist()}
    parsed = tf.io.parse_example(records, {
        k: tf.io.FixedLenFeature([33], tf.int64) for k in ("input_ids", "segment_ids")})
    np.testing.assert_array_equal(parsed["input_ids"].numpy(), ids)
    np.testing.assert_array_equal(parsed["segment_ids"].numpy(), seg)
    with pytest.raises(ValueError, match="negative"):
        serialize_examples({"input_ids": -ids})


def test_constants_are_the_references():
    assert (packing.SINGLE_SEGMENT_PROB, packing.SHORT_TARGET_PROB, packing.SHORT_TARGET_MIN) \
        == (0.1, 0.05, 5)


# --- No text lost: overflow carried, long lines split (architecture.md, "Pretraining data") ---


@pytest.mark.parametrize("max_len", [8, 16, 128])
def test_carried_overflow_puts_every_token_in_an_example(max_len):
    docs = _random_documents(5, 300, max_line_len=3 * max_len)
    builder = ExampleBuilder(max_len, rng=random.Random(2))
    for doc in docs:
        pairs = builder.add_document(doc)
        # Every token of the document, no other, and each example fits.
        got = sorted(t for a, b in pairs for t in a + b)
        assert got == sorted(t for line in doc for t in line)
        for a, b in pairs:
            assert a and len(a) + len(b) + (3 if b else 2) <= max_len
    assert builder.truncated_tokens == 0 and builder.carried_tokens > 0
    # The reference drops the same overflow instead, and counts it.
    dropping = ExampleBuilder(max_len, rng=random.Random(2), keep_overflow=False)
    kept = sum(len(a) + len(b) for d in docs for a, b in dropping.add_document(d))
    total = sum(len(line) for d in docs for line in d)
    assert dropping.truncated_tokens == total - kept > 0


def test_carrying_changes_nothing_when_everything_fits():
    # Documents shorter than an example: both modes draw the same numbers, same examples.
    docs = [doc for doc in _random_documents(6, 400, max_lines=4, max_line_len=10)
            if sum(map(len, doc)) <= 20]
    carry = ExampleBuilder(128, rng=random.Random(3))
    drop = ExampleBuilder(128, rng=random.Random(3), keep_overflow=False)
    assert len(docs) > 50
    assert [carry.add_document(d) for d in docs] == [drop.add_document(d) for d in docs]
    assert carry.carried_tokens == drop.truncated_tokens == 0


def test_carried_overflow_starts_the_next_example_in_order():
    # One 300-token line, single segments (0.05 < 0.1), full targets (0.9): 126, 126, 48.
    line = _seg(300, 1000)
    builder = ExampleBuilder(128, rng=ScriptedRandom([0.05, 0.9] * 3))
    pairs = builder.add_document([line])
    assert pairs == [(line[:126], []), (line[126:252], []), (line[252:], [])]


@pytest.mark.parametrize("line, sentences", [
    ("The cat sat. The dog ran! Did it? Yes", ["The cat sat.", "The dog ran!", "Did it?", "Yes"]),
    ("Pi is 3.14 in a.b.c form", ["Pi is 3.14 in a.b.c form"]),  # no space after the dots
    ("北京是首都。上海很大！你去过吗？去过；很好", ["北京是首都。", "上海很大！", "你去过吗？", "去过；", "很好"]),
    ("他说：“走吧。”我们走了。", ["他说：“走吧。”", "我们走了。"]),  # closing quote stays
    ("no end at all", ["no end at all"]),
])
def test_split_sentences_english_and_chinese(line, sentences):
    assert packing.split_sentences(line) == sentences
    # Nothing but the white space between sentences is dropped.
    assert "".join(packing.split_sentences(line)).replace(" ", "") == line.replace(" ", "")


def test_chunk_cuts_into_pieces_of_at_most_size():
    assert packing.chunk(range(7), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert packing.chunk([], 3) == []
    with pytest.raises(ValueError):
        packing.chunk([1], 0)
