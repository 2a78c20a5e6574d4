"""ElectraTokenizer: special ids by token, CJK, normalisation, encode layout, TFLite parity."""


import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from electra_tf.text.tokenizer import ElectraTokenizer
from electra_tf.text.vocab import VocabError

WORDS = ["the", "cat", "sat", "on", "mat", "hello", "world", "cafe", "##s", "!", ",", ".",
         "我", "爱", "北", "京", "a", "b", "Café", "The"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS


def ids_of(tokens, vocab=VOCAB):
    return [vocab.index(t) for t in tokens]


@pytest.fixture(scope="module")
def tok():
    return ElectraTokenizer(VOCAB)


def test_special_ids_and_attributes(tok):
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.vocab == VOCAB and tok.vocab_size == len(VOCAB) and tok.lower_case
    assert len(tok.vocab_hash) == 64


def test_tokenize_known_ids_and_unknown(tok):
    out = tok.tokenize(["The cat sat on the mat.", "hello worlds!", "zebra", ""])
    assert out.dtype == tf.int32
    assert out.to_list() == [
        ids_of(["the", "cat", "sat", "on", "the", "mat", "."]),
        ids_of(["hello", "world", "##s", "!"]),
        [tok.unk_id],
        [],
    ]
    assert tok.convert_ids_to_tokens(out[1]) == ["hello", "world", "##s", "!"]


def test_bert_style_vocab_file_finds_special_ids_by_token(tmp_path):
    # BERT layout: [PAD]=0, [unused0..98], [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103.
    bert = (["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]",
                                                                  "[MASK]"] + WORDS)
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(bert) + "\n", encoding="utf-8")
    tok = ElectraTokenizer(str(path))
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102,
                                                                             103)
    assert tok.tokenize(["hello zebra"]).to_list() == [[bert.index("hello"), 100]]
    enc = tok.encode(["cat"], max_seq_length=5)
    assert enc["token_ids"].numpy().tolist() == [[101, bert.index("cat"), 102, 0, 0]]


def test_vocab_missing_mask_is_rejected():
    with pytest.raises(VocabError, match=r"\[MASK\]"):
        ElectraTokenizer([t for t in VOCAB if t != "[MASK]"])


def test_chinese_is_split_per_character(tok):
    # As BERT's BasicTokenizer: every CJK ideograph is a word, even next to Latin letters.
    out = tok.tokenize(["我爱北京", "hello我爱", "北京a"]).to_list()
    assert out == [ids_of(["我", "爱", "北", "京"]), ids_of(["hello", "我", "爱"]),
                   ids_of(["北", "京", "a"])]
    # Not greedy longest-match over CJK: a two-character vocab entry is never produced.
    tok2 = ElectraTokenizer(VOCAB + ["北京"])
    assert tok2.tokenize(["北京"]).to_list() == [ids_of(["北", "京"])]


def test_lower_case_strips_accents_and_cased_keeps_them(tok):
    assert tok.tokenize(["CAFÉ Café HELLO"]).to_list() == [ids_of(["cafe", "cafe", "hello"])]
    cased = ElectraTokenizer(VOCAB, lower_case=False)
    assert not cased.lower_case
    assert cased.tokenize(["Café The the CAFE"]).to_list() == [
        ids_of(["Café", "The", "the", "[UNK]"])]


def _reference_encode(a, b, length, cls=2, sep=3):
    """BERT's create-input layout with `_truncate_seq_pair`, written as the reference loop."""
    a, b = list(a), (None if b is None else list(b))
    if b is None:
        a = a[:length - 2]
        tokens, segments = [cls] + a + [sep], [0] * (len(a) + 2)
    else:
        while len(a) + len(b) > length - 3:
            (a if len(a) > len(b) else b).pop()
        tokens = [cls] + a + [sep] + b + [sep]
        segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    mask = [1] * len(tokens) + [0] * (length - len(tokens))
    pad = [0] * (length - len(tokens))
    return tokens + pad, segments + pad, mask


def test_encode_layout_and_truncation_match_reference_loop(tok):
    length = 12
    lens = [(la, lb) for la in range(0, 14) for lb in range(0, 14)]
    a_texts = [" ".join(["a"] * la) for la, _ in lens]
    b_texts = [" ".join(["b"] * lb) for _, lb in lens]
    out = tok.encode(a_texts, b_texts, max_seq_length=length)
    ia, ib = VOCAB.index("a"), VOCAB.index("b")
    for key in out:
        assert out[key].dtype == tf.int32 and out[key].shape == (len(lens), length)
    for row, (la, lb) in enumerate(lens):
        ids, seg, mask = _reference_encode([ia] * la, [ib] * lb, length)
        assert out["token_ids"][row].numpy().tolist() == ids, (la, lb)
        assert out["segment_ids"][row].numpy().tolist() == seg, (la, lb)
        assert out["padding_mask"][row].numpy().tolist() == mask, (la, lb)
    # Truncation keeps exactly length - 3 tokens when too long: (13, 13) -> A 5, B 4.
    last = out["token_ids"][-1].numpy().tolist()
    assert last.count(ia) == 5 and last.count(ib) == 4

    single = tok.encode([" ".join(["a"] * la) for la in range(14)], max_seq_length=length)
    for la in range(14):
        ids, seg, mask = _reference_encode([ia] * la, None, length)
        assert single["token_ids"][la].numpy().tolist() == ids
        assert single["segment_ids"][la].numpy().tolist() == seg
        assert single["padding_mask"][la].numpy().tolist() == mask


def test_encode_scalar_and_too_short_length(tok):
    out = tok.encode("the cat", max_seq_length=6)
    assert out["token_ids"].numpy().tolist() == [[2] + ids_of(["the", "cat"]) + [3, 0, 0]]
    with pytest.raises(ValueError, match="max_seq_length"):
        tok.encode(["a"], ["b"], max_seq_length=2)


TEXTS = ["The cat sat on the mat.", "", "hello " * 400, "我爱北京 CAFÉ", "zebra!"]
PAIRS = ["hello world", "a b", "", "b " * 300, "北京"]


def test_encode_in_tf_function_and_tf_data(tok):
    eager = tok.encode(TEXTS, PAIRS, max_seq_length=16)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def encode(a, b):
        return tok.encode(a, b, max_seq_length=16)

    traced = encode(tf.constant(TEXTS), tf.constant(PAIRS))
    ds = tf.data.Dataset.from_tensor_slices((TEXTS, PAIRS)).batch(2).map(
        lambda a, b: tok.encode(a, b, max_seq_length=16))
    batches = list(ds)
    for key in eager:
        np.testing.assert_array_equal(traced[key].numpy(), eager[key].numpy())
        np.testing.assert_array_equal(
            np.concatenate([b[key].numpy() for b in batches]), eager[key].numpy())


def test_encode_converts_to_tflite_and_matches(tok):
    from ai_edge_litert.interpreter import InterpreterWithCustomOps

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([None], tf.string, name="text_pair")])
    def encode(text, text_pair):
        return tok.encode(text, text_pair, max_seq_length=24)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [encode.get_concrete_function()], tok)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = True
    model = converter.convert()
    interpreter = InterpreterWithCustomOps(
        custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS, model_content=model)
    runner = interpreter.get_signature_runner()
    texts = np.array(TEXTS, dtype=object)
    pairs = np.array(PAIRS, dtype=object)
    got = runner(text=texts, text_pair=pairs)
    want = tok.encode(TEXTS, PAIRS, max_seq_length=24)
    assert sorted(got) == ["padding_mask", "segment_ids", "token_ids"]
    for key in want:
        np.testing.assert_array_equal(got[key], want[key].numpy())
    # The very long row was truncated to exactly 24 tokens; the empty-text row is [CLS][SEP]B.
    assert got["padding_mask"][2].sum() == 24 and got["padding_mask"][3].sum() == 24
    assert got["token_ids"][1][:3].tolist() == [2, 3, VOCAB.index("a")]
