"""The embedded default corpus: the docstrings and comments of the Python standard library.

`embedded_corpus_files(cache_dir)` makes a small corpus that every installation has: the
docstrings and comments of the Python standard library, read with `ast` and `tokenize` (no
module is imported, so nothing is executed), one paragraph per line, one document per module.
It lets `tools/build_vocab.py`, the data builder and the tests run without downloading text.
`embedded_corpus_stats` gives its size; `embedded_paragraph_kinds` makes a small labelled
task of the same text (is a paragraph a docstring or a comment?).
"""

from __future__ import annotations

import ast
import collections
import hashlib
import io
import json
import os
import re
import sys
import sysconfig
import tokenize

from electra_tf.files import atomic_write_text
from electra_tf.text.corpus import CorpusError

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
