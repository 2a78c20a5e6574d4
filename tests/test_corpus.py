"""Corpus reading (globs, documents, bad input counts) and the embedded stdlib corpus."""

import ast
import collections
import gzip
import hashlib
import os
import subprocess
import sys
import sysconfig

import pytest

from electra_tf.text import corpus, embedded_corpus
from electra_tf.text.corpus import CorpusError, expand_inputs
from electra_tf.text.documents import document_cuts, iter_document_range, iter_documents

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def test_expand_inputs_sorts_dedups_and_accepts_lists(tmp_path):
    for name in ["b.txt", "a.txt", "c.txt.gz", "skip.md"]:
        write(tmp_path / name, "x\n")
    (tmp_path / "sub.txt").mkdir()  # A directory matching the glob is not an input.
    got = expand_inputs(f"{tmp_path}/*.txt,{tmp_path}/a.txt,{tmp_path}/*.gz")
    assert got == [str(tmp_path / n) for n in ["a.txt", "b.txt", "c.txt.gz"]]
    assert expand_inputs([str(tmp_path / "b.txt"), str(tmp_path / "a.txt")]) == got[:2]


@pytest.mark.parametrize("pattern", ["nothing/*.txt", "missing.txt", "dir"])
def test_expand_inputs_errors_name_the_glob(tmp_path, pattern):
    (tmp_path / "dir").mkdir()
    full = str(tmp_path / pattern)
    with pytest.raises(CorpusError) as err:
        expand_inputs(full)
    message = str(err.value)
    assert full in message and "matches no file" in message and "\n" not in message
    with pytest.raises(CorpusError, match="no input given"):
        expand_inputs(" , ")


def test_iter_documents_splits_and_counts(tmp_path):
    path = write(tmp_path / "c.txt",
                 b"\n"                       # leading blank: an empty document
                 b"  first line  \nsecond\n"
                 b"\n\n\n"                   # two extra separators: two empty documents
                 b"bad \xff\xfe byte\n"      # invalid UTF-8: replaced and counted
                 b"\t\n"                     # whitespace-only = blank
                 b"last\n"
                 b"tail without newline")
    stats = collections.Counter()
    docs = list(iter_documents(path, stats=stats))
    assert docs == [["first line", "second"], ["bad \ufffd\ufffd byte"],
                    ["last", "tail without newline"]]
    assert stats == {"documents": 3, "lines": 5, "invalid_utf8_lines": 1,
                     "empty_documents": 3}
    # One document per file when blank lines do not separate documents.
    one = list(iter_documents(path, blank_lines_separate_docs=False))
    assert one == [["first line", "second", "bad \ufffd\ufffd byte", "last",
                    "tail without newline"]]


def test_iter_documents_empty_files_and_gzip(tmp_path):
    stats = collections.Counter()
    assert list(iter_documents(write(tmp_path / "e.txt", b""), stats=stats)) == []
    assert list(iter_documents(write(tmp_path / "w.txt", b"\n \n\t\n"), stats=stats)) == []
    assert stats == {"empty_files": 2}
    text = "doc one\nline two\n\ndoc two\n"
    gz = tmp_path / "c.txt.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(text)
    plain = write(tmp_path / "c.txt", text)
    assert list(iter_documents(str(gz))) == list(iter_documents(plain)) == [
        ["doc one", "line two"], ["doc two"]]


def test_iter_documents_unreadable_file_is_one_line_error(tmp_path):
    bad = write(tmp_path / "broken.txt.gz", gzip.compress(b"some text\n" * 100)[:20])
    with pytest.raises(CorpusError) as err:
        list(iter_documents(bad))
    assert bad in str(err.value) and "\n" not in str(err.value)
    missing = str(tmp_path / "gone.txt")
    with pytest.raises(CorpusError, match="gone.txt"):
        list(iter_documents(missing))


def _mixed_documents(n, seed=0):
    """English and Chinese documents with the corners of the format: CRLF lines, lines of
    spaces or ideographic spaces (blank), doubled separators, invalid UTF-8."""
    import random

    r = random.Random(seed)
    words = "the cat sat on a mat while 北京 上海 是 中国的 城市。".split()
    out = []
    for i in range(n):
        lines = [" ".join(r.choice(words) for _ in range(r.randint(1, 25))).encode("utf-8")
                 for _ in range(r.randint(1, 6))]
        if i % 7 == 0:
            lines[0] += b" caf\xe9"  # invalid UTF-8
        if i % 5 == 0:
            lines = [line + b"\r" for line in lines]  # CRLF
        separator = [b"", b"", b"   ", "\u3000".encode("utf-8"), b"\r"][i % 5]
        out.append(b"\n".join(lines) + b"\n" + separator + b"\n"
                   + (b"\n" if i % 9 == 0 else b""))
    return b"".join(out)


@pytest.mark.parametrize("split_bytes", [700, 4096])
def test_ranges_of_a_file_yield_exactly_its_documents(tmp_path, split_bytes):
    path = write(tmp_path / "mixed.txt", b"\n\n" + _mixed_documents(300) + b"last line")
    whole_stats = collections.Counter()
    whole = list(iter_documents(path, stats=whole_stats))
    cuts = document_cuts(path, split_bytes)
    assert len(cuts) >= 5 and cuts == sorted(set(cuts))
    bounds = [0] + cuts + [None]
    parts, range_stats = [], collections.Counter()
    for start, end in zip(bounds, bounds[1:]):
        documents = list(iter_document_range(path, start, end, stats=range_stats))
        assert documents  # every range holds a document
        parts.extend(documents)
    assert parts == whole and range_stats == whole_stats
    assert whole_stats["invalid_utf8_lines"] > 0 and whole_stats["empty_documents"] > 0
    # Near each nominal offset: every cut is at most one document past a multiple.
    assert all(cut % split_bytes < 1000 or split_bytes < 1000 for cut in cuts)
    # Never cut: a file that is one document, a gzip file, a file under split_bytes.
    assert document_cuts(path, split_bytes, blank_lines_separate_docs=False) == []
    gz = tmp_path / "mixed.txt.gz"
    gz.write_bytes(gzip.compress(open(path, "rb").read()))
    assert document_cuts(str(gz), split_bytes) == []
    assert document_cuts(path, os.path.getsize(path)) == []
    with pytest.raises(ValueError, match="gzip"):
        list(iter_document_range(str(gz), cuts[0], None))


def test_no_cut_without_a_document_boundary_in_reach(tmp_path):
    # One long document (no blank line), then short ones: cuts only where documents end.
    text = ("北京是首都。" * 40 + "\n") * 2000 + "\n" + "the cat.\n\n" * 2000
    path = write(tmp_path / "long.txt", text)
    start_of_short = len((("北京是首都。" * 40 + "\n") * 2000 + "\n").encode("utf-8"))
    cuts = document_cuts(path, 100000)
    # No cut inside the long document; the first at the first boundary, then one per
    # nominal offset, each at the start of a short document.
    assert cuts[0] == start_of_short and all(cut > start_of_short for cut in cuts[1:])
    assert all((cut - start_of_short) % len("the cat.\n\n") == 0 for cut in cuts)


def test_ranges_of_a_remote_crlf_file_yield_exactly_its_documents():
    """Remote files (here TensorFlow's in-memory ram:// file system) are read through
    tf.io.gfile, whose readline drops carriage returns; ranges must still end exactly at
    their cuts (no document read twice) on CRLF text, English and Chinese."""
    import tensorflow as tf

    path = "ram://corpus/crlf.txt"
    text = "".join(f"line {i} of doc {i // 3}\r\n第{i}句。\r\n" + ("\r\n" if i % 3 == 2 else "")
                   for i in range(3000))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(text.encode("utf-8"))
    whole_stats, range_stats = collections.Counter(), collections.Counter()
    whole = list(iter_documents(path, stats=whole_stats))
    cuts = document_cuts(path, 8192)
    assert len(cuts) >= 5
    parts = []
    bounds = [0] + cuts + [None]
    for start, end in zip(bounds, bounds[1:]):
        parts.extend(iter_document_range(path, start, end, stats=range_stats))
    assert parts == whole and range_stats == whole_stats and len(whole) == 1000


def test_remote_read_errors_are_transient_unless_the_file_is_bad():
    """The Beam executor skips a bad input but lets the runner retry a storage hiccup."""
    import tensorflow as tf

    unavailable = corpus._read_error("gs://b/x.txt", tf.errors.UnavailableError(
        None, None, "backend unavailable"))
    missing = corpus._read_error("gs://b/x.txt", tf.errors.NotFoundError(None, None, "gone"))
    local = corpus._read_error("x.txt", OSError(5, "Input/output error"))
    assert (unavailable.transient, missing.transient, local.transient) == (True, False, False)
    assert "cannot read input file gs://b/x.txt" in str(unavailable)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    return cache, embedded_corpus.embedded_corpus_files(cache)


def test_embedded_corpus_is_substantial(embedded):
    cache, paths = embedded
    stats = embedded_corpus.embedded_corpus_stats(cache)
    assert stats["paths"] == paths and len(paths) == stats["files"] == 4
    counts = collections.Counter()
    n_bytes = 0
    for path in paths:
        n_bytes += os.path.getsize(path)
        for _ in iter_documents(path, stats=counts):
            pass
    # Measured on CPython 3.11: 3.4 MB, 657 modules (documents), 27.9k lines, 550k words.
    assert n_bytes == stats["bytes"] > 2_000_000
    assert counts["documents"] == stats["documents"] > 500
    assert counts["lines"] == stats["lines"] > 15_000
    assert stats["words"] > 300_000
    assert counts["invalid_utf8_lines"] == 0 and counts["empty_documents"] == 0


def test_embedded_corpus_content(embedded):
    _, paths = embedded
    lines = set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines.update(line.rstrip("\n") for line in f)
    stdlib = sysconfig.get_paths()["stdlib"]
    # A wrapped docstring paragraph comes out as one line (json's module docstring).
    with open(os.path.join(stdlib, "json", "__init__.py"), "rb") as f:
        doc = ast.get_docstring(ast.parse(f.read()))
    first = " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())
    assert first in lines and len(first) > 80
    # Comments are included: textwrap.py's first multi-line comment block, joined.
    with open(os.path.join(stdlib, "textwrap.py"), encoding="utf-8") as f:
        source = f.read().splitlines()
    block = []
    for i, line in enumerate(source):
        if line.strip().startswith("#") and i + 1 < len(source) \
                and source[i + 1].strip().startswith("#") and not block:
            j = i
            while j < len(source) and source[j].strip().startswith("#"):
                text = source[j].strip().lstrip("#").strip()
                if not text:
                    break
                block.append(text)
                j += 1
    assert len(block) >= 2 and " ".join(block) in lines
    # Tests, IDLE and installed packages are not read.
    sources = embedded_corpus._stdlib_sources(stdlib)
    assert sources and not any(
        part in ("test", "tests", "idlelib", "site-packages")
        for path in sources for part in os.path.relpath(path, stdlib).split(os.sep))


def test_embedded_corpus_cached_deterministic_and_imports_nothing(embedded, tmp_path):
    cache, paths = embedded
    mtimes = [os.stat(p).st_mtime_ns for p in paths]
    assert embedded_corpus.embedded_corpus_files(cache) == paths  # Cached: not rewritten.
    assert [os.stat(p).st_mtime_ns for p in paths] == mtimes
    # A fresh build in a clean process gives the same bytes and imports no stdlib module it
    # reads (`antigravity` would open a web browser, `turtle` needs tkinter).
    code = ("import sys; from electra_tf.text import embedded_corpus; "
            f"embedded_corpus.embedded_corpus_files({str(tmp_path)!r}); "
            "print(sorted(m for m in ('antigravity', 'turtle', 'this', 'tkinter', 'smtplib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert out.stdout.strip() == "[]"
    fresh = embedded_corpus.embedded_corpus_files(str(tmp_path))

    def digest(files):
        h = hashlib.sha256()
        for p in files:
            with open(p, "rb") as f:
                h.update(f.read())
        return h.hexdigest()

    assert [os.path.basename(p) for p in fresh] == [os.path.basename(p) for p in paths]
    assert digest(fresh) == digest(paths)
    # No temporary files are left behind.
    leftovers = [n for n in os.listdir(os.path.dirname(fresh[0])) if ".tmp" in n]
    assert leftovers == []
