"""The export's named choices and their parsing, free of TensorFlow so the binary can refuse
a bad flag in a fraction of a second."""

from __future__ import annotations

from typing import Sequence

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
