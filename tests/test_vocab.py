"""Vocabulary learning (tensorflow-text learner), files, hashing and the build_vocab binary."""

import hashlib
import os
import subprocess
import sys

import pytest

from electra_tf.text import vocab
from electra_tf.text.tokenizer import ElectraTokenizer
from electra_tf.text.vocab import SPECIAL_TOKENS, VocabError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Made-up text: frequent words, an accented word, a word seen in two cases, some Chinese.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A lazy dog sleeps; the quick fox runs away!",
    "Foxes and dogs are friends in this little story, Café owners say.",
    "我爱北京 and the dog loves Beijing too.",
]
TEXT = SENTENCES * 30


@pytest.fixture(scope="module")
def learned():
    return vocab.learn_vocab(TEXT, vocab_size=120)


def test_learned_vocab_layout(learned):
    assert learned[:5] == list(SPECIAL_TOKENS)
    assert len(learned) == 120 and len(set(learned)) == 120
    # Frequent whole words became tokens; uncased: no capitals, accents stripped.
    for word in ["the", "quick", "fox", "lazy", "dog", "cafe"]:
        assert word in learned
    assert not any(t != t.lower() for t in learned if not t.startswith("["))
    assert "é" not in "".join(learned)
    # Every character of the text is a token (and a ## suffix) so nothing becomes [UNK].
    for ch in "abcdefghijklmnopqrstuvwxyz我爱北京.;!,":
        assert ch in learned
    assert "##s" in learned
    # Filled to vocab_size with [unusedN] after the learned tokens.
    unused = [i for i, t in enumerate(learned) if t.startswith("[unused")]
    assert unused == list(range(120 - len(unused), 120))


def test_learned_vocab_round_trip_through_tokenizer(learned):
    tok = ElectraTokenizer(learned)
    ids = tok.tokenize(["The lazy dog, 我爱北京!", "Foxes"]).to_list()
    assert tok.convert_ids_to_tokens(ids[0]) == ["the", "lazy", "dog", ",", "我", "爱", "北",
                                                 "京", "!"]
    assert ids[0] == [learned.index(t) for t in ["the", "lazy", "dog", ",", "我", "爱", "北",
                                                 "京", "!"]]
    pieces = tok.convert_ids_to_tokens(ids[1])
    assert tok.unk_id not in ids[1]
    assert pieces[0] + "".join(p[2:] for p in pieces[1:]) == "foxes"
    assert all(p.startswith("##") for p in pieces[1:])


def test_cased_vocab_keeps_case():
    cased = vocab.learn_vocab(TEXT, vocab_size=140, lower_case=False)
    assert "The" in cased and "the" in cased and "Café" in cased
    tok = ElectraTokenizer(cased, lower_case=False)
    assert tok.convert_ids_to_tokens(tok.tokenize(["The Café"])[0]) == ["The", "Café"]


def test_write_load_hash_round_trip(learned, tmp_path):
    path = str(tmp_path / "sub" / "vocab.txt")
    vocab.write_vocab(learned, path)
    assert vocab.load_vocab(path) == learned
    with open(path, "rb") as f:
        assert f.read() == ("\n".join(learned) + "\n").encode("utf-8")
    assert vocab.vocab_hash(learned) == hashlib.sha256(
        "\n".join(learned).encode("utf-8")).hexdigest()
    assert vocab.vocab_hash(learned) != vocab.vocab_hash(learned[:-1])
    assert [n for n in os.listdir(tmp_path / "sub")] == ["vocab.txt"]  # No temporary left.


def test_load_vocab_rejects_missing_special_token(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n", encoding="utf-8")
    with pytest.raises(VocabError) as err:
        vocab.load_vocab(str(path))
    message = str(err.value)
    assert str(path) in message and "[MASK]" in message and "\n" not in message
    with pytest.raises(VocabError, match="cannot read"):
        vocab.load_vocab(str(tmp_path / "missing.txt"))
    dup = tmp_path / "dup.txt"
    dup.write_text("\n".join(list(SPECIAL_TOKENS) + ["a", "a"]) + "\n", encoding="utf-8")
    with pytest.raises(VocabError, match="twice"):
        vocab.load_vocab(str(dup))


def test_learn_vocab_rejects_bad_sizes():
    with pytest.raises(VocabError, match="vocab_size=5"):
        vocab.learn_vocab(TEXT, vocab_size=5)
    with pytest.raises(VocabError, match="alphabet"):
        vocab.learn_vocab(TEXT, vocab_size=30)
    with pytest.raises(VocabError, match="no text"):
        vocab.learn_vocab(["", "  "], vocab_size=100)


def _build_vocab(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "build_vocab.py"),
                           *args], capture_output=True, text=True, env=env, cwd=REPO)


def test_build_vocab_binary_end_to_end(tmp_path):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / "a.txt").write_text("\n".join(SENTENCES[:2] * 20) + "\n\n", encoding="utf-8")
    (corpus_dir / "b.txt").write_text("\n".join(SENTENCES[2:] * 20) + "\n", encoding="utf-8")
    out = tmp_path / "vocab.txt"
    run = _build_vocab(f"--input={corpus_dir}/*.txt", f"--output={out}", "--vocab_size=110")
    assert run.returncode == 0, run.stderr
    tokens = vocab.load_vocab(str(out))
    assert tokens[:5] == list(SPECIAL_TOKENS) and len(tokens) == 110
    assert tokens == vocab.learn_vocab(SENTENCES[:2] * 20 + SENTENCES[2:] * 20, 110)
    assert f"wrote {out}" in run.stdout and "from 2 file(s)" in run.stdout
    assert "(80 lines of 2 documents)" in run.stdout

    # The library call behind the binary: max_lines bounds what is read (the first file only).
    small = str(tmp_path / "small.txt")
    summary = vocab.build_vocab_file(small, 110, inputs=f"{corpus_dir}/*.txt", max_lines=40,
                                     lower_case=False)
    assert (summary["lines_used"], summary["documents"], summary["tokens"]) == (40, 1, 110)
    assert vocab.load_vocab(small) == vocab.learn_vocab(SENTENCES[:2] * 20, 110,
                                                        lower_case=False)

    bad = _build_vocab(f"--input={tmp_path}/nothing/*.txt", f"--output={out}")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "matches no file" in bad.stderr
    assert "Traceback" not in bad.stderr
