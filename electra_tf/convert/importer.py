"""A released checkpoint -> a model dir of this project (docs/architecture.md, "Checkpoint
conversion").

The model dir is the one training writes (config.yaml, vocab.txt, `checkpoint`, ckpt-0) plus
`conversion.json`, so the train, fine-tune and export binaries take it as it is. Its ckpt-0
holds the model's weights only: training from it starts a fresh optimizer at step 0 (the
reference cannot continue from its own released checkpoints because their optimizer slots
are missing). Every problem with the inputs is collected first; if there is any, nothing
is written.
"""

from __future__ import annotations

import json
import os
import time
from typing import Optional

from electra_tf import config as config_lib
from electra_tf import files
from electra_tf.convert import layout, sources

INIT_GENERATOR = ("none", "random")


class ConversionError(ValueError):
    """Every problem found with a conversion's inputs (one per line)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s):\n  " + "\n  ".join(self.problems))


def output_problem(path: str, flag: str, problems: list) -> None:
    """Appends why `path` cannot be created as a new output directory, if it cannot: it
    exists and is not an empty directory, or it lies under a file."""
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        problems.append(f"{flag}={path} already exists and is not an empty directory; choose "
                        "a new one (nothing there is touched)")
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        problems.append(f"{flag}={path} lies under {parent}, which is a file; choose a path in "
                        "a directory")
    elif not os.access(parent, os.W_OK):
        problems.append(f"{flag}={path}: {parent} is not writable; choose a writable place")


def read_conversion(model_dir: str) -> Optional[dict]:
    """The `conversion.json` of a converted model dir, or None."""
    from electra_tf.model_dir import CONVERSION_FILE

    path = os.path.join(model_dir, CONVERSION_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise ConversionError([f"{path} is not readable JSON ({e}); restore it from the "
                               "conversion or delete it (it only records where the weights "
                               "came from)"]) from None
    if not isinstance(record, dict):
        raise ConversionError([f"{path} is not a JSON object; restore or delete it"])
    return record


def _config_for(arch: layout.Architecture, hyper: dict, lower_case: bool,
                problems: list) -> Optional[config_lib.ElectraConfig]:
    d = arch.discriminator
    model = dict(vocab_size=arch.vocab_size, embedding_size=arch.embedding_size,
                 hidden_size=d.hidden_size, num_layers=d.num_layers, num_heads=d.num_heads,
                 intermediate_size=d.intermediate_size,
                 max_position_embeddings=arch.max_position_embeddings,
                 type_vocab_size=arch.type_vocab_size,
                 embedding_sharing="untied" if arch.untied_generator_embeddings else "tied")
    model.update(hyper)
    if model.get("attention_dropout") != model.get("hidden_dropout"):
        # keras-hub's TransformerEncoder takes one rate; the hidden one is kept.
        model["attention_dropout"] = model.get("hidden_dropout", 0.1)
    data = {"max_seq_length": min(128, arch.max_position_embeddings), "lower_case": lower_case}
    generator = {}
    if arch.generator is not None:
        g = arch.generator
        fraction = g.hidden_size / d.hidden_size
        if int(round(d.hidden_size * round(fraction, 6))) == g.hidden_size:
            fraction = round(fraction, 6)  # 0.333333 as configs/electra_base.yaml writes it
        generator = {"hidden_fraction": fraction,
                     "num_layers": None if g.num_layers == d.num_layers else g.num_layers}
    try:
        cfg = config_lib.from_dict({"model": model, "generator": generator, "data": data},
                                   source="the converted checkpoint")
    except config_lib.ConfigError as e:
        problems.append(str(e))
        return None
    if arch.generator is not None:
        g = arch.generator
        derived = (cfg.generator_hidden_size(), cfg.generator_num_layers(),
                   cfg.generator_num_heads(), cfg.generator_intermediate_size())
        if derived != (g.hidden_size, g.num_layers, g.num_heads, g.intermediate_size):
            problems.append(
                f"generator of hidden {g.hidden_size}, {g.num_layers} layers, {g.num_heads} "
                f"heads, FFN {g.intermediate_size}: this project derives a generator's heads "
                "and FFN from its width (hidden // 64, 4 * hidden) as the reference does, "
                f"which gives {derived[2]} heads and FFN {derived[3]}")
    return cfg


def _load_tokens(source: sources.Source, vocab: Optional[str], problems: list):
    from electra_tf.text import vocab as vocab_lib

    path = vocab or source.vocab_path
    if path is None and source.tokens is None:
        problems.append("no vocabulary: none beside the input; pass --vocab=vocab.txt (the "
                        "one the checkpoint was trained with)")
        return None
    try:
        if path is not None:
            tokens = vocab_lib.load_vocab(path)
        else:
            tokens = source.tokens
            vocab_lib.check_vocab(tokens, "the preset's vocabulary")
    except (OSError, ValueError) as e:
        problems.append(str(e).splitlines()[0])
        return None
    where = path or "the preset's vocabulary"
    if len(tokens) != source.arch.vocab_size:
        problems.append(f"{where} has {len(tokens)} tokens but the word embeddings have "
                        f"{source.arch.vocab_size} rows: pass the vocabulary this checkpoint "
                        "was trained with")
    return tokens


def read_source(kind: str, path: str, *, generator_input: Optional[str] = None,
                config: Optional[str] = None, generator_config: Optional[str] = None,
                untied: bool = False, problems: list) -> Optional[sources.Source]:
    """Reads any source layout into reference names (`sources.SOURCES`)."""
    if kind == "google_tf1":
        return sources.read_google_tf1(path, generator_input, problems, config=config,
                                       generator_config=generator_config)
    if kind == "huggingface":
        return sources.read_huggingface(path, generator_input, problems, untied=untied)
    if kind == "keras_hub":
        if generator_input:
            problems.append("--generator_input: a keras-hub preset holds no generator; use "
                            "--init_generator=random to add a fresh one")
        return sources.read_keras_hub(path, problems)
    problems.append(f"--from={kind!r}: use one of {', '.join(sources.SOURCES)}")
    return None


def convert(kind: str, path: str, output: str, *, generator_input: Optional[str] = None,
            vocab: Optional[str] = None, lower_case: Optional[bool] = None,
            init_generator: str = "none", generator_hidden_fraction: float = 0.25,
            config: Optional[str] = None, generator_config: Optional[str] = None,
            embedding_sharing: str = "tied", seed: int = 0, log=print) -> dict:
    """Converts one released checkpoint into a model dir at `output`.

    Args:
      kind: `google_tf1`, `huggingface` or `keras_hub`.
      path: the checkpoint (prefix or directory).
      output: the model dir to create (must not exist, or be empty).
      generator_input: the generator's checkpoint, when separate (HuggingFace).
      vocab: vocab.txt; default: the one beside the input (or in the preset).
      lower_case: tokenizer casing; default: the source's record, else True (uncased).
      init_generator: for a source without a generator, "random" adds a freshly initialised
        one (needed to continue pretraining); "none" converts the discriminator alone.
      generator_hidden_fraction: that fresh generator's width relative to the discriminator.
      config, generator_config: BERT-style config JSONs with the head counts (TF1 only).
      embedding_sharing: "tied" (the reference's default: a separate generator's embeddings
        must equal the discriminator's) or "untied" (each keeps its own; HuggingFace pairs
        of a model trained with untied or GDES sharing). A TF1 checkpoint says which itself.
      seed: initialisation seed of any fresh part.
      log: where progress lines go.

    Returns:
      The `conversion.json` record written.

    Raises:
      ConversionError: listing every problem found; nothing is written then.
    """
    import keras
    import tensorflow as tf

    from electra_tf import model_loading

    problems: list[str] = []
    if embedding_sharing not in ("tied", "untied"):
        problems.append(f"--embedding_sharing={embedding_sharing!r}: use tied or untied")
    if init_generator not in INIT_GENERATOR:
        problems.append(f"--init_generator={init_generator!r}: use none or random")
    output_problem(output, "--output", problems)
    source = read_source(kind, path, generator_input=generator_input, config=config,
                         generator_config=generator_config,
                         untied=embedding_sharing == "untied", problems=problems)
    if source is None:
        raise ConversionError(problems or [f"{path}: nothing could be read"])
    arch = source.arch
    layout.check_tensors(source.tensors, arch, path, problems, display=source.display_names)
    tokens = _load_tokens(source, vocab, problems)
    fresh = []
    if arch.generator is None and init_generator == "random":
        hidden = max(1, int(round(arch.discriminator.hidden_size * generator_hidden_fraction)))
        arch.generator = layout.Network(hidden, arch.discriminator.num_layers,
                                        layout.default_num_heads(hidden), 4 * hidden)
        fresh.append("generator")
    elif arch.generator is not None and init_generator == "random":
        problems.append("--init_generator=random: the input already has a generator; drop it")
    if not arch.discriminator_head:
        fresh.append("discriminator head")
    if lower_case is None:
        lower_case = True if source.lower_case is None else source.lower_case
    cfg = _config_for(arch, source.hyper, lower_case, problems)
    if problems:
        raise ConversionError(problems)
    for note in source.notes:
        log(f"note: {note}")

    keras.utils.set_random_seed(seed)
    from electra_tf.modeling.discriminator import ElectraDiscriminator

    if arch.generator is not None:
        root = model = model_loading.build_pretrainer(cfg, tokens)
    else:
        # Built and saved as load_discriminator restores it: `model/discriminator/...`.
        with keras.name_scope("discriminator"):
            model = ElectraDiscriminator.from_electra_config(cfg)
        root = tf.Module()
        root.discriminator = model
    entries = layout.model_entries(model)
    wanted = {name: entries[name] for name in entries if name in source.tensors}
    left = sorted(set(entries) - set(wanted))
    def is_fresh(name):
        if "generator" in fresh and name.startswith((layout.GENERATOR + "/", layout.GEN_HEAD)):
            return True
        return "discriminator head" in fresh and name.startswith(layout.DISC_HEAD)

    unfilled = [name for name in left if not is_fresh(name)]
    if unfilled:  # check_tensors passed, so this would be a mapping bug here
        raise ConversionError([f"no source tensor for {', '.join(unfilled[:5])}"])
    layout.assign(wanted, source.tensors)

    record = {
        "source": kind, "input": os.path.abspath(path),
        "generator_input": os.path.abspath(generator_input) if generator_input else None,
        "generator": ("random" if "generator" in fresh else
                      "imported" if arch.generator is not None else "none"),
        "discriminator_head": "random" if "discriminator head" in fresh else "imported",
        "tensors_imported": len(wanted),
        "optimizer_state_skipped": len(source.ignored),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_model_dir(output, cfg, tokens, root, record)
    log(f"converted {len(wanted)} tensors from {path} ({kind}) into {output}")
    for part in fresh:
        log(f"note: the {part} is freshly initialised (seed {seed}); it is not in the source")
    if record["generator"] == "none":
        log("note: discriminator only: ready for fine-tuning and export; to continue "
            "pretraining, convert again with --generator_input=GENERATOR or "
            "--init_generator=random")
    return record


def _write_model_dir(output: str, cfg, tokens: list, root, record: dict) -> None:
    """Writes everything under a temporary name beside `output`, then renames it."""
    import tensorflow as tf

    from electra_tf import model_dir as model_dir_lib
    from electra_tf.text import vocab as vocab_lib

    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(os.path.abspath(output))}.tmp-{os.getpid()}")
    files.remove_path(tmp)
    try:
        os.makedirs(tmp)
        # Derived again from whatever sequence length the first run uses.
        config_lib.save_config(cfg, os.path.join(tmp, model_dir_lib.CONFIG_FILE),
                               unset=("objective.max_predictions_per_seq",))
        vocab_lib.write_vocab(tokens, os.path.join(tmp, model_dir_lib.VOCAB_FILE))
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=root), tmp,
                                             max_to_keep=1, checkpoint_name="ckpt")
        manager.save(checkpoint_number=0)  # `checkpoint` names it by a relative path
        files.atomic_write_text(os.path.join(tmp, model_dir_lib.CONVERSION_FILE),
                                json.dumps(record, indent=2) + "\n")
        if os.path.isdir(output):
            os.rmdir(output)  # empty (checked before any work)
        os.rename(tmp, output)
    except BaseException:
        files.remove_path(tmp)
        raise
