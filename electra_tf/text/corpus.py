"""Reading text corpora: the input files, and the checks that refuse what is not text.

Corpus format (reference `build_pretraining_dataset.py`; docs/architecture.md, "Pretraining data"): plain UTF-8 text files
(optionally `.gz`), one sentence or paragraph per line; a blank line ends a document (unless
`blank_lines_separate_docs=False`) and so does the end of a file. `expand_inputs` turns
globs into input files and `output_path_problem` checks a tool's output before any work.
Reading a file's documents, whole or in byte ranges, is `text/documents.py`; the embedded
default corpus (standard-library docstrings and comments) is `text/embedded_corpus.py`. Both
import this module and are re-exported here lazily (`corpus.iter_documents`,
`corpus.embedded_corpus_files`, ...).

Junk is refused, not read as text (docs/architecture.md, "Pretraining data"): the start of
every file (after gzip decompression) is sniffed by `check_text_file`; NUL bytes (executables,
TFRecords, UTF-16) or a high share of bytes that are not UTF-8 text end the build with a
`CorpusError` naming the file. `check_inputs` runs that on every input before any work and
refuses inputs that hold no text at all.
"""

from __future__ import annotations

import codecs
import contextlib
import glob as glob_lib
import gzip
import os
import re
import tempfile
import zlib
from typing import Optional, Sequence, Union

from electra_tf._lazy import lazy_exports


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


# Reading documents and the embedded corpus live in their own modules, which import this one:
# re-exported lazily (PEP 562), so that `corpus.iter_documents` and the like keep working.
_EXPORTS = {
    "iter_documents": "electra_tf.text.documents",
    "iter_document_range": "electra_tf.text.documents",
    "file_size": "electra_tf.text.documents",
    "document_cuts": "electra_tf.text.documents",
    "CUT_SEARCH_BYTES": "electra_tf.text.documents",
    "embedded_corpus_files": "electra_tf.text.embedded_corpus",
    "embedded_corpus_stats": "electra_tf.text.embedded_corpus",
    "embedded_paragraph_kinds": "electra_tf.text.embedded_corpus",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
