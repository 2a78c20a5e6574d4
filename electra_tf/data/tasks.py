"""Fine-tuning tasks: their labels and metrics, and reading their train and dev files.

Two kinds of task (docs/architecture.md, "Fine-tuning"):

- The GLUE tasks (`GLUE_TASKS`), in the TSV layout of `download_glue_data.py`: `train.tsv`
  and `dev.tsv` (MNLI: `dev_matched.tsv`) in `data_dir` or in its GLUE-named subfolder
  (`data_dir/SST-2/`). Columns are found by header name (CoLA has no header) and the files are
  split at tabs with no quote handling, because their sentences contain unbalanced quotes.
  Extra columns are fine; a row shorter than the header is not.
- The generic tasks (`GENERIC_TASKS`) read the user's own files with no per-dataset code:
  `classification` and `regression` read `train.*` and `dev.*` (`.csv`, `.tsv`, `.txt` read
  as TSV, `.jsonl` or `.json` as JSON lines) with the columns named by `text_column`,
  `text_pair_column` and `label_column`, or 0-based indexes for files without a header;
  `tagging` reads CoNLL files (`train.txt`/`dev.txt`, or CoNLL-2003's `eng.train`/`eng.testa`).

Texts are stripped (and stray U+FEFF removed); rows whose text (or second text) is empty are
skipped and counted in `TaskData.skipped`. Every refusal is a one-line `TaskDataError` naming
the file, the line and what to do.

Example:

>>> import tempfile
>>> data_dir = tempfile.mkdtemp()
>>> for name, rows in [("train.csv", ["好吃,1", '"难吃, 太咸",0', ",1"]), ("dev.csv", ["还行,1"])]:
...     with open(os.path.join(data_dir, name), "w", encoding="utf-8") as f:
...         _ = f.write("text,label\\n" + "\\n".join(rows) + "\\n")
>>> data = load_task_data("classification", data_dir)
>>> data.labels, [e.text for e in data.train], data.skipped
(['0', '1'], ['好吃', '难吃, 太咸'], {'train': 1, 'dev': 0})
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional, Union

from electra_tf.data.task_readers import (TABLE_FORMATS, TaskDataError, find_file, name_list,
                                          read_conll, read_glue_tsv, read_table, short)

__all__ = ["TaskDataError", "TaskSpec", "TextExample", "TaggedExample", "TaskData",
           "GLUE_TASKS", "GENERIC_TASKS", "task_spec", "load_task_data"]

GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
GENERIC_TASKS = ("classification", "regression", "tagging")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a task predicts and how it is scored.

    Args:
      name: a GLUE task ("sst2", ...) or a generic one ("classification", ...).
      kind: "classification", "regression" or "tagging".
      labels: the fixed label names in output order (GLUE classification), or None when the
        labels are learned from the train file (sorted strings).
      metrics: the metric names reported (`electra_tf/training/task_metrics.py`).
      primary_metric: the metric that picks the best epoch.
      default_epochs: epochs when the run does not say.
      is_pair: examples have a second text (`text_pair`).

    Example:

    >>> spec = task_spec("rte")
    >>> spec.labels, spec.primary_metric, spec.default_epochs, spec.is_pair
    (('entailment', 'not_entailment'), 'accuracy', 10, True)
    """

    name: str
    kind: str
    labels: Optional[tuple]
    metrics: tuple
    primary_metric: str
    default_epochs: int
    is_pair: bool


@dataclasses.dataclass
class TextExample:
    """One classification or regression example.

    Args:
      text: the (first) text.
      text_pair: the second text of pair tasks, else None.
      label: the label name as written in the file (classification), or a float (regression).
      source: "path:line", for messages.

    Example:

    >>> TextExample("a cat", None, "1", "train.tsv:2").label
    '1'
    """

    text: str
    text_pair: Optional[str]
    label: Union[str, float]
    source: str


@dataclasses.dataclass
class TaggedExample:
    """One tagging sentence: its words and one tag per word.

    Args:
      words: the tokens (list of str).
      tags: their tags (list of str, same length).
      source: "path:line" of the first token, for messages.

    Example:

    >>> TaggedExample(["EU", "rejects"], ["B-ORG", "O"], "train.txt:1").tags
    ['B-ORG', 'O']
    """

    words: list
    tags: list
    source: str


@dataclasses.dataclass
class TaskData:
    """A task's train and dev examples and its label names.

    Args:
      spec: the task (`is_pair` set from `text_pair_column` for generic tasks).
      train: TextExample or TaggedExample list.
      dev: the same, for evaluation.
      labels: label (or tag) names in id order; [] for regression.
      train_file: the file `train` was read from.
      dev_file: the file `dev` was read from.
      skipped: rows left out because their text was empty, {"train": n, "dev": m}.

    Example:

    >>> TaskData(task_spec("stsb"), [], [], [], "train.tsv", "dev.tsv").skipped
    {}
    """

    spec: TaskSpec
    train: list
    dev: list
    labels: list
    train_file: str
    dev_file: str
    skipped: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _GlueLayout:
    folder: str                  # The folder download_glue_data.py names the task.
    text: Union[str, int]        # Header name, or index for header-less files.
    text_pair: Union[str, int, None]
    label: Union[str, int]
    dev_name: str = "dev.tsv"


_BINARY = ("0", "1")
_NLI = ("entailment", "not_entailment")
_ACC = ("accuracy",)


def _glue(name, layout, labels, metrics=_ACC, primary="accuracy", epochs=3):
    kind = "regression" if labels is None else "classification"
    spec = TaskSpec(name, kind, labels, metrics, primary, epochs, layout.text_pair is not None)
    return spec, layout


# Metrics and epochs as in the ELECTRA paper: Matthews correlation for CoLA, Spearman for STS-B,
# accuracy elsewhere (F1 is reported beside it for MRPC and QQP); 10 epochs for RTE and STS-B.
_GLUE = {spec.name: (spec, layout) for spec, layout in [
    _glue("cola", _GlueLayout("CoLA", 3, None, 1), _BINARY, ("mcc",), "mcc"),
    _glue("sst2", _GlueLayout("SST-2", "sentence", None, "label"), _BINARY),
    _glue("mrpc", _GlueLayout("MRPC", "#1 String", "#2 String", "Quality"), _BINARY,
          ("accuracy", "f1")),
    _glue("stsb", _GlueLayout("STS-B", "sentence1", "sentence2", "score"), None,
          ("pearson", "spearman"), "spearman", epochs=10),
    _glue("qqp", _GlueLayout("QQP", "question1", "question2", "is_duplicate"), _BINARY,
          ("accuracy", "f1")),
    _glue("mnli", _GlueLayout("MNLI", "sentence1", "sentence2", "gold_label",
                              dev_name="dev_matched.tsv"),
          ("contradiction", "entailment", "neutral")),
    _glue("qnli", _GlueLayout("QNLI", "question", "sentence", "label"), _NLI),
    _glue("rte", _GlueLayout("RTE", "sentence1", "sentence2", "label"), _NLI, epochs=10),
    _glue("wnli", _GlueLayout("WNLI", "sentence1", "sentence2", "label"), _BINARY),
]}
_GENERIC = {
    "classification": TaskSpec("classification", "classification", None, _ACC, "accuracy", 3,
                               False),
    "regression": TaskSpec("regression", "regression", None, ("pearson", "spearman"),
                           "spearman", 3, False),
    "tagging": TaskSpec("tagging", "tagging", None, ("f1", "precision", "recall"), "f1", 3,
                        False),
}
_CONLL_NAMES = (("train.txt", "train.conll", "eng.train"),
                ("dev.txt", "dev.conll", "valid.txt", "eng.testa"))


def task_spec(name: str) -> TaskSpec:
    """The spec of a task by name (case and "-"/"_" ignored: "SST-2" is "sst2").

    Args:
      name: one of `GLUE_TASKS` or `GENERIC_TASKS`.

    Raises:
      TaskDataError: the name is unknown.

    Example:

    >>> task_spec("STS-B").metrics, task_spec("tagging").labels
    (('pearson', 'spearman'), None)
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    spec = _GLUE.get(key, (None,))[0] or _GENERIC.get(key)
    if spec is None:
        raise TaskDataError(f"unknown task {short(name)}; use one of "
                            f"{', '.join(GLUE_TASKS + GENERIC_TASKS)}")
    return spec


def load_task_data(task: str, data_dir: str, *, text_column=None, text_pair_column=None,
                   label_column=None, train_file=None, dev_file=None,
                   header="auto") -> TaskData:
    """Reads and checks a task's train and dev examples.

    Args:
      task: a name `task_spec` accepts.
      data_dir: the folder of the files (for GLUE, also its GLUE-named subfolder is tried).
      text_column, text_pair_column, label_column: columns of generic classification and
        regression files: names (the header, or JSON keys), or 0-based indexes written as
        digits for files without a header. Defaults "text", None, "label".
      train_file, dev_file: file names relative to `data_dir` (or absolute) instead of the
        usual names; the extension gives the format (generic tagging files are always CoNLL).
      header: for CSV/TSV files, "yes", "no" or "auto": a header, unless every column is
        given as an index (digits) and the first row does not hold them all as names.

    Returns:
      TaskData; its labels are the GLUE label set, or the train labels sorted (tagging: "O"
      first), or [] for regression.

    Raises:
      TaskDataError: an unknown task, a missing, empty or malformed file, a missing column,
        a label that is not a number (regression) or a dev label the train file lacks.

    Example:

    >>> import tempfile
    >>> data_dir = tempfile.mkdtemp()
    >>> for name, rows in [("train.tsv", ["a dog 's day\\t1", "dull\\t0"]),
    ...                    ("dev.tsv", ["\\"fine\\t1"])]:
    ...     with open(os.path.join(data_dir, name), "w", encoding="utf-8") as f:
    ...         _ = f.write("sentence\\tlabel\\n" + "\\n".join(rows) + "\\n")
    >>> data = load_task_data("sst2", data_dir)
    >>> len(data.train), data.dev[0].text, data.dev[0].source.endswith("dev.tsv:2")
    (2, '"fine', True)
    """
    spec = task_spec(task)
    header = {True: "yes", False: "no"}.get(header, header)
    if header not in ("auto", "yes", "no"):
        raise TaskDataError(f"header must be 'auto', 'yes' or 'no', not {short(header)}")
    options = {"text_column": text_column, "text_pair_column": text_pair_column,
               "label_column": label_column}
    given = [k for k, v in options.items() if v is not None] + \
        (["header"] if header != "auto" else [])
    if given and (spec.name in _GLUE or spec.kind == "tagging"):
        raise TaskDataError(f"{', '.join(given)} only apply to the classification and "
                            f"regression tasks; task {spec.name} has fixed columns: drop "
                            f"{given[0]}, or use task classification/regression for own files")
    if os.path.isfile(data_dir):
        raise TaskDataError(f"--data_dir={data_dir} is a file; pass the folder that holds the "
                            f"train and dev files (and --train_file="
                            f"{os.path.basename(data_dir)} to name this one)")
    skipped = {"train": 0, "dev": 0}

    if spec.name in _GLUE:
        layout = _GLUE[spec.name][1]
        paths = [find_file(data_dir, explicit, [name, os.path.join(layout.folder, name)],
                           role, spec.name, unique=False)
                 for explicit, name, role in [(train_file, "train.tsv", "train"),
                                              (dev_file, layout.dev_name, "dev")]]
        columns = [layout.text, layout.text_pair, layout.label]
        splits = [_text_examples(read_glue_tsv(p, columns, layout.folder), spec.kind, skipped,
                                 role) for p, role in zip(paths, ("train", "dev"))]
    elif spec.kind == "tagging":
        paths = [find_file(data_dir, explicit, names, role, spec.name, unique=True)
                 for explicit, names, role in [(train_file, _CONLL_NAMES[0], "train"),
                                               (dev_file, _CONLL_NAMES[1], "dev")]]
        splits = [[TaggedExample(words, tags, f"{p}:{line}")
                   for line, words, tags in read_conll(p)] for p in paths]
    else:
        spec = dataclasses.replace(spec, is_pair=text_pair_column is not None)
        wanted = [("text_column", "text" if text_column is None else str(text_column))]
        if spec.is_pair:
            wanted.append(("text_pair_column", str(text_pair_column)))
        wanted.append(("label_column", "label" if label_column is None else str(label_column)))
        paths = [find_file(data_dir, explicit, [f"{role}{ext}" for ext in TABLE_FORMATS],
                           role, spec.name, unique=True)
                 for explicit, role in [(train_file, "train"), (dev_file, "dev")]]
        # Rows are (source, text, label) or (source, text, pair, label): make them the latter.
        splits = [_text_examples([(r[0], r[1], r[2] if spec.is_pair else None, r[-1])
                                  for r in read_table(p, wanted, header)],
                                 spec.kind, skipped, role)
                  for p, role in zip(paths, ("train", "dev"))]

    for path, examples, role in zip(paths, splits, ("train", "dev")):
        if not examples:
            why = f" (all {skipped[role]} rows have empty text)" if skipped[role] else ""
            raise TaskDataError(f"{path}: no examples{why}; check that this is the {role} "
                                f"file of task {spec.name} and that it is not empty")
    train, dev = splits
    labels = _check_labels(spec, train, dev, paths[0])
    return TaskData(spec, train, dev, labels, paths[0], paths[1], skipped)


def _clean(value) -> str:
    # Spreadsheet exports leave U+FEFF inside fields; it is invisible and not text.
    return "" if value is None else str(value).replace("\ufeff", "").strip()


def _text_examples(rows, kind, skipped, role):
    """TextExamples of (source, text, pair, label) rows; rows with an empty text are counted."""
    examples = []
    for source, text, pair, label in rows:
        text, pair = _clean(text), None if pair is None else _clean(pair)
        if not text or pair == "":
            skipped[role] += 1
            continue
        examples.append(TextExample(text, pair, _label(label, kind, source), source))
    return examples


def _label(value, kind, source):
    """A classification label name (str) or a regression target (float)."""
    if kind == "regression":
        try:
            if isinstance(value, bool):
                raise ValueError
            score = float(_clean(value) if isinstance(value, str) else value)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            raise TaskDataError(f"{source}: label {short(value)} is not a finite number; "
                                f"regression labels must be numbers: fix it, check "
                                f"label_column, or use task classification")
        return score
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1.0 from a JSON writer is the class "1" of other files.
    name = _clean(value)
    if not name:
        raise TaskDataError(f"{source}: empty label; fill it in or remove the line")
    return name


def _check_labels(spec, train, dev, train_path):
    """The label names in id order; refuses labels outside the fixed set or unseen in train."""
    if spec.kind == "regression":
        return []
    if spec.kind == "tagging":
        seen = {t for e in train for t in e.tags}
        labels = (["O"] if "O" in seen else []) + sorted(seen - {"O"})
    else:
        labels = list(spec.labels) if spec.labels else sorted({e.label for e in train})
    known = set(labels)
    for role, examples in (("train", train), ("dev", dev)):
        for e in examples:
            bad = [t for t in e.tags if t not in known] if spec.kind == "tagging" else \
                [e.label] if e.label not in known else []
            if not bad:
                continue
            if spec.labels:
                raise TaskDataError(f"{e.source}: label {short(bad[0])} is not one of the "
                                    f"{spec.name} labels ({name_list(labels)}); check that this "
                                    f"is the {_GLUE[spec.name][1].folder} {role} file")
            raise TaskDataError(f"{e.source}: {'tag' if spec.kind == 'tagging' else 'label'} "
                                f"{short(bad[0])} does not occur in the train file "
                                f"{train_path} (it has {name_list(labels)}); fix the label, or "
                                f"add training examples with it")
    return labels
