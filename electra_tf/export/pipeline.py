"""One export run: SavedModel and/or TFLite variants, verified, then moved into place.

Layout under `output_dir` (VERSION is shared by both, the next free integer by default):
  NAME/VERSION/                    SavedModel for TF Serving (`--model_base_path=OUT/NAME`)
  NAME/VERSION/assets.extra/       tf_serving_warmup_requests, verification.json, vocab.txt
  NAME.tflite/VERSION/             NAME_{ids,text}_{float32,float16,dynamic_int8,int8}.tflite
  NAME.tflite/VERSION/             verification.json, vocab.txt (+ labels.txt for classifiers
                                   and taggers: one label name per line, in class-id order)
Everything is written to temporary directories beside the final ones and renamed only after
every check passed, so a failed or interrupted export leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Optional

import numpy as np

from electra_tf.export import calibration as calibration_lib
from electra_tf.export import saved_model, serving, tflite, verify
from electra_tf.export.choices import FORMATS, check_choices
from electra_tf.export.source import ExportError, ExportSource
from electra_tf.files import atomic_write_bytes

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
      ExportError: bad choices, an existing version, a failed verification.
    """
    formats, quantize, styles = check_choices(formats, quantize, styles)
    if version is not None and int(version) < 1:
        raise ExportError(f"--version={version} must be a positive integer")
    bases = {"saved_model": os.path.join(output_dir, name),
             "tflite": os.path.join(output_dir, f"{name}.tflite")}
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
    temps = {fmt: saved_model.temp_dir_beside(final) for fmt, final in finals.items()}
    scratch = saved_model.temp_dir_beside(os.path.join(output_dir, f"{name}.scratch"))
    try:
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
        for fmt in formats:
            os.makedirs(bases[fmt], exist_ok=True)
            os.rename(temps[fmt], finals[fmt])
    finally:
        for tmp in list(temps.values()) + [scratch]:
            shutil.rmtree(tmp, ignore_errors=True)
    report["paths"] = finals
    return report


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
