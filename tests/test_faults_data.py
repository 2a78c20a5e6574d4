"""Fault injection for the two data tools: tools/build_vocab.py and tools/build_pretraining_data.py.

Every bad input ends with one line on stderr and a documented exit status, found before any
work where it can be, and leaves nothing half-written in view (docs/architecture.md,
"Pretraining data"). The binaries run as subprocesses (their absl flags collide in one
process); library calls are used where they prove more (what ran before the refusal).

| input | expected outcome | test |
|---|---|---|
| empty and blank (incl. U+3000) input files | both tools: exit 2, one line naming the files, "no text"; no output dir | test_empty_and_blank_inputs_are_refused_naming_them |
| text that tokenizes to nothing (U+200B only) | `DataError` "gave no example"; output dir not left behind | test_text_that_tokenizes_to_nothing_is_not_published |
| one huge English line, ~470-char Chinese paragraph lines, a 100-char sentence with no end | every token of the text is in an example (exact multiset); `text_tokens` = all, `truncated_tokens` 0, `split_lines` = long lines | test_long_lines_lose_no_token_english_and_chinese |
| the same with `--reference_truncation` | exit 0; one stderr warning line (> 1% truncated); `truncated_tokens` = text - kept | test_reference_truncation_counts_and_warns |
| build_vocab `--output` = a directory / under a file / in a read-only dir | `VocabError` before any input is read or learned; CLI: exit 2, one line | test_build_vocab_output_problems_are_found_before_learning |
| build_pretraining_data `--output_dir` = a file / under a file / read-only | `DataError` before the vocabulary is read; CLI: exit 2, one line | test_build_pretraining_data_output_problems_are_found_first |
| build_vocab onto a full disk | exit 2, one line "No space left on device"; no vocab.txt, no temporary; rerun after freeing space: exit 0, mode 0644 | test_full_disk_build_vocab_leaves_nothing_and_rerun_works |
| build_pretraining_data (2 workers) onto a full disk | exit 2, one line; no shard, no dataset.json, no `.partial`; rerun after freeing space: exit 0, `shard_bytes` right | test_full_disk_build_pretraining_data_publishes_nothing_and_rerun_works |
| ELF binary, TFRecord glob, GBK Chinese, UTF-16, gzip of a binary | both tools: exit 2, one line naming the file; `iter_documents` raises `CorpusError`; .gz of text and Latin-1 with a few bad bytes still read | test_binary_inputs_are_refused_naming_the_file |
| stale `*.tmp-PID` of dead processes beside vocab.txt / in the output dir and `.build/` | removed at start; a live process's kept; vocab.txt mode 0644 under umask 077 | test_stale_temporaries_are_removed_and_vocab_is_0644, test_builder_removes_stale_temporaries |
| finished build | `dataset.json` has `shard_bytes` = each shard's size; a shard cut short is rebuilt; an older sidecar without the key is still complete and valid | test_sidecar_records_shard_bytes |
| `dataset.json` in the output dir that is not JSON | `DataError` naming it | test_corrupt_sidecar_in_output_dir_is_one_line_error |
| .gz whose deflate stream is corrupt | `CorpusError` naming it (was `zlib.error`) | test_corrupt_gzip_stream_is_one_line_error |
| embedded corpus cache in a read-only place | `CorpusError` naming it and --cache_dir | test_unwritable_embedded_corpus_cache_is_one_line_error |
| a FIFO as input | `CorpusError` "not a regular file" (a pipe would be read once, then hang) | test_pipe_input_is_refused |
| num_shards above 10000 | `DataError` before any work | test_too_many_shards_are_refused |
| Ctrl-C during build_vocab's learning | exit 130, one line, no vocab.txt | test_interrupt_is_one_line |
"""

import collections
import contextlib
import glob
import gzip
import json
import os
import random
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest

from electra_tf.data import pretraining_builder
from electra_tf.data.pretraining_builder import build_pretraining_data
from electra_tf.data.pretraining_reader import DataError, check_sidecar, read_sidecar
from electra_tf.text import corpus, documents, embedded_corpus, vocab_learning
from electra_tf.text.corpus import CorpusError
from electra_tf.text.documents import iter_documents
from electra_tf.text.vocab import SPECIAL_TOKENS, VocabError, load_vocab

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DATA = os.path.join(REPO, "tools", "build_pretraining_data.py")
BUILD_VOCAB = os.path.join(REPO, "tools", "build_vocab.py")
L = 32
WORDS = ("the cat dog sat ran on a mat log red blue big small quick slow fox jumps over "
         "lazy bird sings tree under house near river").split()
HANZI = list("北京上海是中国的首都也一座历史悠久城市最大我们他说走吧了天黑很好你去过吗人山水月")
PUNCT = list(".,!?;") + list("。！？；，：“”")
DEAD_PID = 999999999  # above any pid_max: never a live process


def _vocab_tokens():
    return list(SPECIAL_TOKENS) + WORDS + ["##s"] + PUNCT + HANZI


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_data")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(_vocab_tokens()) + "\n", encoding="utf-8")
    text = root / "text.txt"
    text.write_text("the cat sat on a mat.\n北京是中国的首都。\n\nthe dog ran.\n上海很大！\n",
                    encoding="utf-8")
    return {"root": root, "vocab": str(vocab), "text": str(text)}


_LOG_LINE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} |\d{4}-\d\d-\d\d )")


def _run(tool, *args, timeout=300, umask=None):
    """Runs a tool; returns (exit status, stdout, stderr lines other than TF's C++ logs)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    extra = ["--noprogress"] if tool == BUILD_DATA else []
    proc = subprocess.run([sys.executable, tool, *extra, *map(str, args)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not _LOG_LINE.match(ln)]
    return proc.returncode, proc.stdout, lines


def _one_line_error(result, prog, *fragments, status=2):
    rc, stdout, lines = result
    assert rc == status, (rc, stdout, lines)
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), lines
    assert "Traceback" not in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _visible(directory):
    return sorted(n for n in os.listdir(directory) if not n.startswith("."))


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory no file can be created in, for root too (a read-only tmpfs mount)."""
    path = tmp_path / "read_only"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(directory):
    """Fills the file system of `directory` with a file `filler`; returns its path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for block in (4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * block):
                    pass
    finally:
        os.close(fd)
    return path


# --- 2. Empty data ------------------------------------------------------------------------


def test_empty_and_blank_inputs_are_refused_naming_them(tmp_path, ws):
    (tmp_path / "a_empty.txt").write_bytes(b"")
    (tmp_path / "b_blank.txt").write_text("\n  \n\t\n\u3000\n", encoding="utf-8")
    out = tmp_path / "out"
    line = _one_line_error(
        _run(BUILD_DATA, f"--input={tmp_path}/*.txt", f"--vocab={ws['vocab']}",
             f"--output_dir={out}", f"--max_seq_length={L}"),
        "build_pretraining_data", "no text", "a_empty.txt", "b_blank.txt")
    assert "2 file(s)" in line
    assert not out.exists()
    _one_line_error(_run(BUILD_VOCAB, f"--input={tmp_path}/*.txt", f"--output={out}/v.txt",
                         "--vocab_size=100"),
                    "build_vocab", "no text", "a_empty.txt", "b_blank.txt")
    assert not out.exists()


def test_text_that_tokenizes_to_nothing_is_not_published(tmp_path, ws):
    (tmp_path / "zw.txt").write_text("\u200b\u200b\n\u200d\n\n\u200b\n", encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(DataError) as e:
        build_pretraining_data(str(tmp_path / "zw.txt"), ws["vocab"], str(out),
                               max_seq_length=L)
    assert "gave no example" in str(e.value) and "zw.txt" in str(e.value)
    assert "\n" not in str(e.value)
    assert not out.exists()


# --- 9. Long lines: no text lost ------------------------------------------------------------


def _long_line_corpus(directory):
    """An English file of one huge line, a Chinese file of ~470-character paragraph lines."""
    r = random.Random(0)
    english = " ".join(" ".join(r.choice(WORDS) for _ in range(r.randint(3, 12)))
                       + r.choice([".", "!", "?"]) for _ in range(300))
    paragraphs = []
    for _ in range(6):
        text = ""
        while len(text) < 470:
            text += "".join(r.choice(HANZI) for _ in range(r.randint(5, 30)))
            text += r.choice(["。", "！", "？", "；", "，"])
        paragraphs.append(text)
    # A "sentence" of 100 characters without an end: cut into pieces of L - 2 tokens.
    paragraphs.append("".join(r.choice(HANZI) for _ in range(100)) + "。好人。")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "en.txt"), "w", encoding="utf-8") as f:
        f.write(english + "\n")
    with open(os.path.join(directory, "zh.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(paragraphs) + "\n")
    return [english] + paragraphs


def _text_tokens_of_examples(out):
    from electra_tf.data.pretraining_reader import pretraining_dataset

    ids = np.concatenate([b["token_ids"].numpy() for b in
                          pretraining_dataset(str(out), 1, L, repeat=False, shuffle=False)])
    return ids


def test_long_lines_lose_no_token_english_and_chinese(tmp_path, ws):
    from electra_tf.text.tokenizer import ElectraTokenizer

    lines = _long_line_corpus(tmp_path / "corpus")
    tokenizer = ElectraTokenizer(ws["vocab"])
    expected = tokenizer.tokenize(lines).flat_values.numpy().tolist()
    assert tokenizer.unk_id not in expected and len(expected) > 4000
    # Cutting at sentence ends changes no token (what the builder relies on), also where
    # quotes, spaces and mixed scripts meet the cuts.
    from electra_tf.data.packing import split_sentences

    tricky = "他说：“走吧。”  我们走了！The cat?! Sat.. 北京； a.b fox! 上海"
    for line in lines + [tricky]:
        assert tokenizer.tokenize([line]).flat_values.numpy().tolist() == \
            tokenizer.tokenize(split_sentences(line)).flat_values.numpy().tolist()
    out = tmp_path / "out"
    sidecar = build_pretraining_data(str(tmp_path / "corpus" / "*.txt"), ws["vocab"], str(out),
                                     max_seq_length=L, num_shards=2)
    ids = _text_tokens_of_examples(out)
    specials = {tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id}
    got = [t for t in ids.ravel().tolist() if t not in specials]
    assert collections.Counter(got) == collections.Counter(expected)
    assert sidecar["text_tokens"] == len(expected)
    assert (sidecar["truncated_tokens"], sidecar["truncated_fraction"]) == (0, 0.0)
    assert sidecar["split_lines"] == len(lines)  # every line is longer than 30 tokens
    assert sidecar["examples"] == len(ids) >= len(expected) // (L - 2)
    # Chinese sentences were kept whole where they fit: some example ends right after 。
    period = tokenizer.vocab.index("。")
    assert any(row[row != tokenizer.pad_id][-2] == period for row in ids)


def test_reference_truncation_counts_and_warns(tmp_path, ws):
    _long_line_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    rc, stdout, lines = _run(BUILD_DATA, f"--input={tmp_path}/corpus/*.txt",
                             f"--vocab={ws['vocab']}", f"--output_dir={out}",
                             f"--max_seq_length={L}", "--num_shards=1", "--reference_truncation")
    assert rc == 0, (rc, lines)
    sidecar = read_sidecar(str(out))
    assert sidecar["reference_truncation"] is True
    ids = _text_tokens_of_examples(out)
    kept = int(np.isin(ids, [0, 2, 3], invert=True).sum())  # not [PAD], [CLS], [SEP]
    assert sidecar["truncated_tokens"] == sidecar["text_tokens"] - kept > 0
    assert sidecar["truncated_fraction"] > 0.01
    assert len(lines) == 1 and lines[0].startswith("build_pretraining_data: warning: "), lines
    assert f"{sidecar['truncated_tokens']} of the text's {sidecar['text_tokens']}" in lines[0]
    assert f"truncated tokens {sidecar['truncated_tokens']}" in stdout


# --- 10. Output problems, found before the work; a full disk --------------------------------


def _output_cases(tmp_path, read_only_dir, directory):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    a_dir = tmp_path / "a_dir"
    a_dir.mkdir(exist_ok=True)
    if directory:
        return [(a_file, "is a file"), (a_file / "sub", "is not a directory"),
                (read_only_dir / "out", "cannot create files in")]
    return [(a_dir, "is a directory"), (a_file / "vocab.txt", "is not a directory"),
            (read_only_dir / "vocab.txt", "cannot create files in")]


def test_build_vocab_output_problems_are_found_before_learning(tmp_path, ws, read_only_dir,
                                                               monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr(documents, "iter_documents", started)
    monkeypatch.setattr(corpus, "check_inputs", started)
    monkeypatch.setattr(vocab_learning, "learn_vocab", started)
    for output, problem in _output_cases(tmp_path, read_only_dir, directory=False):
        with pytest.raises(VocabError) as e:
            vocab_learning.build_vocab_file(str(output), 100, inputs=ws["text"])
        assert problem in str(e.value) and "\n" not in str(e.value), str(e.value)
    # The reported case, through the binary: one line, no IsADirectoryError.
    _one_line_error(_run(BUILD_VOCAB, f"--input={ws['text']}", f"--output={tmp_path / 'a_dir'}",
                         "--vocab_size=100"),
                    "build_vocab", str(tmp_path / "a_dir"), "is a directory")


def test_build_pretraining_data_output_problems_are_found_first(tmp_path, ws, read_only_dir):
    # A vocabulary that does not exist: had anything been read first, that would be the error.
    for output, problem in _output_cases(tmp_path, read_only_dir, directory=True):
        with pytest.raises(DataError) as e:
            build_pretraining_data(ws["text"], str(tmp_path / "no_vocab.txt"), str(output))
        assert problem in str(e.value) and "\n" not in str(e.value), str(e.value)
    _one_line_error(_run(BUILD_DATA, f"--input={ws['text']}", f"--vocab={ws['vocab']}",
                         f"--output_dir={tmp_path / 'a_file'}"),
                    "build_pretraining_data", str(tmp_path / "a_file"), "is a file")
    _one_line_error(_run(BUILD_DATA, f"--input={ws['text']}", f"--vocab={ws['vocab']}",
                         f"--output_dir={read_only_dir / 'out'}"),
                    "build_pretraining_data", "cannot create files in", str(read_only_dir))


def test_full_disk_build_vocab_leaves_nothing_and_rerun_works(small_disk, ws):
    disk = small_disk(64)
    filler = _fill(disk)
    out = os.path.join(disk, "vocab.txt")
    _one_line_error(_run(BUILD_VOCAB, f"--input={ws['text']}", f"--output={out}",
                         "--vocab_size=100"),
                    "build_vocab", out, "No space left on device")
    assert os.listdir(disk) == ["filler"]  # no vocab.txt, no temporary
    os.remove(filler)
    # The rerun (the library call behind the binary, in this process to spare a start-up).
    vocab_learning.build_vocab_file(out, 100, inputs=ws["text"])
    assert len(load_vocab(out)) == 100 and os.listdir(disk) == ["vocab.txt"]


def test_full_disk_build_pretraining_data_publishes_nothing_and_rerun_works(small_disk, tmp_path,
                                                                          ws):
    r = random.Random(1)
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    for i in range(2):  # ~2 x 1500 examples of L = 32 tokens: ~400 KB of shards
        docs = ["\n".join(" ".join(r.choice(WORDS) for _ in range(25)) + "."
                          for _ in range(30)) for _ in range(50)]
        (corpus_dir / f"part{i}.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    disk = small_disk(1024)
    filler_path = os.path.join(disk, "filler")
    with open(filler_path, "wb") as f:  # leave ~64 KiB free
        f.write(b"\0" * (1024 - 64) * 1024)
    out = os.path.join(disk, "out")
    args = (f"--input={corpus_dir}/*.txt", f"--vocab={ws['vocab']}", f"--output_dir={out}",
            f"--max_seq_length={L}", "--num_shards=4", "--num_workers=2")
    _one_line_error(_run(BUILD_DATA, *args), "build_pretraining_data",
                    "No space left on device", "run the same command again")
    assert _visible(out) == []  # no shard, no dataset.json
    assert not glob.glob(os.path.join(out, ".build", "*.partial"))
    os.remove(filler_path)
    # The rerun: the same build, in this process (the jobs run one after the other).
    build_pretraining_data(f"{corpus_dir}/*.txt", ws["vocab"], out, max_seq_length=L,
                           num_shards=4, num_workers=2, _sequential=True)
    sidecar = read_sidecar(out)
    assert sidecar["examples"] > 2000 and not os.path.exists(os.path.join(out, ".build"))
    assert sidecar["shard_bytes"] == [os.path.getsize(os.path.join(out, n))
                                      for n in sidecar["shards"]]
    assert sum(sidecar["shard_bytes"]) > 64 * 1024


# --- 11. Junk accepted as text ----------------------------------------------------------------


def _binary_inputs(root, ws):
    """name -> (path or glob, fragment of the message)."""
    root.mkdir(exist_ok=True)
    with open(os.path.realpath(sys.executable), "rb") as f:
        elf = f.read(64 * 1024)
    assert elf.startswith(b"\x7fELF")
    (root / "program").write_bytes(elf)
    shards = root / "shards"
    build_pretraining_data(ws["text"], ws["vocab"], str(shards), max_seq_length=L,
                           num_shards=2)
    zh = "北京是中国的首都，也是一座历史悠久的城市。上海是最大的城市！\n" * 40
    (root / "gbk.txt").write_bytes(zh.encode("gbk"))
    (root / "utf16.txt").write_bytes(("the cat sat on a mat.\n" * 40).encode("utf-16"))
    (root / "program.gz").write_bytes(gzip.compress(elf))
    return {
        "elf": (str(root / "program"), "an ELF executable"),
        "tfrecord": (str(shards / "pretrain-*"), "NUL bytes"),
        "gbk": (str(root / "gbk.txt"), "not UTF-8 text"),
        "utf16": (str(root / "utf16.txt"), "UTF-16"),
        "gzip_of_binary": (str(root / "program.gz"), "an ELF executable"),
    }


def test_binary_inputs_are_refused_naming_the_file(tmp_path, ws):
    inputs = _binary_inputs(tmp_path / "junk", ws)
    for name, (pattern, fragment) in inputs.items():
        named = sorted(glob.glob(pattern))[0]
        with pytest.raises(CorpusError) as e:  # the reader both tools (and workers) share
            list(iter_documents(named))
        assert named in str(e.value) and fragment in str(e.value), (name, str(e.value))
        out = tmp_path / f"out_{name}"
        _one_line_error(_run(BUILD_DATA, f"--input={pattern}", f"--vocab={ws['vocab']}",
                             f"--output_dir={out}", f"--max_seq_length={L}"),
                        "build_pretraining_data", named, fragment)
        assert not out.exists()
        _one_line_error(_run(BUILD_VOCAB, f"--input={pattern}", f"--output={out}/vocab.txt",
                             "--vocab_size=100"), "build_vocab", named, fragment)
        assert not out.exists()
    # Not junk: gzip text (decompressed first), English and Chinese, and Latin-1 text with a
    # few bad bytes (read, the lines counted as invalid UTF-8).
    text = "the cat sat.\n北京是首都。\n"
    (tmp_path / "ok.txt.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    (tmp_path / "latin1.txt").write_bytes("the café sat on a mat\n".encode("latin-1"))
    assert list(iter_documents(str(tmp_path / "ok.txt.gz"))) == [["the cat sat.", "北京是首都。"]]
    stats = collections.Counter()
    assert list(iter_documents(str(tmp_path / "latin1.txt"), stats=stats)) == [
        ["the caf\ufffd sat on a mat"]]
    assert stats["invalid_utf8_lines"] == 1


# --- 13. Leftovers --------------------------------------------------------------------------


def test_stale_temporaries_are_removed_and_vocab_is_0644(tmp_path, ws):
    out_dir = tmp_path / "vocab_dir"
    out_dir.mkdir()
    (out_dir / f".vocab.txt.tmp-{DEAD_PID}").write_text("half a vocab")
    (out_dir / f".staging.tmp-{DEAD_PID - 1}").mkdir()
    live = out_dir / f".vocab.txt.tmp-{os.getppid()}"  # a live writer's: kept
    live.write_text("in use")
    old_umask = os.umask(0o077)
    try:
        vocab_learning.build_vocab_file(str(out_dir / "vocab.txt"), 100, inputs=ws["text"])
    finally:
        os.umask(old_umask)
    assert sorted(os.listdir(out_dir)) == sorted([live.name, "vocab.txt"])
    assert os.stat(out_dir / "vocab.txt").st_mode & 0o777 == 0o644


def test_builder_removes_stale_temporaries(tmp_path, ws):
    out = tmp_path / "out"
    (out / ".build").mkdir(parents=True)
    (out / f".dataset.json.tmp-{DEAD_PID}").write_text("{")
    (out / ".build" / f".worker-00000-of-00001.json.tmp-{DEAD_PID}").write_text("{")
    sidecar = build_pretraining_data(ws["text"], ws["vocab"], str(out), max_seq_length=L)
    assert sorted(os.listdir(out)) == ["dataset.json", "pretrain-00000-of-00001.tfrecord"]
    assert sidecar["examples"] > 0


# --- The sidecar's shard sizes -------------------------------------------------------------


def test_sidecar_records_shard_bytes(tmp_path, ws):
    out = tmp_path / "out"
    sidecar = build_pretraining_data(ws["text"], ws["vocab"], str(out), max_seq_length=L,
                                     num_shards=2)
    sizes = [os.path.getsize(out / n) for n in sidecar["shards"]]
    assert sidecar["shard_bytes"] == sizes and read_sidecar(str(out))["shard_bytes"] == sizes
    assert len(sizes) == len(sidecar["examples_per_shard"]) == 2
    assert all(size > 0 for size in sizes)
    original = (out / sidecar["shards"][0]).read_bytes()
    # A shard cut short (a copy that ran out of space) is rebuilt, not taken as complete.
    (out / sidecar["shards"][0]).write_bytes(original[:10])
    again = build_pretraining_data(ws["text"], ws["vocab"], str(out), max_seq_length=L,
                                   num_shards=2)
    assert not again.get("already_complete")
    assert (out / sidecar["shards"][0]).read_bytes() == original
    # An older sidecar without shard_bytes is still complete and valid.
    path = out / "dataset.json"
    old = json.loads(path.read_text())
    del old["shard_bytes"]
    path.write_text(json.dumps(old))
    assert build_pretraining_data(ws["text"], ws["vocab"], str(out), max_seq_length=L,
                                  num_shards=2)["already_complete"]
    check_sidecar(read_sidecar(str(out)), vocab_hash=old["vocab_hash"], max_seq_length=L,
                  where="test")


# --- Found on the way: other tracebacks and hangs ------------------------------------------


def test_corrupt_sidecar_in_output_dir_is_one_line_error(tmp_path, ws):
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset.json").write_text("{half", encoding="utf-8")
    with pytest.raises(DataError) as e:
        build_pretraining_data(ws["text"], ws["vocab"], str(out), max_seq_length=L)
    assert str(out / "dataset.json") in str(e.value) and "\n" not in str(e.value)


def test_corrupt_gzip_stream_is_one_line_error(tmp_path):
    data = bytearray(gzip.compress("the cat sat. 北京是首都。\n".encode("utf-8") * 2000))
    for i in range(40, 60):  # inside the deflate stream: zlib.error, not a gzip header error
        data[i] ^= 0xFF
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(zlib.error):
        gzip.decompress(bytes(data))
    with pytest.raises(CorpusError) as e:
        list(iter_documents(str(bad)))
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_unwritable_embedded_corpus_cache_is_one_line_error(read_only_dir):
    cache = str(read_only_dir / "cache")
    with pytest.raises(CorpusError) as e:
        embedded_corpus.embedded_corpus_files(cache)
    assert cache in str(e.value) and "--cache_dir" in str(e.value)


def test_pipe_input_is_refused(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(CorpusError) as e:
        corpus.expand_inputs(str(tmp_path / "*.txt"))
    assert str(fifo) in str(e.value) and "not a regular file" in str(e.value)


def test_too_many_shards_are_refused(tmp_path, ws):
    with pytest.raises(DataError, match="num_shards=10001"):
        build_pretraining_data(ws["text"], ws["vocab"], str(tmp_path / "out"),
                               num_shards=pretraining_builder.MAX_SHARDS + 1)
    assert not (tmp_path / "out").exists()


def test_interrupt_is_one_line(tmp_path, ws):
    # Ctrl-C while learning, made deterministic: the binary runs with `learn_vocab` raising
    # KeyboardInterrupt (what the default SIGINT handler raises).
    out = tmp_path / "vocab.txt"
    code = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {REPO!r})\n"
        "from electra_tf.text import vocab_learning\n"
        "def interrupted(*args, **kwargs):\n"
        "    raise KeyboardInterrupt\n"
        "vocab_learning.learn_vocab = interrupted\n"
        f"sys.argv = [{BUILD_VOCAB!r}, '--input={ws['text']}', '--output={out}', "
        "'--vocab_size=100']\n"
        f"runpy.run_path({BUILD_VOCAB!r}, run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not _LOG_LINE.match(ln)]
    _one_line_error((proc.returncode, proc.stdout, lines), "build_vocab", "interrupted",
                    str(out), status=130)
    assert os.listdir(tmp_path) == []


# --- Found by a fresh-eyes review --------------------------------------------------------------


def test_absurd_vocab_size_is_refused_before_learning(tmp_path, ws):
    """--vocab_size=1e9 used to pad for ever with [unusedN] lines; 2e6 wrote 30 MB of them."""
    from electra_tf.text import vocab_learning

    out = str(tmp_path / "vocab.txt")
    with pytest.raises(vocab_learning.VocabError, match=r"vocab_size=1000000000 is above "
                                                        r"1,000,000"):
        vocab_learning.build_vocab_file(out, 1_000_000_000, inputs=ws["text"])
    with pytest.raises(vocab_learning.VocabError, match="above 1,000,000"):
        vocab_learning.learn_vocab(["北京 是 中国 的 首都"], vocab_learning.MAX_VOCAB_SIZE + 1)
    assert not os.path.exists(out)


@pytest.mark.parametrize("tool", [BUILD_VOCAB, BUILD_DATA])
def test_empty_input_flag_is_not_the_embedded_corpus(tmp_path, ws, tool):
    """`--input=$UNSET` is a mistake, not a request for the embedded corpus."""
    out = tmp_path / "out"
    args = ([f"--output={out}", "--vocab_size=300"] if tool == BUILD_VOCAB else
            [f"--vocab={ws['vocab']}", f"--output_dir={out}"])
    status, _, lines = _run(tool, "--input= ", *args, timeout=120)
    assert status == 2 and len(lines) == 1 and "--input is empty" in lines[0], lines
    assert not out.exists()
