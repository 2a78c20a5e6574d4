r"""Reading text corpora, and the embedded default corpus.

Corpus format (reference `build_pretraining_dataset.py`; docs/architecture.md, "Pretraining data"): plain UTF-8 text files
(optionally `.gz`), one sentence or paragraph per line; a blank line ends a document (unless
`blank_lines_separate_docs=False`) and so does the end of a file.

`embedded_corpus_files(cache_dir)` makes a small corpus that every installation has: the
docstrings and comments of the Python standard library, read with `ast` and `tokenize` (no
module is imported, so nothing is executed), one paragraph per line, one document per module.
It lets `tools/build_vocab.py`, the data builder and the tests run without downloading text.

Junk is refused, not read as text (docs/architecture.md, "Pretraining data"): the start of
every file (after gzip decompression) is sniffed by `check_text_file`; NUL bytes (executables,
TFRecords, UTF-16) or a high share of bytes that are not UTF-8 text end the build with a
`CorpusError` naming the file. `check_inputs` runs that on every input before any work and
refuses inputs that hold no text at all.

Example:

>>> import tempfile
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

import ast
import codecs
import collections
import contextlib
import glob as glob_lib
import gzip
import hashlib
import io
import itertools
import json
import os
import re
import sys
import sysconfig
import tempfile
import tokenize
import zlib
from typing import Iterator, Optional, Sequence, Union

from electra_tf.files import atomic_write_text


class CorpusError(ValueError):
    """An input file or glob is unusable (one-line message naming it and what to do).

    `transient` is True for a remote read error that may pass on a retry (unavailable,
    deadline exceeded): the Beam executor then lets the runner retry instead of skipping."""

    transient = False


def _is_remote(path: str) -> bool:
    return "://" in path


def expand_inputs(glob_or_list: Union[str, Sequence[str]]) -> list[str]:
    """Expands globs to a sorted list of readable files.

    Args:
      glob_or_list: a glob or path, several separated by commas, or a list of them. Remote
        URLs (`gs://...`) are expanded with `tf.io.gfile`.

    Returns:
      Sorted, de-duplicated file paths.

    Raises:
      CorpusError: a glob matches no file, or a matched file cannot be read or is not a
        regular file (a pipe or device).
    """
    if isinstance(glob_or_list, (str, os.PathLike)):
        patterns = [p for p in os.fspath(glob_or_list).split(",")]
    else:
        patterns = [os.fspath(p) for p in glob_or_list]
    patterns = [p.strip() for p in patterns if p and p.strip()]
    if not patterns:
        raise CorpusError("no input given: pass a file, a glob such as 'corpus/*.txt', or a "
                          "comma-separated list of them")
    files = set()
    for pattern in patterns:
        if _is_remote(pattern):
            import tensorflow as tf  # Only remote file systems need TensorFlow here.

            try:
                matches = tf.io.gfile.glob(pattern)
            except tf.errors.OpError as e:
                raise CorpusError(f"cannot list input {pattern!r}: {e.message}; check the URL "
                                  f"and your credentials") from None
            matches = [m for m in matches if not tf.io.gfile.isdir(m)]
        else:
            expanded = os.path.expanduser(pattern)
            matches = glob_lib.glob(expanded, recursive=True) if glob_lib.has_magic(expanded) \
                else ([expanded] if os.path.exists(expanded) else [])
            matches = [m for m in matches if not os.path.isdir(m)]
            for m in matches:
                if not os.path.isfile(m):
                    # A pipe is read once, and each input is read more than once (checked,
                    # then read); a device may never end.
                    raise CorpusError(f"input {m} (from {pattern!r}) is not a regular file (a "
                                      f"pipe, socket or device): write the text to a file "
                                      f"first and pass that")
                if not os.access(m, os.R_OK):
                    raise CorpusError(f"input file {m} (from {pattern!r}) is not readable: fix "
                                      f"its permissions or leave it out of the glob")
        if not matches:
            raise CorpusError(f"input {pattern!r} matches no file: check the path, and quote "
                              f"globs so the shell does not expand them")
        files.update(matches)
    return sorted(files)


def output_path_problem(path: str, *, directory: bool) -> Optional[str]:
    """Why a tool could not write its output at `path`, or None; checked before any work.

    The output is a file (`directory=False`, e.g. vocab.txt) or a directory (the data
    builder's `--output_dir`). A file must not be an existing directory, a directory not an
    existing file; the nearest existing folder on the way must be a folder in which a file
    can be created (probed by creating and removing a temporary one, so read-only mounts and
    permissions are caught for root too). Remote URLs are not checked.

    Args:
      path: the output path.
      directory: whether the output is a directory.

    Returns:
      A phrase naming the path and the problem (callers add what to do), or None.

    Example:

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> output_path_problem(d, directory=False) == f"{d} is a directory"
    True
    >>> output_path_problem(os.path.join(d, "new", "vocab.txt"), directory=False) is None
    True
    """
    if _is_remote(path):
        return None
    path = os.path.abspath(os.path.expanduser(path))
    if directory and os.path.exists(path) and not os.path.isdir(path):
        return f"{path} is a file, not a directory"
    if not directory and os.path.isdir(path):
        return f"{path} is a directory"
    folder = path if directory else os.path.dirname(path)
    while not os.path.exists(folder) and not os.path.islink(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f"{folder} (on the way to {path}) is not a directory"
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-probe", suffix=f".tmp-{os.getpid()}",
                                         dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as e:
        return f"cannot create files in {folder} ({e.strerror or e})"
    return None


def _open_binary(path: str):
    if _is_remote(path):
        import tensorflow as tf

        raw = tf.io.gfile.GFile(path, "rb")
    else:
        raw = open(path, "rb")
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


# How much of each file (decompressed) `check_text_file` inspects.
SNIFF_BYTES = 32 * 1024
# A sample with more than this share of non-text bytes (invalid UTF-8, C0 controls other than
# tab, newline, carriage return, form feed, vertical tab and escape), and at least
# `_MIN_BAD_BYTES` of them, is not text. Latin-1 prose has a few percent, GBK or binary data
# far more.
MAX_NON_TEXT_SHARE = 0.2
_MIN_BAD_BYTES = 8
_CONTROL = re.compile(r"[\x01-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_INVALID = re.compile(r"[\udc80-\udcff]")  # undecodable bytes under `surrogateescape`
# Start-of-file signatures named in the messages.
_MAGIC = ((b"\x7fELF", "an ELF executable"), (b"\x1f\x8b", "gzip data"),
          (b"PK\x03\x04", "a zip archive"), (b"%PDF", "a PDF document"),
          (b"\x89PNG", "a PNG image"))
_BOMS = ((b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def _non_text_reason(sample: bytes, at_eof: bool) -> Optional[str]:
    """Why the first bytes of a file are not UTF-8 text, or None when they are."""
    if not sample:
        return None
    for bom, encoding in _BOMS:
        if sample.startswith(bom):
            return f"is {encoding} text, not UTF-8: re-save it as UTF-8"
    if b"\x00" in sample:
        kind = next((name for magic, name in _MAGIC if sample.startswith(magic)), None)
        what = kind or "binary data (a TFRecord, an executable or another non-text format)"
        hint = ("; if it is compressed text, name it *.gz" if kind == "gzip data" else "")
        return (f"holds NUL bytes in its first {len(sample)} bytes: it is {what}, not "
                f"text{hint}")
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    text = decoder.decode(sample, final=at_eof)
    bad = len(_INVALID.findall(text)) + len(_CONTROL.findall(text))
    if bad >= _MIN_BAD_BYTES and bad > MAX_NON_TEXT_SHARE * len(sample):
        kind = next((name for magic, name in _MAGIC if sample.startswith(magic)), None)
        what = f"it is {kind}" if kind else "it is binary or in another encoding"
        return (f"is not UTF-8 text ({100 * bad / len(sample):.0f}% of its first "
                f"{len(sample)} bytes are not UTF-8 text: {what}); convert it to UTF-8 "
                f"(e.g. iconv -f GBK -t UTF-8) or leave it out of the input")
    return None


# TensorFlow file-system errors that say the file itself is bad or absent; every other one
# (unavailable, deadline exceeded, aborted, internal, ...) may pass on a retry.
_PERMANENT_TF_ERRORS = ("NotFoundError", "PermissionDeniedError", "InvalidArgumentError",
                        "DataLossError", "OutOfRangeError", "UnimplementedError",
                        "FailedPreconditionError")


def _read_error(path: str, e: BaseException) -> CorpusError:
    if type(e).__module__.startswith("tensorflow"):  # tf.errors.OpError (remote files)
        error = CorpusError(f"cannot read input file {path}: {getattr(e, 'message', e)}; "
                            f"check the URL")
        error.transient = type(e).__name__ not in _PERMANENT_TF_ERRORS
        return error
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return CorpusError(f"cannot read input file {path}: {reason}; check that it exists, is "
                       f"readable and (for .gz) is complete gzip")


@contextlib.contextmanager
def _reading(path: str):
    """Turns a failure to read `path` (local, gzip or remote) into one CorpusError line."""
    try:
        yield
    except CorpusError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        raise _read_error(path, e) from None
    except Exception as e:  # tf.errors.OpError from remote file systems.
        if type(e).__module__.startswith("tensorflow"):
            raise _read_error(path, e) from None
        raise


def check_text_file(path: str) -> bool:
    """Refuses a file that is not UTF-8 text; tells whether it holds any text.

    The first `SNIFF_BYTES` (decompressed, for `.gz`) are checked: NUL bytes, a UTF-16 byte
    order mark, or more than `MAX_NON_TEXT_SHARE` of bytes that are invalid UTF-8 or control
    characters mean the file is not text. A file whose sample is blank is read on until
    its first non-blank character (or its end).

    Args:
      path: a file, local or remote, `.gz` or not.

    Returns:
      Whether the file holds a non-blank character.

    Raises:
      CorpusError: the file is binary or not UTF-8 text, or cannot be read; one line naming
        it and what to do.

    Example:

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "a.txt"), "w", encoding="utf-8") as f:
    ...     _ = f.write("北京\\n")
    >>> check_text_file(os.path.join(d, "a.txt"))
    True
    >>> with open(os.path.join(d, "b.bin"), "wb") as f:
    ...     _ = f.write(b"\\x7fELF\\x02\\x01\\x01\\x00\\x00")
    >>> check_text_file(os.path.join(d, "b.bin"))
    Traceback (most recent call last):
    ...
    electra_tf.text.corpus.CorpusError: input file ... holds NUL bytes ...
    """
    with _reading(path), _open_binary(path) as f:
        sample = f.read(SNIFF_BYTES)
        at_eof = len(sample) < SNIFF_BYTES
        reason = _non_text_reason(sample, at_eof)
        if reason:
            raise CorpusError(f"input file {path} {reason}")
        if sample.decode("utf-8", errors="replace").strip():
            return True
        while not at_eof:  # A blank start: read on until some text (or the end).
            chunk = f.read(1 << 20)
            at_eof = not chunk
            if chunk.decode("utf-8", errors="replace").strip():
                return True
        return False


def describe_files(paths: Sequence[str], limit: int = 3) -> str:
    """`a, b, c and 4 more`: the first few of a list of paths, for one-line messages."""
    paths = list(paths)
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def check_inputs(files: Sequence[str]) -> list[str]:
    """Checks every input file with `check_text_file` before any work is done.

    Args:
      files: the input files (`expand_inputs`).

    Returns:
      The files that hold text (empty and blank files are left out of the result, not
      refused: a corpus may contain some).

    Raises:
      CorpusError: a file is binary or not UTF-8 text, or no file holds any text (naming the
        inputs): a build from them would hold no example.
    """
    with_text = [path for path in files if check_text_file(path)]
    if not with_text:
        raise CorpusError(
            f"the input holds no text: {len(files)} file(s) ({describe_files(files)}) are empty "
            f"or blank; give text files (one sentence or paragraph per line)")
    return with_text


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


# --- The embedded corpus -------------------------------------------------------------------

# Bump when the extraction changes, so that stale caches are rebuilt, not reused.
_EMBEDDED_VERSION = 1
_EMBEDDED_NUM_FILES = 4
_SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"}
# Comments that are markup, not prose: shebangs, coding cookies, tool pragmas, rulers.
_PRAGMA = re.compile(r"^(!|-\*-|(vim?|emacs|type|noqa|pragma|pylint|fmt|isort|mypy)\s*:)|"
                     r"coding[:=]")
_RULER = re.compile(r"^[\W_]*$")


def _paragraphs(text: str) -> list[str]:
    """Splits text on blank lines and joins each paragraph's wrapped lines with spaces."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        joined = " ".join(line.strip() for line in block.splitlines() if line.strip())
        if joined and not _RULER.match(joined):
            out.append(joined)
    return out


def _docstrings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, paragraph) of every module, class and function docstring."""
    found = []
    # Docstrings belong to statements, so walk statement bodies only: skipping the expression
    # nodes (most of a tree) makes this ~5x faster than `ast.walk`.
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                line = node.body[0].lineno if node.body else getattr(node, "lineno", 0)
                found.extend((line, p) for p in _paragraphs(doc))
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                stack.extend(c for c in children if isinstance(c, ast.AST))
    return found


def _comments(source: bytes) -> list[tuple[int, str]]:
    """(line, paragraph) of comment blocks: consecutive `#` lines form one paragraph."""
    found = []
    block: list[str] = []
    block_start = last_line = -10
    tokens = tokenize.tokenize(io.BytesIO(source).readline)

    def flush():
        if block:
            found.extend((block_start, p) for p in _paragraphs("\n".join(block)))

    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        text = tok.string.lstrip("#").strip()
        line = tok.start[0]
        if _PRAGMA.search(text[:40]) and line <= 3 or _PRAGMA.match(text):
            continue
        if line != last_line + 1:
            flush()
            block, block_start = [], line
        # An empty comment line ("#") separates paragraphs inside a block.
        block.append(text)
        last_line = line
    flush()
    return found


def _module_document(path: str, skipped: collections.Counter) -> list[str]:
    """The paragraphs of one source file, in source order (docstrings and comments merged)."""
    try:
        with open(path, "rb") as f:
            source = f.read()
        tree = ast.parse(source, filename=path)
        items = _docstrings(tree) + _comments(source)
    except (SyntaxError, ValueError, UnicodeDecodeError, tokenize.TokenError,
            IndentationError, OSError, RecursionError):
        # Some stdlib files are deliberately invalid (lib2to3 data, bad-encoding samples).
        skipped["unparsable_modules"] += 1
        return []
    items.sort(key=lambda item: item[0])  # Stable: equal lines keep extraction order.
    return [p for _, p in items]


def _stdlib_sources(stdlib: str) -> list[str]:
    """Sorted .py files of the standard library, without tests, IDLE and site-packages."""
    files = []
    for root, dirs, names in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        files.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(".py"))
    return sorted(files, key=lambda p: os.path.relpath(p, stdlib))


def _embedded_dir(cache_dir: str, stdlib: str) -> str:
    key = f"{_EMBEDDED_VERSION}|{sys.version}|{os.path.realpath(stdlib)}"
    tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    name = f"stdlib_docs_py{sys.version_info.major}{sys.version_info.minor}_{tag}"
    return os.path.join(cache_dir, name)


def embedded_corpus_stats(cache_dir: str) -> dict:
    """Size of the embedded corpus (builds it if needed).

    Args:
      cache_dir: as for `embedded_corpus_files`.

    Returns:
      dict with `files`, `bytes`, `megabytes`, `documents`, `lines`, `words`,
      `modules_read`, `unparsable_modules`, `python` and `paths`.
    """
    embedded_corpus_files(cache_dir)
    directory = _embedded_dir(cache_dir, sysconfig.get_paths()["stdlib"])
    with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["paths"] = [os.path.join(directory, n) for n in manifest["file_names"]]
    return manifest


def embedded_corpus_files(cache_dir: str) -> list[str]:
    """The embedded default corpus: Python standard-library docstrings and comments.

    Written once per Python installation under `cache_dir` (each file and the manifest via a
    temporary name and rename, the manifest last, so an interrupted build is simply redone);
    later calls return the cached paths. The walk is sorted, so the text is deterministic for
    a given Python version.

    Args:
      cache_dir: directory for the cached text files (created if missing).

    Returns:
      Paths of the text files (one paragraph per line, a blank line between modules).

    Raises:
      CorpusError: the cache cannot be written (not writable, a file in the way, disk full).
    """
    try:
        return _embedded_corpus_files(cache_dir)
    except OSError as e:
        raise CorpusError(
            f"cannot write the embedded corpus cache under {cache_dir}: "
            f"{e.strerror or e}{' (' + e.filename + ')' if e.filename else ''}; pass "
            f"--cache_dir=a writable directory with a few MB free, or --input with your own "
            f"text") from None


def _embedded_corpus_files(cache_dir: str) -> list[str]:
    stdlib = sysconfig.get_paths()["stdlib"]
    directory = _embedded_dir(cache_dir, stdlib)
    manifest_path = os.path.join(directory, "manifest.json")
    if os.path.exists(manifest_path):
        try:
            with open(manifest_path, encoding="utf-8") as f:
                names = json.load(f)["file_names"]
        except (ValueError, KeyError, TypeError):
            names = None  # A damaged manifest: the corpus is simply rebuilt.
        paths = [os.path.join(directory, n) for n in names or []]
        if names and all(isinstance(n, str) for n in names) and all(
                os.path.exists(p) for p in paths):
            return paths
    os.makedirs(directory, exist_ok=True)
    from electra_tf.files import remove_stale_temporaries

    remove_stale_temporaries(directory)  # What a killed earlier build left.

    skipped = collections.Counter()
    documents = []
    sources = _stdlib_sources(stdlib)
    for path in sources:
        paragraphs = _module_document(path, skipped)
        if paragraphs:
            documents.append("\n".join(paragraphs) + "\n")
    if not documents:
        raise CorpusError(f"found no Python sources under {stdlib}: the standard library "
                          f"sources are missing; pass --input with your own text instead")

    # Split into a few files of similar size at module boundaries (so every file is a valid
    # corpus on its own and data builders can shard by file).
    total = sum(len(d) for d in documents)
    shards: list[list[str]] = [[] for _ in range(_EMBEDDED_NUM_FILES)]
    done = 0
    for doc in documents:
        shard = min(_EMBEDDED_NUM_FILES - 1, done * _EMBEDDED_NUM_FILES // total)
        shards[shard].append(doc)
        done += len(doc)
    names, n_bytes, n_lines, n_words = [], 0, 0, 0
    for i, shard in enumerate(shards):
        name = f"stdlib_docs-{i:05d}-of-{_EMBEDDED_NUM_FILES:05d}.txt"
        text = "\n".join(shard)
        atomic_write_text(os.path.join(directory, name), text)
        names.append(name)
        n_bytes += len(text.encode("utf-8"))
        n_lines += sum(doc.count("\n") for doc in shard)
        n_words += len(text.split())
    manifest = {
        "file_names": names,
        "files": len(names),
        "bytes": n_bytes,
        "megabytes": round(n_bytes / 1e6, 3),
        "documents": len(documents),
        "lines": n_lines,
        "words": n_words,
        "modules_read": len(sources),
        "unparsable_modules": skipped["unparsable_modules"],
        "python": sys.version.split()[0],
        "sha256": hashlib.sha256("".join(documents).encode("utf-8")).hexdigest(),
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return [os.path.join(directory, n) for n in names]


def embedded_paragraph_kinds(file_index: int = -1) -> list[tuple[str, str]]:
    r"""A small real labelled task from the embedded corpus: is a paragraph a docstring or a
    comment?

    Returns the paragraphs of the modules that make up one file of the embedded corpus
    (the same split `embedded_corpus_files` makes; by default the last file, which the demo
    holds out of pretraining), each with its kind, in source order.

    Args:
      file_index: which of the embedded corpus files' modules to use.

    Returns:
      list of (paragraph, "docstring" | "comment").

    Example:

    >>> pairs = embedded_paragraph_kinds()
    >>> sorted({kind for _, kind in pairs})
    ['comment', 'docstring']
    """
    sources = _stdlib_sources(sysconfig.get_paths()["stdlib"])
    skipped = collections.Counter()
    documents = []
    for path in sources:
        paragraphs = _module_document(path, skipped)
        if paragraphs:
            documents.append((path, len("\n".join(paragraphs) + "\n")))
    total = sum(size for _, size in documents)
    wanted = range(_EMBEDDED_NUM_FILES)[file_index]
    out, done = [], 0
    for path, size in documents:
        # The same assignment of modules to files as `embedded_corpus_files`.
        shard = min(_EMBEDDED_NUM_FILES - 1, done * _EMBEDDED_NUM_FILES // total)
        done += size
        if shard != wanted:
            continue
        with open(path, "rb") as f:
            source = f.read()
        items = [(line, p, "docstring") for line, p in _docstrings(ast.parse(source))]
        items += [(line, p, "comment") for line, p in _comments(source)]
        items.sort(key=lambda item: item[0])
        out.extend((p, kind) for _, p, kind in items)
    return out
