r"""Reading the documents of a corpus file: whole, or in byte ranges cut at document boundaries.

A document is a file's non-empty stripped lines up to a blank line (unless
`blank_lines_separate_docs=False`) or the end of the file; the format and the checks that
refuse what is not text are `text/corpus.py`'s. A line of invalid UTF-8 is read with
U+FFFD replacements and counted, not fatal. A large file is cut at document boundaries
(`document_cuts`) into byte ranges that are read one by one (`iter_document_range`) and
together yield exactly the file's documents (docs/architecture.md, "Pretraining data").

Example:

>>> import tempfile
>>> from electra_tf.text.corpus import expand_inputs
>>> path = os.path.join(tempfile.mkdtemp(), "text.txt")
>>> with open(path, "wb") as f:
...     _ = f.write("第一行。\nsecond line\n\n\xff broken\n".encode("utf-8")
...                 .replace(b"\xc3\xbf", b"\xff"))
>>> stats = collections.Counter()
>>> [doc for p in expand_inputs(path) for doc in iter_documents(p, stats=stats)]
[['第一行。', 'second line'], ['\ufffd broken']]
>>> stats["documents"], stats["invalid_utf8_lines"]
(2, 1)
"""

from __future__ import annotations

import collections
import itertools
import os
from typing import Iterator, Optional

from electra_tf.text.corpus import _is_remote, _open_binary, _reading, check_text_file


def _decoded_lines(f, stats):
    """Stripped text lines of a binary file; invalid UTF-8 is replaced and counted."""
    for raw in f:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Replace rather than fail: one bad byte should not stop a corpus build.
            line = raw.decode("utf-8", errors="replace")
            stats["invalid_utf8_lines"] += 1
        yield line.strip()


def iter_documents(path: str, blank_lines_separate_docs: bool = True,
                   stats: Optional[collections.Counter] = None) -> Iterator[list[str]]:
    """Yields the documents of one text file, each a list of non-empty stripped lines.

    Args:
      path: a text file, `.gz` compressed or not.
      blank_lines_separate_docs: a blank line ends a document (reference behaviour); if
        False, blank lines are skipped and the whole file is one document.
      stats: optional `collections.Counter`, incremented in place: `invalid_utf8_lines`
        (lines decoded with U+FFFD replacements), `empty_files` (files with no text),
        `empty_documents` (extra blank-line separators, i.e. documents with no line, skipped),
        `documents` and `lines` (what was yielded).

    Yields:
      list[str]: the lines of one document.

    Raises:
      CorpusError: the file cannot be opened or read (or is not valid gzip), or is not text
        (`check_text_file`).
    """
    return iter_document_range(path, 0, None, blank_lines_separate_docs, stats)


def iter_document_range(path: str, start: int, end: Optional[int],
                        blank_lines_separate_docs: bool = True,
                        stats: Optional[collections.Counter] = None) -> Iterator[list[str]]:
    """`iter_documents` on the bytes [start, end) of a file: the documents of one range.

    The same decoding and the same counts as `iter_documents`. With the ranges that
    `document_cuts` gives (each starts a line after a blank one and holds a document), the
    documents of a file's ranges, in order, are exactly the file's documents and their
    counts add up to the file's (`empty_files` included: no such range is empty).

    Args:
      path: a text file (a `.gz` file only as a whole: start 0, end None).
      start: byte offset of the range's first line (0 or a cut of `document_cuts`).
      end: byte offset where the range ends (a later cut), or None for the end of the file.
      blank_lines_separate_docs: as for `iter_documents`.
      stats: as for `iter_documents`.

    Yields:
      list[str]: the lines of one document.

    Raises:
      CorpusError: as `iter_documents` (the file's start is sniffed for every range).

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "two.txt")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write("北京。\\n上海。\\n\\nthe cat\\n")
    >>> cut = len("北京。\\n上海。\\n\\n".encode("utf-8"))
    >>> list(iter_document_range(path, 0, cut)), list(iter_document_range(path, cut, None))
    ([['北京。', '上海。']], [['the cat']])
    """
    if path.endswith(".gz") and (start or end is not None):
        raise ValueError(f"{path} is gzip-compressed: it can only be read whole (start=0, "
                         f"end=None), not from byte {start}")
    stats = stats if stats is not None else collections.Counter()
    check_text_file(path)  # Binary or non-UTF-8 files are refused, not read as text.
    with _reading(path), _open_binary(path) as f:
        if start:
            f.seek(start)
        lines = _decoded_lines(_raw_lines(f, start, end), stats)
        yield from _documents(lines, blank_lines_separate_docs, stats)


_READ_CHUNK = 1 << 20


def _raw_lines(f, start: int, end: Optional[int]) -> Iterator[bytes]:
    """The raw lines of a binary file positioned at `start`, up to byte `end` (None: EOF).

    Lines are split here from fixed-size reads, so positions are exact byte offsets: TF's
    `GFile.readline` (remote files) drops every carriage return, which would shift a
    range's end on CRLF text."""
    position, tail = start, b""
    while True:
        chunk = f.read(_READ_CHUNK)
        if not chunk:
            if tail and (end is None or position < end):
                yield tail
            return
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        for part in parts:
            if end is not None and position >= end:
                return
            position += len(part) + 1
            yield part + b"\n"


def _documents(lines: Iterator[str], blank_lines_separate_docs: bool,
               stats: collections.Counter) -> Iterator[list[str]]:
    """Groups stripped lines into documents, counting as `iter_documents` describes."""
    document: list[str] = []
    empty_separators = 0
    yielded = 0
    # None marks the end of the lines, which ends the last document too.
    for line in itertools.chain(lines, [None]):
        if line:
            document.append(line)
            continue
        if line == "" and not blank_lines_separate_docs:
            continue
        if document:
            stats["documents"] += 1
            stats["lines"] += len(document)
            yielded += 1
            yield document
            document = []
        elif line == "":
            empty_separators += 1
    if yielded == 0:
        stats["empty_files"] += 1
    else:
        # The blank line(s) before the first document or doubled separators.
        stats["empty_documents"] += empty_separators


# How far past each nominal split offset `document_cuts` looks for a document boundary, and
# how much it reads at a time.
CUT_SEARCH_BYTES = 1 << 20
_CUT_READ_BYTES = 64 * 1024


def _is_blank(raw: bytes) -> bool:
    """Whether a raw line is blank as `iter_documents` sees it (decoded, then stripped)."""
    return not raw.decode("utf-8", errors="replace").strip()


def file_size(path: str) -> int:
    """Size in bytes of a local or remote (`tf.io.gfile`) file, as stored (`.gz` compressed).

    Raises:
      CorpusError: the file cannot be read.
    """
    with _reading(path):
        if _is_remote(path):
            import tensorflow as tf

            return tf.io.gfile.stat(path).length
        return os.path.getsize(path)


def document_cuts(path: str, split_bytes: int,
                  blank_lines_separate_docs: bool = True) -> list[int]:
    """Byte offsets at which a large file can be cut into ranges of whole documents.

    Near every multiple of `split_bytes` (the nominal offsets) the first document boundary
    at or after it is found, reading at most `CUT_SEARCH_BYTES` from there: a non-blank
    line that follows a blank line that follows a non-blank line; the cut is at the start
    of that line, so every range holds at least one document and ends at a blank line. A
    nominal offset with no boundary within reach (a document of over a megabyte) is
    skipped. Files of at most `split_bytes`, `.gz` files (they cannot seek) and files that
    are one document (`blank_lines_separate_docs=False`) are never cut.

    Args:
      path: a text file, local or remote.
      split_bytes: the nominal size of a range.
      blank_lines_separate_docs: a blank line ends a document.

    Returns:
      The cut offsets, increasing, each strictly inside the file (0 and the size excluded).

    Raises:
      CorpusError: the file cannot be read.

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "docs.txt")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write("第一篇。\\n\\n" * 3000)  # 14 bytes per document
    >>> cuts = document_cuts(path, 16384)
    >>> cuts, [cut % 14 for cut in cuts]
    ([16408, 32788], [0, 0])
    """
    if split_bytes < 1:
        raise ValueError(f"split_bytes={split_bytes} must be at least 1")
    if not blank_lines_separate_docs or path.endswith(".gz"):
        return []
    size = file_size(path)
    cuts: list[int] = []
    nominal = split_bytes
    with _reading(path), _open_binary(path) as f:
        while nominal < size:
            window_end = min(size, nominal + CUT_SEARCH_BYTES)
            cut = _next_cut(f, nominal, window_end)
            if cut is None:
                # No boundary in this window: go on past it (never read a byte twice).
                nominal = max(nominal + split_bytes, window_end)
                continue
            cuts.append(cut)
            nominal = (cut // split_bytes + 1) * split_bytes
    return cuts


def _next_cut(f, offset: int, limit: int) -> Optional[int]:
    """The first document boundary whose lines lie in [offset, limit), or None."""
    f.seek(offset - 1)
    buffer = b""
    position = offset - 1  # file offset of buffer[0]
    line_start = None  # offset of the first complete line: after the first newline
    seen_text = blank_after_text = False
    while position + len(buffer) < limit:
        chunk = f.read(min(_CUT_READ_BYTES, limit - position - len(buffer)))
        if not chunk:
            break
        buffer += chunk
        if line_start is None:
            newline = buffer.find(b"\n")
            if newline < 0:
                continue
            line_start = position + newline + 1
        while True:
            newline = buffer.find(b"\n", line_start - position)
            if newline < 0:
                break
            raw = buffer[line_start - position:newline + 1]
            if not _is_blank(raw):
                if blank_after_text:
                    return line_start
                seen_text = True
            elif seen_text:
                blank_after_text = True
            line_start = position + newline + 1
        # Keep only the incomplete last line.
        buffer, position = buffer[line_start - position:], line_start
    return None
