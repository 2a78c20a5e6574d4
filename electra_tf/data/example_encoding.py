"""Encoding rows of int64 features as serialized `tf.train.Example` protos, in bulk.

`serialize_examples` turns whole arrays of examples (`input_ids`, `input_mask`,
`segment_ids` rows from `packing.examples_to_arrays`) into the bytes the pretraining
TFRecords hold, without building one protobuf message per row.

Example:

>>> import numpy as np
>>> records = serialize_examples({"input_ids": np.array([[2, 7, 3, 0]])})
>>> len(records)
1
"""

from __future__ import annotations

import numpy as np

# Written by hand because protobuf has no batched encoder: building one tf.train.Example
# message per row costs ~10x more than the tokenizer per token. The wire format is the one of
# tensorflow/core/example/{example,feature}.proto: Example{features=1} -> Features{map
# feature=1} -> entry{key=1, value=2} -> Feature{int64_list=3} -> Int64List{packed value=1}.
# tests/test_packing.py checks the bytes parse back to the same values with tf.train.Example.


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varint_rows(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Varint-encodes every row of a non-negative int array; returns (bytes, row offsets)."""
    rows, length = values.shape
    max_value = int(values.max()) if values.size else 0
    if max_value < 0x80:
        # One byte per value (masks, segment ids, small vocabularies): the bytes themselves.
        return values.astype(np.uint8).tobytes(), np.arange(rows + 1) * length
    width = (max_value.bit_length() + 6) // 7
    values = values.astype(np.uint64)
    n_bytes = np.ones(values.shape, dtype=np.int64)
    for k in range(1, width):
        n_bytes += values >= (1 << (7 * k))
    # One slot per possible byte; slot k holds bits 7k..7k+6 with the continuation bit set
    # when more bytes follow. Masking out the unused slots and flattening in C order gives
    # each row's varints concatenated.
    slots = np.empty(values.shape + (width,), dtype=np.uint8)
    for k in range(width):
        chunk = (values >> np.uint64(7 * k)) & np.uint64(0x7F)
        slots[..., k] = chunk.astype(np.uint8) | ((n_bytes > k + 1).astype(np.uint8) << 7)
    keep = np.arange(width)[None, None, :] < n_bytes[..., None]
    data = slots[keep].tobytes()
    offsets = np.concatenate([[0], np.cumsum(n_bytes.sum(axis=1))])
    return data, offsets


def _entry_header(key: bytes, payload_length: int) -> bytes:
    """Bytes preceding a packed varint payload in one `Features.feature` map entry."""
    int64_list_length = 1 + len(_varint(payload_length)) + payload_length
    feature_header = b"\x1a" + _varint(int64_list_length) + b"\x0a" + _varint(payload_length)
    feature_length = len(feature_header) + payload_length
    entry_header = (b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(feature_length)
                    + feature_header)
    return b"\x0a" + _varint(len(entry_header) + payload_length) + entry_header


def serialize_examples(features: dict) -> list[bytes]:
    """Encodes rows of int64 features as serialized `tf.train.Example`s.

    Args:
        features: ordered mapping from feature name to a non-negative integer array
            [num_examples, length]; each row becomes one Example with one Int64List per
            feature.

    Returns:
        One bytes object per row, parseable with `tf.io.parse_example`.
    """
    encoded = []
    for key, values in features.items():
        values = np.asarray(values)
        if values.size and values.min() < 0:
            raise ValueError(f"feature {key!r} has negative values; only ids >= 0 are encoded")
        data, offsets = _varint_rows(values)
        encoded.append((key.encode("utf-8"), data, offsets.tolist()))
    num_rows = len(next(iter(features.values()))) if features else 0
    # Headers depend only on (feature, payload length): cache them across rows.
    headers: dict = {}
    out = []
    for i in range(num_rows):
        parts = []
        for key, data, offsets in encoded:
            start, end = offsets[i], offsets[i + 1]
            header = headers.get((key, end - start))
            if header is None:
                header = headers[(key, end - start)] = _entry_header(key, end - start)
            parts.append(header)
            parts.append(data[start:end])
        body = b"".join(parts)
        out.append(b"\x0a" + _varint(len(body)) + body)
    return out
