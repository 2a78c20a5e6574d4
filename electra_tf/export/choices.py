"""The export's named choices and the checks of its flags and output paths, free of
TensorFlow so the binary can refuse bad input in a fraction of a second, before any model is
loaded (docs/architecture.md, "Export")."""

from __future__ import annotations

import os
import re
from typing import Optional, Sequence

from electra_tf.export.source import ExportError

FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
INPUT_STYLES = ("ids", "text")


def parse_list(value, allowed: Sequence[str], flag: str, aliases=None) -> list:
    """'a,b' -> ['a', 'b'], refusing unknown names with one line naming the flag.

    Args:
      value: comma-separated string or list.
      allowed: the valid names.
      flag: the flag's name, for the message.
      aliases: name -> list of names it stands for (e.g. `all`).
    """
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    expanded = []
    for item in (v for v in items if v):
        expanded += list((aliases or {}).get(item, [item]))
    unknown = [v for v in expanded if v not in allowed]
    if unknown or not expanded:
        what = f"unknown value {unknown[0]!r}" if unknown else "no value"
        names = ", ".join(list(allowed) + list(aliases or {}))
        raise ExportError(f"--{flag}={value!r}: {what}; allowed: {names} (comma-separated)")
    return list(dict.fromkeys(expanded))


def check_choices(formats, quantize, styles):
    """Validates --format, --quantize and --tflite_inputs; returns them expanded."""
    formats = parse_list(formats, FORMATS, "format", {"all": FORMATS})
    quantize = parse_list(quantize, QUANTIZATIONS, "quantize",
                          {"all": QUANTIZATIONS, "float32": ["none"]})
    styles = parse_list(styles, INPUT_STYLES, "tflite_inputs", {"all": INPUT_STYLES})
    return formats, quantize, styles


# A servable name is one file name: word characters (any script), '-' and '.', not first.
_NAME = re.compile(r"\w[\w.-]*")
# What `electra_tf.files.remove_stale_temporaries` treats as a temporary.
_TEMP_SUFFIX = re.compile(r"\.tmp-\d+$")
_MAX_NAME_BYTES = 200  # room for ".tflite", "_text_dynamic_int8.tflite" and temp suffixes


def check_name(name: str) -> str:
    """Refuses a `--name` that is not a single safe file name (it names `OUTPUT/NAME`).

    Example:

    >>> check_name("电子-small.v2")
    '电子-small.v2'
    >>> check_name("../../escaped")
    Traceback (most recent call last):
    ...
    electra_tf.export.source.ExportError: --name='../../escaped' is not a single file name; ...
    """
    if (not isinstance(name, str) or not _NAME.fullmatch(name) or _TEMP_SUFFIX.search(name)
            or len(name.encode("utf-8")) > _MAX_NAME_BYTES):
        raise ExportError(f"--name={name!r} is not a single file name; use letters, digits, "
                          "'_', '-' and '.' (not first), at most 200 bytes, e.g. "
                          "--name=electra: the export goes to OUTPUT/NAME")
    return name


def check_counts(version: Optional[int], num_examples: int,
                 max_seq_length: Optional[int] = None) -> None:
    """Refuses a `--version` or `--num_examples` below 1 and a `--max_seq_length` below 3
    (its upper bound, the model's `max_position_embeddings`, is checked when the model dir
    is opened)."""
    if max_seq_length is not None and (isinstance(max_seq_length, bool)
                                       or int(max_seq_length) < 3):
        raise ExportError(f"--max_seq_length={max_seq_length} must be at least 3 ([CLS], a "
                          "word piece, [SEP]); leave it out to use the model's")
    if version is not None and (isinstance(version, bool) or int(version) < 1):
        raise ExportError(f"--version={version} must be a positive integer; leave it out to "
                          "take the next free one")
    if isinstance(num_examples, bool) or int(num_examples) < 1:
        raise ExportError(f"--num_examples={num_examples} must be at least 1 (representative "
                          "and held-out examples each)")


def output_bases(output_dir: str, name: str) -> dict:
    """Format -> its base directory: `OUTPUT/NAME` (SavedModel), `OUTPUT/NAME.tflite`."""
    return {"saved_model": os.path.join(output_dir, name),
            "tflite": os.path.join(output_dir, f"{name}.tflite")}


def check_version_free(output_dir: str, name: str, version: Optional[int]) -> None:
    """Refuses a `--version` that exists in either base directory (the number is shared)."""
    if version is None:
        return
    for base in output_bases(output_dir, name).values():
        path = os.path.join(base, str(int(version)))
        if os.path.lexists(path):
            raise ExportError(f"{path} already exists; pass another --version or leave it "
                              "out to take the next free one")


def _check_writable_dir(path: str, fix: str) -> None:
    """Refuses `path` unless it is a writable directory or can be created as one."""
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        what = f"{path} is not a directory" if probe == os.path.abspath(path) else \
            f"{path} cannot be created: {probe} is not a directory"
        raise ExportError(f"--output: {what}; {fix}")
    # Tried, not inferred from permission bits: root, read-only mounts and network
    # filesystems all answer here as they will when the export writes.
    trial = os.path.join(probe, f".electra-export-probe.tmp-{os.getpid()}")
    try:
        os.mkdir(trial)
        os.rmdir(trial)
    except OSError as e:
        raise ExportError(f"--output: cannot write in {probe} ({e.strerror}); pass an "
                          "--output you can write to") from None


def check_output(output_dir: str, name: str, formats: Sequence[str]) -> None:
    """Checks, before any work, that the export can be written where it is going.

    `--name` must be one file name; `OUTPUT` (scratch space of the TFLite conversion and
    where stale temporaries are cleared), `OUTPUT/NAME` and `OUTPUT/NAME.tflite` (as far
    as `formats` write them) must be writable directories or creatable as ones.

    Args:
      output_dir: the export root (`--output`).
      name: the servable name (`--name`).
      formats: the expanded formats (`check_choices`).

    Raises:
      ExportError: one line naming the flag, the path and what to do.
    """
    check_name(name)
    if not output_dir:
        raise ExportError("--output is required: the export root directory")
    bases = output_bases(output_dir, name)
    root_fix = "pass --output=DIR of a directory (the export root, created if missing)"
    _check_writable_dir(output_dir, root_fix)
    for fmt in formats:
        _check_writable_dir(bases[fmt], f"move that file away or pass another --name ({fmt} "
                                        "versions go in that directory)")
