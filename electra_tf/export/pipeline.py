"""One export run: SavedModel and/or TFLite variants, verified, then moved into place.

Layout under `output_dir` (VERSION is shared by both, the next free integer by default):
  NAME/VERSION/                    SavedModel for TF Serving (`--model_base_path=OUT/NAME`)
  NAME/VERSION/assets.extra/       tf_serving_warmup_requests, verification.json, vocab.txt
  NAME.tflite/VERSION/             NAME_{ids,text}_{float32,float16,dynamic_int8,int8}.tflite
  NAME.tflite/VERSION/             verification.json, vocab.txt (+ labels.txt for classifiers
                                   and taggers: one label name per line, in class-id order)
Before any work: the flags are checked and the output directories must be writable
(`choices.check_output`), and the temporaries a killed export left (`.VERSION.tmp-PID`,
`.NAME.scratch.tmp-PID` of processes no longer alive) are removed. Everything is written to
temporary directories beside the final ones and renamed only after every check passed, the
TFLite directory first and the SavedModel (which TF Serving picks up) last, so a failed or
interrupted export, a full disk included, leaves nothing behind and earlier versions as
they were (docs/architecture.md, "Export").
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from electra_tf.export import calibration as calibration_lib
from electra_tf.export import saved_model, serving, tflite, verify
from electra_tf.export.choices import (FORMATS, check_choices, check_counts, check_output,
                                       output_bases)
from electra_tf.export.source import ExportError, ExportSource
from electra_tf.files import atomic_write_bytes, process_alive, remove_stale_temporaries

# Failures of the disk, not of the export: reported in one line instead of a traceback.
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                errno.EFBIG, errno.EIO}
_DISK_TF_ERRORS = (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError)

VOCAB_FILE = "vocab.txt"
LONG_TEXT = " ".join(["a very long request"] * 400)


def export_all(source: ExportSource, output_dir: str, *, name: str = "electra",
               formats=FORMATS, quantize=tflite.QUANTIZATIONS, styles=tflite.INPUT_STYLES,
               version: Optional[int] = None, task: str = "auto",
               calibration: Optional[calibration_lib.CalibrationData] = None,
               representative_data: Optional[str] = None, cache_dir: Optional[str] = None,
               num_examples: int = 64, strict: bool = True, log=print) -> dict:
    """Exports, verifies and publishes a model. Returns the verification report.

    Args:
      source: an `ExportSource` (model, tokenizer, lengths, task and label names).
      output_dir: root of the exports.
      name: servable name.
      formats: `saved_model`, `tflite` (list or comma-separated; `all`).
      quantize: TFLite variants among `none`, `float16`, `dynamic`, `int8`.
      styles: TFLite input styles among `ids`, `text`.
      version: the version number; None = next free one (shared by SavedModel and TFLite).
      task: `auto` (the source's task when it knows it, e.g. from a fine-tuned dir's
        finetune.json, else `serving.detect_task`) or one of `serving.TASKS`.
      calibration: representative/held-out data; None draws it (see calibration.py).
      representative_data: pretraining TFRecords for the representative dataset.
      cache_dir: cache of the embedded corpus (when no TFRecords are given).
      num_examples: representative and held-out examples each.
      strict: refuse to publish when a variant misses its floor.
      log: where progress lines go.

    Raises:
      ExportError: bad choices or counts, a name that is not one file name, an output that
        cannot be written (checked first) or that fills up (nothing is then published), an
        existing version, a failed verification.
    """
    formats, quantize, styles = check_choices(formats, quantize, styles)
    check_counts(version, num_examples)
    check_output(output_dir, name, formats)
    bases = output_bases(output_dir, name)
    remove_stale_export_temporaries(output_dir, name)
    version = int(version) if version is not None else saved_model.next_version(
        list(bases.values()))
    finals = {fmt: os.path.join(bases[fmt], str(version)) for fmt in formats}
    for fmt, final in finals.items():
        if os.path.exists(final):
            raise ExportError(f"{final} already exists; pass another --version or leave it out "
                              "to take the next free one")
    model, tokenizer, length = source.model, source.tokenizer, source.max_seq_length
    task = serving.detect_task(model, source.task if task == "auto" else task)
    labels = serving.label_names(model, task, source.labels)
    if calibration is None:
        calibration = calibration_lib.load_calibration_data(
            tokenizer, length, representative_data=representative_data, cache_dir=cache_dir,
            num_examples=num_examples)
    report = {"name": name, "version": version, "task": task, "max_seq_length": length,
              "max_position_embeddings": source.max_position_embeddings,
              "model_dir": source.model_dir, "vocab_hash": tokenizer.vocab_hash,
              "data_source": calibration.source,
              "heldout_examples": int(calibration.heldout["token_ids"].shape[0])}
    if task != "replaced_token":
        report["labels"] = list(labels)
        if source.finetune is not None:
            report["finetune_task"] = source.finetune.get("task")
    # The vocabulary travels with each export so clients can map token ids to word pieces.
    vocab_bytes = ("\n".join(tokenizer.vocab) + "\n").encode("utf-8")
    # Directories this export creates, removed again if it publishes nothing.
    created = [d for d in (output_dir, *bases.values()) if not os.path.lexists(d)]
    temps, scratch, published = {}, None, False
    try:
        temps = {fmt: saved_model.temp_dir_beside(final) for fmt, final in finals.items()}
        scratch = saved_model.temp_dir_beside(os.path.join(output_dir, f"{name}.scratch"))
        _write_and_publish(source, report, task, labels, calibration, formats, quantize,
                           styles, temps, finals, bases, scratch, name, vocab_bytes, strict,
                           log)
        published = True
    except OSError as e:
        if e.errno not in _DISK_ERRNOS:
            raise
        where = f" ({e.filename})" if e.filename else ""
        raise ExportError(_disk_message(output_dir, f"{e.strerror}{where}")) from None
    except _DISK_TF_ERRORS as e:
        raise ExportError(_disk_message(output_dir, _first_line(e.message))) from None
    finally:
        for tmp in list(temps.values()) + [scratch]:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        if not published:
            for directory in reversed(created):
                try:
                    os.rmdir(directory)  # only if still empty
                except OSError:
                    pass
    report["paths"] = finals
    return report


# The export's own temporaries in the export root (which may be shared with anything else,
# e.g. `--output=/tmp`): conversion scratch space and the writability probe (choices.py).
_ROOT_TEMPORARY = re.compile(r"\..+\.scratch\.tmp-(\d+)|\.electra-export-probe\.tmp-(\d+)")


def remove_stale_export_temporaries(output_dir: str, name: str) -> list:
    """Removes what killed exports left: every temporary of a dead process in `OUT/NAME` and
    `OUT/NAME.tflite` (`.VERSION.tmp-PID`, `.FILE.tmp-PID`), and in `OUT` itself only the
    export's own (`.NAME.scratch.tmp-PID`, probes). A SIGKILLed export cannot clean up; the
    next one does, sparing the temporaries of live processes (a concurrent export on this
    machine). Returns the removed paths.

    Example:

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> for rel in (".electra.scratch.tmp-999999999", "electra/.1.tmp-999999999",
    ...             f"electra/.2.tmp-{os.getpid()}", ".notes.tmp-999999999"):
    ...     os.makedirs(os.path.join(out, rel))
    >>> sorted(os.path.relpath(p, out) for p in remove_stale_export_temporaries(out, "electra"))
    ['.electra.scratch.tmp-999999999', 'electra/.1.tmp-999999999']
    """
    removed = []
    for base in output_bases(output_dir, name).values():
        removed += remove_stale_temporaries(base)
    try:
        names = os.listdir(output_dir)
    except OSError:
        return removed
    for entry in sorted(names):
        match = _ROOT_TEMPORARY.fullmatch(entry)
        if not match:
            continue
        pid = int(match.group(1) or match.group(2))
        if pid == os.getpid() or process_alive(pid):
            continue
        path = os.path.join(output_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except OSError:
                pass
        removed.append(path)
    return removed


def _disk_message(output_dir: str, reason: str) -> str:
    return (f"writing the export under {output_dir} failed: {reason}; free space there (or "
            "get write access) or pass another --output, then run again (nothing was "
            "published; earlier versions are untouched)")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0][:300] if lines else "unknown error"


def _write_and_publish(source, report, task, labels, calibration, formats, quantize, styles,
                       temps, finals, bases, scratch, name, vocab_bytes, strict, log):
    """Writes every format into its temporary directory, verifies, then publishes."""
    model, tokenizer, length = source.model, source.tokenizer, source.max_seq_length
    if "tflite" in formats:
        report["tflite"] = _export_tflite(source, task, calibration, quantize, styles,
                                          temps["tflite"], scratch, name, log)
        report["tflite"]["dir"] = finals["tflite"]
        with open(os.path.join(temps["tflite"], VOCAB_FILE), "wb") as f:
            f.write(vocab_bytes)
        if labels:
            tflite.write_labels(temps["tflite"], labels)
    if "saved_model" in formats:
        checks = list(calibration.heldout_texts[:6]) + ["", LONG_TEXT]
        started = time.time()
        figures = saved_model.write_saved_model_to(
            temps["saved_model"], model, tokenizer, name=name, max_seq_length=length,
            task=task, check_texts=checks, extra_files={VOCAB_FILE: vocab_bytes},
            labels=labels)
        report["saved_model"] = {
            "path": finals["saved_model"], "signatures": list(saved_model.SIGNATURES),
            "max_abs_diff_vs_keras": figures, "tolerance": 1e-5,
            "bytes": _dir_bytes(temps["saved_model"]),
            "seconds": round(time.time() - started, 1)}
        log(f"saved_model: {finals['saved_model']} (max |diff| vs Keras "
            f"{max(figures.values()):.2g})")
    failed = [f"{key}: {m['floor']} not met" for key, m in
              report.get("tflite", {}).get("variants", {}).items() if not m["passed"]]
    report["passed"] = not failed
    if "saved_model" in formats:
        extra = os.path.join(temps["saved_model"], "assets.extra", verify.REPORT_FILE)
        verify.write_report(extra, report)
    if "tflite" in formats:
        verify.write_report(os.path.join(temps["tflite"], verify.REPORT_FILE), report)
    if failed and strict:
        raise ExportError(f"verification failed ({'; '.join(failed)}); nothing was "
                          "published: check the model or export without that variant")
    _publish(formats, temps, finals, bases)


def _publish(formats, temps, finals, bases) -> None:
    """Renames each temporary directory into place: TFLite first, the SavedModel last (TF
    Serving loads a version as soon as it appears). If a rename fails, what was already
    renamed is taken back, so either every format of the version is published or none."""
    done = []
    try:
        for fmt in sorted(formats, key=lambda f: f == "saved_model"):
            os.makedirs(bases[fmt], exist_ok=True)
            if os.path.lexists(finals[fmt]):
                raise ExportError(f"{finals[fmt]} appeared while exporting (another export "
                                  "took that version); run again to take the next free one")
            os.rename(temps[fmt], finals[fmt])
            done.append(fmt)
    except BaseException:
        for fmt in done:
            try:
                os.rename(finals[fmt], temps[fmt])  # removed with the other temporaries
            except OSError:
                pass
        raise


def _export_tflite(source, task, calibration, quantize, styles, out_dir, scratch, name, log):
    model, tokenizer, length = source.model, source.tokenizer, source.max_seq_length
    os.makedirs(out_dir, exist_ok=True)
    keras_ids = verify.keras_outputs_on(model, calibration.heldout, task)
    text_features = {k: v.numpy() for k, v in tokenizer.encode(
        calibration.heldout_texts, max_seq_length=length).items()}
    keras_text = verify.keras_outputs_on(model, text_features, task)
    variants = {}
    for style in styles:
        src = tflite.write_conversion_source(model, tokenizer, scratch, task=task, style=style,
                                             max_seq_length=length)
        representative = tflite.representative_inputs(calibration, style)
        for q in quantize:
            file_name = tflite.tflite_file_name(name, style, q)
            started = time.time()
            flatbuffer = tflite.convert(src, style=style, quantize=q,
                                        representative=representative)
            path = os.path.join(out_dir, file_name)
            atomic_write_bytes(path, flatbuffer)
            interpreter = tflite.load_interpreter(path)
            metrics = verify.verify_variant(
                interpreter, style=style, quantize=q, task=task, calibration=calibration,
                keras_logits=keras_ids, keras_text_logits=keras_text,
                keras_text_mask=text_features["padding_mask"])
            metrics.update(file=file_name, bytes=len(flatbuffer), style=style, quantize=q,
                           seconds=round(time.time() - started, 1))
            variants[file_name[len(name) + 1:-len(".tflite")]] = metrics
            key = verify.passes(metrics, q, task)[1].split()[0]
            log(f"tflite {file_name}: {len(flatbuffer)} bytes, {key}={metrics[key]:.4g}, "
                f"{'ok' if metrics['passed'] else 'BELOW FLOOR ' + metrics['floor']}")
    return {"dir": out_dir, "variants": variants,
            "keras_tokens": int(np.sum(calibration.heldout["padding_mask"]))}


def _dir_bytes(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(directory) for f in files)
