"""Fine-tuning data: GLUE layouts, generic CSV/TSV/JSON-lines/CoNLL files, and every refusal."""

import json

import pytest

from electra_tf.data.tasks import (GENERIC_TASKS, GLUE_TASKS, TaggedExample, TaskDataError,
                                   TextExample, load_task_data, task_spec)


def write(directory, name, text, encoding="utf-8"):
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return str(path)


def tsv(*rows):
    return "".join("\t".join(row) + "\n" for row in rows)


def refusal(*fragments, **load_args):
    """Loads, expects a TaskDataError, checks it is one line holding every fragment."""
    with pytest.raises(TaskDataError) as err:
        load_task_data(**load_args)
    message = str(err.value)
    assert "\n" not in message and "\r" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --- GLUE layouts ----------------------------------------------------------------------------

MNLI_TRAIN_HEADER = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                     "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
                     "sentence1", "sentence2", "label1", "gold_label")
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER[:-1] + ("label2", "label3", "label4", "label5",
                                            "gold_label")
STSB_HEADER = ("index", "genre", "filename", "year", "old_index", "source1", "source2",
               "sentence1", "sentence2", "score")


def mnli_row(header, a, b, label):
    row = dict.fromkeys(header, "x")
    row.update(sentence1=a, sentence2=b, gold_label=label)
    return [row[c] for c in header]


def stsb_row(i, a, b, score):
    return [str(i), "main-captions", "MSRvid", "2012test", "0001", "none", "none", a, b, score]


# task -> (train rows, dev rows, dev file name), each file written as given (headers included).
GLUE_FIXTURES = {
    "cola": ([["gj04", "1", "", "The book was read."], ["gj04", "0", "*", "Book the read was."],
              ["clc95", "1", "", "She left."]],
             [["gj04", "0", "*", "Him left."], ["gj04", "1", "", "He left."]], "dev.tsv"),
    "sst2": ([["sentence", "label"], ["a \"gripping tale ", "1"], ["dull , dull", "0"]],
             [["sentence", "label"], ["it 's \"fine", "1"]], "dev.tsv"),
    "mrpc": ([["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
              ["1", "7", "8", "He said so.", "So he said."],
              ["0", "9", "10", "Rain fell.", "Sun shone."]],
             [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
              ["1", "1", "2", "A cat sat.", "The cat sat."]], "dev.tsv"),
    "stsb": ([STSB_HEADER, stsb_row(0, "A plane flies.", "A jet flies.", "5.000"),
              stsb_row(1, "A man eats.", "A dog runs.", "0.250")],
             [STSB_HEADER, stsb_row(0, "Kids play.", "Children play.", "4.750")], "dev.tsv"),
    "qqp": ([["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
             ["0", "1", "2", "How do I cook?", "How to cook?", "1"],
             ["1", "3", "4", "Why is it red?", "Where is Rome?", "0"]],
            [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
             ["5", "6", "7", "What is AI?", "What's AI?", "1"]], "dev.tsv"),
    "mnli": ([MNLI_TRAIN_HEADER, mnli_row(MNLI_TRAIN_HEADER, "A man sleeps.", "He rests.",
                                          "entailment"),
              mnli_row(MNLI_TRAIN_HEADER, "It rains.", "It is dry.", "contradiction"),
              mnli_row(MNLI_TRAIN_HEADER, "She sings.", "She is a pro.", "neutral")],
             [MNLI_DEV_HEADER, mnli_row(MNLI_DEV_HEADER, "Dogs bark.", "Animals make noise.",
                                        "entailment")], "dev_matched.tsv"),
    "qnli": ([["index", "question", "sentence", "label"],
              ["0", "Who wrote it?", "Tolkien wrote it.", "entailment"],
              ["1", "When?", "It is blue.", "not_entailment"]],
             [["index", "question", "sentence", "label"],
              ["0", "Where \"is it?", "It is in Paris.", "entailment"]], "dev.tsv"),
    "rte": ([["index", "sentence1", "sentence2", "label"],
             ["0", "Iraq has no weapons.", "Weapons found.", "not_entailment"],
             ["1", "Paris is in France.", "Paris is French.", "entailment"]],
            [["index", "sentence1", "sentence2", "label"],
             ["0", "Reeve died.", "Reeve is dead.", "entailment"]], "dev.tsv"),
    "wnli": ([["index", "sentence1", "sentence2", "label"],
              ["0", "The cup fell because it was light.", "The cup was light.", "1"],
              ["1", "Tom hit Bob because he was angry.", "Bob was angry.", "0"]],
             [["index", "sentence1", "sentence2", "label"],
              ["0", "I saw it.", "It was seen.", "1"]], "dev.tsv"),
}
GLUE_LABELS = {"cola": ["0", "1"], "sst2": ["0", "1"], "mrpc": ["0", "1"], "stsb": [],
               "qqp": ["0", "1"], "mnli": ["contradiction", "entailment", "neutral"],
               "qnli": ["entailment", "not_entailment"],
               "rte": ["entailment", "not_entailment"], "wnli": ["0", "1"]}


def write_glue(directory, task):
    train, dev, dev_name = GLUE_FIXTURES[task]
    write(directory, "train.tsv", tsv(*train))
    write(directory, dev_name, tsv(*dev))
    return train, dev


@pytest.mark.parametrize("task", GLUE_TASKS)
def test_glue_layouts(tmp_path, task):
    train, dev = write_glue(tmp_path, task)
    data = load_task_data(task, str(tmp_path))
    has_header = task != "cola"
    assert len(data.train) == len(train) - has_header and len(data.dev) == len(dev) - has_header
    assert data.labels == GLUE_LABELS[task]
    assert data.spec == task_spec(task) and data.skipped == {"train": 0, "dev": 0}
    assert data.dev_file.endswith("dev_matched.tsv" if task == "mnli" else "dev.tsv")
    first = data.train[0]
    assert isinstance(first, TextExample)
    assert first.source == f"{tmp_path}/train.tsv:{1 + has_header}"
    assert (first.text_pair is not None) == data.spec.is_pair
    assert data.spec.is_pair == (task not in ("cola", "sst2"))
    if task == "stsb":
        assert [e.label for e in data.train] == [5.0, 0.25] and data.dev[0].label == 4.75
    else:
        assert all(isinstance(e.label, str) and e.label in data.labels
                   for e in data.train + data.dev)


def test_glue_columns_are_found_by_name_and_quotes_are_text(tmp_path):
    write_glue(tmp_path, "mnli")
    data = load_task_data("mnli", str(tmp_path))
    assert (data.train[0].text, data.train[0].text_pair, data.train[0].label) == \
        ("A man sleeps.", "He rests.", "entailment")
    write_glue(tmp_path, "sst2")
    data = load_task_data("SST-2", str(tmp_path))
    # Quoting is off: a lone quote is part of the sentence and does not swallow lines.
    assert [e.text for e in data.train] == ['a "gripping tale', "dull , dull"]
    assert data.dev[0].text == 'it \'s "fine'
    write_glue(tmp_path / "c", "cola")
    cola = load_task_data("cola", str(tmp_path / "c"))
    assert cola.train[1].text == "Book the read was." and cola.train[1].label == "0"


def test_glue_subfolder_extra_columns_and_explicit_dev(tmp_path):
    train, dev = GLUE_FIXTURES["rte"][:2]
    # Extra trailing fields in a GLUE file are not an error (the released files vary).
    write(tmp_path / "RTE", "train.tsv", tsv(*train[:2], train[2] + ["extra"]))
    write(tmp_path / "RTE", "dev.tsv", tsv(*dev))
    write(tmp_path / "RTE", "other.tsv", tsv(*train))
    data = load_task_data("rte", str(tmp_path))
    assert data.train_file == str(tmp_path / "RTE" / "train.tsv") and len(data.train) == 2
    data = load_task_data("rte", str(tmp_path / "RTE"), dev_file="other.tsv")
    assert len(data.dev) == 2 and data.dev_file.endswith("other.tsv")


# --- Generic files ---------------------------------------------------------------------------

def test_csv_with_quoted_commas_embedded_newlines_and_empty_rows(tmp_path):
    write(tmp_path, "train.csv",
          'id,text,label\r\n'
          '1,"Good, very good",pos\r\n'
          '2,"Two lines:\nsecond ""quoted"" line",neg\r\n'
          '3,   ,pos\r\n'
          '4,"好, 很好",pos\r\n')
    write(tmp_path, "dev.csv", "text,label,id\nfine,pos,1\n")
    data = load_task_data("classification", str(tmp_path))
    assert [e.text for e in data.train] == ["Good, very good",
                                            'Two lines:\nsecond "quoted" line', "好, 很好"]
    # The row after the two-line record starts on line 5 of the file.
    assert [e.source.rsplit(":", 1)[1] for e in data.train] == ["2", "3", "6"]
    assert data.labels == ["neg", "pos"] and data.skipped == {"train": 1, "dev": 0}
    assert data.spec.name == "classification" and not data.spec.is_pair


def test_tsv_with_header_pairs_and_regression(tmp_path):
    write(tmp_path, "train.tsv", tsv(["premise", "hypothesis", "score", "note"],
                                     ["A cat.", "A pet.", "4.5", ""],
                                     ["Rain.", "Sun.", " -1e-1 ", "x"]))
    write(tmp_path, "dev.tsv", tsv(["note", "score", "hypothesis", "premise"],
                                   ["", "3", "B.", "A."]))
    data = load_task_data("regression", str(tmp_path), text_column="premise",
                          text_pair_column="hypothesis", label_column="score")
    assert data.spec.is_pair and data.labels == []
    assert [(e.text, e.text_pair, e.label) for e in data.train] == \
        [("A cat.", "A pet.", 4.5), ("Rain.", "Sun.", -0.1)]
    assert (data.dev[0].text, data.dev[0].text_pair, data.dev[0].label) == ("A.", "B.", 3.0)


@pytest.mark.parametrize("extension", [".jsonl", ".json"])
def test_json_lines_with_chinese_text_and_integer_labels(tmp_path, extension):
    train = [{"label": 102, "sentence": "为何农民工每天加班？", "id": 1},
             {"label": 110, "sentence": "传统武术中的“五要”", "keywords": ""},
             {"label": 102, "sentence": None},  # No text: skipped and counted.
             {"label": 1e2, "sentence": "孩子跟谁睡"}]
    write(tmp_path, f"train{extension}",
          "\n".join(json.dumps(o, ensure_ascii=False) for o in train) + "\n\n")
    write(tmp_path, f"dev{extension}",
          json.dumps({"sentence": "炒股", "label": "110"}, ensure_ascii=False))
    data = load_task_data("classification", str(tmp_path), text_column="sentence")
    assert [e.label for e in data.train] == ["102", "110", "100"]
    assert data.labels == ["100", "102", "110"] and data.skipped == {"train": 1, "dev": 0}
    assert data.train[1].text == "传统武术中的“五要”" and data.dev[0].label == "110"
    assert data.train[2].source == f"{tmp_path}/train{extension}:4"


@pytest.mark.parametrize("header", ["no", "auto"])
def test_headerless_txt_with_column_indexes(tmp_path, header):
    write(tmp_path, "train.txt", "体验2D巅峰 倚天屠龙记\t8\n中华女子学院：本科层次\t3\n"
                                 "“阅兵”前夕的北京\t8\n")
    write(tmp_path, "dev.txt", "词汇阅读是关键\t3\r\n")
    data = load_task_data("classification", str(tmp_path), header=header, text_column="0",
                          label_column=1)
    assert [(e.text, e.label) for e in data.train][0] == ("体验2D巅峰 倚天屠龙记", "8")
    assert len(data.train) == 3 and data.labels == ["3", "8"]
    assert data.train[2].text == "“阅兵”前夕的北京" and data.dev[0].label == "3"


def test_bom_at_start_of_csv_and_stray_bom_in_fields(tmp_path):
    write(tmp_path, "reviews.csv", "\ufefflabel,review\n1,\ufeff很快，好吃\n0,太慢了\n")
    data = load_task_data("classification", str(tmp_path), train_file="reviews.csv",
                          dev_file=str(tmp_path / "reviews.csv"), text_column="review")
    assert [e.text for e in data.train] == ["很快，好吃", "太慢了"] and data.labels == ["0", "1"]
    assert data.train_file == data.dev_file


def test_conll_four_columns(tmp_path):
    write(tmp_path, "eng.train", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n"
                                 "\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n\n")
    write(tmp_path, "eng.testa", "CRICKET NNP B-NP O\nLEICESTERSHIRE NNP I-NP B-ORG")
    data = load_task_data("tagging", str(tmp_path))
    assert data.labels == ["O", "B-MISC", "B-ORG", "B-PER", "I-PER"]
    assert data.train[1] == TaggedExample(["Peter", "Blackburn"], ["B-PER", "I-PER"],
                                          f"{tmp_path}/eng.train:5")
    assert len(data.train) == 2 and data.dev[0].tags == ["O", "B-ORG"]
    assert data.spec.metrics == ("f1", "precision", "recall")


def test_conll_two_columns_with_docstart(tmp_path):
    write(tmp_path, "train.txt", "-DOCSTART- O\n\n北京\tB-LOC\n欢迎\tO\n你\tO\n"
                                 "-DOCSTART- O\nNew York\tB-LOC\n")
    write(tmp_path, "dev.txt", "\n\nYork B-LOC\n\n")
    data = load_task_data("tagging", str(tmp_path))
    assert [e.words for e in data.train] == [["北京", "欢迎", "你"], ["New York"]]
    assert data.labels == ["O", "B-LOC"] and data.train[0].source.endswith("train.txt:3")
    assert data.dev[0].source.endswith("dev.txt:3")


def test_task_names():
    assert GENERIC_TASKS == ("classification", "regression", "tagging")
    assert {task_spec(t).kind for t in GLUE_TASKS} == {"classification", "regression"}
    assert task_spec("cola").metrics == ("mcc",) and task_spec("stsb").primary_metric == \
        "spearman"
    assert [t for t in GLUE_TASKS if task_spec(t).default_epochs == 10] == ["stsb", "rte"]
    for t in GLUE_TASKS + GENERIC_TASKS:
        spec = task_spec(t)
        assert spec.primary_metric in spec.metrics and spec.name == t


# --- Refusals --------------------------------------------------------------------------------

def test_unknown_task_lists_the_allowed_ones(tmp_path):
    refusal("unknown task 'sst5'", "cola", "classification", "tagging",
            task="sst5", data_dir=str(tmp_path))


def test_missing_files_say_what_was_looked_for(tmp_path):
    refusal("no train file for task sst2", "train.tsv", "SST-2/train.tsv", "train_file",
            task="sst2", data_dir=str(tmp_path))
    write(tmp_path, "train.tsv", tsv(["sentence", "label"], ["a", "1"]))
    refusal("no dev file for task mnli", "dev_matched.tsv", "dev_file",
            task="mnli", data_dir=str(tmp_path))
    refusal("no train file", "train.csv", "train.jsonl", "train.json", "train_file",
            task="classification", data_dir=str(tmp_path / "nowhere"))
    refusal("nowhere (does not exist)", task="classification", data_dir=str(tmp_path / "nowhere"))
    refusal("eng.train", "train.txt", task="tagging", data_dir=str(tmp_path / "x"))
    refusal("dev file", "missing.csv", "not found", "dev_file='missing.csv'",
            task="classification", data_dir=str(tmp_path), train_file="train.tsv",
            dev_file="missing.csv")
    write(tmp_path, "train.csv", "text,label\na,1\n")
    refusal("several train files", "train.csv", "train.tsv", "pass train_file",
            task="classification", data_dir=str(tmp_path))


def test_empty_files(tmp_path):
    write(tmp_path, "train.tsv", "")
    write(tmp_path, "dev.tsv", tsv(["sentence", "label"], ["a", "1"]))
    refusal(f"{tmp_path}/train.tsv: no examples", "check that this is the train file",
            task="sst2", data_dir=str(tmp_path))
    write(tmp_path, "train.tsv", tsv(["sentence", "label"], ["   ", "1"]))
    refusal("train.tsv: no examples (all 1 rows have empty text)", task="sst2",
            data_dir=str(tmp_path))
    write(tmp_path / "c", "train.txt", "\n\n")
    write(tmp_path / "c", "dev.txt", "a O\n")
    refusal("train.txt: no examples", task="tagging", data_dir=str(tmp_path / "c"))


def test_malformed_lines(tmp_path):
    write(tmp_path, "train.tsv", tsv(["text", "label"], ["ok", "1"], ["no label"]))
    write(tmp_path, "dev.tsv", tsv(["text", "label"], ["ok", "1"], ["a", "1", "extra"]))
    refusal(f"{tmp_path}/train.tsv:3", "1 fields but the first row has 2", "fix this line",
            task="classification", data_dir=str(tmp_path))
    refusal(f"{tmp_path}/dev.tsv:3", "3 fields", task="classification", data_dir=str(tmp_path),
            train_file=str(tmp_path / "dev.tsv"))  # Absolute names work too.
    # A GLUE row with fewer fields than the header; CoLA with too few columns.
    write(tmp_path / "g", "train.tsv", tsv(["index", "sentence1", "sentence2", "label"],
                                           ["0", "a", "b", "entailment"], ["1", "a b"]))
    write(tmp_path / "g", "dev.tsv", tsv(["gj04", "1", "", "ok"], ["gj04", "1"]))
    refusal(f"{tmp_path}/g/train.tsv:3", "2 tab-separated fields but the header has 4",
            "fix or remove this line", task="rte", data_dir=str(tmp_path / "g"))
    refusal(f"{tmp_path}/g/dev.tsv:2", "CoLA needs 4", task="cola",
            data_dir=str(tmp_path / "g"), train_file="dev.tsv")
    write(tmp_path / "j", "train.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n')
    write(tmp_path / "j", "dev.jsonl", '{"text": "a", "label": 1}\n\n["text", "label"]\n')
    refusal(f"{tmp_path}/j/train.jsonl:2", "not valid JSON", "one JSON object",
            task="classification", data_dir=str(tmp_path / "j"))
    refusal(f"{tmp_path}/j/dev.jsonl:3", "a JSON array, not an object", "one JSON object",
            task="classification", data_dir=str(tmp_path / "j"), train_file="dev.jsonl")
    write(tmp_path / "j", "dev.jsonl", '[\n  {"text": "a", "label": 1}\n]\n')
    refusal(f"{tmp_path}/j/dev.jsonl:1", "a JSON array: write one object per line",
            task="classification", data_dir=str(tmp_path / "j"), train_file="dev.jsonl")
    write(tmp_path / "j", "dev.jsonl", '"just a string"\n')
    refusal(f"{tmp_path}/j/dev.jsonl:1", "a JSON string, not an object", task="classification",
            data_dir=str(tmp_path / "j"), train_file="dev.jsonl")
    # A list or an object where text or a label belongs (str() would make a class of it).
    write(tmp_path / "j", "dev.jsonl", '{"text": "a", "label": 1}\n')
    for bad, kind in (('["x"]', "a list"), ('{"a": 1}', "an object")):
        write(tmp_path / "j", "train.jsonl",
              '{"text": "好", "label": 1}\n{"text": "b", "label": %s}\n' % bad)
        refusal(f"{tmp_path}/j/train.jsonl:2", f"'label' (label_column) is {kind}, not text",
                task="classification", data_dir=str(tmp_path / "j"))
    write(tmp_path / "j", "train.jsonl", '{"text": ["好"], "label": 1}\n')
    refusal(f"{tmp_path}/j/train.jsonl:1", "'text' (text_column) is a list",
            task="classification", data_dir=str(tmp_path / "j"))
    write(tmp_path / "c", "train.txt", "EU B-ORG\nrejects\n")
    write(tmp_path / "c", "dev.txt", "EU B-ORG\n")
    refusal(f"{tmp_path}/c/train.txt:2", "one field 'rejects'", "add the tag or remove the line",
            task="tagging", data_dir=str(tmp_path / "c"))
    write(tmp_path / "q", "train.csv", 'text,label\n"a" b,1\n')
    write(tmp_path / "q", "dev.csv", "text,label\na,1\n")
    refusal(f"{tmp_path}/q/train.csv:2", "not valid CSV", "quote", task="classification",
            data_dir=str(tmp_path / "q"))
    write(tmp_path / "q", "train.csv", b"text,label\na,1\nb\xff,0\n")
    refusal(f"{tmp_path}/q/train.csv:3", "not valid UTF-8", "save the file as UTF-8",
            task="classification", data_dir=str(tmp_path / "q"))


def test_missing_columns_name_the_existing_ones(tmp_path):
    write(tmp_path, "train.csv", "label,review\n1,good\n")
    write(tmp_path, "dev.csv", "label,review\n1,good\n")
    refusal(f"{tmp_path}/train.csv:1", "no column 'text' (text_column)", "'label', 'review'",
            "set text_column", task="classification", data_dir=str(tmp_path))
    refusal("no column 'score' (label_column)", "header='no'", task="regression",
            data_dir=str(tmp_path), text_column="review", label_column="score")
    refusal("no column '5'", "2 columns", "use an index below 2", task="classification",
            data_dir=str(tmp_path), header="no", text_column="5", label_column="0")
    # header='no' already given with a column name: the fix is an index, not header='no'.
    message = refusal("no column 'review' (text_column)",
                      "without a header row, set text_column to a 0-based column index",
                      task="classification", data_dir=str(tmp_path), header="no",
                      text_column="review", label_column="0")
    assert "pass header='no'" not in message
    # --data_dir naming the train file itself.
    refusal(f"--data_dir={tmp_path}/train.csv is a file", "--train_file=train.csv",
            task="classification", data_dir=str(tmp_path / "train.csv"))
    write(tmp_path / "j", "train.json", '{"sentence": "好", "label": 1}\n')
    write(tmp_path / "j", "dev.json", '{"sentence": "好", "label": 1}\n')
    refusal(f"{tmp_path}/j/train.json:1", "no field 'text'", "'sentence', 'label'",
            "set text_column", task="classification", data_dir=str(tmp_path / "j"))
    write(tmp_path / "g", "train.tsv", tsv(["sentence", "labels"], ["a", "1"]))
    write(tmp_path / "g", "dev.tsv", tsv(["sentence", "label"], ["a", "1"]))
    refusal(f"{tmp_path}/g/train.tsv:1", "no column 'label'", "'sentence', 'labels'",
            "SST-2 file", task="sst2", data_dir=str(tmp_path / "g"))
    refusal("text_column only apply to the classification and regression tasks",
            task="sst2", data_dir=str(tmp_path / "g"), text_column="sentence")
    refusal("header must be", task="classification", data_dir=str(tmp_path), header="maybe")


def test_labels_unseen_in_train_or_outside_the_glue_set(tmp_path):
    write(tmp_path, "train.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n')
    write(tmp_path, "dev.jsonl", '{"text": "a", "label": 1}\n{"text": "c", "label": 2}\n')
    refusal(f"{tmp_path}/dev.jsonl:2", "label '2' does not occur in the train file",
            "'0', '1'", "add training examples", task="classification", data_dir=str(tmp_path))
    write(tmp_path / "c", "train.txt", "EU B-ORG\n\nPeter B-PER\n")
    write(tmp_path / "c", "dev.txt", "EU B-ORG\n\nParis B-LOC\n")
    refusal(f"{tmp_path}/c/dev.txt:3", "tag 'B-LOC' does not occur in the train file",
            task="tagging", data_dir=str(tmp_path / "c"))
    write(tmp_path / "g", "train.tsv", tsv(["index", "sentence1", "sentence2", "label"],
                                           ["0", "a", "b", "entailment"],
                                           ["1", "a", "b", "neutral"]))
    write(tmp_path / "g", "dev.tsv", tsv(["index", "sentence1", "sentence2", "label"],
                                         ["0", "a", "b", "entailment"]))
    refusal(f"{tmp_path}/g/train.tsv:3", "label 'neutral' is not one of the rte labels",
            "check that this is the RTE train file", task="rte", data_dir=str(tmp_path / "g"))
    write(tmp_path / "e", "train.csv", "text,label\na,\n")
    write(tmp_path / "e", "dev.csv", "text,label\na,1\n")
    refusal(f"{tmp_path}/e/train.csv:2", "empty label", task="classification",
            data_dir=str(tmp_path / "e"))


@pytest.mark.parametrize("bad", ["high", "nan", "inf", ""])
def test_regression_labels_must_be_numbers(tmp_path, bad):
    write(tmp_path, "train.csv", f"text,label\na,1.5\nb,{bad}\n")
    write(tmp_path, "dev.csv", "text,label\na,1\n")
    refusal(f"{tmp_path}/train.csv:3", f"label {bad!r} is not a finite number",
            "check label_column", task="regression", data_dir=str(tmp_path))
    write(tmp_path / "s", "train.tsv", tsv(STSB_HEADER, stsb_row(0, "a", "b", bad or "-")))
    write(tmp_path / "s", "dev.tsv", tsv(STSB_HEADER))
    refusal(f"{tmp_path}/s/train.tsv:2", "not a finite number", task="stsb",
            data_dir=str(tmp_path / "s"))
    write(tmp_path / "j", "train.jsonl", json.dumps({"text": "a", "label": True}))
    write(tmp_path / "j", "dev.jsonl", json.dumps({"text": "a", "label": 1}))
    refusal(f"{tmp_path}/j/train.jsonl:1", "label True", task="regression",
            data_dir=str(tmp_path / "j"))
