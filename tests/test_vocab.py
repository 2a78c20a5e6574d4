"""Vocabulary learning (tensorflow-text learner), files, hashing and the build_vocab binary."""

import hashlib
import os
import subprocess
import sys

import pytest

from electra_tf.text import vocab, vocab_learning
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
    return vocab_learning.learn_vocab(TEXT, vocab_size=120)


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
    cased = vocab_learning.learn_vocab(TEXT, vocab_size=140, lower_case=False)
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
        vocab_learning.learn_vocab(TEXT, vocab_size=5)
    with pytest.raises(VocabError, match="alphabet"):
        vocab_learning.learn_vocab(TEXT, vocab_size=30)
    with pytest.raises(VocabError, match="no text"):
        vocab_learning.learn_vocab(["", "  "], vocab_size=100)


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
    assert tokens == vocab_learning.learn_vocab(SENTENCES[:2] * 20 + SENTENCES[2:] * 20, 110)
    assert f"wrote {out}" in run.stdout and "from 2 file(s)" in run.stdout
    assert "(80 lines of 2 documents)" in run.stdout

    # The library call behind the binary: max_lines bounds what is read (the first file only).
    small = str(tmp_path / "small.txt")
    summary = vocab_learning.build_vocab_file(small, 110, inputs=f"{corpus_dir}/*.txt", max_lines=40,
                                     lower_case=False)
    assert (summary["lines_used"], summary["documents"], summary["tokens"]) == (40, 1, 110)
    assert vocab.load_vocab(small) == vocab_learning.learn_vocab(SENTENCES[:2] * 20, 110,
                                                        lower_case=False)

    bad = _build_vocab(f"--input={tmp_path}/nothing/*.txt", f"--output={out}")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "matches no file" in bad.stderr
    assert "Traceback" not in bad.stderr


def _long_tailed_text():
    """~14 KB: 400 made-up Latin words with Zipf counts, and 300 words each holding a rare
    character (Yi syllables: no case, no accents, not CJK, so each stays inside its word)."""
    import random

    rng = random.Random(0)
    words = sorted({"".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                            for _ in range(rng.randint(3, 9))) for _ in range(400)})
    rng.shuffle(words)
    bag = [w for k, w in enumerate(words) for _ in range(max(1, 300 // (k + 1)))]
    bag += ["q" + chr(0xA000 + i) + "x" for i in range(300)]
    rng.shuffle(bag)
    return [" ".join(bag[i:i + 12]) for i in range(0, len(bag), 12)], words


def _library_vocab(text, thresh, max_unique_chars):
    """tensorflow-text's learner for one threshold, with its own input preparation."""
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib

    params = lib.Params(None, 1, 4, 200_000, 50, max_unique_chars, 0, 0.0, True, "##",
                        list(SPECIAL_TOKENS))
    counts = list(vocab_learning.count_words(text).items())
    words = lib.filter_input_words(lib.get_input_words(counts, params.reserved_tokens, 50),
                                   lib.get_allowed_chars(counts, max_unique_chars), 200_000)
    return lib.learn_with_thresh(words, thresh, params)


def test_exact_size_where_the_library_search_overshoots():
    # Regression: the library's binary search returned a vocabulary above vocab_size when it
    # ran out of thresholds (here threshold 2 gives fewer than 400 tokens, threshold 1 more,
    # and for 400 it ended on threshold 1 and learn_vocab raised a misleading "alphabet" error).
    text, words = _long_tailed_text()
    at1, at2 = _library_vocab(text, 1, 26), _library_vocab(text, 2, 26)
    assert len(at2) < 400 < len(at1)
    tokens = vocab_learning.learn_vocab(text, vocab_size=400, max_unique_chars=26)
    assert len(tokens) == 400 and len(set(tokens)) == 400
    assert tokens[:5] == list(SPECIAL_TOKENS)
    assert not any(t.startswith("[unused") for t in tokens)  # No padding: real pieces.
    # The library's vocabulary at the smallest fitting threshold, then extra pieces of the
    # next lower threshold's vocabulary (all of count 1 here), shortest first.
    assert tokens[:len(at2)] == at2
    extra = tokens[len(at2):]
    assert set(extra) <= set(at1) - set(at2)
    longest = max(len(t.replace("##", "")) for t in extra)
    assert all(len(t.replace("##", "")) >= longest for t in set(at1) - set(at2) - set(extra))
    # The 50 most frequent words are whole tokens; every Latin word tokenizes without [UNK].
    tok = ElectraTokenizer(tokens)
    ids = tok.tokenize(words).to_list()
    assert all(len(ids[k]) == 1 and tokens[ids[k][0]] == words[k] for k in range(50))
    assert not any(tok.unk_id in row for row in ids)


def test_max_unique_chars_bounds_the_alphabet():
    text, words = _long_tailed_text()
    import collections

    char_counts = collections.Counter()
    for word, count in vocab_learning.count_words(text).items():
        for ch in word:
            char_counts[ch] += count
    top26 = {c for c, _ in sorted(char_counts.items(), key=lambda x: (-x[1], x[0]))[:26]}
    assert len(char_counts) == 326 and top26 == set("abcdefghijklmnopqrstuvwxyz")

    bounded = vocab_learning.learn_vocab(text, vocab_size=700, max_unique_chars=26)
    assert len(bounded) == 700 and bounded[:5] == list(SPECIAL_TOKENS)
    singles = [t for t in bounded[5:] if len(t) == 1]
    assert set(singles) == top26 and set(t for t in bounded if len(t) == 3 and
                                         t.startswith("##")) == {"##" + c for c in top26}
    assert not any(chr(0xA000 + i) in t for t in bounded for i in range(300))
    # Rare characters become [UNK] at run time; frequent words keep their pieces.
    tok = ElectraTokenizer(bounded)
    assert tok.tokenize(["q\ua000x " + words[0]]).to_list() == [[tok.unk_id,
                                                                 bounded.index(words[0])]]

    # Unbounded (the default 1000), all 326 characters and their ## forms need 657 tokens:
    # a smaller size is refused naming the alphabet, a larger one holds the rare characters.
    with pytest.raises(VocabError, match=r"326 characters, 657 tokens.*max_unique_chars"):
        vocab_learning.learn_vocab(text, vocab_size=600)
    full = vocab_learning.learn_vocab(text, vocab_size=1000)
    assert len(full) == 1000 and "\ua000" in full and "##\ua000" in full
    assert not any(t.startswith("[unused") for t in full)


def test_threshold_search_finds_smallest_fitting_threshold_in_few_calls():
    # The search alone, on a made-up size curve shaped like real ones (s(t) ~ t^-0.7, flat
    # steps, 151 alphabet tokens): smallest threshold with s(t) <= vocab_size, few calls.
    counts = sorted((int(200_000 / (k + 1)) + 1 for k in range(40_000)), reverse=True)

    def size(t):
        return 151 + int(1.25 * sum(1 for c in counts[:5000] if c >= t) + 30_000 / t ** 0.7)

    for target in (500, 2000, 8000, 30522):
        calls = []

        def learn(t):
            calls.append(t)
            return ["x"] * size(t)

        got, fill = vocab_learning._search_threshold(learn, counts, target, 151)
        hi = min(t for t in calls if size(t) <= target)
        assert len(got) == size(hi) <= target
        if size(hi) < target and hi > 1:  # Else exact already, or the corpus ran out.
            assert size(hi - 1) > target  # The smallest fitting threshold...
            assert len(fill) == size(hi - 1)  # ...and the next lower one to top up from.
        assert len(calls) <= 8, (target, calls)
