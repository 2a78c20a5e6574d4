"""The pretraining-data builder's two executors (local processes, Apache Beam) on one tiny
English and Chinese corpus: the same examples, the same corpus-level counts, data the
trainer's reader accepts; large files cut into ranges; bad input skipped and named; a failed
bundle neither duplicating nor losing examples; bad flags refused in one line."""

import os
import random
import re
import subprocess
import sys

import pytest

pytest.importorskip("apache_beam")

from electra_tf.data import build_plan  # noqa: E402
from electra_tf.data.beam_pipeline import (build_pretraining_data_beam, make_runner,  # noqa: E402
                                           pipeline_options)
from electra_tf.data.pretraining_builder import build_pretraining_data  # noqa: E402
from electra_tf.data.pretraining_reader import (DataError, DataMismatchError,  # noqa: E402
                                                check_shards, check_sidecar,
                                                pretraining_dataset, read_sidecar)
from electra_tf.text.corpus import CorpusError  # noqa: E402
from electra_tf.text.vocab import SPECIAL_TOKENS, vocab_hash, write_vocab  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "build_pretraining_data.py")
L = 32
SPLIT = 4096
WORDS = "the cat dog sat ran on a mat log red blue big small fox bird tree river".split()
HANZI = list("北京上海是中国的首都城市很大人口多天气好我们去")
VOCAB = list(SPECIAL_TOKENS) + WORDS + HANZI + [".", ",", "。", "，", "！"]
# Sidecar fields that describe the corpus and the examples: equal whatever the executor.
CORPUS_FIELDS = (
    "documents", "lines", "examples", "tokens", "padding_fraction", "single_segment_examples",
    "short_target_examples", "text_tokens", "truncated_tokens", "truncated_fraction",
    "split_lines", "invalid_utf8_lines", "empty_files", "empty_documents", "units",
    "input_files", "input_bytes", "vocab_hash", "vocab_size", "lower_case", "max_seq_length",
    "num_shards", "compression", "seed", "reference_truncation", "skipped_files")


def _document(r):
    lines = []
    for _ in range(r.randint(1, 5)):
        if r.random() < 0.5:
            words = [r.choice(WORDS) for _ in range(r.randint(2, 40))]
            lines.append(" ".join(words) + r.choice([".", "!", ","]))
        else:
            # Some lines longer than an example: split into sentences, carried over.
            lines.append("".join(r.choice(HANZI) + ("。" if r.random() < 0.1 else "")
                                 for _ in range(r.randint(2, 80))) + "。")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("beam_builder")
    write_vocab(VOCAB, str(root / "vocab.txt"))
    corpus = root / "corpus"
    corpus.mkdir()
    r = random.Random(12)
    # big.txt is cut into ranges (several units); the others are one unit each.
    for name, n_docs in (("big.txt", 80), ("en_zh.txt", 8), ("more.txt", 5)):
        text = "\n\n".join(_document(r) for _ in range(n_docs)) + "\n"
        (corpus / name).write_text(text, encoding="utf-8")
    assert (corpus / "big.txt").stat().st_size > 4 * SPLIT
    return {"root": root, "vocab": str(root / "vocab.txt"), "glob": str(corpus / "*.txt"),
            "big": str(corpus / "big.txt")}


def _rows(out):
    """Every example's token ids, sorted, read back through the trainer's reader (which
    first checks the shards against the sidecar, reading every record)."""
    check_shards(out, full=True)
    dataset = pretraining_dataset(out, 1, L, shuffle=False, repeat=False)
    return sorted(tuple(batch["token_ids"].numpy()[0].tolist()) for batch in dataset)


def _corpus_fields(sidecar):
    return {key: sidecar[key] for key in CORPUS_FIELDS}


def _local(ws, name, **kwargs):
    kwargs.setdefault("split_bytes", SPLIT)
    out = str(ws["root"] / name)
    return build_pretraining_data(kwargs.pop("inputs", ws["glob"]), ws["vocab"], out,
                                  max_seq_length=L, num_shards=3, **kwargs), out


def _beam(ws, name, **kwargs):
    kwargs.setdefault("split_bytes", SPLIT)
    out = kwargs.pop("out", None) or str(ws["root"] / name)
    return build_pretraining_data_beam(kwargs.pop("inputs", ws["glob"]), ws["vocab"], out,
                                       max_seq_length=L, num_shards=3, **kwargs), out


@pytest.fixture(scope="module")
def local_one(ws):
    sidecar, out = _local(ws, "local1")
    return sidecar, _rows(out)


def test_local_one_two_workers_and_beam_hold_the_same_examples(ws, local_one):
    one, rows = local_one
    two, out_two = _local(ws, "local2", num_workers=2, _sequential=True)
    beam, out_beam = _beam(ws, "beam", beam_options=[
        "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert one["units"] > one["input_files"] == 3 and len(rows) == one["examples"] > 150
    assert _rows(out_two) == rows and _rows(out_beam) == rows
    assert _corpus_fields(two) == _corpus_fields(beam) == _corpus_fields(one)
    assert (one["runner"], one["num_workers"], two["num_workers"]) == ("local", 1, 2)
    assert (beam["runner"], beam["num_workers"], beam["skipped_files"]) == ("beam", None, [])
    assert sum(beam["examples_per_shard"]) == beam["examples"]
    assert beam["shard_bytes"] == [os.path.getsize(os.path.join(out_beam, n))
                                   for n in beam["shards"]]
    assert sorted(os.listdir(out_beam)) == ["dataset.json"] + beam["shards"]
    # The trainer's checks accept the Beam build, as the local one.
    check_sidecar(read_sidecar(out_beam), vocab_hash=vocab_hash(VOCAB), max_seq_length=L,
                  where="test", lower_case=True)
    batch = next(iter(pretraining_dataset(out_beam, 4, L)))
    assert batch["token_ids"].shape == (4, L)
    # The same command again finds the build complete; the local builder refuses the dir.
    again, _ = _beam(ws, "beam")
    assert again["already_complete"]
    with pytest.raises(DataMismatchError, match="runner='beam'"):
        build_pretraining_data(ws["glob"], ws["vocab"], out_beam, max_seq_length=L,
                               num_shards=3, split_bytes=SPLIT)


def test_a_large_file_is_cut_into_ranges_and_workers_do_not_matter(ws, local_one):
    _, rows = local_one
    units = build_plan.plan_units([ws["big"]], SPLIT, True)
    assert len(units) >= 4 and units[0].start == 0 and units[-1].end is None
    assert all(a.end == b.start for a, b in zip(units, units[1:]))
    three, out_three = _local(ws, "local3", num_workers=3, _sequential=True)
    assert three["num_workers"] == 3 and _rows(out_three) == rows
    in_memory, out_memory = _beam(ws, "beam_in_memory")
    assert _rows(out_memory) == rows
    gzip, out_gzip = _beam(ws, "beam_gzip", compression="GZIP")
    assert all(n.endswith(".tfrecord.gz") for n in gzip["shards"]) and _rows(out_gzip) == rows
    # split_bytes is part of the build: other units, other random streams, other examples
    # of the same text; an output dir of another split_bytes is refused, naming it.
    whole, out_whole = _local(ws, "whole_files", split_bytes=build_plan.DEFAULT_SPLIT_BYTES)
    assert whole["units"] == 3 and whole["text_tokens"] == three["text_tokens"]
    assert _rows(out_whole) != rows
    with pytest.raises(DataMismatchError, match="split_bytes=4096"):
        _local(ws, "whole_files")


def test_corrupt_input_is_skipped_and_named(ws, local_one, tmp_path):
    _, rows = local_one
    binary = tmp_path / "zz_program.bin"  # sorts after the text files: their units keep ids
    with open(os.path.realpath(sys.executable), "rb") as f:
        binary.write_bytes(f.read(20000))
    size = binary.stat().st_size
    inputs = f"{ws['glob']},{binary}"
    sidecar, out = _beam(ws, "beam_skip", inputs=inputs)
    assert sidecar["skipped_files"] == [{
        "path": str(binary), "examples_kept": 0,
        "reason": f"input file {binary} holds NUL bytes in its first {size} bytes: it is an "
                  f"ELF executable, not text"}]
    assert sidecar["input_files"] == 4 and _rows(out) == rows
    # The local builder refuses it before any work.
    with pytest.raises(CorpusError, match="zz_program.bin"):
        _local(ws, "local_skip", inputs=inputs)
    assert not os.path.exists(ws["root"] / "local_skip")


def _visible(out):
    return sorted(n for n in os.listdir(out) if not n.startswith("."))


def test_a_failed_bundle_neither_duplicates_nor_loses_examples(ws, local_one, tmp_path):
    one, rows = local_one
    # Beam's DirectRunner for batch (the FnApiRunner) does not retry a failed bundle: the
    # pipeline fails and nothing is published; the same command again publishes all.
    out = str(tmp_path / "fn_api")
    with pytest.raises(DataError) as e:
        _beam(ws, "", out=out, _fail_once=(str(tmp_path / "marker1"), 20))
    assert "the Beam pipeline failed" in str(e.value) and "test hook" in str(e.value)
    assert "\n" not in str(e.value) and _visible(out) == []
    sidecar, _ = _beam(ws, "", out=out, _fail_once=(str(tmp_path / "marker1"), 20))
    assert _rows(out) == rows and _corpus_fields(sidecar) == _corpus_fields(one)
    # BundleBasedDirectRunner retries the bundle (its outputs are committed only when it
    # succeeds): the first attempt fails mid-unit after 20 examples, the build succeeds.
    out = str(tmp_path / "bundle_based")
    sidecar, _ = _beam(ws, "", out=out, beam_runner="BundleBasedDirectRunner",
                       _fail_once=(str(tmp_path / "marker2"), 20))
    assert os.path.exists(tmp_path / "marker2")  # it did fail once
    assert _rows(out) == rows and _corpus_fields(sidecar) == _corpus_fields(one)


def test_bad_beam_settings_are_one_line():
    cases = [
        (lambda: pipeline_options(["--direct_num_workers=two"]),
         "--beam_options: argument --direct_num_workers: invalid int value: 'two'"),
        (lambda: pipeline_options(["--direct_num_worker=2"]), "--direct_num_worker, which no"),
        (lambda: pipeline_options(["--runner=DataflowRunner"]), "give it with --beam_runner"),
        (lambda: make_runner("NoSuchRunner", pipeline_options([])),
         "--beam_runner=NoSuchRunner is not a Beam runner"),
    ]
    for call, fragment in cases:
        with pytest.raises(DataError) as e:
            call()
        assert fragment in str(e.value) and "\n" not in str(e.value), str(e.value)


_LOG_LINE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} |\d{4}-\d\d-\d\d )")


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, TOOL, "--noprogress", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not _LOG_LINE.match(ln)]
    return proc.returncode, proc.stdout, lines


def test_cli_runs_beam_names_skipped_inputs_and_refuses_bad_flags(ws, tmp_path):
    binary = tmp_path / "zz.bin"
    binary.write_bytes(b"\x00\x01binary\x00" * 100)
    out = tmp_path / "out"
    common = [f"--input={ws['glob']},{binary}", f"--vocab={ws['vocab']}",
              f"--max_seq_length={L}", "--num_shards=2", f"--split_bytes={SPLIT}"]
    rc, stdout, lines = _cli(*common, f"--output_dir={out}", "--runner=beam",
                             "--beam_options=--direct_num_workers=1")
    assert rc == 0 and stdout.startswith("wrote "), (rc, stdout, lines)
    assert len(lines) == 1 and lines[0].startswith(
        f"build_pretraining_data: warning: skipped {binary}: input file {binary} holds NUL"), lines
    assert read_sidecar(str(out))["runner"] == "beam"
    bad = [
        (["--runner=spark"], "--runner"),
        (["--beam_options=--direct_num_workers=2"], "--beam_options apply to --runner=beam"),
        (["--runner=beam", "--num_workers=2"], "--num_workers counts local worker processes"),
        (["--runner=beam", "--beam_options=--direct_num_workers=two"],
         "invalid int value: 'two'"),
        (["--runner=beam", "--split_bytes=100"], "split_bytes=100 is too small"),
    ]
    for flags, fragment in bad:
        rc, stdout, lines = _cli(*common, f"--output_dir={tmp_path / 'bad'}", *flags)
        assert rc == 2 and stdout == "" and len(lines) == 1, (flags, rc, lines)
        assert lines[0].startswith("build_pretraining_data: ") and fragment in lines[0], lines
        assert not (tmp_path / "bad").exists()
