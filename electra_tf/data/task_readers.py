"""File formats of fine-tuning data: tab- and comma-separated tables, JSON lines, CoNLL.

The readers return rows with their 1-based line numbers, or the columns asked for with a
"path:line" source; they know nothing of labels or examples (`electra_tf/data/tasks.py` does).
Every file is read whole (fine-tuning sets are small) as UTF-8 with a leading byte-order mark
removed, and every refusal is a one-line `TaskDataError`: `FILE:LINE: what is wrong; what to
do`.

Example:

>>> import tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
>>> with open(path, "w", encoding="utf-8-sig") as f:
...     _ = f.write('label,text\\n1,"好, 很好"\\n')
>>> read_delimited(path, ",", quoting=True)
[(1, ['label', 'text']), (2, ['1', '好, 很好'])]
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Optional

_BOM = "\ufeff"


class TaskDataError(ValueError):
    """Bad fine-tuning data (one line naming file, line and fix)."""


def short(value, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters, so that a message stays one short line.

    Args:
      value: anything; strings are quoted, newlines in them escaped.
      limit: the most characters kept.

    Example:

    >>> short("a\\nb"), short("x" * 100, limit=8)
    ("'a\\\\nb'", "'xxxx...")
    """
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_text(path: str) -> str:
    """The whole of a UTF-8 text file, without a leading byte-order mark.

    Args:
      path: the file.

    Raises:
      TaskDataError: the file cannot be read, or is not UTF-8 (naming the first bad line).

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"\\xef\\xbb\\xbfhello\\n")
    >>> read_text(path)
    'hello\\n'
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TaskDataError(f"{path}: cannot read it ({e.strerror}); check that it exists and "
                            f"is readable") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise TaskDataError(f"{path}:{line}: not valid UTF-8 (byte {e.start}); save the file "
                            f"as UTF-8") from None
    # Spreadsheet programs and Windows editors start UTF-8 files with U+FEFF; it is not text.
    return text[1:] if text.startswith(_BOM) else text


def _lines(text: str):
    """(line number, line) pairs; only "\\n" ends a line (with an optional "\\r" before it).

    str.splitlines would also split at U+2028, U+0085 and other separators that occur inside
    real sentences, and so shift every later line number.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line[:-1] if line.endswith("\r") else line


def read_delimited(path: str, delimiter: str, *, quoting: bool) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a delimited table, each with the line it starts on.

    Args:
      path: the file (UTF-8, optional byte-order mark).
      delimiter: "\\t" or ",".
      quoting: parse double-quoted fields (CSV: a quoted field may hold the delimiter, "" and
        newlines). Off, every line is one row split at each delimiter: GLUE's TSV files have
        unbalanced quotes inside sentences, which quoting would read as fields spanning lines.

    Returns:
      `(line, fields)` for each row; blank lines are left out.

    Raises:
      TaskDataError: the file is unreadable, not UTF-8, or not parseable as CSV.

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "dev.tsv")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write('sentence\\tlabel\\n"quoted at start\\t1\\n\\nlast\\t0\\n')
    >>> read_delimited(path, "\\t", quoting=False)
    [(1, ['sentence', 'label']), (2, ['"quoted at start', '1']), (4, ['last', '0'])]
    """
    text = read_text(path)
    if not quoting:
        return [(n, line.split(delimiter)) for n, line in _lines(text) if line.strip()]
    rows = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    # reader.line_num counts physical lines read so far, so a record that spans lines starts
    # one after where the previous record ended.
    start = 1
    try:
        for fields in reader:
            if any(field.strip() for field in fields):
                rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as e:
        raise TaskDataError(f"{path}:{start}: not valid CSV ({e}); check the quotes of this "
                            f"row (a quote inside a quoted field is written twice)") from None
    return rows


def read_json_lines(path: str) -> list[tuple[int, dict]]:
    """The objects of a JSON-lines file (one JSON object per line), each with its line.

    Args:
      path: the file (`.jsonl` or `.json` holding one object per line); blank lines are skipped.

    Raises:
      TaskDataError: a line is not valid JSON, or is valid JSON but not an object.

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "train.json")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write('{"sentence": "很好", "label": 1}\\n\\n{"sentence": "差", "label": 0}\\n')
    >>> read_json_lines(path)
    [(1, {'sentence': '很好', 'label': 1}), (3, {'sentence': '差', 'label': 0})]
    """
    rows = []
    for number, line in _lines(read_text(path)):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as e:
            what = "a JSON array: write one object per line" if line.lstrip().startswith("[") \
                else f"not valid JSON ({e.msg} at column {e.colno})"
            raise TaskDataError(f"{path}:{number}: {what}; each line must be one JSON object "
                                f"such as {{\"text\": \"...\", \"label\": \"...\"}}") from None
        if not isinstance(value, dict):
            kind = {list: "a JSON array", str: "a JSON string", bool: "JSON true/false",
                    type(None): "JSON null"}.get(type(value), "a JSON number")
            raise TaskDataError(f"{path}:{number}: {kind}, not an object; each line must be "
                                f"one JSON object such as {{\"text\": \"...\", \"label\": "
                                f"\"...\"}}")
        rows.append((number, value))
    return rows


def read_conll(path: str) -> list[tuple[int, list[str], list[str]]]:
    """The sentences of a CoNLL file: a token per line, its tag in the last column.

    Columns are separated by tabs if the line has one (then tokens may contain spaces), else
    by spaces, so `token POS chunk NER` (CoNLL-2003) and `token TAG` both read. A blank line
    ends a sentence; `-DOCSTART-` lines (document boundaries) are skipped.

    Args:
      path: the file.

    Returns:
      `(line of the first token, tokens, tags)` for each sentence.

    Raises:
      TaskDataError: a non-blank line has a single field (no tag).

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "train.txt")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write("-DOCSTART- -X- O O\\n\\nEU NNP B-NP B-ORG\\nrejects VBZ B-VP O\\n")
    >>> read_conll(path)
    [(3, ['EU', 'rejects'], ['B-ORG', 'O'])]
    """
    sentences = []
    words, tags, first = [], [], 0
    for number, line in _lines(read_text(path)):
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields if f.strip()]
        if fields and fields[0] == "-DOCSTART-":
            fields = []  # A document boundary also ends the sentence before it.
        if not fields:
            if words:
                sentences.append((first, words, tags))
            words, tags = [], []
            continue
        if len(fields) < 2:
            raise TaskDataError(f"{path}:{number}: one field {short(fields[0])}, expected a "
                                f"token and its tag ('token TAG' or 'token POS chunk TAG'); "
                                f"add the tag or remove the line")
        if not words:
            first = number
        words.append(fields[0])
        tags.append(fields[-1])
    if words:  # A last sentence without a blank line after it.
        sentences.append((first, words, tags))
    return sentences


# Extensions of generic classification/regression files and how each is read.
TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "json", ".json": "json"}


def name_list(names, limit: int = 12) -> str:
    """Names for a message: quoted, comma-separated, at most `limit` of them.

    Example:

    >>> name_list(["text", "label"]), name_list(range(20), limit=2)
    ("'text', 'label'", "'0', '1', ...")
    """
    names = [str(n) for n in names]
    return ", ".join(short(n, 30) for n in names[:limit]) + (", ..." if len(names) > limit
                                                             else "")


def find_file(data_dir: str, explicit: Optional[str], candidates, role: str, task: str, *,
              unique: bool) -> str:
    """The path of a task's train or dev file.

    Args:
      data_dir: the folder to look in.
      explicit: a name given by the user (relative to `data_dir`, or absolute), or None.
      candidates: names to look for, in order of preference, when `explicit` is None.
      role: "train" or "dev" (for messages and the `{role}_file` option they suggest).
      task: the task name, for messages.
      unique: refuse when more than one candidate exists (else the first one wins).

    Raises:
      TaskDataError: no such file, or several candidates with `unique`.

    Example:

    >>> import tempfile
    >>> data_dir = tempfile.mkdtemp()
    >>> open(os.path.join(data_dir, "train.jsonl"), "w").close()
    >>> os.path.basename(find_file(data_dir, None, ["train.csv", "train.jsonl"], "train",
    ...                            "classification", unique=True))
    'train.jsonl'
    """
    if explicit:
        path = os.path.join(data_dir, explicit)
        if not os.path.isfile(path):
            raise TaskDataError(f"{role} file {path} not found (from "
                                f"{role}_file={short(explicit)}); check the name (a relative "
                                f"name is taken from data_dir)")
        return path
    found = [os.path.join(data_dir, c) for c in candidates
             if os.path.isfile(os.path.join(data_dir, c))]
    if len(found) > 1 and unique:
        raise TaskDataError(f"several {role} files for task {task}: {', '.join(found)}; pass "
                            f"{role}_file to choose one")
    if not found:
        where = data_dir if os.path.isdir(data_dir) else f"{data_dir} (does not exist)"
        raise TaskDataError(f"no {role} file for task {task} in {where}: "
                            f"looked for {', '.join(candidates)}; put the file there or pass "
                            f"{role}_file")
    return found[0]


def read_glue_tsv(path: str, columns, what: str) -> list[tuple]:
    """Picks columns out of a GLUE-style TSV file (tab-split, no quoting).

    Args:
      path: the file.
      columns: header names, or 0-based indexes for a file without a header (then every
        entry is an int or None); None entries give None values.
      what: the data set's name, for messages ("SST-2").

    Returns:
      `("path:line", value, ...)` per data row, one value per entry of `columns`.

    Raises:
      TaskDataError: a column is not in the header, or a row has fewer fields than the header
        (or than the highest index needs). More fields are fine: GLUE files vary.

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "dev.tsv")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write("index\\tsentence\\tlabel\\n0\\tit 's \\"fun\\t1\\textra\\n")
    >>> [row[1:] for row in read_glue_tsv(path, ["sentence", None, "label"], "SST-2")]
    [('it \\'s "fun', None, '1')]
    """
    rows = read_delimited(path, "\t", quoting=False)
    if any(isinstance(c, str) for c in columns):  # The file has a header.
        if not rows:
            return []
        line, names = rows.pop(0)
        names = [n.strip() for n in names]
        for c in columns:
            if c is not None and c not in names:
                raise TaskDataError(f"{path}:{line}: no column {short(c)} in the header (it "
                                    f"has {name_list(names)}); check that this is the {what} "
                                    f"file of download_glue_data.py")
        columns = [None if c is None else names.index(c) for c in columns]
        width, needs = len(names), "the header has"
    else:
        width, needs = max(c for c in columns if c is not None) + 1, f"{what} needs"
    out = []
    for line, fields in rows:
        if len(fields) < width:
            raise TaskDataError(f"{path}:{line}: {len(fields)} tab-separated fields but "
                                f"{needs} {width}; fix or remove this line")
        out.append((f"{path}:{line}", *(None if c is None else fields[c] for c in columns)))
    return out


def _is_index(column: str) -> bool:
    return column.isascii() and column.isdigit()


def read_table(path: str, wanted, header: str = "auto") -> list[tuple]:
    """Picks columns out of a generic CSV, TSV or JSON-lines file (format by extension).

    Args:
      path: a file with an extension of `TABLE_FORMATS`.
      wanted: `(option, column)` pairs, e.g. `[("text_column", "text")]`: a column is a header
        name or JSON key, or a 0-based index written as digits (CSV/TSV without a header);
        `option` names the setting in messages.
      header: CSV/TSV only: "yes", "no" or "auto" (a header, unless every column is given
        as an index and the first row does not hold them all as names).

    Returns:
      `("path:line", value, ...)` per row, one value per entry of `wanted`.

    Raises:
      TaskDataError: unknown extension, a missing column (naming those that exist), or a row
        with a different number of fields from the first row.

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "train.txt")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write("体育新闻\\t7\\n财经新闻\\t2\\n")
    >>> read_table(path, [("text_column", "0"), ("label_column", "1")])[1][1:]
    ('财经新闻', '2')
    """
    fmt = TABLE_FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise TaskDataError(f"{path}: cannot tell its format from the extension; name it "
                            f".csv, .tsv, .txt (tab-separated), .jsonl or .json (JSON lines)")
    if fmt == "json":
        out = []
        for line, obj in read_json_lines(path):
            for option, key in wanted:
                if key not in obj:
                    raise TaskDataError(f"{path}:{line}: no field {short(key)} in this JSON "
                                        f"object (it has {name_list(obj)}); set {option} to "
                                        f"one of them")
                value = obj[key]
                # Text, a number or true/false is a value, and null an empty one (that row
                # is skipped and counted, like an empty CSV field); a list or an object is
                # neither (str() would silently turn ["x"] into a label "['x']").
                if isinstance(value, (list, dict)):
                    kind = "a list" if isinstance(value, list) else "an object"
                    raise TaskDataError(f"{path}:{line}: field {short(key)} ({option}) is "
                                        f"{kind}, not text or a number; fix this line")
            out.append((f"{path}:{line}", *(obj[key] for _, key in wanted)))
        return out
    rows = read_delimited(path, "," if fmt == "csv" else "\t", quoting=fmt == "csv")
    if not rows:
        return []
    first_line, first = rows[0]
    names = [n.strip() for n in first]
    keys = [key for _, key in wanted]
    # Named columns need a header; indexes alone mean none, unless the row holds those names.
    has_header = header == "yes" or header == "auto" and (
        all(key in names for key in keys) or not all(_is_index(key) for key in keys))
    indexes = []
    for option, key in wanted:
        if has_header and key in names:
            indexes.append(names.index(key))
        elif _is_index(key) and int(key) < len(first):
            indexes.append(int(key))
        else:
            if _is_index(key):
                fix = f"use an index below {len(first)}"
            elif has_header:
                fix = (f"set {option} to one of those names, or pass header='no' with a "
                       f"0-based column index")
            else:
                fix = f"without a header row, set {option} to a 0-based column index"
            raise TaskDataError(f"{path}:{first_line}: no column {short(key)} ({option}); "
                                f"the first row has {len(first)} columns: "
                                f"{name_list(names)}; {fix}")
    out = []
    for line, fields in rows[1:] if has_header else rows:
        if len(fields) != len(first):
            raise TaskDataError(f"{path}:{line}: {len(fields)} fields but the first row has "
                                f"{len(first)}; fix this line (in a .csv, quote fields that "
                                f"hold commas)")
        out.append((f"{path}:{line}", *(fields[i] for i in indexes)))
    return out
