"""Fine-tuning examples -> model inputs, with the package's one tokenizer.

Sentence and pair tasks go through `ElectraTokenizer.encode` (the same layout the exported
raw-text signatures compute in-graph). Tagging tokenizes each word on its own and labels only
the first word piece of every word (the others get weight 0), the usual BERT recipe; the
`word_starts` index maps the per-piece predictions back to words.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

# Examples tokenized per call: keeps the tokenizer's graph busy without large ragged tensors.
_BATCH = 512


@dataclasses.dataclass
class Features:
    """Model inputs and targets of a list of examples.

    Args:
      inputs: dict of int32 [N, S] `token_ids`, `segment_ids`, `padding_mask`.
      labels: int32 [N] class ids, float32 [N] scores, or int32 [N, S] tag ids.
      weights: float32 [N] (1 each) or [N, S] (1 on the first piece of each word).
      word_starts: tagging only: per example, the piece position of each word's first piece
        (-1 for words cut off by `max_seq_length`).
    """

    inputs: dict
    labels: np.ndarray
    weights: np.ndarray
    word_starts: Optional[list] = None

    def __len__(self):
        return len(self.labels)


def encode_texts(tokenizer, examples: Sequence, kind: str, label_ids: dict,
                 max_seq_length: int) -> Features:
    """Tokenizes `TextExample`s for classification or regression.

    Args:
      tokenizer: an `ElectraTokenizer`.
      examples: `TextExample`s (`text`, `text_pair`, `label`).
      kind: "classification" or "regression".
      label_ids: label name -> id (classification).
      max_seq_length: tokens per example, [CLS]/[SEP] included.

    Example:

    >>> from electra_tf.data.tasks import TextExample
    >>> from electra_tf.text.tokenizer import ElectraTokenizer
    >>> tok = ElectraTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好", "bad"])
    >>> f = encode_texts(tok, [TextExample("好", None, "pos", "x:1"),
    ...                        TextExample("bad", "好", "neg", "x:2")],
    ...                  "classification", {"neg": 0, "pos": 1}, 6)
    >>> f.inputs["token_ids"].tolist(), f.labels.tolist()
    ([[2, 5, 3, 0, 0, 0], [2, 6, 3, 5, 3, 0]], [1, 0])
    """
    inputs = {k: np.zeros((len(examples), max_seq_length), np.int32)
              for k in ("token_ids", "segment_ids", "padding_mask")}
    # Single texts and pairs are encoded apart: a pair's empty second text would still get
    # its [SEP], a single text gets none.
    for paired in (False, True):
        rows = [i for i, e in enumerate(examples) if (e.text_pair is not None) == paired]
        for start in range(0, len(rows), _BATCH):
            chunk = rows[start:start + _BATCH]
            encoded = tokenizer.encode(
                [examples[i].text for i in chunk],
                [examples[i].text_pair for i in chunk] if paired else None,
                max_seq_length=max_seq_length)
            for key in inputs:
                inputs[key][chunk] = encoded[key].numpy()
    if kind == "regression":
        labels = np.array([float(e.label) for e in examples], np.float32)
    else:
        labels = np.array([label_ids[e.label] for e in examples], np.int32)
    return Features(inputs, labels, np.ones(len(examples), np.float32))


def encode_tagged(tokenizer, examples: Sequence, tag_ids: dict, max_seq_length: int) -> Features:
    """Tokenizes `TaggedExample`s word by word; the first piece of each word carries its tag.

    Words whose pieces do not fit in `max_seq_length - 2` are cut (their `word_starts` entry
    is -1; evaluation counts them as predicted "O").

    Args:
      tokenizer: an `ElectraTokenizer`.
      examples: `TaggedExample`s (`words`, `tags`).
      tag_ids: tag -> id.
      max_seq_length: tokens per example, [CLS]/[SEP] included.

    Example:

    >>> from electra_tf.data.tasks import TaggedExample
    >>> from electra_tf.text.tokenizer import ElectraTokenizer
    >>> tok = ElectraTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "new", "york",
    ...                         "##er", "北", "京"])
    >>> f = encode_tagged(tok, [TaggedExample(["newer", "北京"], ["B-PER", "B-LOC"], "x:1")],
    ...                   {"O": 0, "B-LOC": 1, "B-PER": 2}, 8)
    >>> f.inputs["token_ids"].tolist(), f.word_starts  # newer = new ##er; 北京 = 北 京
    ([[2, 5, 7, 8, 9, 3, 0, 0]], [[1, 3]])
    >>> f.labels.tolist(), f.weights.tolist()
    ([[0, 2, 0, 1, 0, 0, 0, 0]], [[0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    """
    n = len(examples)
    token_ids = np.full((n, max_seq_length), tokenizer.pad_id, np.int32)
    labels = np.zeros((n, max_seq_length), np.int32)
    weights = np.zeros((n, max_seq_length), np.float32)
    word_starts = []
    words = [w for e in examples for w in e.words]
    pieces = []
    for start in range(0, len(words), _BATCH * 8):
        pieces.extend(tokenizer.tokenize(words[start:start + _BATCH * 8]).to_list())
    cursor = 0
    budget = max_seq_length - 2
    padding_mask = np.zeros((n, max_seq_length), np.int32)
    for row, example in enumerate(examples):
        ids = [tokenizer.cls_id]
        starts = []
        cut = False
        for tag in example.tags:
            word_pieces = pieces[cursor] or [tokenizer.unk_id]  # no piece at all: one [UNK]
            cursor += 1
            # Once a word does not fit, neither do the ones after it (no gaps in a sentence).
            if cut or len(ids) - 1 + len(word_pieces) > budget:
                cut = True
                starts.append(-1)
                continue
            starts.append(len(ids))
            labels[row, len(ids)] = tag_ids[tag]
            weights[row, len(ids)] = 1.0
            ids.extend(word_pieces)
        ids.append(tokenizer.sep_id)
        token_ids[row, :len(ids)] = ids
        padding_mask[row, :len(ids)] = 1
        word_starts.append(starts)
    inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
              "padding_mask": padding_mask}
    return Features(inputs, labels, weights, word_starts)
