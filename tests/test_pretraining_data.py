"""Corpus builder -> TFRecords -> tf.data reader, end to end on a tiny generated corpus."""

import collections
import glob
import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.data import packing
from electra_tf.data.build_plan import Unit
from electra_tf.data.pretraining_builder import build_pretraining_data
from electra_tf.data.pretraining_reader import (DataError, DataMismatchError, check_sidecar,
                                                pretraining_dataset, read_sidecar)
from electra_tf.data.unit_encoder import unit_rng
from electra_tf.text.documents import iter_documents
from electra_tf.text.tokenizer import ElectraTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "build_pretraining_data.py")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the cat dog sat ran on a mat log red blue big small quick slow fox jumps over "
         "lazy bird sings tree under house near river cafe").split()
PIECES = ["##s", "##ed", "##ing", ".", ","]
L = 32


def _write_corpus(directory, seed=0, n_files=3):
    """Small random text: documents of 1-6 lines split by blank lines (some doubled)."""
    r = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i in range(n_files):
        docs = []
        for _ in range(r.randint(6, 12)):
            lines = [" ".join(r.choice(WORDS) + r.choice(["", "", "s", "ing"])
                              for _ in range(r.randint(1, 18))) + "."
                     for _ in range(r.randint(1, 6))]
            docs.append("\n".join(lines))
        path = os.path.join(directory, f"part{i}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n\n".join(docs) + "\n")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretraining_data")
    vocab = os.path.join(root, "vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(SPECIALS + WORDS + PIECES) + "\n")
    files = _write_corpus(os.path.join(root, "corpus"))
    return {"root": str(root), "vocab": vocab, "files": files,
            "glob": os.path.join(root, "corpus", "*.txt")}


def _build(ws, name, **kwargs):
    kwargs.setdefault("max_seq_length", L)
    out = os.path.join(ws["root"], name)
    return build_pretraining_data(kwargs.pop("inputs", ws["glob"]), ws["vocab"], out,
                                  **kwargs), out


def _shard_bytes(out):
    return {os.path.basename(p): open(p, "rb").read()
            for p in sorted(glob.glob(os.path.join(out, "pretrain-*")))}


def _read_all(pattern, **kwargs):
    kwargs.setdefault("shuffle", False)
    d = pretraining_dataset(pattern, 1, L, repeat=False, **kwargs)
    rows = {k: [] for k in ("token_ids", "segment_ids", "padding_mask")}
    for batch in d:
        for k in rows:
            assert batch[k].dtype == tf.int32 and batch[k].shape == (1, L)
            rows[k].append(batch[k].numpy()[0])
    return {k: np.array(v) for k, v in rows.items()}


@pytest.fixture(scope="module")
def built(workspace):
    sidecar, out = _build(workspace, "base", num_shards=3, seed=0)
    return sidecar, out


def test_text_to_tfrecord_to_tf_data_gives_back_the_tokenizers_ids(workspace, built):
    sidecar, out = built
    # Expected examples, computed independently of the builder's batching: each line
    # tokenized on its own, each file (a unit: they are small) packed by its own builder
    # with the unit's random stream, the units in input order (one worker).
    tokenizer = ElectraTokenizer(workspace["vocab"])
    files = sorted(workspace["files"])
    pairs = []

    def units(line):
        # A line longer than an example is cut at sentence ends, then into L - 2 pieces.
        tokens = tokenizer.tokenize([line]).flat_values.numpy().tolist()
        if len(tokens) <= L - 2:
            return [tokens]
        return [piece for sentence in packing.split_sentences(line)
                for piece in packing.chunk(
                    tokenizer.tokenize([sentence]).flat_values.numpy().tolist(), L - 2)]

    for index, path in enumerate(files):
        builder = packing.ExampleBuilder(L, rng=unit_rng(0, Unit(index, path, 0, None, 0)))
        for doc in iter_documents(path):
            pairs += builder.add_document([unit for line in doc for unit in units(line)])
    ids, mask, seg = packing.examples_to_arrays(pairs, L, cls_id=tokenizer.cls_id,
                                                sep_id=tokenizer.sep_id)
    # Shards are written round-robin and read back round-robin (shuffle off): same order.
    got = _read_all(out)
    assert len(pairs) == sidecar["examples"] > 30
    np.testing.assert_array_equal(got["token_ids"], ids)
    np.testing.assert_array_equal(got["padding_mask"], mask)
    np.testing.assert_array_equal(got["segment_ids"], seg)
    assert sidecar["tokens"] == int(mask.sum())
    assert sidecar["padding_fraction"] == pytest.approx(1 - mask.sum() / mask.size, abs=1e-6)
    assert sidecar["vocab_hash"] == tokenizer.vocab_hash
    assert sidecar["examples_per_shard"] == [len(range(s, len(pairs), 3)) for s in range(3)]
    assert sum(len(list(iter_documents(f))) for f in files) == sidecar["documents"]
    # Tokenizing 3 lines per call instead of thousands changes nothing in the bytes.
    _, small_batches = _build(workspace, "batch3", num_shards=3, seed=0, tokenize_batch_lines=3)
    assert _shard_bytes(small_batches) == _shard_bytes(out)


def test_same_seed_same_bytes_other_seed_other_bytes(workspace, built):
    _, out = built
    _, again = _build(workspace, "again", num_shards=3, seed=0)
    _, other = _build(workspace, "seed1", num_shards=3, seed=1)
    assert _shard_bytes(again) == _shard_bytes(out)
    assert _shard_bytes(other).keys() == _shard_bytes(out).keys()
    assert _shard_bytes(other) != _shard_bytes(out)
    # A rerun of a finished build is recognised and rewrites nothing.
    before = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(out, "*"))}
    sidecar, _ = _build(workspace, "base", num_shards=3, seed=0)
    assert sidecar["already_complete"]
    assert before == {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(out, "*"))}


def test_gzip_shards_hold_the_same_examples(workspace, built):
    _, out = built
    sidecar, gz = _build(workspace, "gzip", num_shards=3, seed=0, compression="GZIP")
    assert sidecar["compression"] == "GZIP"
    assert all(p.endswith(".tfrecord.gz") for p in _shard_bytes(gz))
    plain, packed = _read_all(out), _read_all(os.path.join(gz, "pretrain-*"))
    for key in plain:
        np.testing.assert_array_equal(plain[key], packed[key])


def _visible(out):
    return sorted(n for n in os.listdir(out) if not n.startswith("."))


def test_interrupted_build_leaves_nothing_finished_and_rerun_gives_same_bytes(workspace):
    _, clean = _build(workspace, "clean2", num_shards=4, num_workers=2, seed=3,
                      _sequential=True)
    # Worker 1 crashes mid-write (after worker 0 finished).
    with pytest.raises(RuntimeError, match="test hook"):
        _build(workspace, "crash", num_shards=4, num_workers=2, seed=3, _sequential=True,
               _fail_after_examples={1: 5})
    out = os.path.join(workspace["root"], "crash")
    assert _visible(out) == []  # no shard and no dataset.json in the output directory
    partial = sorted(os.listdir(os.path.join(out, ".build")))
    # The failed worker's unfinished shards are removed (the rerun redoes it from its start);
    # the finished worker's shards and done-marker stay.
    assert not [n for n in partial if n.endswith(".partial")]
    assert "worker-00000-of-00002.json" in partial
    assert "pretrain-00000-of-00004.tfrecord" in partial
    # The rerun skips finished worker 0 (the hook would make it crash if it ran again).
    sidecar, _ = _build(workspace, "crash", num_shards=4, num_workers=2, seed=3,
                        _sequential=True, _fail_after_examples={0: 1})
    assert _shard_bytes(out) == _shard_bytes(clean)
    assert _visible(out) == ["dataset.json"] + sorted(_shard_bytes(clean))
    assert not os.path.exists(os.path.join(out, ".build"))
    assert sidecar["examples"] == read_sidecar(clean)["examples"]
    # Single-worker crash: the worker is redone from its start, same bytes as a clean build.
    _, clean1 = _build(workspace, "clean1", num_shards=2, seed=5)
    with pytest.raises(RuntimeError, match="test hook"):
        _build(workspace, "crash1", num_shards=2, seed=5, _fail_after_examples={0: 3})
    out1 = os.path.join(workspace["root"], "crash1")
    assert _visible(out1) == []
    _build(workspace, "crash1", num_shards=2, seed=5)
    assert _shard_bytes(out1) == _shard_bytes(clean1)


def test_bad_input_is_counted_exactly(tmp_path, workspace):
    corpus = tmp_path / "bad"
    corpus.mkdir()
    (corpus / "a_empty.txt").write_bytes(b"")
    (corpus / "b_blank_only.txt").write_bytes(b"\n\n  \n")
    # Two invalid UTF-8 lines; 3 extra blank separators (leading one, then a triple).
    (corpus / "c_text.txt").write_bytes(
        b"\nthe cat sat\nbig \xff\xfe dog\n\n\n\nred fox\n\nthe caf\xe9 ran\n")
    sidecar, _ = _build(workspace, str(tmp_path / "out"), inputs=str(corpus / "*.txt"))
    assert (sidecar["invalid_utf8_lines"], sidecar["empty_files"],
            sidecar["empty_documents"], sidecar["documents"]) == (2, 2, 3, 3)
    got = _read_all(str(tmp_path / "out"))
    tokenizer = ElectraTokenizer(workspace["vocab"])
    # The invalid bytes became U+FFFD and so [UNK]; every document gave one example.
    assert (got["token_ids"] == tokenizer.unk_id).sum() >= 1
    assert len(got["token_ids"]) == 3


def test_reader_checks_the_sidecar(workspace, built):
    sidecar, out = built
    with pytest.raises(DataMismatchError) as e:
        pretraining_dataset(out, 2, L + 1)
    assert f"max_seq_length={L}" in str(e.value) and f"max_seq_length={L + 1}" in str(e.value)
    with pytest.raises(DataMismatchError) as e:
        check_sidecar(read_sidecar(out), vocab_hash="f" * 64, max_seq_length=L,
                      where="model_dir/vocab.txt")
    message = str(e.value)
    assert sidecar["vocab_hash"] in message and "f" * 64 in message and "\n" not in message
    check_sidecar(read_sidecar(os.path.join(out, "pretrain-*")),
                  vocab_hash=sidecar["vocab_hash"], max_seq_length=L, where="config")
    with pytest.raises(DataError, match="no dataset.json"):
        read_sidecar(workspace["root"])
    # A shard listed in the sidecar but gone is named, not silently skipped.
    _, gone = _build(workspace, "gone", num_shards=2, seed=0)
    os.remove(os.path.join(gone, "pretrain-00001-of-00002.tfrecord"))
    with pytest.raises(DataError, match="pretrain-00001-of-00002.tfrecord is listed"):
        pretraining_dataset(gone, 2, L)
    # ... and rerunning the build restores exactly that shard.
    _build(workspace, "gone", num_shards=2, seed=0)
    assert len(_read_all(gone)["token_ids"]) == read_sidecar(gone)["examples"]


def _rows(pattern, context, shuffle):
    got = _read_all(pattern, input_context=context, shuffle=shuffle, seed=4)
    return collections.Counter(map(tuple, got["token_ids"].tolist()))


@pytest.mark.parametrize("num_shards", [4, 1])  # file-level, then example-level sharding
def test_input_context_gives_disjoint_shares(workspace, num_shards):
    _, out = _build(workspace, f"ctx{num_shards}", num_shards=num_shards, seed=0)
    everything = _rows(out, None, False)
    shares = [_rows(out, tf.distribute.InputContext(2, i, 2), shuffle=True) for i in range(2)]
    # As multisets (a short document tail can repeat, e.g. "[CLS] . [SEP]"): every example
    # is read by exactly one of the two.
    assert shares[0] + shares[1] == everything
    assert min(sum(s.values()) for s in shares) >= sum(everything.values()) // 4


def test_reader_batches_are_static_and_deterministic_for_a_seed(built):
    _, out = built

    def first_batches(seed):
        d = pretraining_dataset(out, 4, L, seed=seed)
        return [b["token_ids"].numpy() for b in d.take(8)]

    d = pretraining_dataset(out, 4, L)
    assert all(spec.shape == (4, L) and spec.dtype == tf.int32
               for spec in d.element_spec.values())
    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    assert all((x == y).all() for x, y in zip(a, b))
    assert any((x != y).any() for x, y in zip(a, c))


# --- The CLI: one line and exit status 2 on bad input (few subprocesses: TF import ~6 s) ---

_LOG_LINE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} |\d{4}-\d\d-\d\d )")


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, TOOL, "--noprogress", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not _LOG_LINE.match(ln)]
    return proc.returncode, proc.stdout, lines


def _assert_one_line_error(result, *fragments):
    rc, stdout, lines = result
    assert rc == 2 and stdout == "", (rc, stdout, lines)
    assert len(lines) == 1 and lines[0].startswith("build_pretraining_data: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_two_workers_reports_counts_and_matches_sequential_build(tmp_path, workspace):
    corpus = tmp_path / "corpus"
    _write_corpus(str(corpus), seed=9, n_files=3)
    (corpus / "z_empty.txt").write_bytes(b"")
    (corpus / "z_latin1.txt").write_bytes(b"caf\xe9 on a mat\n\n\nthe dog\n")
    out = tmp_path / "cli_out"
    rc, stdout, lines = _cli(f"--input={corpus}/*.txt", f"--vocab={workspace['vocab']}",
                             f"--output_dir={out}", f"--max_seq_length={L}",
                             "--num_shards=4", "--num_workers=2", "--seed=7")
    assert rc == 0 and lines == [], (rc, lines)
    sidecar = read_sidecar(str(out))
    assert stdout.startswith(f"wrote {sidecar['examples']} examples")
    assert "invalid utf8 lines 1, empty files 1, empty documents 1" in stdout
    assert (sidecar["num_workers"], sidecar["invalid_utf8_lines"], sidecar["empty_files"],
            sidecar["empty_documents"]) == (2, 1, 1, 1)
    # Two processes in parallel write the bytes of the same jobs run one after the other.
    _build(workspace, str(tmp_path / "seq"), inputs=f"{corpus}/*.txt", num_shards=4,
           num_workers=2, seed=7, _sequential=True)
    assert _shard_bytes(str(out)) == _shard_bytes(str(tmp_path / "seq"))

    # The same output directory with another configuration is refused, naming both values
    # (in-process: the CLI prints DataError like the errors below).
    for change in ({"seed": 8}, {"max_seq_length": L + 2}, {"num_shards": 5}):
        kwargs = dict(inputs=f"{corpus}/*.txt", num_shards=4, num_workers=2, seed=7)
        kwargs.update(change)
        with pytest.raises(DataMismatchError) as e:
            _build(workspace, str(out), **kwargs)
        (key, value), = change.items()
        old = {"seed": 7, "max_seq_length": L, "num_shards": 4}[key]
        assert f"{key}={old}" in str(e.value) and f"{key}={value}" in str(e.value)
        assert str(out) in str(e.value) and "\n" not in str(e.value)

    # Bad input through the CLI: one line and exit 2 each.
    _assert_one_line_error(
        _cli(f"--input={tmp_path}/nothing*.txt", f"--vocab={workspace['vocab']}",
             f"--output_dir={tmp_path}/x"), "matches no file")
    _assert_one_line_error(_cli(f"--input={corpus}/*.txt", f"--output_dir={tmp_path}/x"),
                           "--vocab is required")
    no_mask = tmp_path / "no_mask_vocab.txt"
    no_mask.write_text("\n".join(SPECIALS[:4] + WORDS) + "\n")
    _assert_one_line_error(
        _cli(f"--input={corpus}/*.txt", f"--vocab={no_mask}", f"--output_dir={tmp_path}/x"),
        str(no_mask), "[MASK]")
    broken = tmp_path / "broken.txt.gz"  # unreadable: not gzip, found while building
    broken.write_bytes(b"this is not gzip data")
    _assert_one_line_error(
        _cli(f"--input={broken}", f"--vocab={workspace['vocab']}", f"--output_dir={tmp_path}/b"),
        str(broken))
    assert not glob.glob(str(tmp_path / "b" / "pretrain-*"))
    assert not os.path.exists(tmp_path / "b" / "dataset.json")
