"""Fine-tuning a discriminator on a labelled task: the whole run behind `electra_tf.finetune`.

`run_finetuning(FinetuneOptions(...))` reads the task (`data/tasks.py`), builds the model on
the pretrained (or imported, or random) encoder, trains every seed (`finetune_loop.py`),
keeps each seed's best epoch, writes `results.json` (per seed and the median over seeds) and
leaves a model dir that `electra_tf.export` accepts. The recipe is the reference's
(docs/architecture.md, "Fine-tuning"): [CLS] -> dropout -> dense, layer-wise learning-rate
decay, AdamW with 10% warmup and linear decay.

`FinetuneOptions`, the recipe's defaults and the checks of --init and --output_dir are
`finetune_options.py`'s (re-exported here).
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
from typing import Callable, Sequence

import numpy as np

from electra_tf import config as config_lib
from electra_tf import files
from electra_tf import model_checkpoints
from electra_tf import model_dir as model_dir_lib
from electra_tf import model_loading
from electra_tf.training.finetune_options import (
    DEFAULT_MAX_SEQ_LENGTH, FinetuneError, FinetuneOptions, _check_output_dir, _resolve_model,
    default_layerwise_decay, default_learning_rate)


def make_evaluator(spec, dev_features, labels, dev_examples) -> Callable:
    """function(model) -> the task's dev metrics (`task_metrics.compute_metrics`)."""
    import tensorflow as tf

    from electra_tf.training import task_metrics

    @tf.function
    def predict(model, inputs):
        return model(inputs, training=False)["logits"]

    def evaluate(model):
        outputs = []
        for start in range(0, len(dev_features), 128):
            chunk = {k: v[start:start + 128] for k, v in dev_features.inputs.items()}
            outputs.append(predict(model, chunk).numpy())
        logits = np.concatenate(outputs)
        if spec.kind == "regression":
            return task_metrics.compute_metrics(spec, dev_features.labels, logits[:, 0])
        if spec.kind == "classification":
            return task_metrics.compute_metrics(spec, dev_features.labels, logits.argmax(-1))
        predicted = logits.argmax(-1)
        pred_tags, true_tags = [], []
        for row, (example, starts) in enumerate(zip(dev_examples, dev_features.word_starts)):
            pred_tags.append([labels[predicted[row, s]] if s >= 0 else "O" for s in starts])
            true_tags.append(list(example.tags))
        return task_metrics.compute_metrics(spec, true_tags, pred_tags)

    return evaluate


def run_finetuning(options: FinetuneOptions, *, log: Callable = print,
                   callbacks: Sequence = ()) -> dict:
    """Fine-tunes every seed (resuming what was done) and writes `results.json`.

    Args:
      options: the `FinetuneOptions`.
      log: where progress lines go.
      callbacks: passed to each seed's loop (tests inject faults through them).

    Returns:
      The results: per seed (best epoch and its metrics), the median over seeds, the seed
      whose model was kept in `output_dir` for export.

    Raises:
      FinetuneError, TaskDataError, ModelDirError, ConfigError, VocabError: bad input, one
        line; nothing is written to `output_dir` before every check has passed.
    """
    import keras
    import tensorflow as tf

    from electra_tf.data import task_features, tasks
    from electra_tf.text.tokenizer import ElectraTokenizer
    from electra_tf.training import (checkpointing, finetune_loop, layerwise_decay,
                                     optimizers, precision)
    from electra_tf.training import strategy as strategy_lib

    # Before any work: an output dir that is a file or cannot be written.
    model_dir_lib.check_writable_dir(options.output_dir, flag="--output_dir")
    if not options.seeds or any(int(s) < 0 for s in options.seeds):
        raise FinetuneError(f"--seeds={','.join(map(str, options.seeds))}: pass one or more "
                            "non-negative integers, e.g. --seeds=1,2,3")
    if len(set(int(s) for s in options.seeds)) != len(options.seeds):
        raise FinetuneError(f"--seeds={','.join(map(str, options.seeds))} repeats a seed; "
                            "each seed is one run, pass each once")
    if not 0.0 <= options.warmup_fraction <= 1.0:
        raise FinetuneError(f"--warmup_fraction={options.warmup_fraction} must be in [0, 1]")
    if options.strategy == "multi_worker_mirrored":
        raise FinetuneError("--strategy=multi_worker_mirrored is not supported by fine-tuning "
                            "yet (one writer per output dir); use mirrored on one machine")
    for flag in ("epochs", "max_seq_length"):
        value = getattr(options, flag)
        if value is not None and value < 1:
            raise FinetuneError(f"--{flag}={value} must be >= 1")
    # `not x > 0` rather than `x <= 0`: NaN must fail too.
    if options.learning_rate is not None and not (0 < options.learning_rate < math.inf):
        raise FinetuneError(f"--learning_rate={options.learning_rate} must be a positive "
                            "finite number")
    if options.layerwise_lr_decay is not None and not 0 < options.layerwise_lr_decay <= 1:
        raise FinetuneError(f"--layerwise_lr_decay={options.layerwise_lr_decay} must be in "
                            "(0, 1] (1: no decay)")
    if not 0 <= options.weight_decay < math.inf:
        raise FinetuneError(f"--weight_decay={options.weight_decay} must be a non-negative "
                            "finite number")
    if options.batch_size < 1:
        raise FinetuneError(f"--batch_size={options.batch_size} must be >= 1")
    if options.checkpoint_every < 0:
        raise FinetuneError(f"--checkpoint_every={options.checkpoint_every} must be >= 0 "
                            "(0: checkpoint at epoch ends only)")
    data = tasks.load_task_data(
        options.task, options.data_dir, text_column=options.text_column,
        text_pair_column=options.text_pair_column, label_column=options.label_column,
        train_file=options.train_file, dev_file=options.dev_file, header=options.header)
    spec = data.spec
    if spec.kind == "classification" and len(data.labels) < 2:
        raise FinetuneError(f"{data.train_file} has a single label {data.labels[0]!r} in "
                            f"{options.label_column or 'its label column'}; a classifier "
                            "needs examples of at least two labels (check --label_column)")
    if options.max_train_examples is not None:
        if options.max_train_examples < 1:
            raise FinetuneError(f"--max_train_examples={options.max_train_examples} must be "
                                ">= 1")
        keep = np.random.default_rng(0).permutation(len(data.train))
        data.train = [data.train[i] for i in sorted(keep[:options.max_train_examples])]
    cfg, tokens, vocab_path, init_info = _resolve_model(options)
    num_labels = max(1, len(data.labels))
    if init_info is not None:
        head = max(1, len(init_info["labels"]))
        if init_info["kind"] != spec.kind or head != num_labels or (
                spec.kind != "regression" and list(init_info["labels"]) != list(data.labels)):
            raise FinetuneError(
                f"--init={options.init} has a {init_info['kind']} head of {head} labels "
                f"{init_info['labels'][:5]} but {spec.name} needs a {spec.kind} head of "
                f"{num_labels} labels {list(data.labels)[:5]}; start from the pretraining "
                "model dir instead")
    limit = cfg.model.max_position_embeddings
    max_seq_length = (min(DEFAULT_MAX_SEQ_LENGTH, limit) if options.max_seq_length is None
                      else options.max_seq_length)
    if not 3 <= max_seq_length <= limit:
        raise FinetuneError(f"--max_seq_length={max_seq_length} is outside 3..{limit} "
                            "(model.max_position_embeddings); pick a length in that range")
    epochs = spec.default_epochs if options.epochs is None else options.epochs
    steps_per_epoch = len(data.train) // options.batch_size
    if epochs < 1 or steps_per_epoch < 1:
        raise FinetuneError(
            f"{data.train_file} has {len(data.train)} examples, fewer than one batch of "
            f"--batch_size={options.batch_size} (or --epochs={epochs} < 1); lower "
            "--batch_size or add data")
    learning_rate = (default_learning_rate(cfg) if options.learning_rate is None
                     else options.learning_rate)
    decay = (default_layerwise_decay(cfg) if options.layerwise_lr_decay is None
             else options.layerwise_lr_decay)
    info = {"task": spec.name, "kind": spec.kind, "labels": list(data.labels),
            "max_seq_length": max_seq_length,
            "init": options.init if options.init == "none" else os.path.abspath(options.init),
            "warmup_fraction": options.warmup_fraction, "weight_decay": options.weight_decay,
            "mixed_precision": options.mixed_precision,
            "train_file": data.train_file, "dev_file": data.dev_file,
            "epochs": epochs, "learning_rate": learning_rate, "layerwise_lr_decay": decay,
            "reference_layerwise_decay": options.reference_layerwise_decay,
            "batch_size": options.batch_size, "seeds": list(options.seeds),
            "train_examples": len(data.train), "dev_examples": len(data.dev),
            "metrics": list(spec.metrics), "primary_metric": spec.primary_metric}
    _check_output_dir(options.output_dir, info, options.init or "none")
    strategy = strategy_lib.make_strategy(
        options.strategy, num_gpus=options.num_gpus, all_reduce_alg=options.all_reduce_alg,
        tpu_address=options.tpu)
    if options.batch_size % strategy.num_replicas_in_sync:
        raise FinetuneError(f"--batch_size={options.batch_size} is not divisible by the "
                            f"{strategy.num_replicas_in_sync} replicas; use a multiple")

    # Every check passed. One writer per output dir (docs/architecture.md, "The model dir"):
    # the lock comes before the first write and is held to the end; the checks of the dir are
    # repeated under it, then what an interrupted run left is removed.
    lock = model_dir_lib.lock_model_dir(options.output_dir, flag="--output_dir")
    try:
        _check_output_dir(options.output_dir, info, options.init or "none")
        removed = model_dir_lib.remove_stale_temporaries(options.output_dir)
        if removed:
            log(f"removed {len(removed)} leftover(s) of an interrupted run: " + ", ".join(
                os.path.relpath(p, options.output_dir) for p in removed))
        os.makedirs(options.output_dir, exist_ok=True)
        config_lib.save_config(cfg, os.path.join(options.output_dir, model_dir_lib.CONFIG_FILE))
        if os.path.abspath(vocab_path) != os.path.abspath(
                os.path.join(options.output_dir, model_dir_lib.VOCAB_FILE)):
            with open(vocab_path, encoding="utf-8") as f:
                files.atomic_write_text(
                    os.path.join(options.output_dir, model_dir_lib.VOCAB_FILE), f.read())
        files.atomic_write_text(os.path.join(options.output_dir, model_dir_lib.FINETUNE_FILE),
                                json.dumps(info, indent=1, ensure_ascii=False) + "\n")

        tokenizer = ElectraTokenizer(tokens, lower_case=cfg.data.lower_case)
        label_ids = {name: i for i, name in enumerate(data.labels)}
        if spec.kind == "tagging":
            train_features = task_features.encode_tagged(tokenizer, data.train, label_ids,
                                                         max_seq_length)
            dev_features = task_features.encode_tagged(tokenizer, data.dev, label_ids,
                                                       max_seq_length)
        else:
            train_features = task_features.encode_texts(tokenizer, data.train, spec.kind,
                                                        label_ids, max_seq_length)
            dev_features = task_features.encode_texts(tokenizer, data.dev, spec.kind, label_ids,
                                                      max_seq_length)
        evaluate = make_evaluator(spec, dev_features, data.labels, data.dev)
        precision.configure_precision(options.mixed_precision)
        total_steps = epochs * steps_per_epoch
        opt_cfg = config_lib.OptimizerConfig(
            learning_rate=learning_rate, warmup_steps=int(options.warmup_fraction * total_steps),
            weight_decay=options.weight_decay)
        multiplier = functools.partial(
            layerwise_decay.learning_rate_multiplier, num_layers=cfg.model.num_layers,
            decay=decay, reference=options.reference_layerwise_decay)
        log(f"fine-tuning {spec.name} ({spec.kind}, {num_labels} labels): {len(data.train)} "
            f"train / {len(data.dev)} dev examples, {epochs} epochs of {steps_per_epoch} steps, "
            f"lr {learning_rate:g}, layer-wise decay {decay:g}, seeds {list(options.seeds)}")

        states = {}
        for seed in options.seeds:
            keras.utils.set_random_seed(seed)
            # Per seed: clear_session() below resets Keras' global dtype policy.
            precision.configure_precision(options.mixed_precision)
            with strategy.scope():
                encoder, head_weights = None, None
                if options.init and options.init != "none":
                    if init_info is None:
                        encoder = model_loading.load_discriminator(options.init)
                        encoder = getattr(encoder, "encoder", encoder)
                    else:
                        start, _ = model_loading.load_task_model(options.init)
                        encoder, head_weights = start.encoder, start.head.get_weights()
                from electra_tf.modeling.task_models import build_task_model
                model = build_task_model(cfg, spec.kind, num_labels, encoder=encoder)
                if head_weights is not None:
                    model.head.set_weights(head_weights)
                optimizer = optimizers.create_optimizer(
                    opt_cfg, total_steps, mixed_precision=options.mixed_precision,
                    learning_rate_multiplier=multiplier)
                optimizer.build(model.trainable_variables)
                step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            run = finetune_loop.SeedRun(
                directory=os.path.join(options.output_dir, f"seed-{seed}"), kind=spec.kind,
                epochs=epochs, batch_size=options.batch_size, steps_per_epoch=steps_per_epoch,
                seed=seed, evaluate=evaluate, primary_metric=spec.primary_metric,
                checkpoint_every=options.checkpoint_every, log=log,
                show_progress=options.show_progress)
            states[seed] = finetune_loop.train_seed(
                run, strategy, model, optimizer, step, train_features,
                extra_state={"dropout_seeds": checkpointing.dropout_seed_states(model)},
                callbacks=callbacks)
            keras.backend.clear_session()
        return _write_results(options.output_dir, spec, cfg, info, states)
    except (OSError, tf.errors.OpError) as e:
        if not _is_output_failure(e):
            raise
        model_dir_lib.remove_stale_temporaries(options.output_dir)
        raise FinetuneError(str(model_dir_lib.output_error(
            e, flag="--output_dir", path=options.output_dir,
            then="what was finished is kept: free space (or fix the permissions) and run the "
                 "same command to resume"))) from None
    finally:
        lock.release()


def _is_output_failure(error: BaseException) -> bool:
    """A failed write of the output dir (full disk, permissions), not a bug elsewhere."""
    import errno

    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES,
                               errno.EPERM, errno.EROFS)
    return model_dir_lib.is_disk_full(error)


def _write_results(output_dir, spec, cfg, info, states) -> dict:
    """results.json and the kept model (the best seed's best epoch) in `output_dir`."""
    import tensorflow as tf

    per_seed = {str(seed): {"best_epoch": state["best"]["epoch"], **state["best"]["metrics"]}
                for seed, state in states.items()}
    median = {name: float(statistics.median(r[name] for r in per_seed.values()))
              for name in spec.metrics}
    best_seed = max(states, key=lambda s: states[s]["best"]["metrics"][spec.primary_metric])
    results = {"task": spec.name, "kind": spec.kind, "metrics": list(spec.metrics),
               "primary_metric": spec.primary_metric, "seeds": per_seed, "median": median,
               "kept_seed": best_seed,
               "epochs": {str(s): state["epochs"] for s, state in states.items()}}
    # The kept model: the best seed's best weights, as the model dir's own checkpoint, so that
    # electra_tf.export (and load_task_model) find it like any model dir's.
    model = model_loading.build_task_model_from_dir(output_dir, cfg, info)
    best_path = os.path.join(output_dir, f"seed-{best_seed}", "best",
                             os.path.basename(states[best_seed]["best"]["checkpoint"]))
    try:
        tf.train.Checkpoint(model=model).read(best_path) \
            .assert_existing_objects_matched().expect_partial()
    except Exception as e:  # pylint: disable=broad-except
        if not model_checkpoints.is_damage(e):
            raise
        raise FinetuneError(
            f"{best_path}, the best weights of seed {best_seed}, is damaged ("
            f"{model_dir_lib.describe_error(e)}); delete "
            f"{os.path.join(output_dir, f'seed-{best_seed}')} and run the same command to "
            "train that seed again") from None
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), output_dir,
                                         max_to_keep=1, checkpoint_name="ckpt")
    manager.save(checkpoint_number=int(best_seed))
    files.atomic_write_text(os.path.join(output_dir, "results.json"),
                            json.dumps(results, indent=1) + "\n")
    return results
